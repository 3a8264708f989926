"""Render jobs: the seam between planning, the engine and the cache.

A job is plain data (prompt text, seed, where it belongs in the cache, the
record fields that say which prompt and run it is), so any executor can take
it. Rendering a batch of jobs gives back, per image, the PNG's bytes and its
record; nothing touches the disk until ``write_results``, the one place a
render lands in the cache. Every run hands its jobs to an executor
(``renderer.execution.executor``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch

from clipig_gallery.core.atomic import atomic_path
from clipig_gallery.core.layout import history_path, record_path
from clipig_gallery.core.schema import BestOf, RenderRecord

from ..engine.clipmodel import ClipModel
from ..engine.device import device_name
from ..engine.history import encode_histories
from ..engine.imageio import encode_png
from ..engine.optimise import Progress, render
from ..engine.rate import rate_images
from ..language.config import Config


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from the given parts (e.g. stem, method, base seed).

    Derived from names, so any single image can be rendered again alone.
    """
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


@dataclass(frozen=True)
class Tags:
    """The record fields that say which image a job is (``RenderRecord``'s names):
    a misspelt one fails when the job is planned, not after its batch rendered."""

    animal: str | None = None
    thing: str | None = None
    stem: str | None = None
    method: int | None = None
    run: int | None = None  # ranking and best-of short runs
    init_image: str | None = None  # the start image's file name, for continued runs
    best_of: BestOf | None = None  # best-of winners: the short runs behind them


@dataclass(frozen=True)
class ImageJob:
    text: str
    seed: int
    png: Path  # where the image belongs; its record goes beside it
    tags: Tags = field(default_factory=Tags)
    frames: int = 0  # frames of its optimisation history to keep (0: none)


@dataclass(frozen=True)
class ImageResult:
    """One rendered image as an executor returns it: bytes and record."""

    png: bytes
    record: RenderRecord
    history_webp: bytes | None = None  # the animated history, if the job asked for one


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
    frames = max((j.frames for j in jobs), default=0)
    result = render(
        config, model, [j.seed for j in jobs], [j.text for j in jobs],
        precision=precision, progress=progress, init_images=init_images, history=frames,
    )
    pngs = [encode_png(image) for image in result.images]
    histories = (encode_histories(result.history, [bool(j.frames) for j in jobs])
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
            **_tag_fields(job.tags),
        ), history)
        for job, png, sim, start, history
        in zip(jobs, pngs, sims.tolist(), starts, histories, strict=True)
    ]


def _tag_fields(tags: Tags) -> dict:
    """The tags as record fields (``best_of`` stays the dataclass the record holds)."""
    return {f.name: getattr(tags, f.name) for f in fields(tags)}


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
        write_history(job.png, result.history_webp)
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
