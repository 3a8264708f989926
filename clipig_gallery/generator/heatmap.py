"""Geometry and colours of the final-sim heatmap (animal x thing, per method).

Everything the SVG template draws is computed here. Cells are binned into a
few colours and each colour is one SVG path, so 1620 cells cost a few KB
instead of 1620 elements; each row (a thing, for one method) is one link to
that selection in the selector, with the row's values in its tooltip.

With a best-of gallery in the cache, a second heatmap holds per method a
best-of panel (the first attempts' colour scale, shared) and a *gain* panel
(best-of sim minus first-attempt sim, a diverging scale of its own). A row
there links to the best-of view of its selection; a row without any best-of
image has nothing to open and gets no link, and while the best of N covers
only part of the gallery, only its things are rows of that figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .sitepaths import selection_fragment

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
# ColorBrewer RdBu at 8 stops, loss red to gain blue: diverging, colour-blind safe
GAIN_PALETTE = ("#b2182b", "#d6604d", "#f4a582", "#fddbc7",
                "#d1e5f0", "#92c5de", "#4393c3", "#2166ac")
PAIR_GAP = 6  # between a method's best-of and gain panels
LEGEND_LABEL_W = 36  # room for "sim" / "gain" before a legend's swatches


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
    kind: str = "first"  # "first", "best" or "gain"
    link_width: int = 0  # how wide a row's link is (a best-of row spans its gain panel too)


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


def gain_edges(values: Sequence[float]) -> tuple[float, float]:
    """A range symmetric around 0, whole numbers, so no gain and the colours' middle meet."""
    reach = math.ceil(max((abs(v) for v in values), default=0.0))
    return -float(max(reach, 1)), float(max(reach, 1))


@dataclass(frozen=True)
class Scale:
    """Values -> colours: ``palette`` spread evenly over [low, high]."""

    low: float
    high: float
    palette: tuple[str, ...] = PALETTE
    signed: bool = False  # labels with a sign ("+1.5"): a gain
    missing: str = "not rendered"  # what a grey cell means

    def colour(self, value: float | None) -> str:
        if value is None:
            return MISSING
        return self.palette[bin_index(value, self.low, self.high, len(self.palette))]

    def number(self, value: float) -> str:
        return f"{value:+.1f}" if self.signed else f"{value:.1f}"

    def edge(self, i: int) -> float:
        return self.low + i * (self.high - self.low) / len(self.palette)

    def labels(self) -> dict[str, str]:
        labels = {c: f"{self.number(self.edge(i))} to {self.number(self.edge(i + 1))}"
                  for i, c in enumerate(self.palette)}
        labels[MISSING] = self.missing
        return labels


def _legend(low: float, high: float, x0: int, y: int, swatch: int,
            scale: Scale | None = None) -> list[LegendItem]:
    """A swatch per bin labelled with its lower edge, the upper end, then "missing"."""
    scale = scale or Scale(low, high)
    below = y + 10 + 12  # tick labels sit under the swatches
    items = [LegendItem(x0 + i * swatch, y, swatch, c, scale.number(scale.edge(i)),
                        x0 + i * swatch, below)
             for i, c in enumerate(scale.palette)]
    end = x0 + len(scale.palette) * swatch
    items.append(LegendItem(end, y, 0, None, scale.number(scale.high), end, below))
    missing_x = end + swatch
    items.append(LegendItem(missing_x, y, 10, MISSING, scale.missing, missing_x + 14, y + 9))
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


def _cells(animals: Sequence[str], thing: str, stems: Mapping[tuple[str, str], str],
           values: Mapping[str, float | None]) -> list[float | None]:
    """One row's values by animal; None where the grid or the values have none."""
    row = []
    for animal in animals:
        stem = stems.get((animal, thing))
        row.append(values.get(stem) if stem else None)
    return row


def _values_text(animals: Sequence[str], row: Sequence[float | None], scale: Scale) -> str:
    return ", ".join(f"{a} {'-' if v is None else scale.number(v)}"
                     for a, v in zip(animals, row, strict=True))


