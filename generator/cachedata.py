"""Reading the render cache (the contract with the renderer) into plain data.

Only files are read here; nothing from the renderer's torch side is imported.
Malformed cache files raise :class:`CacheError` naming the file, so a broken
cache stops the build with a message instead of producing a half page.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from gallery.layout import (
    method_dir,
    png_of_record,
    ranking_summaries,
    record_paths,
    summary_path,
)
from gallery.schema import CacheFormatError, CacheSummary, RankingSummary, RenderRecord
from gallery.schema import read_json as _read_json

# A cache file exists but does not say what the contract (gallery.schema) says.
CacheError = CacheFormatError


@dataclass(frozen=True)
class Render:
    """One gallery image in the cache."""

    method: int
    stem: str
    png: Path
    sim: float | None
    prompt: str


@dataclass(frozen=True)
class RankingRow:
    run: int
    group: str  # "best" or "worst"
    initial_sim: float
    final_sim: float | None
    image: Path  # continued image, in the cache
    short_image: Path | None  # short-run image, in the cache


@dataclass(frozen=True)
class RankingColumn:
    """One prompt x method of the ranking experiment."""

    stem: str
    animal: str
    thing: str
    method: int
    prompt: str
    runs: int
    folder: Path  # CACHE/ranking/{stem}/method-{m}
    best: tuple[RankingRow, ...]
    worst: tuple[RankingRow, ...]
    csv: dict[str, Path]  # "initial"/"final" -> file in the cache
    # Epochs the short and the continued runs actually had (None: not recorded).
    epochs_short: int | None = None
    epochs_detail: int | None = None

    @property
    def key(self) -> str:
        return f"{self.stem}/{self.method}"


def _optional_int(value) -> int | None:
    return None if value is None else int(value)


def load_summary(cache: Path) -> dict[int, dict]:
    """Per-method cost figures from ``summary.json``; empty if nothing rendered yet."""
    path = summary_path(cache)
    if not path.exists():
        return {}
    summary = CacheSummary.from_json(_read_json(path), path)
    return {method: asdict(entry) for method, entry in summary.methods.items()}


def load_renders(cache: Path, method: int, stems: set[str]) -> dict[str, Render]:
    """The method's images whose PNG and record both exist, by stem.

    Records for stems outside the prompt list are ignored: the page shows the
    prompt list, and a stray file must not add a cell to it.
    """
    renders = {}
    if not method_dir(cache, method).is_dir():
        return renders
    for record_path in record_paths(cache, method):
        stem = record_path.stem
        png = png_of_record(record_path)
        if stem not in stems or not png.is_file():
            continue
        data = _read_json(record_path)
        if not isinstance(data, dict):
            raise CacheError(f"{record_path}: a render record must be an object")
        record = RenderRecord.from_json(data, record_path)
        renders[stem] = Render(
            method=method,
            stem=stem,
            png=png,
            sim=float(record.sim) if isinstance(record.sim, (int, float)) else None,
            prompt=str(record.prompt),
        )
    return renders


def _inside(folder: Path, relative: object, where: Path, field: str) -> Path:
    """A path from a summary, refused if it could leave the ranking folder."""
    if not isinstance(relative, str) or not relative:
        raise CacheError(f"{where}: {field} must be a relative path string")
    parts = PurePosixPath(relative)
    if parts.is_absolute() or ".." in parts.parts:
        raise CacheError(f"{where}: {field} {relative!r} leaves the ranking folder")
    return folder / parts


def _optional_file(folder: Path, relative: object, where: Path, index: int) -> Path | None:
    # The short-run image is a nicety of the table: link it only if it is there.
    if not relative:
        return None
    path = _inside(folder, relative, where, f"rows[{index}].short_image")
    return path if path.is_file() else None


def _row(folder: Path, raw, where: Path, index: int) -> RankingRow:
    """A schema row with its images resolved inside the column's folder."""
    try:
        return RankingRow(
            run=int(raw.run),
            group=str(raw.group),
            initial_sim=float(raw.initial_sim),
            final_sim=None if raw.final_sim is None else float(raw.final_sim),
            image=_inside(folder, raw.image, where, f"rows[{index}].image"),
            short_image=_optional_file(folder, raw.short_image, where, index),
        )
    except CacheError:
        raise
    except (TypeError, ValueError) as exc:
        raise CacheError(f"{where}: rows[{index}]: {exc!r}") from None


def load_ranking_column(summary_path: Path) -> RankingColumn:
    folder = summary_path.parent
    data = RankingSummary.from_json(_read_json(summary_path), summary_path)
    rows = [_row(folder, r, summary_path, i) for i, r in enumerate(data.rows)]
    missing = [str(r.image) for r in rows if not r.image.is_file()]
    if missing:
        raise CacheError(f"{summary_path}: continued image(s) missing: {', '.join(missing)}")
    unknown = sorted({r.group for r in rows} - {"best", "worst"})
    if unknown:
        raise CacheError(f"{summary_path}: unknown row group(s) {', '.join(unknown)}")
    # Best first from the top; the worst listed from the very worst up, as the
    # article's table does -- whatever order the file keeps them in.
    best = sorted((r for r in rows if r.group == "best"), key=lambda r: -r.initial_sim)
    worst = sorted((r for r in rows if r.group == "worst"), key=lambda r: r.initial_sim)
    if not isinstance(data.csv, dict) or not isinstance(data.epochs, dict):
        raise CacheError(f"{summary_path}: csv and epochs must be objects")
    try:
        return RankingColumn(
            stem=str(data.stem),
            animal=str(data.animal),
            thing=str(data.thing),
            method=int(data.method),
            prompt=str(data.prompt),
            runs=int(data.runs),
            folder=folder,
            best=tuple(best),
            worst=tuple(worst),
            # A CSV that is not there gets no link (the 2021 page linked five 404s).
            csv={k: path for k, v in data.csv.items()
                 if (path := _inside(folder, v, summary_path, f"csv.{k}")).is_file()},
            epochs_short=_optional_int(data.epochs.get("short")),
            epochs_detail=_optional_int(data.epochs.get("detail")),
        )
    except CacheError:
        raise
    except (TypeError, ValueError) as exc:
        raise CacheError(f"{summary_path}: {exc!r}") from None


def load_rankings(cache: Path) -> dict[str, RankingColumn]:
    """Every ranking summary in the cache, keyed ``"{stem}/{method}"``."""
    columns = {}
    for path in ranking_summaries(cache):
        column = load_ranking_column(path)
        columns[column.key] = column
    return columns
