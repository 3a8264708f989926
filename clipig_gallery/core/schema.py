"""What the cache's JSON files hold, defined once: typed, with to/from JSON.

The renderer writes these, the generator reads them, and the generator's
sample cache builds its files from the same classes, so the three cannot
drift apart. Reading is lenient about fields a file lacks that have defaults
(older caches), strict about types, and names the file in every error.
"""

from __future__ import annotations

import csv
import datetime as _dt
import functools
import io
import json
import math
import types
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Union, get_args, get_origin, get_type_hints

from .atomic import write_json


class CacheFormatError(ValueError):
    """A cache file exists but does not hold what the schema says it must."""


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # bytes, JSON or nesting
        raise CacheFormatError(f"{path}: cannot read JSON: {exc}") from None


_TYPE_WORDS = {str: "a string", int: "an integer", float: "a finite number",
               dict: "an object", tuple: "a list"}

# A field's metadata may set a least value (durations are at least 0), for every
# number in it (a dict's values too).
AT_LEAST_0 = MappingProxyType({"minimum": 0})


def _accepts(kind, value: Any) -> bool:
    """``value`` (as JSON gave it, or already parsed) fits the annotation ``kind``
    itself (a dict's or list's items are checked by ``_problem``)."""
    origin = get_origin(kind)
    if origin in (Union, types.UnionType):
        return any(_accepts(k, value) for k in get_args(kind))
    if kind is type(None):
        return value is None
    if isinstance(value, bool):  # an int to Python, not a count or a sim to anyone
        return kind is bool
    if kind is float:
        # Python's json reads NaN and Infinity, which JSON has not; nothing the
        # renderer writes is either, and the page's script could not read them.
        return isinstance(value, (int, float)) and math.isfinite(value)
    if kind in (int, str):
        return isinstance(value, kind)
    if origin is tuple:
        return isinstance(value, (tuple, list))
    if origin is dict:
        return isinstance(value, dict)
    if isinstance(kind, type) and hasattr(kind, "__dataclass_fields__"):
        return isinstance(value, (kind, dict))  # a nested record, parsed by its reader
    return True


def _problem(kind, value: Any, name: str, minimum: float | None) -> str | None:
    """What is wrong with ``value`` for the annotation ``kind`` (None: nothing),
    naming the key or item inside it (``name``, ``name['short']``)."""
    if not _accepts(kind, value):
        return f"{name} must be {_type_word(kind)}, not {value!r:.60}"
    if (minimum is not None and isinstance(value, (int, float))
            and not isinstance(value, bool) and value < minimum):
        return f"{name} must be at least {minimum}, not {value!r}"
    if get_origin(kind) in (Union, types.UnionType):  # the member the value is
        kind = next(k for k in get_args(kind) if _accepts(k, value))
    origin, args = get_origin(kind), get_args(kind)
    if origin is dict and isinstance(value, dict) and len(args) == 2:
        items = ((f"{name}[{k!r}]", v) for k, v in value.items())
        item_kind = args[1]
    elif origin is tuple and isinstance(value, (tuple, list)) and args[1:] == (Ellipsis,):
        items = ((f"{name}[{i}]", v) for i, v in enumerate(value))
        item_kind = args[0]
    else:
        return None
    for item_name, item in items:
        if isinstance(item_kind, type) and hasattr(item_kind, "__dataclass_fields__"):
            if not isinstance(item, item_kind):  # a dict: its reader parses and checks it
                continue
        found = _problem(item_kind, item, item_name, minimum)
        if found:
            return found
    return None


def _type_word(kind) -> str:
    kinds = [k for k in get_args(kind) if k is not type(None)] or [kind]
    words = [_TYPE_WORDS.get(get_origin(k) or k, "an object") for k in kinds]
    return " or ".join(words) + (" or null" if type(None) in get_args(kind) else "")


@functools.cache
def _hints(cls) -> dict[str, Any]:
    return get_type_hints(cls)


@functools.cache
def _minimums(cls) -> dict[str, float]:
    return {f.name: f.metadata["minimum"] for f in fields(cls) if "minimum" in f.metadata}


