"""Reading the render cache (the contract with the renderer) into plain data.

Only files are read here; nothing from the renderer's torch side is imported.
Malformed cache files raise :class:`CacheError` naming the file, so a broken
cache stops the build with a message instead of producing a half page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from clipig_gallery.core.layout import (
    best_of_root,
    judge_path,
    method_dir,
    png_of_record,
    ranking_summaries,
    record_paths,
    summary_path,
)
from clipig_gallery.core.schema import (
    BestOf,
    CacheFormatError,
    CacheSummary,
    Judgement,
    RankingSummary,
    RenderRecord,
)
from clipig_gallery.core.schema import read_json as _read_json

# A cache file exists but does not say what the contract (core.schema) says.
CacheError = CacheFormatError


@dataclass(frozen=True)
class Render:
    """One gallery image in the cache; ``judge``: the judge model's sim of it, if rated."""

    method: int
    stem: str
    png: Path
    sim: float | None
    prompt: str
    judge: float | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class Judge:
    """``judge.json`` as the site reads it: the judge model and its sim of each image."""

    model: str  # as named, e.g. ViT-B/16
    sims: Mapping[str, float]  # the image's path relative to the cache, with "/" -> sim

    def of(self, cache: Path, png: Path) -> float | None:
        """The judge's sim of ``png`` (an image of ``cache``); None where it has none."""
        return self.sims.get(png.relative_to(cache).as_posix())


@dataclass(frozen=True)
class BestOfRender(Render):
    """One image of the best-of gallery: the winner of N short runs, continued.

    ``sim`` is the continued image's (final) sim; the paths are in the cache,
    None where the file is not there (the site then shows nothing for it).
    """

    runs: int  # N
    run: int  # the winner
    short_sim: float | None
    short_image: Path | None
    short_sims: Path | None  # every short run's sim, as an article CSV
    short_seconds: float  # the N short runs together
    short_epochs: int
    seconds: float  # the continued run
    epochs: int
    device: str


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


def _records(cache: Path, method: int, stems: set[str]):
    """(stem, PNG, record file, record) of the method's images whose PNG and record exist.

    Records for stems outside the prompt list are ignored: the page shows the
    prompt list, and a stray file must not add a cell to it.
    """
    if not method_dir(cache, method).is_dir():
        return
    for record_path in record_paths(cache, method):
        stem = record_path.stem
        png = png_of_record(record_path)
        if stem not in stems or not png.is_file():
            continue
        data = _read_json(record_path)
        if not isinstance(data, dict):
            raise CacheError(f"{record_path}: a render record must be an object")
        yield stem, png, record_path, RenderRecord.from_json(data, record_path)


def _sim(value: float | None) -> float | None:
    # the schema has refused anything but a number or null
    return None if value is None else float(value)


def _judged(judge: Judge | None, cache: Path, png: Path) -> float | None:
    return None if judge is None else judge.of(Path(cache), png)


def load_renders(cache: Path, method: int, stems: set[str],
                 judge: Judge | None = None) -> dict[str, Render]:
    """The method's images whose PNG and record both exist, by stem (with ``judge``'s sims)."""
    return {
        stem: Render(method=method, stem=stem, png=png, sim=_sim(record.sim),
                     prompt=str(record.prompt), judge=_judged(judge, cache, png))
        for stem, png, _, record in _records(cache, method, stems)
    }


def load_judge(cache: Path) -> Judge | None:
    """The judge's ratings (``CACHE/judge.json``); None where no judge has run.

    Only the sims are kept: the site shows them and ignores the digests.
    """
    path = judge_path(cache)
    if not path.exists():
        return None
    judgement = Judgement.from_json(_read_json(path), path)
    if not isinstance(judgement.model, str) or not judgement.model.strip():
        raise CacheError(f"{path}: model must name the judge model, not {judgement.model!r}")
    # finite numbers: the schema has refused anything else
    sims = {key: float(rating.sim) for key, rating in judgement.ratings.items()}
    return Judge(model=judgement.model.strip(), sims=sims)


def _whole(value: object, where: Path, field: str, least: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise CacheError(f"{where}: {field} must be a whole number >= {least}, not {value!r}")
    return value


def _number(value: object, where: Path, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise CacheError(f"{where}: {field} must be a number >= 0, not {value!r}")
    return float(value)


def _best_of_render(method: int, stem: str, png: Path, where: Path,
                    record: RenderRecord, judge: float | None = None) -> BestOfRender:
    info = record.best_of
    if not isinstance(info, BestOf):
        raise CacheError(f"{where}: a best-of record needs a 'best_of' object")
    folder = png.parent
    runs = _whole(info.runs, where, "best_of.runs", least=1)
    run = _whole(info.run, where, "best_of.run")
    if run >= runs:
        raise CacheError(f"{where}: best_of.run {run} is not one of the {runs} runs")
    optional = {}
    for name in ("short_image", "short_sims"):  # niceties: shown only when there
        relative = getattr(info, name)
        path = _inside(folder, relative, where, f"best_of.{name}", "method folder") if (
            relative is not None and relative != "") else None
        optional[name] = path if path is not None and path.is_file() else None
    return BestOfRender(
        method=method, stem=stem, png=png, sim=_sim(record.sim), prompt=str(record.prompt),
        runs=runs, run=run, short_sim=_sim(info.short_sim), **optional,
        short_seconds=_number(info.short_seconds, where, "best_of.short_seconds"),
        short_epochs=_whole(info.short_epochs, where, "best_of.short_epochs"),
        seconds=_number(record.seconds, where, "seconds"),
        epochs=_whole(record.epochs, where, "epochs"),
        device=str(record.device_name or record.device), judge=judge,
    )


def load_best_of(cache: Path, method: int, stems: set[str],
                 judge: Judge | None = None) -> dict[str, BestOfRender]:
    """The best-of gallery's images of ``method`` (``CACHE/best-of``), by stem.

    Their judge sims are keyed under ``best-of/`` (paths relative to ``cache``).
    """
    root = best_of_root(cache)
    return {stem: _best_of_render(method, stem, png, where, record,
                                  _judged(judge, cache, png))
            for stem, png, where, record in _records(root, method, stems)}


def load_best_of_summary(cache: Path) -> dict[int, dict]:
    """Per-method cost of the best-of gallery's continued runs; empty if none."""
    return load_summary(best_of_root(cache))


def _inside(folder: Path, relative: object, where: Path, field: str,
            what: str = "ranking folder") -> Path:
    """A path from a cache file, refused if it could leave ``folder``."""
    if not isinstance(relative, str) or not relative:
        raise CacheError(f"{where}: {field} must be a relative path string")
    parts = PurePosixPath(relative)
    if parts.is_absolute() or ".." in parts.parts:
        raise CacheError(f"{where}: {field} {relative!r} leaves the {what}")
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
