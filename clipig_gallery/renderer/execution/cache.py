"""The render cache's state: which images are complete, and its CSVs and summary.

Where each file lives is ``core.layout``'s; what the JSON files hold is
``core.schema``'s. The one completeness rule (``job_status``): an image is
complete when its PNG reads back at the config's final size and its record
matches what would be rendered now: the config hash (counting its start
image, if it continues one), the model's weights identity, the seed.
Everything else is (re)rendered, and ``job_status`` says why.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from clipig_gallery.core.atomic import write_text
from clipig_gallery.core.layout import (
    png_of_record,
    record_path,
    record_paths,
    sims_csv_image,
    sims_csv_path,
    summary_path,
)
from clipig_gallery.core.schema import (
    CacheFormatError,
    CacheSummary,
    MethodSummary,
    RenderRecord,
    format_sims_csv,
    read_json,
)

from ..language.config import Config, final_size
from .jobs import ImageJob, job_hash


@dataclass(frozen=True)
class Expected:
    """What a complete render of one prompt must have been made with."""

    config_hash: str
    model_id: str  # the weights' identity (ClipModel.identity), not the name given
    seed: int
    size: tuple[int, int] = (224, 224)


def read_record(png: Path) -> RenderRecord | None:
    """The record beside ``png``, or None if it is missing or unreadable."""
    path = record_path(png)
    try:
        return RenderRecord.from_json(read_json(path), path)
    except CacheFormatError:
        return None


def _decoded(png: Path) -> tuple[tuple[int, int], str] | None:
    """The size and mode of the image, if the file decodes completely."""
    try:
        with Image.open(png) as img:
            img.load()  # decodes every row: a truncated file fails here
            return img.size, img.mode
    except (OSError, ValueError, SyntaxError):
        return None


def png_decodes(png: Path) -> bool:
    """The file decodes completely as an image."""
    return _decoded(png) is not None


def png_is_whole(png: Path, size: tuple[int, int]) -> bool:
    """The file decodes completely as an RGB image of ``size``."""
    return _decoded(png) == (size, "RGB")


def status(png: Path, expected: Expected) -> str:
    """'complete', or why the image must be rendered: missing, changed, corrupt."""
    record = read_record(png)
    if record is None or not png.exists():
        return "missing"
    for key, label in (("config_hash", "config_hash"), ("model_id", "model"), ("seed", "seed")):
        if getattr(record, key) != getattr(expected, key):
            return f"changed ({label})"
    if not png_is_whole(png, expected.size):
        return "corrupt"
    return "complete"


def expected(config: Config, model_id: str, seed: int, start: Path | None = None) -> Expected:
    """What a complete render of ``config`` (from ``start``, if given) was made with."""
    return Expected(job_hash(config, start), model_id, seed, final_size(config))


def job_status(job: ImageJob, config: Config, model_id: str, start: Path | None = None) -> str:
    """'complete', or why ``job``'s image must be rendered (the one rule, for every run)."""
    return status(job.png, expected(config, model_id, job.seed, start))


def is_complete(job: ImageJob, config: Config, model_id: str, start: Path | None = None) -> bool:
    return job_status(job, config, model_id, start) == "complete"


def remove_stale_temp_files(cache: Path) -> int:
    """Delete temp files a killed run left behind; returns how many."""
    count = 0
    for path in Path(cache).rglob(".*.tmp"):
        path.unlink(missing_ok=True)
        count += 1
    return count


def records(cache: Path, method: int) -> list[RenderRecord]:
    """All readable records of a method whose PNG exists, in file-name order."""
    found = []
    for path in record_paths(cache, method):
        png = png_of_record(path)
        record = read_record(png)
        if record is not None and png.exists():
            found.append(record)
    return found


def write_sims_csv(
    cache: Path, method: int, found: list[RenderRecord], stems_in_order: Iterable[str]
) -> Path:
    """The method's sims in the article's CSV style: empty index header, image path rows."""
    by_stem = {r.stem: r for r in found}
    rows = [(sims_csv_image(method, stem), by_stem[stem].prompt, by_stem[stem].sim)
            for stem in stems_in_order if stem in by_stem]
    return write_text(format_sims_csv(rows), sims_csv_path(cache, method))


def refresh(
    cache: Path, methods: Iterable[int], changed: int, stems_in_order: Iterable[str]
) -> None:
    """Rewrite the changed method's CSV and the summary, reading each record once."""
    summary = {}
    for method in methods:
        found = records(cache, method)
        if method == changed:
            write_sims_csv(cache, method, found, stems_in_order)
        entry = MethodSummary.of_records(found)
        if entry is not None:
            summary[method] = entry
    CacheSummary(summary).write(summary_path(cache))
