"""Render jobs: the seam between planning, the engine and the cache.

A job is plain data (prompt text, seed, where it belongs in the cache, extra
record fields), so any executor can take it. Rendering a batch of jobs gives
back, per image, the PNG's bytes and its record; nothing touches the disk
until ``write_results``, the one place a render lands in the cache. The
gallery and the ranking both go through ``render_in_batches``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from gallery.atomic import atomic_path
from gallery.layout import history_path, record_path
from gallery.schema import RenderRecord

from ..engine.clipmodel import ClipModel
from ..engine.device import device_name
from ..engine.history import encode_histories
from ..engine.imageio import encode_png
from ..engine.optimise import Progress, render
from ..engine.precision import Choice, choose
from ..engine.rate import rate_images
from ..language.config import Config
from .batching import auto_batch, run_batches


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from the given parts (e.g. stem, method, base seed).

    Derived from names, so any single image can be rendered again alone.
    """
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


@dataclass(frozen=True)
class ImageJob:
    text: str
    seed: int
    png: Path  # where the image belongs; its record goes beside it
    meta: Mapping[str, object] = field(default_factory=dict)  # extra record fields
    history: int = 0  # frames of its optimisation history to keep (0: none)


@dataclass(frozen=True)
class ImageResult:
    """One rendered image as an executor returns it: bytes and record."""

    png: bytes
    record: RenderRecord
    history: bytes | None = None  # the animated WebP, if the job asked for one


def job_hash(config: Config, init_image: Path | None = None) -> str:
    """The config hash of one image, counting its own start image if it has one."""
    return config.with_init_image(init_image).hash if init_image else config.hash


def render_results(
    config: Config,
    model: ClipModel,
    jobs: Sequence[ImageJob],
    precision: str | None = None,
    progress: Callable[[Progress], None] | None = None,
    init_images: Sequence[Path] | None = None,
) -> list[ImageResult]:
    """Render ``jobs`` in one batch: each image's PNG bytes, rated, and its record.

    The sim is the rating of the encoded PNG, as if read back from disk. A
    batch keeps a history if any of its jobs asks for one, and gives it to
    those that asked.
    """
    frames = max((j.history for j in jobs), default=0)
    result = render(
        config, model, [j.seed for j in jobs], [j.text for j in jobs],
        precision=precision, progress=progress, init_images=init_images, history=frames,
    )
    pngs = [encode_png(image) for image in result.images]
    histories = (encode_histories(result.history, [bool(j.history) for j in jobs])
                 if result.history is not None else [None] * len(jobs))
    sims = rate_images(model, pngs, [j.text for j in jobs]).diagonal()
    starts = init_images or [None] * len(jobs)
    return [
        ImageResult(png, RenderRecord(
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
            torch=torch.__version__,
            **job.meta,
        ), history)
        for job, png, sim, start, history
        in zip(jobs, pngs, sims.tolist(), starts, histories, strict=True)
    ]


def write_results(jobs: Sequence[ImageJob], results: Sequence[ImageResult]) -> None:
    """Put rendered images into the cache: the PNG, its history, then its record.

    Each file is written atomically, so a record always describes a complete
    image and a killed run leaves no half-written file under a real name. A
    history left from an earlier render of the image is removed when this one
    has none: it would show another image emerging.
    """
    for job, result in zip(jobs, results, strict=True):
        with atomic_path(job.png) as tmp:
            tmp.write_bytes(result.png)
        write_history(job.png, result.history)
        result.record.write(record_path(job.png))


def write_history(png: Path, data: bytes | None) -> None:
    """Write (or, for None, remove) the history beside ``png``."""
    path = history_path(png)
    if data is None:
        path.unlink(missing_ok=True)
        return
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def render_files(
    config: Config,
    model: ClipModel,
    jobs: Sequence[ImageJob],
    precision: str | None = None,
    progress: Callable[[Progress], None] | None = None,
    init_images: Sequence[Path] | None = None,
) -> list[RenderRecord]:
    """Render ``jobs`` in one batch and write them into the cache; their records."""
    results = render_results(config, model, jobs, precision, progress, init_images)
    write_results(jobs, results)
    return [r.record for r in results]


