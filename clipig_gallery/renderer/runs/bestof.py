"""Best of N for every prompt: N short runs, rated, and the winner continued.

For each prompt x method, N short runs render with the ranking experiment's
short config of that method (seed of run i derived exactly as ``rank``
derives it), each is rated as ``rank`` rates its runs (the saved PNG against
the prompt), and the best one continues with the detail config from its
saved image, as ``rank`` continues its best runs. The text is the gallery's
prompt of that method, so the best-of image and the first attempt of a cell
answer the same prompt.

The short runs of many prompts share batches (one config, one text per
image). After every batch the sims of its runs are on disk
(``short-sims/{stem}.json`` and ``.csv``), together with the PNGs of the
runs that are among the best ``keep`` of their prompt so far (the winner at
least); a rerun renders only the runs that are not recorded, so raising N
from 64 to 512 renders the 448 new runs, and the winner is continued again
only if it changed. Prompts go through in chunks of one continuation batch,
so finished best-of images appear as the run goes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from clipig_gallery.core.atomic import write_text
from clipig_gallery.core.layout import (
    best_of_root,
    method_dir,
    png_path,
    record_path,
    short_run_name,
    short_sims_csv_path,
    short_sims_path,
)
from clipig_gallery.core.paths import METHODS
from clipig_gallery.core.prompts import Prompt, load_prompts
from clipig_gallery.core.ratings import format_ratings, ratings_for_runs, select_runs
from clipig_gallery.core.schema import (
    BestOf,
    CacheFormatError,
    ShortRun,
    ShortRuns,
    read_json,
)

from ..engine.clipmodel import ClipModel
from ..engine.rate import rate_pairs
from ..execution.cache import expected, job_status, read_record, refresh, remove_stale_temp_files
from ..execution.cache import status as image_status
from ..execution.jobs import ImageJob, ImageResult, write_results
from ..execution.timing import Piece
from ..language.config import Config
from .configs import ranking_config
from .ranking import Experiment
from .spec import EVERYTHING, PlanError, RunSpec, Selection

SELECT_BY = ("sim", "judge")  # what may choose the winner


@dataclass(frozen=True)
class BestOfSpec:
    """N short runs per prompt x method, the best ``keep`` short images kept, the
    winner chosen by sim or, given a ``judge`` model, by its rating."""

    runs: int
    keep: int = 1
    epochs_short: int | None = None
    epochs_detail: int | None = None
    judge: ClipModel | None = None

    @property
    def select_by(self) -> str:
        return "judge" if self.judge is not None else "sim"


@dataclass(frozen=True)
class Configs:
    """The short and the detail config of one method, as rendered now."""

    short: Config
    detail: Config

    @classmethod
    def of(cls, method: int, epochs_short: int | None = None,
           epochs_detail: int | None = None) -> Configs:
        # The text is a placeholder: jobs carry their own, and the config hash
        # leaves the prompt out.
        return cls(ranking_config(method, "short", "prompt", epochs_short),
                   ranking_config(method, "detail", "prompt", epochs_detail))


@dataclass
class Entry:
    """One prompt x method of the best-of gallery and what it still needs."""

    prompt: Prompt
    method: int
    experiment: Experiment
    folder: Path  # CACHE/best-of/method-{m}
    state: ShortRuns  # the short runs recorded so far that still count
    missing_runs: list[int]  # short runs to render
    final_status: str  # of the continued winner; "waiting" until the runs are all done

    @property
    def stem(self) -> str:
        return self.prompt.stem

    @property
    def root(self) -> Path:
        """CACHE/best-of."""
        return self.folder.parent

    @property
    def png(self) -> Path:
        return png_path(self.root, self.method, self.stem)

    @property
    def pending(self) -> bool:
        return bool(self.missing_runs) or self.final_status != "complete"

    def short_png(self, run: int) -> Path:
        return self.folder / short_run_name(self.stem, run)


@dataclass(frozen=True)
class BestOfPlan:
    runs: int  # N
    keep: int
    configs: dict[int, Configs]
    entries: list[Entry]  # every selected prompt x method
    todo: list[Entry]  # to work on in this run (after the selection's limit)
    stems: list[str]  # every prompt's stem in list order (the CSVs' row order)
    select_by: str = "sim"
    judge: ClipModel | None = None

    def work(self) -> Work:
        return Work.of(self)

    def dry_run_lines(self, cache: Path) -> list[str]:
        """Each prompt x method: its recorded short runs and the state of its winner."""
        lines = []
        for entry in self.entries:
            done = sum(r.run < self.runs for r in entry.state.runs)
            verdict = ("render" if entry in self.todo
                       else "skip" if not entry.pending else "later")
            lines.append(f"{verdict:6}  method {entry.method}  {entry.stem:32} "
                         f"{done} of {self.runs} short runs; final {entry.final_status}")
        complete = sum(not e.pending for e in self.entries)
        lines.append(f"{len(self.todo)} to work on, {complete} complete, of "
                     f"{len(self.entries)} in {cache}/best-of/")
        return lines


# ----------------------------------------------------------------- planning


def _short_png_complete(entry_folder: Path, stem: str, run: int, config: Config,
                        model_id: str, seed: int) -> bool:
    png = entry_folder / short_run_name(stem, run)
    return image_status(png, expected(config, model_id, seed)) == "complete"


def read_state(path: Path, header: ShortRuns) -> ShortRuns:
    """The recorded runs that still count under ``header`` (same config and weights)."""
    if not path.exists():
        return header
    try:
        found = ShortRuns.from_json(read_json(path), path)
    except CacheFormatError:
        return header  # unreadable: the runs are rendered again
    if (found.config_hash, found.model_id) != (header.config_hash, header.model_id):
        return header
    if header.judge_id and found.judge_id != header.judge_id:
        return header  # rated by no judge or another: rendered again, and judged
    return replace(header, runs=found.runs)


def winner(state: ShortRuns, runs: int) -> int | None:
    """The best of the first ``runs`` recorded runs (ties: the lower run number), by
    the judge's rating if a judge chooses, else by sim."""
    ratings = {run: value for run, value in state.ratings().items() if run < runs}
    kept = select_runs(ratings, 1, 0)
    return kept[0].run if kept else None


