"""Render a batch and write its PNGs and records: the engine meets the disk."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .batching import auto_batch, run_batches
from .clipmodel import ClipModel
from .config import Config
from .device import device_name
from .engine import Progress, render
from .imageio import save_png
from .rate import rate_images
from .records import RenderRecord


@dataclass(frozen=True)
class ImageJob:
    text: str
    seed: int
    png: Path  # the record goes beside it, as .json
    meta: Mapping[str, object] = field(default_factory=dict)  # extra record fields


def job_hash(config: Config, init_image: Path | None = None) -> str:
    """The config hash of one image, counting its own start image if it has one."""
    return config.with_init_image(init_image).hash if init_image else config.hash


def record_path(png: Path) -> Path:
    return Path(png).with_suffix(".json")


def render_files(
    config: Config,
    model: ClipModel,
    jobs: Sequence[ImageJob],
    precision: str | None = None,
    progress: Callable[[Progress], None] | None = None,
    init_images: Sequence[Path] | None = None,
) -> list[RenderRecord]:
    """Render ``jobs`` in one batch; each PNG is written, re-rated and recorded.

    The PNG is written before its record, each atomically, so a record always
    describes a complete image.
    """
    result = render(
        config, model, [j.seed for j in jobs], [j.text for j in jobs],
        precision=precision, progress=progress, init_images=init_images,
    )
    for job, image in zip(jobs, result.images, strict=True):
        save_png(image, job.png)
    sims = rate_images(model, [j.png for j in jobs], [j.text for j in jobs]).diagonal()
    records = []
    starts = init_images or [None] * len(jobs)
    for job, sim, start in zip(jobs, sims.tolist(), starts, strict=True):
        record = RenderRecord(
            prompt=job.text,
            config=Path(config.source).name,
            config_hash=job_hash(config, start),
            seed=job.seed,
            model=model.name,
            model_id=model.identity,
            device=result.device,
            precision=result.precision,
            epochs=config.epochs,
            seconds=round(result.seconds / len(jobs), 3),
            batch=len(jobs),
            sim=round(float(sim), 4),
            device_name=device_name(result.device),
            **job.meta,
        )
        record.write(record_path(job.png))
        records.append(record)
    return records


def batch_source(model: ClipModel, batch: int | None) -> str:
    """Where a batch size comes from, for the line printed before rendering."""
    if batch:
        return "--batch"
    return "measured free memory" if model.device.type == "cuda" else "fixed for the CPU"


def render_in_batches(
    config: Config,
    model: ClipModel,
    jobs: Sequence[ImageJob],
    batch: int | None = None,
    precision: str | None = None,
    on_batch: Callable[[int], None] | None = None,
    init_images: Sequence[Path | None] | None = None,
    echo: Callable[[str], None] = print,
    label: str = "",
) -> list[int]:
    """Render ``jobs`` with one config, ``batch`` (or an automatic number) at a time.

    ``init_images`` (aligned with ``jobs``, None entries for noise) are start
    images. The batch size is printed before the first image; a batch that
    runs out of device memory is halved and retried. ``on_batch`` gets the
    number of images of every batch written. Returns the batch sizes used.
    """
    if not jobs:
        return []
    size = min(len(jobs), batch or auto_batch(config, model, precision))
    echo(f"{label + ': ' if label else ''}{len(jobs)} images, batch {size} "
         f"({batch_source(model, batch)})")

    def render(start: int, stop: int) -> None:
        starts = list(init_images[start:stop]) if init_images is not None else []
        render_files(config, model, jobs[start:stop], precision,
                     init_images=starts if any(starts) else None)
        if on_batch is not None:
            on_batch(stop - start)

    return run_batches(len(jobs), size, render, model.device, echo)
