"""One run, specified once: what every planner and executor takes.

The command line (or the demo) builds a ``RunSpec`` from its options once:
the cache, the model, the executor (local or Ray, always given), the
precision (resolved once, with its reason), the batch, the history frames,
the base seed, the selection, and the reporter. Best of N and the ranking
add small specs of their own (``BestOfSpec``, ``RankingSpec``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from clipig_gallery.core.paths import METHODS
from clipig_gallery.core.prompts import Prompt, load_prompts

from ..engine.clipmodel import ClipModel
from ..engine.precision import Choice
from ..execution.executor import Executor, Task
from ..execution.jobs import ImageJob, Writer, write_results
from ..execution.report import Reporter
from ..execution.timing import Piece, estimate_seconds
from ..language.config import Config


class PlanError(ValueError):
    """What a user asked for cannot be planned: an unknown animal, a bad N..."""


def select(prompts: Sequence[Prompt], animals: Sequence[str] = (),
           things: Sequence[str] = ()) -> list[Prompt]:
    """Prompts matching the animal and thing filters (an empty filter matches all)."""
    known_animals = {p.animal for p in prompts}
    known_things = {p.thing for p in prompts}
    for value, known, what in ((animals, known_animals, "animal"),
                               (things, known_things, "thing")):
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown {what}(s): {', '.join(unknown)}")
    return [p for p in prompts
            if (not animals or p.animal in animals) and (not things or p.thing in things)]


@dataclass(frozen=True)
class Selection:
    """Which prompts x methods a run covers, and at most how many it works on."""

    methods: tuple[int, ...] = METHODS
    animals: tuple[str, ...] = ()
    things: tuple[str, ...] = ()
    limit: int | None = None  # of the images (best of N: prompt x method) to work on

    def __post_init__(self):
        object.__setattr__(self, "methods", tuple(sorted(set(self.methods))) or METHODS)

    def prompts(self, every: Sequence[Prompt] | None = None) -> list[Prompt]:
        """The selected prompts in list order; PlanError naming an unknown animal or
        thing."""
        try:
            return select(load_prompts() if every is None else every, self.animals,
                          self.things)
        except ValueError as exc:
            raise PlanError(str(exc)) from None

    def cut(self, pending: list) -> list:
        """The first ``limit`` of ``pending`` (all without a limit)."""
        return pending[:self.limit]


EVERYTHING = Selection()  # every prompt x method, no limit


@dataclass(frozen=True)
class RunSpec:
    cache: Path
    model: ClipModel
    executor: Executor
    precision: Choice
    batch: int | None = None  # images per batch; None: the executor's own number
    frames: int = 0  # history frames each final image keeps (0: none)
    seed: int = 0  # the base seed every image's seed derives from
    selection: Selection = field(default_factory=Selection)
    reporter: Reporter = field(default_factory=Reporter)
    device_line: str = ""  # where and how it renders, said before the first image

    @property
    def device(self) -> torch.device:
        """Where this process's model is (the driver's, with Ray)."""
        return self.model.device

    def announce(self) -> None:
        """Say the device line (once work is certain)."""
        if self.device_line:
            self.reporter.say(self.device_line)

    def size(self, config: Config, count: int, frames: int = 0) -> int:
        """The batch of ``count`` images of ``config``: ``batch`` or the executor's."""
        return min(count, self.batch or self.executor.batch_size(
            config, self.precision.precision, frames))

    def task(self, config: Config, jobs: Sequence[ImageJob], size: int,
             starts: Sequence[Path | None] | None = None,
             write: Writer = write_results) -> Task:
        return Task(config, jobs, size, self.precision.precision, starts, write)

    def render(self, config: Config, jobs: Sequence[ImageJob], label: str,
               starts: Sequence[Path | None] | None = None,
               write: Writer = write_results) -> list[int]:
        """Render ``jobs`` at an automatic batch (or ``batch``), said first; the batch
        sizes used."""
        if not jobs:
            return []
        size = self.size(config, len(jobs), max(job.frames for job in jobs))
        self.reporter.say(f"{label + ': ' if label else ''}{len(jobs)} images, batch {size} "
                          f"({self.executor.batch_source(self.batch)})")
        return self.executor.run(self.task(config, jobs, size, starts, write), self.reporter)

    def estimate(self, pieces: Sequence[Piece]) -> float:
        """Seconds to render ``pieces`` here (one measured step per config and batch)."""
        return estimate_seconds(self.executor, pieces, self.precision.precision)
