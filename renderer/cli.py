"""The renderer's commands: a thin layer over the library.

Each command parses its options, calls one library function and reports.
User mistakes (bad config, missing weights, bad device) exit non-zero with a
message and write nothing. ``app.cli`` registers them on the
``clipig-gallery`` group beside the generator's.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import click

from gallery.paths import METHODS
from gallery.settings import (
    DEFAULT_MODEL,
    MODEL_ENV,
    PRECISIONS,
    ModelUnavailable,
    default_model_name,
)

METHOD_CHOICES = [str(m) for m in METHODS]


def check_device(name: str, precision: str | None) -> None:
    """For a dry run, which renders nothing: a named device (and a precision asked for
    on it) must still be usable, with the message a real run would give."""
    if name != "auto":
        choose_precision(precision, resolve_device(name))  # raises what a run would


def resolve_device(name: str, need_gpu: bool = False):
    """The device for --device; ``auto`` without a GPU stops when ``need_gpu``."""
    from .engine.device import DeviceError
    from .engine.device import resolve_device as resolve

    try:
        # On stderr: `rate` may be writing its CSV to stdout.
        return resolve(name, need_gpu=need_gpu, echo=lambda line: click.echo(line, err=True))
    except DeviceError as exc:
        raise click.UsageError(str(exc)) from None


def choose_precision(requested: str | None, device, executor=None):
    """The run's precision (a ``renderer.engine.precision.Choice``, with the reason):
    ``requested`` if the device (or every Ray worker) computes it natively, else a
    usage error saying what it costs; without one, the fastest native one. On a
    cluster the choice is said here; locally ``announce`` says it."""
    from .engine.precision import PrecisionError, choose

    try:
        if executor is None:
            return choose(device, requested)
        choice = executor.precision(requested)
    except PrecisionError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"ray: {choice.text()}")
    return choice


def announce(device, choice, model) -> None:
    """Say where and how the run renders, and why in this precision, before its first
    image. ``choice`` is what ``choose_precision`` took."""
    from .engine.device import describe

    click.echo(describe(device, choice, model.name, model.identity))


def model_option(fn):
    return click.option(
        "--model",
        default=None,
        metavar="NAME|PATH",
        help=f"CLIP model name or checkpoint path (default ${MODEL_ENV} or {DEFAULT_MODEL}).",
    )(fn)


def device_option(fn):
    return click.option(
        "--device", default="auto", show_default=True, help="cpu, cuda, cuda:1, ... or auto."
    )(fn)


def precision_option(fn):
    return click.option(
        "--precision",
        type=click.Choice(PRECISIONS),
        default=None,
        help="Compute precision of CLIP (default: the fastest the device computes natively: "
             "bf16 on Ampere and newer GPUs and on CPUs with AVX512-BF16 or AMX, fp16 on "
             "older GPUs and Apple GPUs, else fp32). One the device only emulates is "
             "refused. fp16 is what the 2021 renderer used.",
    )(fn)


RAY_FROM_ENV = "from-env"  # --ray without an address: $RAY_ADDRESS, or a local cluster


def ray_options(fn):
    fn = click.option("--ray-cpus-per-worker", type=click.IntRange(min=1), default=1,
                      show_default=True,
                      help="With --ray and --device cpu: CPUs per worker.")(fn)
    fn = click.option("--ray-workers", type=click.IntRange(min=1), default=None,
                      help="With --ray: at most this many workers (default: one per GPU, "
                           "or per --ray-cpus-per-worker CPUs).")(fn)
    return click.option(
        "--ray", "ray_address", is_flag=False, flag_value=RAY_FROM_ENV, default=None,
        metavar="[ADDRESS]",
        help="Render on a Ray cluster: ADDRESS (ray://host:10001, host:port or auto), or "
             "alone $RAY_ADDRESS or else a new local cluster. This process writes the cache.",
    )(fn)


# Frames of each image's optimisation history (renderer.engine.history.DEFAULT_FRAMES).
HISTORY_FRAMES = 24


def history_options(fn):
    fn = click.option("--history-only", is_flag=True,
                      help="Only add histories to complete images that lack one (each is "
                           "rendered again; its PNG and record stay).")(fn)
    fn = click.option("--no-history", is_flag=True,
                      help="Keep no optimisation history (an image without one is complete).")(fn)
    return click.option("--history-frames", type=click.IntRange(min=2), default=HISTORY_FRAMES,
                        show_default=True,
                        help="Frames of each image's optimisation history, saved as an "
                             "animated WebP beside its PNG.")(fn)


def frames_to_keep(frames: int, no_history: bool, history_only: bool) -> int:
    """Frames to keep per image (0: none); --no-history with --history-only is a mistake."""
    if no_history and history_only:
        raise click.UsageError("--no-history and --history-only contradict each other")
    return 0 if no_history else frames


@contextmanager
def cluster(ray_address, model, device, workers, cpus_per_worker):
    """A RayExecutor for the command's batches (None without --ray); disconnects after."""
    if ray_address is None:
        for name, value in (("--ray-workers", workers),
                            ("--ray-cpus-per-worker", cpus_per_worker != 1)):
            if value:
                raise click.UsageError(f"{name} applies to --ray only")
        yield None
        return
    from .execution.cluster import ClusterError, RayExecutor, connect, shutdown

    try:
        connect(None if ray_address == RAY_FROM_ENV else ray_address, echo=click.echo)
    except ClusterError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        executor = RayExecutor(model, device, workers, cpus_per_worker, echo=click.echo)
    except ClusterError as exc:
        shutdown_quietly(shutdown)
        raise click.ClickException(str(exc)) from None
    try:
        yield executor
    finally:
        shutdown_quietly(shutdown)


