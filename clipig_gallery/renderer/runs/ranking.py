"""The ranking experiment: many short runs of one prompt, the best and worst continued.

For one prompt and method, N short runs (20 epochs each, seed derived from
prompt, method and run number) render in large batches; each saved image is
rated; the best k and worst m continue for 300 epochs from their saved image
and are rated again. Everything lands in one folder per prompt and method
(``core.layout``: runs/, continued/, initial.csv, final.csv, summary.json).

Finished runs are skipped, so raising N renders only the new runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from clipig_gallery.core.atomic import write_text
from clipig_gallery.core.layout import (
    FINAL_CSV,
    INITIAL_CSV,
    SUMMARY,
    continued_name,
    ranking_dir,
    run_name,
)
from clipig_gallery.core.prompts import load_prompts, stem
from clipig_gallery.core.ratings import Kept, format_ratings, ratings_for_runs, select_runs
from clipig_gallery.core.schema import RankingRow, RankingSummary, RenderRecord

from ..execution.cache import is_complete, read_record, remove_stale_temp_files
from ..execution.jobs import ImageJob, Tags, derive_seed
from ..language.config import Config
from .configs import ranking_config
from .spec import PlanError, RunSpec


@dataclass(frozen=True)
class Experiment:
    text: str
    stem: str
    method: int
    animal: str | None = None
    thing: str | None = None
    base_seed: int = 0

    @classmethod
    def of(cls, animal: str | None, thing: str | None, text: str | None, method: int,
           seed: int = 0) -> Experiment:
        """The experiment `rank` runs: a prompt of the list (``animal`` and ``thing``,
        its full two-sentence text for both methods) or a free ``text``. PlanError
        when neither is given or the list has no such prompt."""
        if text is not None:
            if animal or thing:
                name = stem(animal or "prompt", thing or "text")
            else:
                name = "-".join(filter(None, "".join(c if c.isalnum() else " " for c in text)
                                       .lower().split()))[:60] or "prompt"
            return cls(text, name, method, animal, thing, seed)
        if not (animal and thing):
            raise PlanError("give --animal and --thing, or --text")
        by_key = {(p.animal, p.thing): p for p in load_prompts()}
        if (animal, thing) not in by_key:
            raise PlanError(f"no prompt for animal {animal!r} and thing {thing!r}")
        prompt = by_key[animal, thing]
        return cls(prompt.text, prompt.stem, method, animal, thing, seed)

    def folder(self, cache: Path) -> Path:
        return ranking_dir(cache, self.stem, self.method)

    # File names inside the experiment's folder, as the CSVs and summary give them.
    def run_name(self, run: int) -> str:
        return run_name(self.stem, run)

    def continued_name(self, run: int) -> str:
        return continued_name(self.stem, run)

    def run_png(self, cache: Path, run: int) -> Path:
        return self.folder(cache) / self.run_name(run)

    def continued_png(self, cache: Path, run: int) -> Path:
        return self.folder(cache) / self.continued_name(run)

    def seed(self, kind: str, run: int) -> int:
        return derive_seed(self.stem, self.method, kind, run, self.base_seed)

    def job(self, png: Path, kind: str, run: int, start: Path | None = None,
            frames: int = 0) -> ImageJob:
        tags = Tags(animal=self.animal, thing=self.thing, stem=self.stem, method=self.method,
                    run=run, init_image=str(start.name) if start else None)
        return ImageJob(self.text, self.seed(kind, run), png, tags, frames)

    def continued_job(self, cache: Path, run: int, frames: int = 0) -> tuple[ImageJob, Path]:
        """Run ``run`` continued from its short run's image, and that image."""
        start = self.run_png(cache, run)
        return self.job(self.continued_png(cache, run), "detail", run, start, frames), start


@dataclass(frozen=True)
class RankingSpec:
    """How many short runs, how many of the best and worst continue, and (for demos
    and tests) the epochs of each."""

    runs: int = 512
    best: int = 6
    worst: int = 2
    epochs_short: int | None = None
    epochs_detail: int | None = None

    def configs(self, experiment: Experiment) -> tuple[Config, Config]:
        """The short and the detail config, with the experiment's prompt."""
        return (ranking_config(experiment.method, "short", experiment.text, self.epochs_short),
                ranking_config(experiment.method, "detail", experiment.text,
                               self.epochs_detail))


@dataclass
class RankingReport:
    short_rendered: int = 0
    detail_rendered: int = 0
    seconds: float = 0.0
    kept: list[Kept] | None = None


def _incomplete(jobs_and_starts, config: Config, model_id: str):
    return [(job, start) for job, start in jobs_and_starts
            if not is_complete(job, config, model_id, start)]


