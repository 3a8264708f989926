"""The ranking table: columns of the experiment -> rows of cells to display.

The layout is the article's: a header per column, the best rows, a
"worst of N" row, the worst rows. Cells carry everything the template shows,
already formatted; the ids let the text link to one image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .cachedata import RankingColumn, RankingRow
from .sitepaths import ranking_file, webp_of

SiteFile = tuple[str, Path]  # (site path, cache path) of a file to publish
Url = Callable[[str], str]


@dataclass(frozen=True)
class Cell:
    id: str
    run: int
    animal: str
    initial: str
    final: str
    final_sim: float | None
    initial_sim: float
    webp: str  # URLs from the page
    png: str
    short_png: str | None
    alt: str


@dataclass(frozen=True)
class Header:
    title: str
    method: int
    runs: int
    csv: list[tuple[str, str]]  # (label, URL)


@dataclass(frozen=True)
class Table:
    headers: list[Header]
    best: list[list[Cell | None]]
    worst: list[list[Cell | None]]
    files: list[SiteFile] = field(default_factory=list)  # what the table links to
    webp: list[SiteFile] = field(default_factory=list)  # web copies to make

    def cells(self) -> list[Cell]:
        return [c for row in (*self.best, *self.worst) for c in row if c is not None]


def sim_text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def cell_id(stem: str, run: int, method: int, taken: set[str]) -> str:
    """``img-{stem}-{run}``, as the article's links expect.

    The same prompt ranked with two methods may keep the same run number in
    both columns; the later column's cell then gets ``-m{method}`` so ids stay
    unique (the article's own runs never collide).
    """
    wanted = f"img-{stem}-{run}"
    return wanted if wanted not in taken else f"{wanted}-m{method}"


def _site(column: RankingColumn, path: Path) -> str:
    return ranking_file(column.stem, column.method, path.relative_to(column.folder).as_posix())


def _cell(column: RankingColumn, row: RankingRow, taken: set[str], table: Table,
          url: Url) -> Cell:
    png = _site(column, row.image)
    table.files.append((png, row.image))
    table.webp.append((webp_of(png), row.image))
    short = None
    if row.short_image is not None:
        short = _site(column, row.short_image)
        table.files.append((short, row.short_image))
    ident = cell_id(column.stem, row.run, column.method, taken)
    taken.add(ident)
    return Cell(
        id=ident,
        run=row.run,
        animal=column.animal,
        initial=sim_text(row.initial_sim),
        final=sim_text(row.final_sim),
        final_sim=row.final_sim,
        initial_sim=row.initial_sim,
        webp=url(webp_of(png)),
        png=url(png),
        short_png=url(short) if short else None,
        alt=f"{column.prompt} (run {row.run}, method {column.method})",
    )


def _transpose(columns: list[list[Cell]]) -> list[list[Cell | None]]:
    # Columns may hold different numbers of rows; short ones get empty cells.
    depth = max((len(c) for c in columns), default=0)
    return [[c[i] if i < len(c) else None for c in columns] for i in range(depth)]


def _header(column: RankingColumn, table: Table, url: Url) -> Header:
    links = []
    for label, key in (("initial csv", "initial"), ("final csv", "final")):
        if key in column.csv:
            site = _site(column, column.csv[key])
            table.files.append((site, column.csv[key]))
            links.append((label, url(site)))
    return Header(f"{column.animal} of {column.thing}", column.method, column.runs, links)


def build_table(columns: Sequence[RankingColumn], url: Url = str) -> Table:
    """The table of ``columns``; ``url`` turns a site path into a URL from the page."""
    table = Table(headers=[], best=[], worst=[])
    taken: set[str] = set()
    best, worst = [], []
    for column in columns:  # column by column, so an id clash goes to the later column
        table.headers.append(_header(column, table, url))
        best.append([_cell(column, row, taken, table, url) for row in column.best])
        worst.append([_cell(column, row, taken, table, url) for row in column.worst])
    table.best.extend(_transpose(best))
    table.worst.extend(_transpose(worst))
    return table


def lowest_final(table: Table) -> Cell | None:
    """The cell that ended lowest: the image the continued run could not rescue."""
    rated = [c for c in table.cells() if c.final_sim is not None]
    return min(rated, key=lambda c: c.final_sim) if rated else None
