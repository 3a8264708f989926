"""The render cache: one folder per method, a PNG and a record per prompt.

Layout (the contract with the site generator)::

    CACHE/summary.json            seconds per image etc., per method
    CACHE/method-1/{stem}.png     224x224 RGB
    CACHE/method-1/{stem}.json    the render's record
    CACHE/method-1/sims.csv       ",prompt,sim" -- one row per image
    CACHE/method-2/...

An image counts as complete when its PNG reads back at the expected size
and its record matches what would be rendered now (config hash, the model's
weights identity, seed). Everything else is (re)rendered.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from gallery.atomic import atomic_path

from .imageio import write_json


def method_dir(cache: Path, method: int) -> Path:
    return Path(cache) / f"method-{method}"


def png_path(cache: Path, method: int, stem: str) -> Path:
    return method_dir(cache, method) / f"{stem}.png"


@dataclass(frozen=True)
class Expected:
    """What a complete render of one prompt must have been made with."""

    config_hash: str
    model_id: str  # the weights' identity (ClipModel.identity), not the name given
    seed: int
    size: tuple[int, int] = (224, 224)


def read_record(png: Path) -> dict | None:
    try:
        data = json.loads(png.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def png_is_whole(png: Path, size: tuple[int, int]) -> bool:
    """The file decodes completely as an RGB image of ``size``."""
    try:
        with Image.open(png) as img:
            if img.size != size or img.mode != "RGB":
                return False
            img.load()  # decodes every row: a truncated file fails here
        return True
    except (OSError, ValueError, SyntaxError):
        return False


def status(png: Path, expected: Expected) -> str:
    """'complete', or why the image must be rendered: missing, changed, corrupt."""
    record = read_record(png)
    if record is None or not png.exists():
        return "missing"
    for key, label in (("config_hash", "config_hash"), ("model_id", "model"), ("seed", "seed")):
        if record.get(key) != getattr(expected, key):
            return f"changed ({label})"
    if not png_is_whole(png, expected.size):
        return "corrupt"
    return "complete"


def remove_stale_temp_files(cache: Path) -> int:
    """Delete temp files a killed run left behind; returns how many."""
    count = 0
    for path in Path(cache).rglob(".*.tmp"):
        path.unlink(missing_ok=True)
        count += 1
    return count


def records(cache: Path, method: int) -> list[dict]:
    """All readable records of a method, in file-name order."""
    found = []
    for path in sorted(method_dir(cache, method).glob("*.json")):
        record = read_record(path.with_suffix(".png"))
        if record is not None and path.with_suffix(".png").exists():
            found.append(record)
    return found


def write_sims_csv(
    cache: Path, method: int, found: list[dict], stems_in_order: Iterable[str]
) -> Path:
    """The method's sims in the article's CSV style: empty index header, image path rows."""
    by_stem = {r.get("stem"): r for r in found}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["", "prompt", "sim"])
    for stem in stems_in_order:
        record = by_stem.get(stem)
        if record is not None:
            writer.writerow([f"method-{method}/{stem}.png", record["prompt"], record["sim"]])
    path = method_dir(cache, method) / "sims.csv"
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def method_summary(found: list[dict]) -> dict | None:
    """Measured cost of a method's renders, from its records."""
    if not found:
        return None
    seconds = [float(r.get("seconds", 0.0)) for r in found]
    last = max(found, key=lambda r: r.get("created", ""))
    return {
        "config": last.get("config"),
        "config_hash": last.get("config_hash"),
        "epochs": last.get("epochs"),
        "images": len(found),
        "seconds_per_image": round(sum(seconds) / len(seconds), 4),
        "total_seconds": round(sum(seconds), 2),
        "device": last.get("device_name") or last.get("device"),
        "model": last.get("model"),
        "precision": last.get("precision"),
        "batch": max(int(r.get("batch", 1)) for r in found),
    }


def refresh(
    cache: Path, methods: Iterable[int], changed: int, stems_in_order: Iterable[str]
) -> None:
    """Rewrite the changed method's CSV and the summary, reading each record once."""
    summary = {"methods": {}}
    for method in methods:
        found = records(cache, method)
        if method == changed:
            write_sims_csv(cache, method, found, stems_in_order)
        entry = method_summary(found)
        if entry is not None:
            summary["methods"][str(method)] = entry
    write_json(summary, Path(cache) / "summary.json")
