"""The renderer's commands: parse options, build one run spec, call the library, report.

Each command turns its options into a ``Machine`` (device, precision,
model, Ray) and ``Settings`` (cache, batch, history, seed, selection),
opens the run with ``renderer.runs.session.open_run`` and calls one run of
``renderer.runs``, which says what it does through the command's reporter
(lines above a progress bar). User mistakes (a bad config, missing weights,
an unusable device) exit non-zero with a message and write nothing; an
interrupted, out-of-memory or disk-full run ends with a message and keeps
what it finished. ``app.cli`` registers the commands beside the generator's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from clipig_gallery.core.paths import METHODS
from clipig_gallery.core.settings import (
    DEFAULT_HISTORY_FRAMES,
    DEFAULT_MODEL,
    MODEL_ENV,
    PRECISIONS,
)

from .terminal import ClickReporter, reported

METHOD_CHOICES = [str(m) for m in METHODS]
RAY_FROM_ENV = "from-env"  # --ray without an address: $RAY_ADDRESS, or a local cluster


def model_option(fn):
    return click.option("--model", default=None, metavar="NAME|PATH",
                        help=f"CLIP model name or checkpoint path (default ${MODEL_ENV} or "
                             f"{DEFAULT_MODEL}).")(fn)


def device_option(fn):
    return click.option("--device", default="auto", show_default=True,
                        help="cpu, cuda, cuda:1, mps, ... or auto.")(fn)


def precision_option(fn):
    return click.option(
        "--precision", type=click.Choice(PRECISIONS), default=None,
        help="Compute precision of CLIP (default: the fastest the device computes natively: "
             "bf16 on Ampere and newer GPUs and on CPUs with AVX512-BF16 or AMX, fp16 on "
             "older GPUs and Apple GPUs, else fp32). One the device only emulates is "
             "refused. fp16 is what the 2021 renderer used.")(fn)


def cache_option(fn):
    return click.option("--cache", "cache_dir", default=None, type=click.Path(file_okay=False),
                        help="Cache folder (default $CLIPIG_CACHE or ./cache).")(fn)


def batch_option(fn):
    return click.option("--batch", type=click.IntRange(min=1), default=None,
                        help="Images per batch (default: from free device memory).")(fn)


def ray_options(fn):
    fn = click.option("--ray-cpus-per-worker", type=click.IntRange(min=1), default=1,
                      show_default=True, help="With --ray and --device cpu: CPUs per worker.")(fn)
    fn = click.option("--ray-workers", type=click.IntRange(min=1), default=None,
                      help="With --ray: at most this many workers (default: one per GPU, "
                           "or per --ray-cpus-per-worker CPUs).")(fn)
    return click.option(
        "--ray", "ray_address", is_flag=False, flag_value=RAY_FROM_ENV, default=None,
        metavar="[ADDRESS]",
        help="Render on a Ray cluster: ADDRESS (ray://host:10001, host:port or auto), or "
             "alone $RAY_ADDRESS or else a new local cluster. This process writes the cache.",
    )(fn)


def history_options(fn):
    fn = click.option("--history-only", is_flag=True,
                      help="Only add histories to complete images that lack one (each is "
                           "rendered again; its PNG and record stay).")(fn)
    fn = click.option("--no-history", is_flag=True,
                      help="Keep no optimisation history (an image without one is complete).")(fn)
    return click.option("--history-frames", type=click.IntRange(min=2),
                        default=DEFAULT_HISTORY_FRAMES, show_default=True,
                        help="Frames of each image's optimisation history, saved as an "
                             "animated WebP beside its PNG.")(fn)


def frames_to_keep(frames: int, no_history: bool, history_only: bool) -> int:
    """Frames to keep per image (0: none); --no-history with --history-only is a mistake."""
    if no_history and history_only:
        raise click.UsageError("--no-history and --history-only contradict each other")
    return 0 if no_history else frames


def machine(model, device, precision=None, ray_address=None, ray_workers=None,
            ray_cpus_per_worker=1):
    """The ``Machine`` the options ask for; the Ray options need --ray."""
    from .runs.session import Machine, RayRequest

    if ray_address is None:
        for name, value in (("--ray-workers", ray_workers),
                            ("--ray-cpus-per-worker", ray_cpus_per_worker != 1)):
            if value:
                raise click.UsageError(f"{name} applies to --ray only")
        return Machine(device, precision, model)
    address = None if ray_address == RAY_FROM_ENV else ray_address
    return Machine(device, precision, model,
                   RayRequest(address, ray_workers, ray_cpus_per_worker))


def cache_path(cache_dir) -> Path:
    from clipig_gallery.core.settings import default_cache_dir

    return Path(cache_dir) if cache_dir else default_cache_dir()


def open_run(asked, settings, purpose: str):
    from .runs.session import open_run as open_

    return open_(asked, settings, ClickReporter(), purpose)


@click.command("render-config")
@click.argument("config_paths", metavar="CONFIG.yaml...", nargs=-1, required=True)
@click.option("--text", default=None, help="Prompt that replaces the config's text feature.")
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False),
              help="PNG to write (default: the config's `output`, else <config>.png); a "
                   "taken name gets -1, -2, ...; its record (.json) and filled-in config "
                   "(.yaml) go beside it.")
@model_option
@click.option("--seed", default=0, show_default=True, type=int,
              help="Random seed of the (first) image.")
@click.option("--epochs", default=None, type=click.IntRange(min=1),
              help="Override the config's epochs.")
@click.option("--repeat", default=1, show_default=True, type=click.IntRange(min=1),
              help="Images of the config, in one batch (seeds counted up from --seed).")
@click.option("--batch", type=click.IntRange(min=1), default=None,
              help="Images per batch of --repeat (default: all; a batch is halved when "
                   "the device runs out of memory).")
@click.option("--image-dir", "image_dirs", multiple=True,
              type=click.Path(file_okay=False, exists=True),
              help="A folder the config's pictures may come from besides the configs' own "
                   "(repeatable).")
@device_option
@precision_option
def render_config(config_paths, text, output, model, seed, epochs, repeat, batch, image_dirs,
                  device, precision):
    """Render images from CLIPig CONFIG.yaml files, merged in order (- reads standard input)."""
    from .runs.single import ConfigRun, render_configs

    if output is not None and Path(output).suffix.lower() != ".png":
        raise click.BadParameter("the output must be a .png file", param_hint="--output")
    run = ConfigRun(tuple(config_paths), Path(output) if output else None, text, seed, epochs,
                    repeat, tuple(Path(d) for d in image_dirs), batch)
    with reported():
        done = render_configs(run, machine(model, device, precision), ClickReporter(),
                              stdin=sys.stdin)
    for png, record in done:
        click.echo(f"{png}: sim {record.sim:.2f}, {record.seconds:.1f} s on {record.device} "
                   f"({record.precision}, {record.model})")


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
@batch_option
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
    from .runs.session import Settings
    from .runs.spec import Selection

    frames = frames_to_keep(history_frames, no_history, history_only)
    selection = Selection(tuple(int(m) for m in methods), animals, things, limit)
    with reported():
        selection.prompts()  # names an unknown one before any loading
    if history_only:
        if best_of is None and (epochs_short or epochs_detail):
            raise click.UsageError("--epochs-short and --epochs-detail apply to --best-of only")
        if best_of is not None and epochs is not None:
            raise click.UsageError("with --best-of use --epochs-short and --epochs-detail")
    elif best_of is not None:
        if epochs is not None:
            raise click.UsageError("--epochs sets the first attempts' epochs; with --best-of "
                                   "use --epochs-short and --epochs-detail")
        if judge_model and select_by != "judge":
            raise click.UsageError("--judge-model goes with --select-by judge")
    else:
        for name, value in (("--keep", keep != 1), ("--epochs-short", epochs_short),
                            ("--epochs-detail", epochs_detail),
                            ("--select-by", select_by != "sim"), ("--judge-model", judge_model)):
            if value:
                raise click.UsageError(f"{name} applies to --best-of only")
    asked = machine(model, device, precision, ray_address, ray_workers, ray_cpus_per_worker)
    settings = Settings(cache_path(cache_dir), batch, frames, seed, selection)
    # A best-of run (and adding histories) measures its speed, even in a dry run.
    measures = best_of is not None or history_only
    purpose = "render" if not dry_run else "estimate" if measures else "list"
    what = "histories" if history_only else "runs" if best_of is not None else "images"
    with reported(what, settings.cache), open_run(asked, settings, purpose) as spec:
        if best_of is not None:
            judged = select_by == "judge" and not history_only
            best = best_of_spec(spec, purpose, best_of, keep, (epochs_short, epochs_detail),
                                judge_model if judged else False)
        if history_only:
            from .runs.histories import add_missing, missing_in_best_of, missing_in_gallery

            groups, pngs = (missing_in_gallery(spec, epochs) if best_of is None
                            else missing_in_best_of(spec, best))
            add_missing(spec, groups, pngs, dry_run)
        elif best_of is not None:
            from .runs.bestof import run_best_of

            run_best_of(spec, best, dry_run)
        else:
            from .runs.first import run_gallery

            run_gallery(spec, epochs, dry_run)


def best_of_spec(spec, purpose, runs, keep, epochs, judge_model):
    """The best-of spec; a judge (``judge_model``: a name, None for the default, False
    for none) loaded where it rates: see ``session.judge_device``."""
    from .runs.bestof import BestOfSpec
    from .runs.judge import DEFAULT_JUDGE
    from .runs.session import judge_device, load_model

    judge = None
    if judge_model is not False:
        judge = load_model(judge_model or DEFAULT_JUDGE, judge_device(spec, purpose))
        spec.reporter.say(f"the winner is chosen by the judge {judge.name} ({judge.identity})")
    return BestOfSpec(runs, keep, *epochs, judge=judge)


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
@batch_option
@device_option
@precision_option
@history_options
@ray_options
def rank(animal, thing, text, method, runs, best, worst, cache_dir, model, epochs_short,
         epochs_detail, seed, batch, device, precision, history_frames, no_history,
         history_only, ray_address, ray_workers, ray_cpus_per_worker):
    """Ranking experiment: many short runs, rate them, continue the best and worst."""
    from .runs.histories import add_missing, ranking_missing
    from .runs.ranking import Experiment, RankingSpec, run_ranking
    from .runs.session import Settings

    frames = frames_to_keep(history_frames, no_history, history_only)
    if text is None and not (animal and thing):
        raise click.UsageError("give --animal and --thing, or --text")
    with reported():
        experiment = Experiment.of(animal, thing, text, int(method), seed)
    ranking = RankingSpec(runs, best, worst, epochs_short, epochs_detail)
    asked = machine(model, device, precision, ray_address, ray_workers, ray_cpus_per_worker)
    settings = Settings(cache_path(cache_dir), batch, frames, seed)
    what = "histories" if history_only else "runs"
    with reported(what, settings.cache), open_run(asked, settings, "render") as spec:
        if history_only:
            groups = ranking_missing(spec, experiment, ranking)
            add_missing(spec, groups, [job.png for group in groups for job in group.jobs])
        else:
            run_ranking(spec, experiment, ranking)


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
    from clipig_gallery.core.atomic import atomic_path, ensure_writable
    from clipig_gallery.core.ratings import Ratings, format_ratings

    from .engine.rate import rate_images
    from .runs.session import load_model, local_device

    if output:
        ensure_writable(Path(output).absolute().parent)  # before the model loads
    with reported():
        asked = machine(model, device)
        clip_model = load_model(model, local_device(asked, "any", ClickReporter().note))
    try:
        sims = rate_images(clip_model, [Path(p) for p in images], list(texts))
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    rows = tuple((p, tuple(row)) for p, row in zip(images, sims.tolist(), strict=True))
    text = format_ratings(Ratings(tuple(texts), rows))
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
    from clipig_gallery.core.atomic import ensure_writable, write_json

    from .runs.bench import ray_bench, run_bench
    from .runs.session import local_device

    asked = machine(model, device, None, ray_address, ray_workers, ray_cpus_per_worker)
    if json_path:
        ensure_writable(Path(json_path).absolute().parent)  # before the minutes of timing
    with reported():
        if asked.ray is not None:
            result = ray_bench(asked, steps, batch or 1, click.echo)
        else:
            result = run_bench(local_device(asked, "any", ClickReporter().note), model, steps,
                               batch,
                               tuple(sorted({int(m) for m in methods})) or METHODS,
                               ops=not no_ops, echo=click.echo)
    if json_path:
        write_json(result, Path(json_path))
        click.echo(f"numbers written to {json_path}")


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
    from clipig_gallery.core.prompts import load_prompts

    from .runs.judge import DEFAULT_JUDGE, judge_cache
    from .runs.session import load_model, local_device

    cache = cache_path(cache_dir)
    if not cache.is_dir():
        raise click.ClickException(f"no cache at {cache}/: render something first")
    reporter = ClickReporter()
    with reported():
        target = local_device(machine(model, device), "any", ClickReporter().note)
        clip_model = load_model(model or DEFAULT_JUDGE, target)
        click.echo(f"judge {clip_model.name} ({clip_model.identity}) on {target}")
        report = judge_cache(cache, clip_model, [p.stem for p in load_prompts()], batch,
                             reporter)
    unchanged = report.images - report.judged - len(report.damaged)
    click.echo(f"{report.judged} of {report.images} images judged ({unchanged} unchanged since "
               f"their rating); {cache}/judge.json")
    if report.damaged:
        shown = ", ".join(report.damaged[:3]) + (", ..." if len(report.damaged) > 3 else "")
        click.echo(f"not judged: {len(report.damaged)} images whose PNG does not decode "
                   f"({shown}); `render` (or `rank`, `render --best-of`) renders them again")


# Registered on the clipig-gallery group by app.cli.
COMMANDS = (render_config, render, rank, rate, judge, bench)
