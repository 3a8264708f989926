"""Executors: what renders a run's batches, in this process or on a cluster.

Every run plans ``ImageJob``s and hands them to an executor as ``Task``s: one
config's jobs, a batch size, a precision, start images, and a writer for
finished batches (``write_results`` unless the run keeps only part of each
result). ``LocalExecutor`` renders here; ``renderer.execution.cluster.RayExecutor``
on Ray workers; both follow ``Executor``, and the process that planned is the
only one that writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..engine.clipmodel import ClipModel
from ..engine.device import device_name
from ..engine.precision import Choice, choose
from ..language.config import Config
from .batching import auto_batch, run_batches
from .jobs import ImageJob, Writer, render_results, write_results
from .report import Reporter
from .timing import batched_step_seconds


@dataclass(frozen=True)
class Task:
    """One config's jobs, to render ``size`` at a time in ``precision``."""

    config: Config
    jobs: Sequence[ImageJob]
    size: int
    precision: str
    starts: Sequence[Path | None] | None = None  # aligned with jobs; None: from noise
    write: Writer = write_results

    def batch(self, start: int, stop: int) -> tuple[list[ImageJob], list[Path | None] | None]:
        """The jobs ``start:stop`` and their start images (None when all start from noise)."""
        starts = list(self.starts[start:stop]) if self.starts is not None else []
        return list(self.jobs[start:stop]), (starts if any(starts) else None)


class Executor(Protocol):
    """What every run renders through."""

    @property
    def parallel(self) -> int:
        """Batches rendered at once."""

    @property
    def device_label(self) -> str:
        """Where the batches render, in words."""

    def batch_size(self, config: Config, precision: str, frames: int = 0) -> int:
        """Images per batch of ``config``, each keeping ``frames`` history frames."""

    def batch_source(self, batch: int | None) -> str:
        """Where the batch size comes from, in words (``batch``: the one asked for)."""

    def precision(self, requested: str | None) -> Choice:
        """``requested`` if computed natively where the batches render (else
        PrecisionError), or the fastest native one."""

    def step_seconds(self, config: Config, n: int, precision: str) -> float:
        """Seconds of one step of a batch of ``n`` on one worker, after a warm-up step."""

    def run(self, task: Task, reporter: Reporter) -> list[int]:
        """Render ``task`` and write every batch; the sizes of the batches written (a
        batch that runs out of memory is split)."""


def batch_source(model: ClipModel, batch: int | None) -> str:
    """Where a local batch size comes from, for the line printed before rendering."""
    if batch:
        return "--batch"
    return {"cuda": "measured free memory", "mps": "fixed for Apple GPUs"}.get(
        model.device.type, "fixed for the CPU")


def run_jobs(model: ClipModel, task: Task, reporter: Reporter) -> list[int]:
    """Render ``task`` here, ``task.size`` at a time, halving a batch that runs out of
    memory; each batch goes to ``task.write``, then counts as written."""
    def render(start: int, stop: int) -> None:
        jobs, starts = task.batch(start, stop)
        task.write(jobs, render_results(task.config, model, jobs, task.precision,
                                        init_images=starts))
        reporter.advance(stop - start)

    if not task.jobs:
        return []
    return run_batches(len(task.jobs), task.size, render, model.device, reporter.say)


class LocalExecutor:
    """Renders batches in this process on its model."""

    parallel = 1

    def __init__(self, model: ClipModel):
        self.model = model

    @property
    def device_label(self) -> str:
        return device_name(self.model.device)

    def batch_size(self, config: Config, precision: str, frames: int = 0) -> int:
        return auto_batch(config, self.model, precision, frames)

    def batch_source(self, batch: int | None) -> str:
        return batch_source(self.model, batch)

    def precision(self, requested: str | None) -> Choice:
        return choose(self.model.device, requested)

    def step_seconds(self, config: Config, n: int, precision: str) -> float:
        return batched_step_seconds(config, self.model, n, precision, steps=1)

    def run(self, task: Task, reporter: Reporter) -> list[int]:
        return run_jobs(self.model, task, reporter)