def _entry(cache: Path, prompt: Prompt, method: int, configs: Configs, model_id: str,
           runs: int, base_seed: int, judge_id: str) -> Entry:
    folder = method_dir(best_of_root(cache), method)
    text = prompt.for_method(method)
    experiment = Experiment(text, prompt.stem, method, prompt.animal, prompt.thing, base_seed)
    header = ShortRuns(prompt=text, stem=prompt.stem, method=method,
                       config=Path(configs.short.source).name,
                       config_hash=configs.short.hash, model_id=model_id,
                       epochs=configs.short.epochs, judge_id=judge_id)
    state = read_state(short_sims_path(best_of_root(cache), method, prompt.stem), header)
    # A run counts only with the seed it must have had.
    state = replace(state, runs=tuple(r for r in state.runs
                                      if r.seed == experiment.seed("short", r.run)))
    recorded = {r.run for r in state.runs}
    missing = [i for i in range(runs) if i not in recorded]
    entry = Entry(prompt, method, experiment, folder, state, missing, "waiting")
    if missing:
        return entry
    best = winner(state, runs)
    if not _short_png_complete(folder, prompt.stem, best, configs.short, model_id,
                               experiment.seed("short", best)):
        # The winner's image is gone: render that run again.
        entry.state = replace(state, runs=tuple(r for r in state.runs if r.run != best))
        entry.missing_runs = [best]
        return entry
    start = entry.short_png(best)
    job = entry.experiment.job(entry.png, "detail", best, start)
    entry.final_status = job_status(job, configs.detail, model_id, start)
    return entry


