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

import torch

from .cache import Expected, png_path, refresh, remove_stale_temp_files, status
from .clipmodel import ClipModel
from .config import Config, load_config
from .engine import BatchRender, default_precision, device_name, final_size, plan_epoch
from .output import ImageJob, render_files
from .paths import METHODS, method_config_path
from .prompts import Prompt
from .seeds import derive_seed

# On 2 CPU cores (see `clipig-gallery bench`), fp32 runs fastest one image
# at a time; with bf16 autocast, four images per batch gain about 12%.
CPU_BATCH = {"fp32": 1, "bf16": 4}
MAX_BATCH = 256


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

    def job(self) -> ImageJob:
        meta = {"animal": self.prompt.animal, "thing": self.prompt.thing,
                "stem": self.prompt.stem, "method": self.method}
        return ImageJob(self.prompt.for_method(self.method), self.seed, self.png, meta)


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
         model_name: str, base_seed: int = 0) -> list[Item]:
    """Every selected prompt x method with its status; method-major order."""
    items = []
    for method in methods:
        config = configs[method]
        size = final_size(config)
        for prompt in prompts:
            seed = image_seed(prompt, method, base_seed)
            png = png_path(cache, method, prompt.stem)
            expected = Expected(config.hash, model_name, seed, size)
            items.append(Item(prompt, method, seed, png, status(png, expected)))
    return items


def batch_from_memory(free_bytes: int, per_image_bytes: int, cap: int = MAX_BATCH) -> int:
    """How many images fit in ``free_bytes``, keeping a 15% margin."""
    if per_image_bytes <= 0:
        return cap
    return max(1, min(cap, int(0.85 * free_bytes // per_image_bytes)))


def auto_batch(config: Config, model: ClipModel, precision: str | None = None) -> int:
    """Images per batch for this device: measured on CUDA, fixed on the CPU."""
    precision = precision or default_precision(model.device)
    if model.device.type != "cuda":
        return CPU_BATCH[precision]
    # Peak memory of one step at the largest resolution, for 1 and 2 images;
    # the difference is what one more image costs.
    largest = max(range(config.epochs),
                  key=lambda e: (lambda p: p.width * p.height)(plan_epoch(config, e)))
    peaks = []
    for n in (1, 2):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(model.device)
        base = torch.cuda.memory_allocated(model.device)
        job = BatchRender(config, model, list(range(n)), ["probe"] * n, precision=precision)
        plan = plan_epoch(config, largest)
        pixels = torch.rand(n, 3, plan.height, plan.width, device=model.device,
                            requires_grad=True)
        loss, _, _ = job._loss(pixels, plan)
        loss.sum().backward()
        peaks.append(torch.cuda.max_memory_allocated(model.device) - base)
        del job, pixels, loss
    # Blocks the probe left in torch's cache are free for the real batch.
    torch.cuda.empty_cache()
    free, _total = torch.cuda.mem_get_info(model.device)
    return batch_from_memory(free, max(1, peaks[1] - peaks[0]))


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
) -> GalleryReport:
    """Render the pending items, ``batch`` (or an automatic number) at a time."""
    cache = Path(cache)
    remove_stale_temp_files(cache)
    report = GalleryReport(skipped=sum(not i.pending for i in items),
                           device=device_name(model.device))
    started = time.perf_counter()
    for method in METHODS:
        pending = [i for i in items if i.method == method and i.pending]
        if not pending:
            continue
        config = configs[method]
        size = batch or min(len(pending), auto_batch(config, model, precision))
        for start in range(0, len(pending), size):
            chunk = pending[start : start + size]
            render_files(config, model, [i.job() for i in chunk], precision)
            # Keep the CSV and summary current, so an interrupted run's work
            # is visible to the site build right away.
            refresh(cache, METHODS, method, stems_in_order)
            report.rendered += len(chunk)
            report.batches.append(len(chunk))
            if on_batch is not None:
                on_batch(len(chunk))
    report.seconds = time.perf_counter() - started
    return report