def shutdown_quietly(shutdown) -> None:
    try:
        shutdown()
    except Exception:  # noqa: BLE001 -- leaving: a failed disconnect must not hide the result
        pass


def load_model(name: str | None, device):
    from .engine.clipmodel import load_clip

    try:
        return load_clip(name or default_model_name(), device)
    except ModelUnavailable as exc:
        raise click.ClickException(str(exc)) from None


@click.command("render-config")
@click.argument("config_path", metavar="CONFIG.yaml", type=click.Path(dir_okay=False))
@click.option("--text", default=None, help="Prompt that replaces the config's text feature.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="PNG to write; its record goes beside it as .json.")
@model_option
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed of the image.")
@click.option("--epochs", default=None, type=click.IntRange(min=1),
              help="Override the config's epochs.")
@device_option
@precision_option
def render_config(config_path, text, output, model, seed, epochs, device, precision):
    """Render one image from any CLIPig CONFIG.yaml."""
    from .execution.jobs import ImageJob, render_files
    from .language.config import ConfigError, load_config

    try:
        config = load_config(config_path)
        if epochs is not None:
            config = config.with_epochs(epochs)
        prompt = text if text is not None else config.text
        if text is not None:
            config = config.with_text(text)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    output = Path(output)
    if output.suffix.lower() != ".png":
        raise click.BadParameter("the output must be a .png file", param_hint="--output")
    # The config may name a model and device; the command line wins.
    device = resolve_device(config.device if device == "auto" and config.device else device)
    choice = choose_precision(precision, device)
    clip_model = load_model(model or config.model, device)
    announce(device, choice, clip_model)
    with _bar(config.epochs, "render") as bar:
        (record,) = render_files(
            config, clip_model, [ImageJob(prompt, seed, output)], choice.precision,
            progress=lambda p: bar.update(p.epoch - bar.n),
        )
    click.echo(
        f"{output}: sim {record.sim:.2f}, {record.seconds:.1f} s on {record.device} "
        f"({record.precision}, {record.model})"
    )


def cache_option(fn):
    return click.option(
        "--cache",
        "cache_dir",
        default=None,
        type=click.Path(file_okay=False),
        help="Cache folder (default $CLIPIG_CACHE or ./cache).",
    )(fn)


@click.command()
@click.option("--method", "methods", type=click.Choice(METHOD_CHOICES), multiple=True,
              help="Render only this method (repeatable; default both).")
@click.option("--animal", "animals", multiple=True, help="Only this animal (repeatable).")
@click.option("--thing", "things", multiple=True, help="Only this thing (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Render at most this many images (with --best-of: prompt x method) in this run.")
@cache_option
@model_option
@click.option("--epochs", default=None, type=click.IntRange(min=1),
              help="Override the methods' epochs (part of what decides a redo).")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Base seed; each image's seed derives from it, its stem and method.")
@click.option("--batch", type=click.IntRange(min=1), default=None,
              help="Images per batch (default: from free device memory).")
@device_option
@precision_option
@click.option("--dry-run", is_flag=True, help="List what would be rendered and why.")
@click.option("--best-of", "best_of", type=click.IntRange(min=1), default=None, metavar="N",
              help="The best-of-N gallery: N short runs per prompt x method, rated, the best "
                   "continued (into CACHE/best-of/).")
@click.option("--keep", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --best-of: short-run images kept per prompt (the best K).")
@click.option("--epochs-short", type=click.IntRange(min=1), default=None,
              help="With --best-of: override the short runs' epochs (part of what decides "
                   "a redo).")
@click.option("--epochs-detail", type=click.IntRange(min=1), default=None,
              help="With --best-of: override the continued runs' epochs.")
@click.option("--select-by", type=click.Choice(["sim", "judge"]), default="sim",
              show_default=True,
              help="With --best-of: what picks the winner: the optimised model's sim, or a "
                   "second model's (--judge-model) rating of each short run.")
@click.option("--judge-model", default=None, metavar="NAME|PATH",
              help="With --select-by judge: the judge (default ViT-B/16).")
@history_options
@ray_options
def render(methods, animals, things, limit, cache_dir, model, epochs, seed, batch, device,
           precision, dry_run, best_of, keep, epochs_short, epochs_detail, select_by,
           judge_model, history_frames, no_history, history_only, ray_address, ray_workers,
           ray_cpus_per_worker):
    """Render every prompt x method into the cache, skipping complete images."""
    from gallery.prompts import load_prompts
    from gallery.settings import default_cache_dir

    from .runs.first import plan_gallery, render_gallery, select

    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    frames = frames_to_keep(history_frames, no_history, history_only)
    try:
        select(load_prompts(), animals, things)  # names an unknown one before any loading
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if history_only:
        _history_only(cache, best_of, [int(m) for m in methods] or METHODS, animals, things,
                      limit, model, epochs, epochs_short, epochs_detail, seed, batch, device,
                      precision, dry_run, frames, (ray_address, ray_workers,
                                                   ray_cpus_per_worker))
        return
    if best_of is not None:
        if epochs is not None:
            raise click.UsageError("--epochs sets the first attempts' epochs; with --best-of "
                                   "use --epochs-short and --epochs-detail")
        if judge_model and select_by != "judge":
            raise click.UsageError("--judge-model goes with --select-by judge")
        _render_best_of(cache, best_of, keep, [int(m) for m in methods] or METHODS, animals,
                        things, limit, model, epochs_short, epochs_detail, seed, batch, device,
                        precision, dry_run, (ray_address, ray_workers, ray_cpus_per_worker),
                        (select_by, judge_model), frames)
        return
    for name, value in (("--keep", keep != 1), ("--epochs-short", epochs_short),
                        ("--epochs-detail", epochs_detail), ("--select-by", select_by != "sim"),
                        ("--judge-model", judge_model)):
        if value:
            raise click.UsageError(f"{name} applies to --best-of only")
    # The model is identified by its weights, so it is loaded even for a dry
    # run (on the CPU then: nothing renders); with --ray, here only for that.
    local = dry_run or ray_address is not None
    if dry_run:
        check_device(device, precision)
    target = resolve_device("cpu" if local else device, need_gpu=True)
    choice = None if local else choose_precision(precision, target)
    clip_model = load_model(model, target)
    planned = plan_gallery(cache, clip_model.identity, methods=[int(m) for m in methods] or METHODS,
                           animals=animals, things=things, epochs=epochs, seed=seed, limit=limit)
    items, pending = planned.items, planned.pending
    if dry_run:
        _dry_run_report(items, pending, cache)
        return
    if not pending:
        click.echo(f"nothing to render: {len(items)} images complete in {cache}/")
        return
    with cluster(ray_address, clip_model, device, ray_workers, ray_cpus_per_worker) as ray:
        if ray is None:
            announce(target, choice, clip_model)
        else:
            choice = choose_precision(precision, None, ray)
        with _bar(len(pending), "render", unit="image") as bar, _keeping("images", cache):
            report = render_gallery(cache, pending, planned.configs, clip_model,
                                    planned.stems, batch, choice.precision, on_batch=bar.update,
                                    echo=_echo_above(bar), executor=ray, history=frames)
        if ray is not None:
            report.device = ray.device_label
    click.echo(
        f"{report.rendered} images in {report.seconds:.1f} s "
        f"({report.images_per_hour:.0f} images/hour) on {report.device}; "
        f"batches {sorted(set(report.batches))}; cache {cache}/"
    )
    _history_sizes([i.png for i in items], frames)


def _render_best_of(cache, runs, keep, methods, animals, things, limit, model, epochs_short,
                    epochs_detail, seed, batch, device, precision, dry_run, ray_args,
                    selection, frames):
    """`render --best-of N`: plan, say the work and its estimated time, render."""
    # The estimate comes from this device's speed, so even a dry run measures
    # there (a dry run falls back to the CPU instead of stopping); with --ray
    # the workers measure it.
    on_ray = ray_args[0] is not None
    if dry_run:
        check_device(device, precision)
    target = resolve_device("cpu" if on_ray else device, need_gpu=not (dry_run or on_ray))
    choice = None if on_ray else choose_precision(precision, target)
    clip_model = load_model(model, target)
    judge = None
    if selection[0] == "judge":
        from .runs.judge import DEFAULT_JUDGE

        judge = load_model(selection[1] or DEFAULT_JUDGE,
                           judge_device(target, on_ray and not dry_run))
        click.echo(f"the winner is chosen by the judge {judge.name} ({judge.identity})")
    with cluster(ray_args[0], clip_model, device, *ray_args[1:]) as ray:
        if ray is not None:
            choice = choose_precision(precision, None, ray)
        _best_of_with(cache, runs, keep, methods, animals, things, limit, clip_model,
                      epochs_short, epochs_detail, seed, batch, target, choice, dry_run, ray,
                      judge, frames)


def _best_of_with(cache, runs, keep, methods, animals, things, limit, clip_model, epochs_short,
                  epochs_detail, seed, batch, target, choice, dry_run, executor, judge,
                  frames):
    from .runs.bestof import (
        batch_sizes,
        describe_sizes,
        measure_speed,
        plan_best_of,
        render_best_of,
    )

    precision = choice.precision

    try:
        plan = plan_best_of(cache, clip_model.identity, runs, methods=methods,
                            animals=animals, things=things, epochs_short=epochs_short,
                            epochs_detail=epochs_detail, seed=seed, keep=keep, limit=limit,
                            select_by="judge" if judge else "sim",
                            judge_id=judge.identity if judge else "")
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if dry_run:
        _best_of_dry_run(plan, cache)
    if not plan.pending:
        click.echo(f"nothing to render: best of {runs} complete for {len(plan.entries)} "
                   f"prompt x method in {cache}/best-of/")
        return
    if executor is None:
        announce(target, choice, clip_model)
    # Sizing and timing render too, so they may run out of memory (or disk) alike.
    with _keeping("runs", cache):
        sizes = batch_sizes(plan, clip_model, batch, precision, executor, frames)
        for line in describe_sizes(plan, clip_model, sizes, batch, executor):
            click.echo(line)
        work = plan.work()
        speed = measure_speed(plan, clip_model, sizes, precision, executor)
        click.echo(f"best of {runs}, {len(plan.pending)} prompt x method to do: {work.text()}")
        if judge is not None:
            _judge_cost(judge, sum(work.short_runs.values()), executor is not None)
        click.echo(f"estimated {_duration(speed.estimate(work))} on {speed.device} "
                   f"(one measured step per config at its batch; continuations counted for "
                   f"every prompt not complete)")
        if dry_run:
            return
        with _bar(work.images, f"best of {runs}", unit="image") as bar:
            report = render_best_of(cache, plan, clip_model, sizes, precision,
                                    on_batch=bar.update, echo=_echo_above(bar), executor=executor,
                                    judge=judge, history=frames)
    click.echo(f"{report.short_rendered} short runs and {report.continued} continued in "
               f"{report.seconds:.1f} s; {report.kept_winners} earlier winners kept; "
               f"cache {cache}/best-of/")
    _history_sizes([e.png for e in plan.entries], frames)


def judge_device(target, on_ray: bool):
    """Where the judge rates each short run's PNG (always in this process): on the
    render device; with --ray, on this machine's own GPU where it has one, else its
    CPU (`_judge_cost` then says so, with what it costs)."""
    from .engine.device import resolve_device as resolve

    if not on_ray:
        return target
    return resolve("auto", need_gpu=False, echo=lambda _: None)


def _judge_cost(judge, runs: int, on_ray: bool) -> None:
    """Where the judge rates the short runs and what that costs, measured here."""
    from .engine.device import device_name
    from .runs.judge import seconds_per_image

    per_run = seconds_per_image(judge)
    where = f"{judge.device} ({device_name(judge.device)})"
    note = (" -- this machine has no GPU, so its CPU rates every run the workers render"
            if on_ray and judge.device.type == "cpu" else "")
    click.echo(f"the judge rates the {runs} short runs in this process on {where}: "
               f"{1000 * per_run:.0f} ms each (measured), about {_duration(runs * per_run)} "
               f"in all{note}")


def _history_sizes(pngs, frames: int) -> None:
    """The histories' sizes over the selection, against the budget."""
    from gallery.layout import history_path

    from .engine.history import BUDGET_BYTES

    sizes = [p.stat().st_size for p in map(history_path, pngs) if p.exists()]
    if not sizes:
        if frames:
            click.echo("no histories in the selection")
        return
    average = sum(sizes) / len(sizes)
    hint = (" (--history-only adds them to complete images without one)"
            if frames and len(sizes) < len(pngs) else "")
    click.echo(f"histories: {len(sizes)} of {len(pngs)} images, average "
               f"{average / 1000:.1f} KB, largest {max(sizes) / 1000:.1f} KB "
               f"(budget {BUDGET_BYTES // 1000} KB on average){hint}")


def _history_only(cache, best_of, methods, animals, things, limit, model, epochs, epochs_short,
                  epochs_detail, seed, batch, device, precision, dry_run, frames, ray_args):
    """`render --history-only`: the complete images that lack a history, rendered again."""
    from .runs.histories import best_of_missing, gallery_missing

    if best_of is None and (epochs_short or epochs_detail):
        raise click.UsageError("--epochs-short and --epochs-detail apply to --best-of only")
    on_ray = ray_args[0] is not None
    if dry_run:
        check_device(device, precision)
    # The estimate comes from this device's speed (a dry run falls back to the CPU).
    target = resolve_device("cpu" if on_ray else device, need_gpu=not (dry_run or on_ray))
    choice = None if on_ray else choose_precision(precision, target)
    clip_model = load_model(model, target)
    try:
        if best_of is None:
            from .runs.first import plan_gallery

            planned = plan_gallery(cache, clip_model.identity, methods=methods,
                                   animals=animals, things=things, epochs=epochs, seed=seed)
            groups, pngs = gallery_missing(planned, frames), [i.png for i in planned.items]
        else:
            from .runs.bestof import plan_best_of

            if epochs is not None:
                raise click.UsageError("with --best-of use --epochs-short and --epochs-detail")
            planned = plan_best_of(cache, clip_model.identity, best_of, methods=methods,
                                   animals=animals, things=things, epochs_short=epochs_short,
                                   epochs_detail=epochs_detail, seed=seed)
            groups = best_of_missing(planned, clip_model.identity, frames)
            pngs = [e.png for e in planned.entries]
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    with cluster(ray_args[0], clip_model, device, *ray_args[1:]) as ray:
        if ray is not None:
            choice = choose_precision(precision, None, ray)
        _add_histories(cache, groups, pngs, limit, clip_model, target, batch, choice,
                       dry_run, ray, frames)


def _add_histories(cache, groups, pngs, limit, clip_model, target, batch, choice, dry_run,
                   executor, frames) -> None:
    """Say how many histories are missing and how long they take; then render them."""
    from dataclasses import replace

    from .execution.jobs import LocalExecutor
    from .runs.histories import add_histories, estimate_seconds

    precision = choice.precision

    if limit is not None:
        kept, left = [], limit
        for group in groups:
            if left > 0:
                kept.append(replace(group, jobs=group.jobs[:left], starts=group.starts[:left]))
                left -= len(kept[-1].jobs)
        groups = kept
    count = sum(len(g.jobs) for g in groups)
    if not count:
        click.echo(f"no history to add: every complete image of the {len(pngs)} selected has "
                   f"one, or none is complete")
        return
    executor = executor or LocalExecutor(clip_model)
    with _keeping("histories", cache):  # sizing and timing render too
        sizes = {g.label: min(len(g.jobs), batch or executor.batch_size(g.config, precision,
                                                                        frames))
                 for g in groups}
        seconds = estimate_seconds(groups, executor, sizes, precision)
    lack = "1 image lacks" if count == 1 else f"{count} images lack"
    click.echo(f"{lack} a history of {frames} frames; rendering again takes about "
               f"{_duration(seconds)} on {executor.device_label} (one measured step per "
               f"config at its batch)")
    if dry_run:
        for group in groups:
            for job in group.jobs:
                click.echo(f"history  {job.png}")
        return
    if isinstance(executor, LocalExecutor):
        announce(target, choice, clip_model)
    with _bar(count, "history", unit="image") as bar, _keeping("histories", cache):
        report = add_histories(groups, executor, sizes, precision, on_batch=bar.update,
                               echo=_echo_above(bar))
    differed = (f"; {report.differed} re-renders differed from the saved image (by up to "
                f"{report.largest_difference}/255), their histories end on the saved image"
                if report.differed else "; every re-render matched its saved image")
    added = "1 history" if report.added == 1 else f"{report.added} histories"
    click.echo(f"{added} added in {report.seconds:.1f} s{differed}")
    _history_sizes(pngs, frames)


def _best_of_dry_run(plan, cache: Path) -> None:
    """Each prompt x method: its recorded short runs and the state of its winner."""
    for entry in plan.entries:
        done = sum(r.run < plan.runs for r in entry.state.runs)
        verdict = ("render" if entry in plan.pending
                   else "skip" if not entry.pending else "later")
        click.echo(f"{verdict:6}  method {entry.method}  {entry.stem:32} "
                   f"{done} of {plan.runs} short runs; final {entry.final_status}")
    complete = sum(not e.pending for e in plan.entries)
    click.echo(f"{len(plan.pending)} to work on, {complete} complete, of "
               f"{len(plan.entries)} in {cache}/best-of/")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@click.command()
@click.option("--animal", default=None, help="Animal of the prompt (with --thing).")
@click.option("--thing", default=None, help="Thing of the prompt (with --animal).")
@click.option("--text", default=None, help="A free prompt instead of animal and thing.")
@click.option("--method", type=click.Choice(METHOD_CHOICES), default="1", show_default=True)
@click.option("--runs", default=512, show_default=True, type=click.IntRange(min=1),
              help="Short runs to render and rate.")
@click.option("--best", default=6, show_default=True, type=click.IntRange(min=0),
              help="Best runs to continue.")
@click.option("--worst", default=2, show_default=True, type=click.IntRange(min=0),
              help="Worst runs to continue.")
@cache_option
@model_option
@click.option("--epochs-short", type=click.IntRange(min=1), default=None,
              help="Override the short runs' 20 epochs (demos, tests).")
@click.option("--epochs-detail", type=click.IntRange(min=1), default=None,
              help="Override the continued runs' 300 epochs (demos, tests).")
@click.option("--seed", default=0, show_default=True, type=int, help="Base seed.")
@click.option("--batch", type=click.IntRange(min=1), default=None,
              help="Images per batch (default: from free device memory).")
@device_option
@precision_option
@history_options
@ray_options
def rank(animal, thing, text, method, runs, best, worst, cache_dir, model, epochs_short,
         epochs_detail, seed, batch, device, precision, history_frames, no_history,
         history_only, ray_address, ray_workers, ray_cpus_per_worker):
    """Ranking experiment: many short runs, rate them, continue the best and worst."""
    from gallery.settings import default_cache_dir

    from .runs.ranking import run_experiment

    frames = frames_to_keep(history_frames, no_history, history_only)
    experiment = _experiment(animal, thing, text, int(method), seed)
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    target = resolve_device("cpu" if ray_address is not None else device, need_gpu=True)
    choice = choose_precision(precision, target) if ray_address is None else None
    clip_model = load_model(model, target)
    if history_only:
        from .runs.histories import ranking_missing

        groups = ranking_missing(cache, experiment, clip_model.identity, frames, epochs_detail)
        pngs = [job.png for group in groups for job in group.jobs]
        with cluster(ray_address, clip_model, device, ray_workers, ray_cpus_per_worker) as ray:
            if ray is not None:
                choice = choose_precision(precision, None, ray)
            _add_histories(cache, groups, pngs, None, clip_model, target, batch, choice,
                           False, ray, frames)
        return
    total = runs + best + worst
    with cluster(ray_address, clip_model, device, ray_workers, ray_cpus_per_worker) as ray:
        if ray is None:
            announce(target, choice, clip_model)
        else:
            choice = choose_precision(precision, None, ray)
        with _bar(total, f"rank {experiment.stem} m{method}", unit="image") as bar, \
                _keeping("runs", cache):
            report = run_experiment(cache, experiment, clip_model, runs, best, worst, batch,
                                    choice.precision, epochs_short, epochs_detail, bar.update,
                                    echo=_echo_above(bar), executor=ray, history=frames)
    folder = experiment.folder(cache)
    click.echo(f"{experiment.stem} method {method}: {report.short_rendered} short and "
               f"{report.detail_rendered} continued runs rendered in {report.seconds:.1f} s; "
               f"{folder}/summary.json")
    for kept in report.kept or []:
        click.echo(f"  #{kept.run:<4} {kept.group:5} sim {kept.initial_sim:6.2f}")
    _history_sizes([experiment.continued_png(cache, k.run) for k in report.kept or []], frames)


def _dry_run_report(items, pending, cache: Path) -> None:
    """Each image's verdict, and how the complete ones were made (device, precision)."""
    from collections import Counter

    from .execution.cache import read_record

    made_with = Counter()
    for item in items:
        verdict = "render" if item in pending else ("skip" if not item.pending else "later")
        status = item.status
        if not item.pending:
            record = read_record(item.png) or {}
            how = f"{str(record.get('device', '?')).split(':')[0]} {record.get('precision', '?')}"
            made_with[how] += 1
            status = f"{status} ({how})"
        click.echo(f"{verdict:6}  method {item.method}  {item.prompt.stem:32} {status}")
    click.echo(f"{len(pending)} to render, {len(items) - len(pending)} not in this run "
               f"({sum(not i.pending for i in items)} complete) in {cache}/")
    if made_with:
        kinds = ", ".join(f"{n} on {how}" for how, n in made_with.most_common())
        mixed = " -- a mixed cache" if len(made_with) > 1 else ""
        click.echo(f"complete images were rendered: {kinds}{mixed}")


def _experiment(animal, thing, text, method, seed):
    from gallery.prompts import load_prompts, stem

    from .runs.ranking import Experiment

    if text is not None:
        if animal or thing:
            name = stem(animal or "prompt", thing or "text")
        else:
            name = "-".join(filter(None, "".join(c if c.isalnum() else " " for c in text)
                                   .lower().split()))[:60] or "prompt"
        return Experiment(text, name, method, animal, thing, seed)
    if not (animal and thing):
        raise click.UsageError("give --animal and --thing, or --text")
    by_key = {(p.animal, p.thing): p for p in load_prompts()}
    if (animal, thing) not in by_key:
        raise click.ClickException(f"no prompt for animal {animal!r} and thing {thing!r}")
    prompt = by_key[animal, thing]
    # The ranking runs use the full two-sentence prompt for both methods.
    return Experiment(prompt.text, prompt.stem, method, animal, thing, seed)


@click.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--text", "texts", multiple=True, required=True,
              help="Prompt to rate against (repeatable: one CSV column each).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="CSV file to write (default: print it).")
@model_option
@device_option
def rate(images, texts, output, model, device):
    """Rate image files against prompts (100 x cosine), as an article-style CSV."""
    from gallery.atomic import atomic_path
    from gallery.ratings import Ratings, format_ratings

    from .engine.rate import rate_images

    clip_model = load_model(model, resolve_device(device))
    try:
        sims = rate_images(clip_model, [Path(p) for p in images], list(texts))
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    table = Ratings(tuple(texts), tuple((p, tuple(row)) for p, row in zip(images, sims.tolist(),
                                                                          strict=True)))
    text = format_ratings(table)
    if output:
        with atomic_path(Path(output)) as tmp:
            tmp.write_text(text, encoding="utf-8")
        click.echo(f"{len(images)} images x {len(texts)} prompts -> {output}")
    else:
        click.echo(text, nl=False)


@click.command()
@click.option("--steps", default=5, show_default=True, type=click.IntRange(min=1),
              help="Timed steps per setting, after one warm-up step.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the numbers as JSON.")
@click.option("--model", default="random-ViT-B/32", show_default=True, metavar="NAME|PATH",
              help="CLIP to time; the default has ViT-B/32's shape and random weights.")
@click.option("--batch", type=click.IntRange(min=1), default=None,
              help="Images per batch for the batched setting (default: automatic).")
@click.option("--method", "methods", type=click.Choice(METHOD_CHOICES), multiple=True,
              help="Only this method (repeatable; default both).")
@click.option("--no-ops", is_flag=True, help="Skip counting torch operators per step.")
@device_option
@ray_options
def bench(steps, json_path, model, batch, methods, no_ops, device, ray_address, ray_workers,
          ray_cpus_per_worker):
    """Time the batched renderer against a reference-style loop, same run.

    With --ray: images per hour on this process and on 1 and 2 (or
    --ray-workers) workers of the cluster, and the overhead per batch; --steps
    is then the epochs of each image.
    """
    from gallery.atomic import write_json

    from .runs.bench import run_bench

    if ray_address is not None:
        result = _ray_bench(ray_address, model, device, steps, batch, ray_workers,
                            ray_cpus_per_worker)
        if json_path:
            write_json(result, Path(json_path))
            click.echo(f"numbers written to {json_path}")
        return
    try:
        result = run_bench(resolve_device(device), model, steps, batch,
                           tuple(sorted({int(m) for m in methods})) or METHODS,
                           ops=not no_ops, echo=click.echo)
    except ModelUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    if json_path:
        write_json(result, Path(json_path))
        click.echo(f"numbers written to {json_path}")


def _ray_bench(address, model, device, epochs, batch, workers, cpus_per_worker) -> dict:
    """`bench --ray`: this process against 1 and 2 (or --ray-workers) workers."""
    import tempfile

    from .engine.standin import VIT_B_32, standin_checkpoint
    from .execution.cluster import ClusterError, cluster_bench, connect, shutdown
    from .runs.bench import RANDOM_VIT_B_32

    with tempfile.TemporaryDirectory() as scratch:
        # Workers get the weights as a file: ViT-B/32's shape, random weights.
        name = (str(standin_checkpoint(Path(scratch), VIT_B_32)) if model == RANDOM_VIT_B_32
                else model)
        # This process renders the same-run baseline on its own device.
        clip_model = load_model(name, resolve_device(device))
        try:
            connect(None if address == RAY_FROM_ENV else address, echo=click.echo)
        except ClusterError as exc:
            raise click.ClickException(str(exc)) from None
        try:
            if device == "auto":  # the cluster's GPUs if it has any, else its CPUs
                import ray

                device = "cuda" if ray.cluster_resources().get("GPU") else "cpu"
            counts = sorted({1, workers or 2})
            return cluster_bench(clip_model, device, counts, epochs, batch or 1,
                                 cpus_per_worker, echo=click.echo)
        except ClusterError as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            shutdown_quietly(shutdown)


@click.command()
@click.option("--model", default=None, metavar="NAME|PATH",
              help="The judge: a CLIP model name or weights file (default ViT-B/16); it "
                   "must not be the model the images were optimised against.")
@cache_option
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True,
              help="Images per CLIP call.")
@device_option
def judge(model, cache_dir, batch, device):
    """Rate every image of the cache with a second CLIP model (incremental)."""
    from gallery.prompts import load_prompts
    from gallery.settings import default_cache_dir

    from .runs.judge import DEFAULT_JUDGE, SameModel, judge_cache

    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    if not cache.is_dir():
        raise click.ClickException(f"no cache at {cache}/: render something first")
    target = resolve_device(device)
    clip_model = load_model(model or DEFAULT_JUDGE, target)
    click.echo(f"judge {clip_model.name} ({clip_model.identity}) on {target}")
    with _bar(0, "judge", unit="image") as bar:
        def planned(count: int) -> None:
            bar.total = count
            bar.refresh()

        try:
            report = judge_cache(cache, clip_model, [p.stem for p in load_prompts()], batch,
                                 on_batch=bar.update, on_start=planned)
        except SameModel as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"{report.judged} of {report.images} images judged ({report.images - report.judged}"
               f" unchanged since their rating); {cache}/judge.json")