def plan_best_of(cache: Path, model_id: str, best: BestOfSpec,
                 selection: Selection = EVERYTHING, seed: int = 0) -> BestOfPlan:
    """What a best-of run will do, for `render --best-of` and its dry run.

    Raises PlanError naming an unknown animal or thing, a bad N or keep, or a
    judge with the weights the runs are optimised against.
    """
    if best.runs < 1:
        raise PlanError(f"--best-of must be at least 1, got {best.runs}")
    if best.keep < 1:
        raise PlanError(f"--keep must be at least 1 (the winner's short image), "
                         f"got {best.keep}")
    judge_id = best.judge.identity if best.judge is not None else ""
    if judge_id == model_id:
        raise PlanError(f"the judge has the weights the runs are optimised against "
                         f"({model_id}); choose another model")
    every = load_prompts()
    prompts = selection.prompts(every)
    configs = {m: Configs.of(m, best.epochs_short, best.epochs_detail) for m in METHODS}
    entries = [_entry(cache, p, m, configs[m], model_id, best.runs, seed, judge_id)
               for m in selection.methods for p in prompts]
    todo = selection.cut([e for e in entries if e.pending])
    return BestOfPlan(best.runs, best.keep, configs, entries, todo, [p.stem for p in every],
                      best.select_by, best.judge)


# ----------------------------------------------------------------- the work


def _views(config: Config) -> int:
    """CLIP views of one image over a whole run (every target active every epoch)."""
    return config.epochs * sum(t.views for t in config.targets)


@dataclass(frozen=True)
class Work:
    """How much a plan renders: per method, short runs and continuations."""

    short_runs: dict[int, int]
    continued: dict[int, int]
    configs: dict[int, Configs]

    @classmethod
    def of(cls, plan: BestOfPlan) -> Work:
        short = {m: 0 for m in plan.configs}
        continued = {m: 0 for m in plan.configs}
        for entry in plan.todo:
            short[entry.method] += len(entry.missing_runs)
            continued[entry.method] += entry.final_status != "complete"
        return cls(short, continued, plan.configs)

    @property
    def images(self) -> int:
        return sum(self.short_runs.values()) + sum(self.continued.values())

    @property
    def steps(self) -> int:
        """Image-steps: one image through one epoch."""
        return sum(n * self.configs[m].short.epochs for m, n in self.short_runs.items()) + \
            sum(n * self.configs[m].detail.epochs for m, n in self.continued.items())

    @property
    def views(self) -> int:
        return sum(n * _views(self.configs[m].short) for m, n in self.short_runs.items()) + \
            sum(n * _views(self.configs[m].detail) for m, n in self.continued.items())

    def text(self) -> str:
        parts = [f"method {m}: {self.short_runs[m]} short runs ({self.configs[m].short.epochs} "
                 f"epochs) + {self.continued[m]} continued ({self.configs[m].detail.epochs} "
                 f"epochs)" for m in sorted(self.short_runs)
                 if self.short_runs[m] or self.continued[m]]
        return (f"{self.images} images, {self.steps:,} image-steps, {self.views:,} CLIP views"
                + (" -- " + "; ".join(parts) if parts else ""))


    def pieces(self, sizes: dict[tuple[int, str], int]) -> list[Piece]:
        """The work for an estimate: each config with its images, at its batch."""
        return [Piece(getattr(self.configs[m], kind), count, sizes[m, kind])
                for m in sorted(self.configs)
                for kind, count in (("short", self.short_runs[m]),
                                    ("detail", self.continued[m])) if count]


def batch_sizes(plan: BestOfPlan, spec: RunSpec) -> dict[tuple[int, str], int]:
    """The batch of each config that has work: ``spec.batch``, or measured once per
    config (the continued winners keeping ``spec.frames`` frames each, the short
    runs none)."""
    work = plan.work()
    sizes = {}
    for m, configs in plan.configs.items():
        for kind, config, count in (("short", configs.short, work.short_runs[m]),
                                    ("detail", configs.detail, work.continued[m])):
            if count:
                frames = spec.frames if kind == "detail" else 0
                sizes[m, kind] = spec.batch or spec.executor.batch_size(
                    config, spec.precision.precision, frames)
    return sizes


# ----------------------------------------------------------------- rendering