def _render(spec: RunSpec, config: Config, todo, label: str) -> None:
    spec.render(config, [j for j, _ in todo], label, starts=[s for _, s in todo])


def run_experiment(spec: RunSpec, experiment: Experiment,
                   ranking: RankingSpec | None = None) -> RankingReport:
    """Render what is missing of the experiment and write its CSVs and summary.

    The continued runs keep ``spec.frames`` frames of their optimisation.
    """
    ranking = ranking or RankingSpec()
    if ranking.runs < 1:
        raise ValueError(f"runs must be at least 1, got {ranking.runs}")
    cache = spec.cache
    started = time.perf_counter()
    folder = experiment.folder(cache)
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(folder)
    report = RankingReport()
    short, detail = ranking.configs(experiment)
    total = ranking.runs + ranking.best + ranking.worst
    with spec.reporter.progress(total, f"rank {experiment.stem} m{experiment.method}"):
        short_jobs = [(experiment.job(experiment.run_png(cache, i), "short", i), None)
                      for i in range(ranking.runs)]
        todo = _incomplete(short_jobs, short, spec.model.identity)
        _render(spec, short, todo, "short runs")
        report.short_rendered = len(todo)

        # Each record is read once; its sim is the rating of the saved PNG.
        short_records = {i: read_record(job.png) for i, (job, _) in enumerate(short_jobs)}
        initial = {i: float(r.sim) for i, r in short_records.items()}
        kept = select_runs(initial, ranking.best, ranking.worst)
        report.kept = kept

        detail_jobs = [experiment.continued_job(cache, k.run, spec.frames) for k in kept]
        todo = _incomplete(detail_jobs, detail, spec.model.identity)
        _render(spec, detail, todo, "continued runs")
        report.detail_rendered = len(todo)

    detail_records = {
        k.run: read_record(job.png) for k, (job, _) in zip(kept, detail_jobs, strict=True)
    }
    _write_outputs(folder, experiment, ranking, kept, (short_records, detail_records),
                   (short.epochs, detail.epochs))
    report.seconds = time.perf_counter() - started
    return report


def _mean_seconds(records: dict[int, RenderRecord]) -> float:
    values = [float(r.seconds) for r in records.values()]
    return round(sum(values) / len(values), 4) if values else 0.0


def _write_outputs(
    folder: Path,
    experiment: Experiment,
    ranking: RankingSpec,
    kept: list[Kept],
    records: tuple[dict[int, RenderRecord], dict[int, RenderRecord]],
    epochs: tuple[int, int],
) -> None:
    """The initial and final CSVs and the summary the site reads."""
    short_records, detail_records = records
    final = {run: float(r.sim) for run, r in detail_records.items()}
    tables = {
        INITIAL_CSV: [
            (experiment.run_name(i), float(r.sim)) for i, r in short_records.items()
        ],
        FINAL_CSV: [(experiment.continued_name(k.run), final[k.run]) for k in kept],
    }
    for name, rows in tables.items():
        write_text(format_ratings(ratings_for_runs(experiment.text, rows)), folder / name)
    RankingSummary(
        prompt=experiment.text,
        animal=experiment.animal,
        thing=experiment.thing,
        stem=experiment.stem,
        method=experiment.method,
        runs=ranking.runs,
        best=ranking.best,
        worst=ranking.worst,
        rows=tuple(
            RankingRow(
                run=k.run,
                group=k.group,
                initial_sim=round(k.initial_sim, 4),
                final_sim=round(final[k.run], 4),
                image=experiment.continued_name(k.run),
                short_image=experiment.run_name(k.run),
            )
            for k in kept
        ),
        csv={"initial": INITIAL_CSV, "final": FINAL_CSV},
        epochs={"short": epochs[0], "detail": epochs[1]},
        seconds={
            "short_per_run": _mean_seconds(short_records),
            "detail_per_run": _mean_seconds(detail_records),
        },
    ).write(folder / SUMMARY)


def run_ranking(spec: RunSpec, experiment: Experiment,
                ranking: RankingSpec | None = None) -> RankingReport:
    """`rank`: the experiment rendered where missing, and what it kept, said."""
    from ..engine.history import sizes_line

    say = spec.reporter.say
    spec.announce()
    report = run_experiment(spec, experiment, ranking)
    say(f"{experiment.stem} method {experiment.method}: {report.short_rendered} short and "
        f"{report.detail_rendered} continued runs rendered in {report.seconds:.1f} s; "
        f"{experiment.folder(spec.cache)}/summary.json")
    for kept in report.kept or []:
        say(f"  #{kept.run:<4} {kept.group:5} sim {kept.initial_sim:6.2f}")
    line = sizes_line([experiment.continued_png(spec.cache, k.run) for k in report.kept or []],
                     spec.frames)
    if line:
        say(line)
    return report