# What becomes of a finished batch: by default its images land in the cache.
Writer = Callable[[Sequence[ImageJob], Sequence[ImageResult]], None]


def batch_source(model: ClipModel, batch: int | None) -> str:
    """Where a batch size comes from, for the line printed before rendering."""
    if batch:
        return "--batch"
    return {"cuda": "measured free memory", "mps": "fixed for Apple GPUs"}.get(
        model.device.type, "fixed for the CPU")


def run_jobs(
    config: Config,
    model: ClipModel,
    jobs: Sequence[ImageJob],
    size: int,
    precision: str | None = None,
    on_batch: Callable[[int], None] | None = None,
    init_images: Sequence[Path | None] | None = None,
    echo: Callable[[str], None] = print,
    write: Writer = write_results,
) -> list[int]:
    """Render ``jobs`` with one config, ``size`` at a time, and hand each batch to ``write``.

    ``init_images`` (aligned with ``jobs``, None entries for noise) are start
    images. A batch that runs out of device memory is halved and retried.
    ``on_batch`` gets the number of images of every batch written. Returns the
    batch sizes used.
    """
    def render(start: int, stop: int) -> None:
        starts = list(init_images[start:stop]) if init_images is not None else []
        batch = jobs[start:stop]
        write(batch, render_results(config, model, batch, precision,
                                    init_images=starts if any(starts) else None))
        if on_batch is not None:
            on_batch(stop - start)

    return run_batches(len(jobs), size, render, model.device, echo) if jobs else []


class LocalExecutor:
    """Renders batches in this process on its model: what every command uses
    unless told to use a cluster (``renderer.execution.cluster.RayExecutor`` has the same
    methods)."""

    parallel = 1  # batches rendered at once

    def __init__(self, model: ClipModel):
        self.model = model

    @property
    def device_label(self) -> str:
        """Where the batches render, in words."""
        return device_name(self.model.device)

    def batch_size(self, config: Config, precision: str | None, history: int = 0) -> int:
        """Images per batch of ``config`` here, each keeping ``history`` frames."""
        return auto_batch(config, self.model, precision, history)

    def batch_source(self, batch: int | None) -> str:
        return batch_source(self.model, batch)

    def precision(self, requested: str | None) -> Choice:
        """The precision batches render in here: ``requested`` if this device computes
        it natively (else PrecisionError), or its fastest native one."""
        return choose(self.model.device, requested)

    def step_seconds(self, config: Config, n: int, precision: str) -> float:
        """Seconds of one step of ``n`` images at the last epoch, after a warm-up step."""
        from ..runs.bench import batched_step_seconds

        return batched_step_seconds(config, self.model, n, precision, steps=1)

    def run(self, config: Config, jobs: Sequence[ImageJob], size: int,
            precision: str | None = None, on_batch: Callable[[int], None] | None = None,
            init_images: Sequence[Path | None] | None = None,
            echo: Callable[[str], None] = print, write: Writer = write_results) -> list[int]:
        return run_jobs(config, self.model, jobs, size, precision, on_batch, init_images, echo,
                        write)


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
    executor: LocalExecutor | None = None,
) -> list[int]:
    """Run ``jobs`` at ``batch`` (or an automatic number), said before the first image.

    ``executor`` renders them (default: this process, on ``model``).
    """
    if not jobs:
        return []
    executor = executor or LocalExecutor(model)
    frames = max(job.history for job in jobs)
    size = min(len(jobs), batch or executor.batch_size(config, precision, frames))
    echo(f"{label + ': ' if label else ''}{len(jobs)} images, batch {size} "
         f"({executor.batch_source(batch)})")
    return executor.run(config, jobs, size, precision, on_batch, init_images, echo)