@dataclass
class BestOfReport:
    short_rendered: int = 0
    continued: int = 0
    kept_winners: int = 0  # complete images kept, their record updated (e.g. to a new N)
    seconds: float = 0.0
    batches: list[int] = field(default_factory=list)


_RUN_FILE = "{stem}-(\\d+)\\.png"


def _kept_on_disk(entry: Entry) -> set[int]:
    """Run numbers of the prompt's short-run PNGs in runs/."""
    pattern = re.compile(_RUN_FILE.format(stem=re.escape(entry.stem)))
    folder = entry.folder / "runs"
    if not folder.is_dir():
        return set()
    return {int(m.group(1)) for p in folder.iterdir() if (m := pattern.fullmatch(p.name))}


def _keep_set(state: ShortRuns, runs: int, keep: int) -> set[int]:
    """The short runs whose PNG stays: the best ``keep`` of the first ``runs``."""
    ratings = {run: value for run, value in state.ratings().items() if run < runs}
    return {k.run for k in select_runs(ratings, keep, 0)}


def _drop(entry: Entry, run: int) -> None:
    png = entry.short_png(run)
    png.unlink(missing_ok=True)
    record_path(png).unlink(missing_ok=True)


def _write_state(entry: Entry, runs: int) -> None:
    """The prompt's short sims: JSON (the state) and the article's CSV."""
    root = entry.root
    entry.state.write(short_sims_path(root, entry.method, entry.stem))
    rows = [(short_run_name(entry.stem, r.run), r.sim) for r in entry.state.runs
            if r.run < runs]
    write_text(format_ratings(ratings_for_runs(entry.state.prompt, rows)),
               short_sims_csv_path(root, entry.method, entry.stem))


class _ShortWriter:
    """Where a batch of short runs goes: sims always, PNGs of the best ``keep``.

    Order, for kill safety: the kept PNGs and records, then the sims, then
    the PNGs that fell out. A kill in between leaves extra PNGs, which the
    next run's tidy-up removes; a sim is never recorded without its image
    having been kept when it had to be.
    """

    def __init__(self, entries: Sequence[Entry], runs: int, keep: int,
                 judge: ClipModel | None = None):
        self.by_stem = {e.stem: e for e in entries}
        self.runs, self.keep, self.judge = runs, keep, judge

    def __call__(self, jobs: Sequence[ImageJob], results: Sequence[ImageResult]) -> None:
        touched: dict[str, list[tuple[ImageJob, ImageResult]]] = {}
        # The judge rates the saved PNGs here, in this process, as `judge` would.
        judged = (rate_pairs(self.judge, [r.png for r in results], [j.text for j in jobs])
                  if self.judge is not None else [None] * len(jobs))
        verdict = {}
        for job, result, value in zip(jobs, results, judged, strict=True):
            touched.setdefault(str(job.tags.stem), []).append((job, result))
            verdict[job.png] = None if value is None else round(float(value), 4)
        for stem, done in touched.items():
            entry = self.by_stem[stem]
            new = {int(j.tags.run): (r.record, verdict[j.png]) for j, r in done}
            others = tuple(r for r in entry.state.runs if r.run not in new)
            entry.state = replace(entry.state, runs=others + tuple(
                ShortRun(run=run, seed=rec.seed, sim=float(rec.sim), seconds=rec.seconds,
                         device=rec.device, precision=rec.precision, judge=judge)
                for run, (rec, judge) in sorted(new.items())))
            keep = _keep_set(entry.state, self.runs, self.keep)
            kept = [(j, r) for j, r in done if int(j.tags.run) in keep]
            write_results([j for j, _ in kept], [r for _, r in kept])
            _write_state(entry, self.runs)
            for run in _kept_on_disk(entry) - keep:
                _drop(entry, run)
            entry.missing_runs = [i for i in entry.missing_runs if i not in new]


def tidy(entry: Entry, runs: int, keep: int) -> None:
    """Remove short-run PNGs a killed or earlier run left beyond the kept ones."""
    for run in _kept_on_disk(entry) - _keep_set(entry.state, runs, keep):
        _drop(entry, run)