def _panel(method: int, x0: int, animals: Sequence[str], things: Sequence[str],
           stems: Mapping[tuple[str, str], str], sims: Mapping[str, float | None],
           low: float, high: float) -> Panel:
    scale = Scale(low, high)
    paths: dict[str, list[str]] = {}
    links = []
    for row, thing in enumerate(things):
        y = TOP + row * CELL_H
        values = _cells(animals, thing, stems, sims)
        _add_row(paths, values, scale, x0, y)
        title = f"{thing}, method {method}: " + _values_text(animals, values, scale)
        links.append(RowLink("#" + selection_fragment(thing, method), title, y))
    columns = [(x0 + col * CELL_W + CELL_W // 2, a) for col, a in enumerate(animals)]
    return Panel(method, x0, f"method {method}", columns, _bins(paths, scale), links,
                 link_width=len(animals) * CELL_W)


def _add_row(paths: dict[str, list[str]], values: Sequence[float | None], scale: Scale,
             x0: int, y: int) -> None:
    colours = [scale.colour(v) for v in values]
    for colour, path in _segments(colours, x0, y + STROKE / 2).items():
        paths.setdefault(colour, []).append(path)


def _bins(paths: Mapping[str, list[str]], scale: Scale) -> list[Bin]:
    labels = scale.labels()
    return [Bin(c, labels[c], "".join(paths[c])) for c in (*scale.palette, MISSING)
            if c in paths]


def _present(sims: Mapping[int, Mapping[str, float | None]]) -> list[float]:
    return [s for by_stem in sims.values() for s in by_stem.values() if s is not None]


def build_heatmap(animals: Sequence[str], things: Sequence[str],
                  stems: Mapping[tuple[str, str], str],
                  sims: Mapping[int, Mapping[str, float | None]],
                  also: Sequence[float] = ()) -> Heatmap:
    """``sims[method][stem]`` -> final sim, or None / absent when not rendered.

    ``also``: further values the colour scale must hold (the best-of sims,
    so both heatmaps share one scale).
    """
    present = _present(sims)
    low, high = bin_edges([*present, *also])
    panel_w = len(animals) * CELL_W
    panels = [
        _panel(m, LABEL_W + i * (panel_w + PANEL_GAP), animals, things, stems, sims[m], low, high)
        for i, m in enumerate(sorted(sims))
    ]
    grid_bottom = TOP + len(things) * CELL_H
    width = LABEL_W + len(panels) * (panel_w + PANEL_GAP)
    legend = _legend(low, high, 4, grid_bottom + 12, (width - 110) // (len(PALETTE) + 1))
    return _heatmap(width, grid_bottom + LEGEND_H, panel_w, things, panels, legend,
                    len(present))


def _heatmap(width: int, height: int, panel_w: int, things: Sequence[str], panels: list[Panel],
             legend: list[LegendItem], count: int) -> Heatmap:
    """The figure with the geometry every heatmap shares (cells, labels, rows)."""
    return Heatmap(
        width=width,
        height=height,
        panel_width=panel_w,
        cell_h=CELL_H,
        stroke=STROKE,
        row_label_x=LABEL_W - 4,
        column_label_y=TOP - 4,
        rows=[(TOP + r * CELL_H + CELL_H - 2, t) for r, t in enumerate(things)],
        panels=panels,
        legend=legend,
        count=count,
    )


def gains(first: Mapping[int, Mapping[str, float | None]],
          best: Mapping[int, Mapping[str, float | None]]) -> dict[int, dict[str, float]]:
    """Best-of sim minus first-attempt sim, per method and stem, where both exist."""
    return {
        m: {stem: b - first[m][stem] for stem, b in by_stem.items()
            if b is not None and first.get(m, {}).get(stem) is not None}
        for m, by_stem in best.items()
    }


def _best_pair(method: int, x0: int, animals: Sequence[str], things: Sequence[str],
               stems: Mapping[tuple[str, str], str], best: Mapping[str, float | None],
               gain: Mapping[str, float], sims: Scale, gain_scale: Scale,
               label: str) -> tuple[Panel, Panel]:
    """A method's best-of panel and, right of it, its gain panel; one link per row for both."""
    panel_w = len(animals) * CELL_W
    gain_x = x0 + panel_w + PAIR_GAP
    best_paths: dict[str, list[str]] = {}
    gain_paths: dict[str, list[str]] = {}
    links = []
    for row, thing in enumerate(things):
        y = TOP + row * CELL_H
        values = _cells(animals, thing, stems, best)
        changes = _cells(animals, thing, stems, gain)
        _add_row(best_paths, values, sims, x0, y)
        _add_row(gain_paths, changes, gain_scale, gain_x, y)
        if all(v is None for v in values):
            continue  # nothing to open in the best-of view
        cells = ", ".join(
            f"{a} {'-' if v is None else sims.number(v)}"
            + ("" if g is None else f" ({gain_scale.number(g)})")
            for a, v, g in zip(animals, values, changes, strict=True))
        title = f"{thing}, method {method}, {label} (gain): {cells}"
        links.append(RowLink("#" + selection_fragment(thing, method, "best"), title, y))
    columns = [(col * CELL_W + CELL_W // 2, a) for col, a in enumerate(animals)]
    best_panel = Panel(method, x0, f"method {method}, best", [(x0 + c, a) for c, a in columns],
                       _bins(best_paths, sims), links, kind="best",
                       link_width=2 * panel_w + PAIR_GAP)
    gain_panel = Panel(method, gain_x, f"method {method}, gain",
                       [(gain_x + c, a) for c, a in columns], _bins(gain_paths, gain_scale),
                       [], kind="gain")
    return best_panel, gain_panel


def build_best_of_heatmap(animals: Sequence[str], things: Sequence[str],
                          stems: Mapping[tuple[str, str], str],
                          first: Mapping[int, Mapping[str, float | None]],
                          best: Mapping[int, Mapping[str, float | None]],
                          label: str) -> Heatmap:
    """Per method a best-of panel and a gain panel; ``label`` names the view ("best of 64").

    Its rows are the things with any best-of image: while the best of N
    covers part of the gallery, the figure is as small as that part. The
    best-of colours are the first attempts' (the same limits as
    :func:`build_heatmap` given the best-of sims in ``also``); the gain has a
    diverging scale of its own around 0.
    """
    covered = {stem for by_stem in best.values() for stem, v in by_stem.items() if v is not None}
    things = [t for t in things if any(stems.get((a, t)) in covered for a in animals)]
    low, high = bin_edges([*_present(first), *_present(best)])
    sims = Scale(low, high, missing="no image")
    change = gains(first, best)
    gain_scale = Scale(*gain_edges(_present(change)), palette=GAIN_PALETTE, signed=True,
                       missing="either missing")
    panel_w = len(animals) * CELL_W
    pair_w = 2 * panel_w + PAIR_GAP + PANEL_GAP
    panels = []
    for i, m in enumerate(sorted(best)):
        panels.extend(_best_pair(m, LABEL_W + i * pair_w, animals, things, stems, best[m],
                                 change.get(m, {}), sims, gain_scale, label))
    grid_bottom = TOP + len(things) * CELL_H
    width = LABEL_W + len(best) * pair_w
    swatch = (width - 110 - LEGEND_LABEL_W) // (len(PALETTE) + 1)
    legend = []
    for row, (name, scale) in enumerate((("sim", sims), ("gain", gain_scale))):
        y = grid_bottom + 12 + row * LEGEND_H
        legend.append(LegendItem(4, y, 0, None, name, 4, y + 9))
        legend.extend(_legend(scale.low, scale.high, 4 + LEGEND_LABEL_W, y, swatch, scale))
    return _heatmap(width, grid_bottom + 2 * LEGEND_H, panel_w, things, panels, legend,
                    len(_present(best)))