@contextmanager
def _keeping(what: str, cache: Path):
    """An interrupted, out-of-memory or disk-full run ends with a message, not a
    traceback."""
    from gallery.atomic import disk_full_message, is_disk_full

    from .execution.batching import OutOfMemory

    try:
        yield
    except KeyboardInterrupt:
        raise click.ClickException(
            f"interrupted: finished {what} are kept in {cache}/; run again to resume"
        ) from None
    except OutOfMemory as exc:
        raise click.ClickException(f"{exc}; finished {what} are kept in {cache}/") from None
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        kept = (f"the {what} finished before it are kept in {cache}/ "
                f"({_complete_images(cache)} complete images there)")
        raise click.ClickException(disk_full_message(exc, cache, kept)) from None


def _complete_images(cache: Path) -> int:
    """PNGs of the cache with their record beside them."""
    from gallery.layout import record_path

    return sum(record_path(png).exists() for png in Path(cache).rglob("*.png"))


def _echo_above(bar):
    """Print a line without tearing the progress bar."""
    def echo(text: str) -> None:
        bar.clear()
        click.echo(text)
        bar.refresh()

    return echo


def _bar(total: int, desc: str, unit: str = "epoch"):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, disable=None)


# Registered on the clipig-gallery group by app.cli.
COMMANDS = (render_config, render, rank, rate, judge, bench)
