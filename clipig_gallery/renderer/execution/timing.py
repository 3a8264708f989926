"""How long rendering takes: a measured step, and one estimate over any executor.

A run's estimate counts whole batches: a config's ``images`` at batch ``size``
are ``ceil(images / size)`` batches, which an executor renders ``parallel``
at a time, each batch taking ``epochs`` steps of the measured time of one
batch on one worker.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..engine.clipmodel import ClipModel
from ..engine.optimise import BatchRender
from ..engine.precision import synchronize
from ..language.config import Config, EpochPlan, plan_epoch


def timed(fn: Callable[[], None], steps: int, device: torch.device) -> float:
    """Mean seconds of ``fn`` over ``steps`` calls, after one warm-up call."""
    fn()
    synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        fn()
    synchronize(device)
    return (time.perf_counter() - started) / steps


def measure_plan(config: Config) -> EpochPlan:
    """The epoch a step is timed at: the last, where every target is active."""
    return plan_epoch(config, config.epochs - 1)


def batched_step_seconds(config: Config, model: ClipModel, n: int, precision: str,
                         steps: int) -> float:
    """Seconds of one step of a batch of ``n`` images of ``config`` on ``model``."""
    texts = [f"prompt {i}" for i in range(n)]
    job = BatchRender(config, model, list(range(n)), texts, precision=precision)
    state = job.start()
    plan = measure_plan(config)
    return timed(lambda: job.step(state, plan), steps, model.device)


@dataclass(frozen=True)
class Piece:
    """Images of one config, to render at one batch size."""

    config: Config
    images: int
    size: int


def estimate_seconds(executor, pieces: Sequence[Piece], precision: str) -> float:
    """Seconds to render ``pieces`` on ``executor``: whole batches, ``parallel`` at a
    time, one measured step of each (config, batch) once."""
    steps: dict[tuple[str, int], float] = {}
    total = 0.0
    for piece in pieces:
        if not piece.images:
            continue
        n = min(piece.size, piece.images)
        key = (piece.config.hash, n)
        if key not in steps:
            steps[key] = executor.step_seconds(piece.config, n, precision)
        rounds = math.ceil(math.ceil(piece.images / n) / executor.parallel)
        total += rounds * piece.config.epochs * steps[key]
    return total


def duration(seconds: float) -> str:
    """``seconds`` in words a person reads at a glance."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
