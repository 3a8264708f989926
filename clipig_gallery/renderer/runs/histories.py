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
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from PIL import Image

from clipig_gallery.core.layout import SUMMARY, history_path
from clipig_gallery.core.schema import RankingSummary, read_json

from ..engine.history import decode_history, encode_history, scaled_frame, sizes_line
from ..execution.cache import is_complete
from ..execution.jobs import ImageJob, ImageResult, write_history
from ..execution.timing import Piece
from ..language.config import Config
from .bestof import continue_job, plan_best_of, winner, winner_png_complete
from .first import plan_gallery
from .ranking import Experiment, RankingSpec
from .spec import RunSpec


@dataclass(frozen=True)
class Missing:
    """Complete images of one config that lack a history, and their start images."""

    label: str
    config: Config
    jobs: list[ImageJob]  # with ``frames`` set
    starts: list[Path | None]


def limited(groups: Sequence[Missing], limit: int | None) -> list[Missing]:
    """The first ``limit`` images of the groups, in order (all without a limit)."""
    if limit is None:
        return list(groups)
    kept, left = [], limit
    for group in groups:
        if left > 0:
            kept.append(replace(group, jobs=group.jobs[:left], starts=group.starts[:left]))
            left -= len(kept[-1].jobs)
    return kept


def batch_sizes(spec: RunSpec, groups: Sequence[Missing]) -> dict[str, int]:
    """Each group's batch (its images keep ``spec.frames`` frames)."""
    return {g.label: spec.size(g.config, len(g.jobs), spec.frames) for g in groups}


def pieces(groups: Sequence[Missing], sizes: dict[str, int]) -> list[Piece]:
    """The work of rendering every group again, for an estimate."""
    return [Piece(g.config, len(g.jobs), sizes[g.label]) for g in groups]


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


class HistoryWriter:
    """Writes only the history of each re-rendered image, ending on its saved PNG."""

    def __init__(self, report: HistoryReport):
        self.report = report

    def __call__(self, jobs: Sequence[ImageJob], results: Sequence[ImageResult]) -> None:
        for job, result in zip(jobs, results, strict=True):
            if result.history_webp is None:
                continue
            saved = job.png.read_bytes()
            data = result.history_webp
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


def add_histories(spec: RunSpec, groups: Sequence[Missing],
                  sizes: dict[str, int]) -> HistoryReport:
    """Render every group again on the spec's executor, keeping only the histories."""
    report = HistoryReport()
    started = time.perf_counter()
    writer = HistoryWriter(report)
    with spec.reporter.progress(sum(len(g.jobs) for g in groups), "history"):
        for group in groups:
            if not group.jobs:
                continue
            size = sizes[group.label]
            spec.reporter.say(f"{group.label}: {len(group.jobs)} histories, batch {size}")
            task = spec.task(group.config, group.jobs, size,
                             group.starts if any(group.starts) else None, writer)
            report.batches += spec.executor.run(task, spec.reporter)
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


def ranking_missing(spec: RunSpec, experiment: Experiment,
                    ranking: RankingSpec | None = None) -> list[Missing]:
    """The experiment's complete continued runs without a history."""
    summary = experiment.folder(spec.cache) / SUMMARY
    if not summary.exists():
        return []
    _, config = (ranking or RankingSpec()).configs(experiment)
    found = []
    for row in RankingSummary.from_json(read_json(summary), summary).rows:
        job, start = experiment.continued_job(spec.cache, row.run, spec.frames)
        if is_complete(job, config, spec.model.identity, start):
            found.append((job, start))
    found = lacking(found)
    if not found:
        return []
    return [Missing(f"{experiment.stem} method {experiment.method} continued", config,
                    [j for j, _ in found], [s for _, s in found])]


def missing_in_gallery(spec: RunSpec, epochs: int | None = None
                       ) -> tuple[list[Missing], list[Path]]:
    """The selected first attempts that lack a history, and every selected image."""
    planned = plan_gallery(spec.cache, spec.model.identity, spec.selection, epochs, spec.seed)
    return gallery_missing(planned, spec.frames), [i.png for i in planned.items]


def missing_in_best_of(spec: RunSpec, best) -> tuple[list[Missing], list[Path]]:
    """The selected best-of winners that lack a history, and every selected winner."""
    planned = plan_best_of(spec.cache, spec.model.identity, best, spec.selection, spec.seed)
    return (best_of_missing(planned, spec.model.identity, spec.frames),
            [e.png for e in planned.entries])


def add_missing(spec: RunSpec, groups: Sequence[Missing], pngs: Sequence[Path],
                dry_run: bool = False) -> HistoryReport | None:
    """`--history-only`: say how many histories are missing and how long they take;
    then (unless ``dry_run``) render them."""
    from ..execution.timing import duration

    say = spec.reporter.say
    groups = limited(groups, spec.selection.limit)
    count = sum(len(g.jobs) for g in groups)
    if not count:
        say(f"no history to add: every complete image of the {len(pngs)} selected has "
            f"one, or none is complete")
        return None
    sizes = batch_sizes(spec, groups)
    seconds = spec.estimate(pieces(groups, sizes))
    lack = "1 image lacks" if count == 1 else f"{count} images lack"
    say(f"{lack} a history of {spec.frames} frames; rendering again takes about "
        f"{duration(seconds)} on {spec.executor.device_label} (one measured step per "
        f"config at its batch)")
    if dry_run:
        for group in groups:
            for job in group.jobs:
                say(f"history  {job.png}")
        return None
    spec.announce()
    report = add_histories(spec, groups, sizes)
    differed = (f"; {report.differed} re-renders differed from the saved image (by up to "
                f"{report.largest_difference}/255), their histories end on the saved image"
                if report.differed else "; every re-render matched its saved image")
    added = "1 history" if report.added == 1 else f"{report.added} histories"
    say(f"{added} added in {report.seconds:.1f} s{differed}")
    line = sizes_line(pngs, spec.frames)
    if line:
        say(line)
    return report