def winner_png_complete(entry: Entry, plan: BestOfPlan, short: Config, model_id: str) -> bool:
    run = winner(entry.state, plan.runs)
    return _short_png_complete(entry.folder, entry.stem, run, short, model_id,
                               entry.experiment.seed("short", run))


def _best_of_info(entry: Entry, plan: BestOfPlan, run: int) -> BestOf:
    counted = [r for r in entry.state.runs if r.run < plan.runs]
    short = plan.configs[entry.method].short
    root = entry.root
    chosen = next(r for r in counted if r.run == run)
    return BestOf(
        runs=plan.runs,
        run=run,
        select_by=plan.select_by,
        short_sim=chosen.sim,
        short_judge=chosen.judge if plan.select_by == "judge" else None,
        short_seed=entry.experiment.seed("short", run),
        short_config=Path(short.source).name,
        short_config_hash=short.hash,
        short_epochs=short.epochs,
        short_image=short_run_name(entry.stem, run),
        short_seconds=round(sum(r.seconds for r in counted), 3),
        short_sims=str(short_sims_csv_path(root, entry.method, entry.stem)
                       .relative_to(entry.folder)),
    )


def continue_job(entry: Entry, plan: BestOfPlan, run: int,
                 frames: int) -> tuple[ImageJob, Path]:
    start = entry.short_png(run)
    job = entry.experiment.job(entry.png, "detail", run, start, frames)
    return replace(job, tags=replace(job.tags, best_of=_best_of_info(entry, plan, run))), start


def _update_record(entry: Entry, info: BestOf) -> bool:
    """Give a complete image's record the current best-of facts; True if it changed."""
    record = read_record(entry.png)
    if record.best_of == info:
        return False
    replace(record, best_of=info).write(record_path(entry.png))
    return True


def render_best_of(spec: RunSpec, plan: BestOfPlan,
                   sizes: dict[tuple[int, str], int]) -> BestOfReport:
    """Render the plan's entries to do: short runs, then their winners, chunk by chunk.

    The plan's judge (if it selects by judge) rates every short run in this
    process. The continued winners keep ``spec.frames`` frames of their
    optimisation.
    """
    executor, reporter, judge = spec.executor, spec.reporter, plan.judge
    root = best_of_root(Path(spec.cache))
    if root.exists():
        remove_stale_temp_files(root)
    report = BestOfReport()
    started = time.perf_counter()
    model_id = spec.model.identity
    for method in METHODS:
        entries = [e for e in plan.todo if e.method == method]
        if not entries:
            continue
        configs = plan.configs[method]
        short_size = sizes.get((method, "short"), 1)
        detail_size = sizes.get((method, "detail"), 1)
        # A chunk's winners fill one continuation batch on every worker.
        chunk_size = detail_size * executor.parallel
        for first in range(0, len(entries), chunk_size):
            chunk = entries[first:first + chunk_size]
            for entry in chunk:
                tidy(entry, plan.runs, plan.keep)
            writer = _ShortWriter(chunk, plan.runs, plan.keep, judge)
            jobs = [entry.experiment.job(entry.short_png(run), "short", run)
                    for entry in chunk for run in entry.missing_runs]
            used = executor.run(spec.task(configs.short, jobs, short_size, write=writer),
                                reporter)
            short_size = min(used, default=short_size)  # after halving, stay there
            report.short_rendered += len(jobs)
            report.batches += used
            for _ in range(3):
                # A winner recorded earlier whose image has gone since: its run again.
                redo = [entry.experiment.job(entry.short_png(run), "short", run)
                        for entry in chunk
                        if not winner_png_complete(entry, plan, configs.short, model_id)
                        for run in [winner(entry.state, plan.runs)]]
                if not redo:
                    break
                executor.run(spec.task(configs.short, redo, short_size, write=writer),
                             _unmetered(reporter))
                report.short_rendered += len(redo)
            else:
                raise RuntimeError("the winners' short images could not be kept: "
                                   f"{', '.join(str(j.png) for j in redo)}")
            continued, starts = [], []
            for entry in chunk:
                run = winner(entry.state, plan.runs)
                job, start = continue_job(entry, plan, run, spec.frames)
                if job_status(job, configs.detail, model_id, start) == "complete":
                    report.kept_winners += _update_record(entry, _best_of_info(entry, plan, run))
                    continue
                continued.append(job)
                starts.append(start)

            def written(jobs, results, method: int = method) -> None:
                write_results(jobs, results)
                refresh(root, METHODS, method, plan.stems)

            used = executor.run(spec.task(configs.detail, continued, detail_size, starts,
                                          written), reporter)
            detail_size = min(used, default=detail_size)
            report.continued += len(continued)
            report.batches += used
        refresh(root, METHODS, method, plan.stems)
    report.seconds = time.perf_counter() - started
    return report


