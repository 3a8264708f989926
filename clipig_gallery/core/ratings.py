"""The ranking experiment's bookkeeping: article-style CSVs, best and worst runs.

Pure Python (no torch), so it can be tested on the article's own CSVs.

The article's CSV format is what ``pandas.DataFrame.to_csv`` writes for a
table indexed by image path with one column per prompt: an empty first
header cell, then the prompt texts; one row per image.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Ratings:
    """Sims of images (rows) against prompts (columns)."""

    prompts: tuple[str, ...]
    rows: tuple[tuple[str, tuple[float, ...]], ...]  # (image path, one sim per prompt)

    def column(self, prompt: str) -> dict[str, float]:
        index = self.prompts.index(prompt)
        return {path: sims[index] for path, sims in self.rows}


def parse_ratings(text: str, source: str = "<csv>") -> Ratings:
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise ValueError(f"{source}: empty CSV") from None
    if not header or header[0] != "" or len(header) < 2:
        raise ValueError(f"{source}: expected a header ',<prompt>,...', got {header!r}")
    rows = []
    for number, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise ValueError(
                f"{source}: line {number} has {len(row)} cells, expected {len(header)}"
            )
        try:
            rows.append((row[0], tuple(float(v) for v in row[1:])))
        except ValueError:
            raise ValueError(f"{source}: line {number}: not a number in {row[1:]!r}") from None
    return Ratings(tuple(header[1:]), tuple(rows))


def read_ratings(path: Path) -> Ratings:
    return parse_ratings(Path(path).read_text(encoding="utf-8"), str(path))


def format_ratings(ratings: Ratings) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["", *ratings.prompts])
    for path, sims in ratings.rows:
        writer.writerow([path, *(_number(s) for s in sims)])
    return buffer.getvalue()


def _number(value: float) -> str:
    return repr(float(value))


_RUN = re.compile(r"-(?:from-)?(\d+)\.png$")


def run_number(path: str) -> int:
    """The run index in ``{stem}-{i}.png`` or ``{stem}-from-{i}.png``."""
    match = _RUN.search(path)
    if match is None:
        raise ValueError(f"no run number in image name {path!r}")
    return int(match.group(1))


def sorted_runs(sims: Mapping[int, float]) -> list[tuple[int, float]]:
    """Runs by sim, best first; equal sims by run number."""
    return sorted(sims.items(), key=lambda item: (-item[1], item[0]))


@dataclass(frozen=True)
class Kept:
    run: int
    group: str  # "best" or "worst"
    initial_sim: float


def select_runs(sims: Mapping[int, float], best: int, worst: int) -> list[Kept]:
    """The ``best`` highest runs (highest first), then the ``worst`` lowest (lowest first).

    A run is never kept twice: with fewer runs than best + worst, the worst
    are taken from what the best left over.
    """
    if best < 0 or worst < 0:
        raise ValueError("best and worst must not be negative")
    ranked = sorted_runs(sims)
    top = ranked[:best]
    rest = ranked[len(top) :]
    bottom = list(reversed(rest))[:worst]
    return [Kept(r, "best", s) for r, s in top] + [Kept(r, "worst", s) for r, s in bottom]


def ratings_for_runs(prompt: str, paths_and_sims: Sequence[tuple[str, float]]) -> Ratings:
    """A one-prompt table, sorted by sim descending (the article's initial CSVs)."""
    ordered = sorted(paths_and_sims, key=lambda item: (-item[1], item[0]))
    return Ratings((prompt,), tuple((path, (sim,)) for path, sim in ordered))
