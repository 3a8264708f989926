"""Histories for images rendered without one: the same render again, frames kept.

An image without a history is complete, so nothing re-renders it on its own.
``render --history-only`` (and ``rank --history-only``) find the complete
images that lack a history and render each again with its own config, seed
and start image, keeping only the history: the PNG and its record stay as
they are.

On the CPU the re-render reproduces the saved image bit for bit. On a GPU
the arithmetic may differ from one run to the next, so a re-render can end
a little off the saved image; its history's last frame is then replaced by
the saved image, so the history always ends on what the page shows. How many
differed, and by how much, is reported.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from gallery.layout import history_path

from ..engine.history import decode_history, encode_history, scaled_frame
from ..execution.jobs import ImageJob, ImageResult, write_history
from ..language.config import Config


@dataclass(frozen=True)
class Missing:
    """Complete images of one config that lack a history, and their start images."""

    label: str
    config: Config
    jobs: list[ImageJob]  # with ``history`` set
    starts: list[Path | None]


def lacking(jobs_and_starts: Sequence[tuple[ImageJob, Path | None]]
            ) -> list[tuple[ImageJob, Path | None]]:
    """Those whose image has no history file yet."""
    return [(job, start) for job, start in jobs_and_starts if not history_path(job.png).exists()]


@dataclass
class HistoryReport:
    added: int = 0
    differed: int = 0  # re-renders not bit-identical to the saved image
    largest_difference: int = 0  # of those, the largest pixel difference (0-255)
    seconds: float = 0.0
    batches: list[int] = field(default_factory=list)


def estimate_seconds(groups: Sequence[Missing], executor, sizes: dict[str, int],
                     precision: str) -> float:
    """Time to render every group: one timed step per config at its batch, times epochs."""
    total = 0.0
    for group in groups:
        size = sizes[group.label]
        batches = math.ceil(len(group.jobs) / size)
        rounds = math.ceil(batches / executor.parallel)
        total += rounds * group.config.epochs * executor.step_seconds(group.config, size,
                                                                       precision)
    return total


class HistoryWriter:
    """Writes only the history of each re-rendered image, ending on its saved PNG."""

    def __init__(self, report: HistoryReport):
        self.report = report

    def __call__(self, jobs: Sequence[ImageJob], results: Sequence[ImageResult]) -> None:
        for job, result in zip(jobs, results, strict=True):
            if result.history is None:
                continue
            saved = job.png.read_bytes()
            data = result.history
            if saved != result.png:
                difference = _largest_difference(saved, result.png)
                self.report.differed += 1
                self.report.largest_difference = max(self.report.largest_difference, difference)
                data = end_on(data, saved)
            write_history(job.png, data)
            self.report.added += 1


def _tensor(image: Image.Image) -> torch.Tensor:
    """An RGB image as (3, H, W) uint8."""
    data = bytearray(image.convert("RGB").tobytes())
    return torch.frombuffer(data, dtype=torch.uint8).view(image.height, image.width, 3
                                                          ).permute(2, 0, 1)


def _pixels(png: bytes) -> torch.Tensor:
    with Image.open(io.BytesIO(png)) as image:
        return _tensor(image)


def _largest_difference(a: bytes, b: bytes) -> int:
    x, y = _pixels(a), _pixels(b)
    if x.shape != y.shape:
        return 255
    return int((x.int() - y.int()).abs().max())


def end_on(history: bytes, png: bytes) -> bytes:
    """``history`` with its last frame replaced by the image ``png``, scaled alike."""
    frames = [_tensor(frame) for frame in decode_history(history)]
    last = _pixels(png).float().div(255).unsqueeze(0)
    height, width = frames[-1].shape[-2:]
    frames[-1] = scaled_frame(last, width, height)[0]
    return encode_history(torch.stack(frames)).data


def add_histories(groups: Sequence[Missing], executor, sizes: dict[str, int],
                  precision: str | None, on_batch: Callable[[int], None] | None = None,
                  echo: Callable[[str], None] = print) -> HistoryReport:
    """Render every group again, keeping only the histories."""
    report = HistoryReport()
    started = time.perf_counter()
    writer = HistoryWriter(report)
    for group in groups:
        if not group.jobs:
            continue
        echo(f"{group.label}: {len(group.jobs)} histories, batch {sizes[group.label]}")
        report.batches += executor.run(
            group.config, group.jobs, sizes[group.label], precision, on_batch,
            init_images=group.starts if any(group.starts) else None, echo=echo, write=writer)
    report.seconds = time.perf_counter() - started
    return report


# ------------------------------------------------------------- what lacks one


def gallery_missing(plan, frames: int) -> list[Missing]:
    """The gallery plan's complete images without a history, per method."""
    groups = []
    for method, config in sorted(plan.configs.items()):
        items = [i for i in plan.items if i.method == method and not i.pending]
        found = lacking([(i.job(frames), None) for i in items])
        if found:
            groups.append(Missing(f"method {method}", config, [j for j, _ in found],
                                  [s for _, s in found]))
    return groups


def best_of_missing(plan, model_id: str, frames: int) -> list[Missing]:
    """The best-of plan's finished winners without a history, per method.

    A winner whose short image has gone cannot be continued again, so it is
    left out (`render --best-of` renders that short run again first).
    """
    from .bestof import continue_job, winner, winner_png_complete

    groups = []
    for method in sorted({e.method for e in plan.entries}):
        configs = plan.configs[method]
        found = []
        for entry in plan.entries:
            if entry.method != method or entry.final_status != "complete":
                continue
            if not winner_png_complete(entry, plan, configs.short, model_id):
                continue
            found.append(continue_job(entry, plan, winner(entry.state, plan.runs), frames))
        found = lacking(found)
        if found:
            groups.append(Missing(f"best-of method {method}", configs.detail,
                                  [j for j, _ in found], [s for _, s in found]))
    return groups


def ranking_missing(cache: Path, experiment, model_id: str, frames: int,
                    epochs_detail: int | None = None) -> list[Missing]:
    """The experiment's complete continued runs without a history."""
    from gallery.layout import SUMMARY
    from gallery.schema import RankingSummary, read_json

    from ..engine.optimise import final_size
    from ..execution.cache import Expected, status
    from ..execution.jobs import job_hash
    from .ranking import ranking_config

    summary = experiment.folder(cache) / SUMMARY
    if not summary.exists():
        return []
    config = ranking_config(experiment.method, "detail", experiment.text, epochs_detail)
    found = []
    for row in RankingSummary.from_json(read_json(summary), summary).rows:
        start = experiment.run_png(cache, row.run)
        job = experiment.job(experiment.continued_png(cache, row.run), "detail", row.run,
                             start, frames)
        expected = Expected(job_hash(config, start), model_id, job.seed, final_size(config))
        if status(job.png, expected) == "complete":
            found.append((job, start))
    found = lacking(found)
    if not found:
        return []
    return [Missing(f"{experiment.stem} method {experiment.method} continued", config,
                    [j for j, _ in found], [s for _, s in found])]