def _from_mapping(cls, data: Any, where: object, inside: str = ""):
    """``cls`` from a JSON object: unknown keys ignored, missing ones defaulted,
    a value of the wrong type refused, naming its key (``inside`` + key, as
    ``best_of.runs`` or ``runs[3].sim``)."""
    if not isinstance(data, dict):
        raise CacheFormatError(f"{where}: {inside.rstrip('.')} must be a JSON object"
                               if inside else f"{where}: expected a JSON object")
    hints, minimums = _hints(cls), _minimums(cls)
    values = {k: v for k, v in data.items() if k in hints}
    for key, value in values.items():
        problem = _problem(hints[key], value, inside + key, minimums.get(key))
        if problem:
            raise CacheFormatError(f"{where}: {problem}")
    missing = [f.name for f in fields(cls) if f.name not in values
               and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise CacheFormatError(f"{where}: {', '.join(inside + m for m in missing)} missing")
    return cls(**values)


@dataclass(frozen=True)
class BestOf:
    """How a best-of-N image was chosen: the short runs behind it and the winner."""

    runs: int = 0  # N: short runs rated
    run: int = 0  # the winner's run number
    select_by: str = "sim"  # what chose the winner
    short_sim: float | None = None  # the winner's rating after its short run
    short_seed: int = 0
    short_config: str = ""  # the short config's file name
    short_config_hash: str = ""
    short_epochs: int = 0
    short_image: str | None = None  # the winner's short image, relative to the method folder
    # the N short runs' summed share of batch time
    short_seconds: float = field(default=0.0, metadata=AT_LEAST_0)
    short_sims: str = ""  # every short run's sim, relative to the method folder
    short_judge: float | None = None  # the judge's rating of it (with select_by "judge")


@dataclass(frozen=True)
class RenderRecord:
    """The record beside every rendered image.

    The renderer sets every field; the defaults let a reader take records of
    older caches (and the sample cache's) that lack some.
    """

    prompt: str = ""
    config: str = ""  # the config's file name (e.g. method-1.yaml)
    config_hash: str = ""  # Config.hash: config, epochs and init image, prompt left out
    seed: int = 0
    model: str = ""  # the name or path it was loaded by
    device: str = ""
    precision: str = ""
    epochs: int = 0
    seconds: float = field(default=0.0, metadata=AT_LEAST_0)  # its share of the batch's time
    batch: int = 1  # images rendered together
    sim: float | None = None  # 100 x cosine of the saved PNG with the prompt, fp32
    device_name: str = ""  # e.g. the GPU's model name
    model_id: str = ""  # "sha256:..." of the weights: what decides a redo
    # Set for gallery and ranking renders: which prompt of the list this is.
    animal: str | None = None
    thing: str | None = None
    stem: str | None = None
    method: int | None = None
    # Set for ranking renders: the run number and, for continued runs, the
    # image they started from.
    run: int | None = None
    init_image: str | None = None
    torch: str = ""  # torch's version
    created: str = ""
    # Set for best-of images: the short runs behind the winner.
    best_of: BestOf | None = None

    def to_json(self) -> dict:
        data = asdict(self)
        data["created"] = data["created"] or _dt.datetime.now(_dt.timezone.utc).isoformat(
            timespec="seconds")
        if data["best_of"] is None:
            del data["best_of"]  # only best-of images carry it
        return data

    def write(self, path: Path) -> Path:
        return write_json(self.to_json(), path)

    @classmethod
    def from_json(cls, data: Any, where: object = "record") -> RenderRecord:
        record = _from_mapping(cls, data, where)
        if record.best_of is None:
            return record
        best_of = _from_mapping(BestOf, record.best_of, where, "best_of.")
        return replace(record, best_of=best_of)


@dataclass(frozen=True)
class MethodSummary:
    """Measured cost of one method's renders, from its records."""

    config: str | None = None
    config_hash: str | None = None
    epochs: int | None = None
    images: int = 0
    seconds_per_image: float = field(default=0.0, metadata=AT_LEAST_0)
    total_seconds: float = field(default=0.0, metadata=AT_LEAST_0)
    device: str | None = None
    model: str | None = None
    precision: str | None = None
    batch: int = 1

    @classmethod
    def of_records(cls, records: list[RenderRecord]) -> MethodSummary | None:
        if not records:
            return None
        seconds = [float(r.seconds) for r in records]
        last = max(records, key=lambda r: r.created)
        return cls(
            config=last.config,
            config_hash=last.config_hash,
            epochs=last.epochs,
            images=len(records),
            seconds_per_image=round(sum(seconds) / len(seconds), 4),
            total_seconds=round(sum(seconds), 2),
            device=last.device_name or last.device,
            model=last.model,
            precision=last.precision,
            batch=max(int(r.batch) for r in records),
        )


@dataclass(frozen=True)
class CacheSummary:
    """``summary.json``: the cost of each method's renders."""

    methods: dict[int, MethodSummary] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"methods": {str(m): asdict(s) for m, s in self.methods.items()}}

    def write(self, path: Path) -> Path:
        return write_json(self.to_json(), path)

    @classmethod
    def from_json(cls, data: Any, where: object = "summary.json") -> CacheSummary:
        methods = data.get("methods") if isinstance(data, dict) else None
        if not isinstance(methods, dict):
            raise CacheFormatError(f"{where}: expected an object with a 'methods' object")
        parsed = {}
        for key, entry in methods.items():
            if not (isinstance(entry, dict) and str(key).isdigit()):
                raise CacheFormatError(f"{where}: methods[{key!r}] is not a method entry")
            parsed[int(key)] = _from_mapping(MethodSummary, entry, where, f"methods[{key!r}].")
        return cls(parsed)


@dataclass(frozen=True)
class RankingRow:
    """One continued run of a ranking column; images relative to its folder."""

    run: int
    group: str  # "best" or "worst"
    initial_sim: float
    final_sim: float | None = None
    image: str = ""  # the continued image
    short_image: str | None = None  # the short run it started from


