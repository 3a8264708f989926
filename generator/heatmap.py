"""Geometry and colours of the final-sim heatmap (animal x thing, per method).

Everything the SVG template draws is computed here. Cells are binned into a
few colours and each colour is one SVG path, so 1620 cells cost a few KB
instead of 1620 elements; each row (a thing, for one method) is one link to
that selection in the selector, with the row's values in its tooltip.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .layout import selection_fragment

CELL_W = 14
CELL_H = 10
STROKE = CELL_H - 1  # cells are stroked lines this thick, 1 px apart
LABEL_W = 110  # room for the longest thing name at the CSS font size
TOP = 64  # room for the slanted animal names
PANEL_GAP = 20
LEGEND_H = 40

# viridis at 8 stops: perceptually even and readable by colour-blind readers
PALETTE = ("#440154", "#46327e", "#365c8d", "#277f8e",
           "#1fa187", "#4ac16d", "#a0da39", "#fde725")
MISSING = "#c8c8c8"


@dataclass(frozen=True)
class Bin:
    colour: str
    label: str
    path: str  # SVG path data of this bin's cells in one panel, drawn as strokes


@dataclass(frozen=True)
class RowLink:
    href: str
    title: str
    y: int


@dataclass(frozen=True)
class Panel:
    method: int
    x: int
    title: str
    columns: list[tuple[int, str]]  # (x of the label anchor, animal)
    bins: list[Bin]
    links: list[RowLink]


@dataclass(frozen=True)
class LegendItem:
    x: int
    y: int
    width: int
    colour: str | None  # None: a tick label alone (the scale's upper end)
    label: str
    label_x: int
    label_y: int


@dataclass(frozen=True)
class Heatmap:
    width: int
    height: int
    panel_width: int
    cell_h: int
    stroke: int
    row_label_x: int  # right end of the thing names
    column_label_y: int  # baseline of the slanted animal names
    rows: list[tuple[int, str]]  # (y of the label baseline, thing)
    panels: list[Panel]
    legend: list[LegendItem]
    count: int  # cells with a sim


def bin_edges(values: Sequence[float], bins: int = len(PALETTE)) -> tuple[float, float]:
    """Whole-number limits that hold every value, shared by both methods."""
    if not values:
        return 0.0, 1.0
    low, high = math.floor(min(values)), math.ceil(max(values))
    return float(low), float(high if high > low else low + 1)


def bin_index(value: float, low: float, high: float, bins: int = len(PALETTE)) -> int:
    return min(bins - 1, max(0, int((value - low) / (high - low) * bins)))


def _legend(low: float, high: float, x0: int, y: int, swatch: int) -> list[LegendItem]:
    """A swatch per bin labelled with its lower edge, the upper end, then "missing"."""
    step = (high - low) / len(PALETTE)
    below = y + 10 + 12  # tick labels sit under the swatches
    items = [LegendItem(x0 + i * swatch, y, swatch, c, f"{low + i * step:.1f}",
                        x0 + i * swatch, below)
             for i, c in enumerate(PALETTE)]
    end = x0 + len(PALETTE) * swatch
    items.append(LegendItem(end, y, 0, None, f"{high:.1f}", end, below))
    missing_x = end + swatch
    items.append(LegendItem(missing_x, y, 10, MISSING, "not rendered", missing_x + 14, y + 9))
    return items


def _segments(row_colours: Sequence[str], x0: int, y: float) -> dict[str, str]:
    """One row as stroked segments per colour; neighbours of one colour merge."""
    paths: dict[str, str] = {}
    start = 0
    for col in range(1, len(row_colours) + 1):
        if col < len(row_colours) and row_colours[col] == row_colours[start]:
            continue
        width = (col - start) * CELL_W - 1  # a 1 px gap before the next run
        paths[row_colours[start]] = (paths.get(row_colours[start], "")
                                     + f"M{x0 + start * CELL_W} {y:g}h{width}")
        start = col
    return paths


def _panel(method: int, x0: int, animals: Sequence[str], things: Sequence[str],
           stems: Mapping[tuple[str, str], str], sims: Mapping[str, float | None],
           low: float, high: float) -> Panel:
    paths: dict[str, list[str]] = {}
    links = []
    for row, thing in enumerate(things):
        y = TOP + row * CELL_H
        colours, values = [], []
        for animal in animals:
            stem = stems.get((animal, thing))
            sim = sims.get(stem) if stem else None
            colours.append(MISSING if sim is None else PALETTE[bin_index(sim, low, high)])
            values.append(f"{animal} {'-' if sim is None else f'{sim:.1f}'}")
        for colour, path in _segments(colours, x0, y + STROKE / 2).items():
            paths.setdefault(colour, []).append(path)
        title = f"{thing}, method {method}: " + ", ".join(values)
        links.append(RowLink("#" + selection_fragment(thing, method), title, y))
    step = (high - low) / len(PALETTE)
    labels = {c: f"{low + i * step:.1f} to {low + (i + 1) * step:.1f}"
              for i, c in enumerate(PALETTE)}
    labels[MISSING] = "not rendered"
    bins = [Bin(c, labels[c], "".join(paths[c])) for c in (*PALETTE, MISSING) if c in paths]
    columns = [(x0 + col * CELL_W + CELL_W // 2, a) for col, a in enumerate(animals)]
    return Panel(method, x0, f"method {method}", columns, bins, links)


def build_heatmap(animals: Sequence[str], things: Sequence[str],
                  stems: Mapping[tuple[str, str], str],
                  sims: Mapping[int, Mapping[str, float | None]]) -> Heatmap:
    """``sims[method][stem]`` -> final sim, or None / absent when not rendered."""
    present = [s for by_stem in sims.values() for s in by_stem.values() if s is not None]
    low, high = bin_edges(present)
    panel_w = len(animals) * CELL_W
    panels = [
        _panel(m, LABEL_W + i * (panel_w + PANEL_GAP), animals, things, stems, sims[m], low, high)
        for i, m in enumerate(sorted(sims))
    ]
    grid_bottom = TOP + len(things) * CELL_H
    width = LABEL_W + len(panels) * (panel_w + PANEL_GAP)
    legend = _legend(low, high, 4, grid_bottom + 12, (width - 110) // (len(PALETTE) + 1))
    return Heatmap(
        width=width,
        height=grid_bottom + LEGEND_H,
        panel_width=panel_w,
        cell_h=CELL_H,
        stroke=STROKE,
        row_label_x=LABEL_W - 4,
        column_label_y=TOP - 4,
        rows=[(TOP + r * CELL_H + CELL_H - 2, t) for r, t in enumerate(things)],
        panels=panels,
        legend=legend,
        count=len(present),
    )
