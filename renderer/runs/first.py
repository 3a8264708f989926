"""The gallery render: every prompt x method into the cache, batched, resumable.

Prompts of one method share a batch (one config, one CLIP call per step).
After every batch the finished images, their records, the method's CSV and
the summary are on disk, each written atomically; an interrupted run loses
at most the batch in flight, and the next run renders only what is missing,
changed or corrupt.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gallery.layout import png_path
from gallery.paths import METHODS, method_config_path
from gallery.prompts import Prompt, load_prompts

from ..engine.clipmodel import ClipModel
from ..engine.device import device_name
from ..engine.optimise import final_size
from ..execution.cache import Expected, refresh, remove_stale_temp_files, status
from ..execution.jobs import ImageJob, derive_seed, render_in_batches
from ..language.config import Config, load_config


def image_seed(prompt: Prompt, method: int, base_seed: int) -> int:
    return derive_seed(prompt.stem, method, base_seed)


def method_config(method: int, epochs: int | None = None) -> Config:
    config = load_config(method_config_path(method))
    return config.with_epochs(epochs) if epochs is not None else config


@dataclass(frozen=True)
class Item:
    """One image of the gallery and whether it needs rendering."""

    prompt: Prompt
    method: int
    seed: int
    png: Path
    status: str

    @property
    def pending(self) -> bool:
        return self.status != "complete"

    def job(self, history: int = 0) -> ImageJob:
        """Its render job, keeping ``history`` frames of the optimisation (0: none)."""
        meta = {"animal": self.prompt.animal, "thing": self.prompt.thing,
                "stem": self.prompt.stem, "method": self.method}
        return ImageJob(self.prompt.for_method(self.method), self.seed, self.png, meta, history)


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


def plan(cache: Path, prompts: Sequence[Prompt], methods: Sequence[int], configs: dict,
         model_id: str, base_seed: int = 0) -> list[Item]:
    """Every selected prompt x method with its status; method-major order."""
    items = []
    for method in methods:
        config = configs[method]
        size = final_size(config)
        for prompt in prompts:
            seed = image_seed(prompt, method, base_seed)
            png = png_path(cache, method, prompt.stem)
            expected = Expected(config.hash, model_id, seed, size)
            items.append(Item(prompt, method, seed, png, status(png, expected)))
    return items


@dataclass(frozen=True)
class GalleryPlan:
    """What a gallery run will do: every selected image's status, and the pending ones."""

    configs: dict[int, Config]  # every method's, as rendered now
    items: list[Item]  # the selected prompt x method, with status
    pending: list[Item]  # to render in this run (after --limit)
    stems: list[str]  # every prompt's stem in list order (the CSVs' row order)


def plan_gallery(cache: Path, model_id: str, *, methods: Sequence[int] = METHODS,
                 animals: Sequence[str] = (), things: Sequence[str] = (),
                 epochs: int | None = None, seed: int = 0,
                 limit: int | None = None) -> GalleryPlan:
    """The plan of a gallery run, for `render` and `demo` alike.

    Raises ValueError naming an unknown animal or thing.
    """
    every = load_prompts()
    prompts = select(every, animals, things)
    configs = {m: method_config(m, epochs) for m in METHODS}
    items = plan(cache, prompts, sorted(set(methods)), configs, model_id, seed)
    pending = [i for i in items if i.pending][:limit]
    return GalleryPlan(configs, items, pending, [p.stem for p in every])


@dataclass
class GalleryReport:
    rendered: int = 0
    skipped: int = 0
    seconds: float = 0.0
    device: str = ""
    batches: list[int] = field(default_factory=list)

    @property
    def images_per_hour(self) -> float:
        return 3600.0 * self.rendered / self.seconds if self.seconds else 0.0


def render_gallery(
    cache: Path,
    items: Sequence[Item],
    configs: dict[int, Config],
    model: ClipModel,
    stems_in_order: Sequence[str],
    batch: int | None = None,
    precision: str | None = None,
    on_batch: Callable[[int], None] | None = None,
    echo: Callable[[str], None] = print,
    executor=None,
    history: int = 0,
) -> GalleryReport:
    """Render the pending items, ``batch`` (or an automatic number) at a time.

    ``executor`` renders the batches (default: this process, on ``model``; a
    ``renderer.execution.cluster.RayExecutor`` for a cluster); this process writes them.
    Each image keeps ``history`` frames of its optimisation (0: none).
    """
    cache = Path(cache)
    remove_stale_temp_files(cache)
    report = GalleryReport(skipped=sum(not i.pending for i in items),
                           device=device_name(model.device))
    started = time.perf_counter()
    for method in METHODS:
        pending = [i for i in items if i.method == method and i.pending]

        def written(count: int, method: int = method) -> None:
            # Keep the CSV and summary current, so an interrupted run's work
            # is visible to the site build right away.
            refresh(cache, METHODS, method, stems_in_order)
            report.rendered += count
            if on_batch is not None:
                on_batch(count)

        report.batches += render_in_batches(
            configs[method], model, [i.job(history) for i in pending], batch, precision,
            on_batch=written, echo=echo, label=f"method {method}", executor=executor,
        )
    report.seconds = time.perf_counter() - started
    return report