@dataclass(frozen=True)
class RankingSummary:
    """A ranking column's ``summary.json``: what the site reads."""

    prompt: str
    animal: str | None
    thing: str | None
    stem: str
    method: int
    runs: int
    best: int
    worst: int
    rows: tuple[RankingRow, ...]
    csv: dict[str, str]  # "initial"/"final" -> file name in the folder
    epochs: dict[str, int | None]  # "short"/"detail" -> the epochs that ran
    seconds: dict[str, float] = field(metadata=AT_LEAST_0)  # "short_per_run"/"detail_per_run"

    def to_json(self) -> dict:
        data = asdict(self)
        data["rows"] = [asdict(r) for r in self.rows]
        return data

    def write(self, path: Path) -> Path:
        return write_json(self.to_json(), path)

    @classmethod
    def from_json(cls, data: Any, where: object = "summary.json") -> RankingSummary:
        if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
            raise CacheFormatError(f"{where}: expected an object with a 'rows' list")
        rows = tuple(_from_mapping(RankingRow, r, where, f"rows[{i}].")
                     for i, r in enumerate(data["rows"]))
        data = {**data, "rows": rows, "csv": data.get("csv") or {},
                "epochs": data.get("epochs") or {}, "seconds": data.get("seconds") or {}}
        return _from_mapping(cls, data, where)


@dataclass(frozen=True)
class ShortRun:
    """One finished short run of a best-of prompt."""

    run: int
    seed: int
    sim: float
    seconds: float = field(default=0.0, metadata=AT_LEAST_0)
    device: str = ""
    precision: str = ""
    judge: float | None = None  # the judge's rating, when the judge chooses


@dataclass(frozen=True)
class ShortRuns:
    """``short-sims/{stem}.json``: every finished short run of one prompt and method.

    The runs count only while the header matches what would render now
    (config hash, weights); a run counts only with its own derived seed.
    """

    prompt: str
    stem: str
    method: int
    config: str  # the short config's file name
    config_hash: str
    model_id: str
    epochs: int
    runs: tuple[ShortRun, ...] = ()
    # The judge's weights identity when a judge chooses the winner (every run
    # then carries its rating); "" when the optimised model's sim chooses.
    judge_id: str = ""

    def sims(self) -> dict[int, float]:
        return {r.run: r.sim for r in self.runs}

    def ratings(self) -> dict[int, float]:
        """What chooses the winner: the judge's ratings if a judge chooses, else the sims."""
        if self.judge_id:
            return {r.run: r.judge for r in self.runs if r.judge is not None}
        return self.sims()

    def to_json(self) -> dict:
        data = asdict(self)
        data["runs"] = [asdict(r) for r in sorted(self.runs, key=lambda r: r.run)]
        return data

    def write(self, path: Path) -> Path:
        return write_json(self.to_json(), path)

    @classmethod
    def from_json(cls, data: Any, where: object = "short-sims") -> ShortRuns:
        if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
            raise CacheFormatError(f"{where}: expected an object with a 'runs' list")
        runs = tuple(_from_mapping(ShortRun, r, where, f"runs[{i}].")
                     for i, r in enumerate(data["runs"]))
        return _from_mapping(cls, {**data, "runs": runs}, where)


@dataclass(frozen=True)
class JudgeRating:
    """A second model's rating of one image, and what it rated."""

    sim: float  # 100 x cosine of the PNG with its record's prompt, by the judge
    png: str  # sha256 (16 hex digits) of the PNG it rated
    record: str  # the same of the record (a changed prompt is judged again)


@dataclass(frozen=True)
class Judgement:
    """``judge.json``: the judge model and its rating of every image, by cache path."""

    model: str  # as named, e.g. ViT-B/16
    model_id: str  # its weights' identity
    ratings: dict[str, JudgeRating] = field(default_factory=dict)  # "method-1/x.png" -> rating

    def to_json(self) -> dict:
        return {"model": self.model, "model_id": self.model_id,
                "ratings": {k: asdict(v) for k, v in sorted(self.ratings.items())}}

    def write(self, path: Path) -> Path:
        return write_json(self.to_json(), path)

    @classmethod
    def from_json(cls, data: Any, where: object = "judge.json") -> Judgement:
        if not isinstance(data, dict) or not isinstance(data.get("ratings"), dict):
            raise CacheFormatError(f"{where}: expected an object with a 'ratings' object")
        ratings = {str(k): _from_mapping(JudgeRating, v, where, f"ratings[{k!r}].")
                   for k, v in data["ratings"].items()}
        return _from_mapping(cls, {**data, "ratings": ratings}, where)


def format_sims_csv(rows, column: str = "sim") -> str:
    """A method's ``sims.csv``: ``,prompt,sim`` then one (image, prompt, sim) row each.

    ``column`` names the rating (a judge's CSV names its model there).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["", "prompt", column])
    writer.writerows(rows)
    return buffer.getvalue()