class _unmetered:
    """A reporter's lines without its progress: images rendered again do not count
    towards the planned total."""

    def __init__(self, reporter):
        self.say = reporter.say

    def advance(self, images: int) -> None:
        pass


def describe_sizes(spec: RunSpec, sizes: dict[tuple[int, str], int]) -> list[str]:
    """A line per config that has work: its batch and where that number comes from."""
    source = spec.executor.batch_source(spec.batch)
    order = sorted(sizes, key=lambda key: (key[0], key[1] == "detail"))
    return [f"method {m} {'short runs' if kind == 'short' else 'continued'}: batch "
            f"{sizes[m, kind]} ({source})" for m, kind in order]


def judge_cost_line(judge: ClipModel, runs: int, on_ray: bool) -> str:
    """Where the judge rates the short runs and what that costs, measured here."""
    from ..engine.device import device_name
    from ..execution.timing import duration
    from .judge import seconds_per_image

    per_run = seconds_per_image(judge)
    where = f"{judge.device} ({device_name(judge.device)})"
    note = (" -- this machine has no GPU, so its CPU rates every run the workers render"
            if on_ray and judge.device.type == "cpu" else "")
    return (f"the judge rates the {runs} short runs in this process on {where}: "
            f"{1000 * per_run:.0f} ms each (measured), about {duration(runs * per_run)} "
            f"in all{note}")


def run_best_of(spec: RunSpec, best: BestOfSpec, dry_run: bool = False) -> BestOfReport | None:
    """`render --best-of N`: plan, say the work and its estimated time (measured on
    the spec's executor), then (unless ``dry_run``) render it."""
    from ..engine.history import sizes_line
    from ..execution.executor import LocalExecutor
    from ..execution.timing import duration

    say = spec.reporter.say
    plan = plan_best_of(spec.cache, spec.model.identity, best, spec.selection, spec.seed)
    if dry_run:
        for line in plan.dry_run_lines(spec.cache):
            say(line)
    if not plan.todo:
        say(f"nothing to render: best of {best.runs} complete for {len(plan.entries)} "
            f"prompt x method in {spec.cache}/best-of/")
        return None
    spec.announce()
    sizes = batch_sizes(plan, spec)
    for line in describe_sizes(spec, sizes):
        say(line)
    work = plan.work()
    seconds = spec.estimate(work.pieces(sizes))
    say(f"best of {best.runs}, {len(plan.todo)} prompt x method to do: {work.text()}")
    if best.judge is not None:
        say(judge_cost_line(best.judge, sum(work.short_runs.values()),
                            not isinstance(spec.executor, LocalExecutor)))
    say(f"estimated {duration(seconds)} on {spec.executor.device_label} (one measured step "
        f"per config at its batch; continuations counted for every prompt not complete)")
    if dry_run:
        return None
    with spec.reporter.progress(work.images, f"best of {best.runs}"):
        report = render_best_of(spec, plan, sizes)
    say(f"{report.short_rendered} short runs and {report.continued} continued in "
        f"{report.seconds:.1f} s; {report.kept_winners} earlier winners kept; "
        f"cache {spec.cache}/best-of/")
    line = sizes_line([e.png for e in plan.entries], spec.frames)
    if line:
        say(line)
    return report
