"""The ranking experiment: many short runs of one prompt, the best and worst continued.

For one prompt and method, N short runs (20 epochs each, seed derived from
prompt, method and run number) render in large batches; each saved image is
rated; the best k and worst m continue for 300 epochs from their saved image
and are rated again. Everything lands in one folder per prompt and method
(``gallery.layout``: runs/, continued/, initial.csv, final.csv, summary.json).

Finished runs are skipped, so raising N renders only the new runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gallery.atomic import write_text
from gallery.layout import (
    FINAL_CSV,
    INITIAL_CSV,
    SUMMARY,
    continued_name,
    ranking_dir,
    run_name,
)
from gallery.paths import RANKING_DIR
from gallery.ratings import Kept, format_ratings, ratings_for_runs, select_runs
from gallery.schema import RankingRow, RankingSummary

from ..engine.clipmodel import ClipModel
from ..engine.optimise import final_size
from ..execution.cache import Expected, read_record, remove_stale_temp_files, status
from ..execution.jobs import ImageJob, derive_seed, job_hash, render_in_batches
from ..language.config import Config, load_config


def ranking_config(method: int, kind: str, text: str, epochs: int | None = None) -> Config:
    """The short or detail config of a method, with the prompt substituted."""
    config = load_config(RANKING_DIR / f"method-{method}-{kind}.yaml").with_text(text)
    return config.with_epochs(epochs) if epochs is not None else config


@dataclass(frozen=True)
class Experiment:
    text: str
    stem: str
    method: int
    animal: str | None = None
    thing: str | None = None
    base_seed: int = 0

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
            history: int = 0) -> ImageJob:
        meta = {
            "animal": self.animal,
            "thing": self.thing,
            "stem": self.stem,
            "method": self.method,
            "run": run,
            "init_image": str(start.name) if start else None,
        }
        return ImageJob(self.text, self.seed(kind, run), png, meta, history)


@dataclass
class RankingReport:
    short_rendered: int = 0
    detail_rendered: int = 0
    seconds: float = 0.0
    kept: list[Kept] | None = None


def _pending(jobs_and_starts, config: Config, model_id: str):
    pending = []
    size = final_size(config)
    for job, start in jobs_and_starts:
        expected = Expected(job_hash(config, start), model_id, job.seed, size)
        if status(job.png, expected) != "complete":
            pending.append((job, start))
    return pending


def _render(config, model, pending, batch, precision, on_batch, echo, label,
            executor=None) -> None:
    render_in_batches(config, model, [j for j, _ in pending], batch, precision, on_batch,
                      init_images=[s for _, s in pending], echo=echo, label=label,
                      executor=executor)


def run_experiment(
    cache: Path,
    experiment: Experiment,
    model: ClipModel,
    runs: int,
    best: int = 6,
    worst: int = 2,
    batch: int | None = None,
    precision: str | None = None,
    epochs_short: int | None = None,
    epochs_detail: int | None = None,
    on_batch: Callable[[int], None] | None = None,
    echo: Callable[[str], None] = print,
    executor=None,
    history: int = 0,
) -> RankingReport:
    """Render what is missing of the experiment and write its CSVs and summary.

    ``executor`` renders the batches (default: this process, on ``model``).
    The continued runs keep ``history`` frames of their optimisation (0: none).
    """
    if runs < 1:
        raise ValueError(f"runs must be at least 1, got {runs}")
    started = time.perf_counter()
    folder = experiment.folder(cache)
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(folder)
    report = RankingReport()

    short = ranking_config(experiment.method, "short", experiment.text, epochs_short)
    short_jobs = [
        (experiment.job(experiment.run_png(cache, i), "short", i), None) for i in range(runs)
    ]
    pending = _pending(short_jobs, short, model.identity)
    _render(short, model, pending, batch, precision, on_batch, echo, "short runs",
            executor)
    report.short_rendered = len(pending)

    # Each record is read once; its sim is the rating of the saved PNG.
    short_records = {i: read_record(job.png) for i, (job, _) in enumerate(short_jobs)}
    initial = {i: float(r["sim"]) for i, r in short_records.items()}
    kept = select_runs(initial, best, worst)
    report.kept = kept

    detail = ranking_config(experiment.method, "detail", experiment.text, epochs_detail)
    detail_jobs = [
        (
            experiment.job(
                experiment.continued_png(cache, k.run),
                "detail",
                k.run,
                experiment.run_png(cache, k.run),
                history,
            ),
            experiment.run_png(cache, k.run),
        )
        for k in kept
    ]
    pending = _pending(detail_jobs, detail, model.identity)
    _render(detail, model, pending, batch, precision, on_batch, echo, "continued runs",
            executor)
    report.detail_rendered = len(pending)

    detail_records = {
        k.run: read_record(job.png) for k, (job, _) in zip(kept, detail_jobs, strict=True)
    }
    _write_outputs(
        folder,
        experiment,
        runs,
        (best, worst),
        kept,
        short_records,
        detail_records,
        (short.epochs, detail.epochs),
    )
    report.seconds = time.perf_counter() - started
    return report


def _mean_seconds(records: dict[int, dict]) -> float:
    values = [float(r.get("seconds", 0.0)) for r in records.values()]
    return round(sum(values) / len(values), 4) if values else 0.0


def _write_outputs(
    folder: Path,
    experiment: Experiment,
    runs: int,
    best_worst: tuple[int, int],
    kept: list[Kept],
    short_records: dict[int, dict],
    detail_records: dict[int, dict],
    epochs: tuple[int, int],
) -> None:
    """The initial and final CSVs and the summary the site reads."""
    final = {run: float(r["sim"]) for run, r in detail_records.items()}
    tables = {
        INITIAL_CSV: [
            (experiment.run_name(i), float(r["sim"])) for i, r in short_records.items()
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
        runs=runs,
        best=best_worst[0],
        worst=best_worst[1],
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
