"""The judge's figures: how far a second CLIP model agrees with the sims.

Every sim on the page is the rating of the model the pixels were optimised
against. ``CACHE/judge.json`` holds a second model's rating of the same
images against the same prompts; the site reads it into each render's
``judge`` (see cachedata.py). Here are the article's numbers from those
pairs (per method the Pearson correlation of sim and judge and the median
of judge minus sim) and the scatter plot of them.

The scatter plot is one inline SVG: per method a square panel, sim across,
judge up, the same range on both axes so the diagonal (both models alike)
runs corner to corner. Each dot carries its own tooltip; the dots of one
thing and method (the nine animals) are one link, to that selection, so
1620 dots cost 180 links. A dot is a zero-length path with a round cap (a
square one for the best of N), its size and colour in the CSS: a few dozen
bytes and its tooltip.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from clipig_gallery.core.prompts import Prompt

from .bestof import signed
from .cachedata import Render
from .selector import thing_order
from .sitepaths import BEST, FIRST, selection_fragment

NOT_RUN = "(not run yet)"
NOT_DEFINED = "n/a"  # a correlation of fewer than two images, or of equal values

# Geometry of the scatter plot, in px of the SVG's own coordinates.
PLOT = 250  # a panel's square plot area
LEFT = 46  # room for the judge's tick labels and axis label
RIGHT = 16
TOP = 22  # room for the panel's title
BOTTOM = 36  # room for the sim's tick labels and axis label
LEGEND_H = 22
CHAR_W = 6  # about how wide a character of the 10 px labels is, to space the legend


@dataclass(frozen=True)
class Pair:
    """One image with both ratings: the sim it was optimised for and the judge's."""

    method: int
    prompt: Prompt
    sim: float
    judge: float
    view: str = FIRST  # FIRST or BEST: which gallery the image is of
    label: str = ""  # the best of N's name ("best of 64"); "" for a first attempt

    @property
    def difference(self) -> float:
        return self.judge - self.sim


def judged_pairs(prompts: Sequence[Prompt], renders: Mapping[int, Mapping[str, Render]],
                 view: str = FIRST) -> list[Pair]:
    """Every image of ``renders`` with a sim and a judge's sim, by method, in prompt order.

    ``renders`` are first attempts, or with ``view=BEST`` best-of images
    (whose N names them).
    """
    out = []
    for method in sorted(renders):
        for prompt in prompts:
            render = renders[method].get(prompt.stem)
            if render is None or render.sim is None or render.judge is None:
                continue
            label = f"best of {render.runs}" if view == BEST else ""
            out.append(Pair(method, prompt, float(render.sim), float(render.judge), view,
                            label))
    return out


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """The Pearson correlation; None for fewer than two pairs or a constant side."""
    if len(xs) < 2:
        return None
    try:
        return statistics.correlation(xs, ys)
    except statistics.StatisticsError:  # every x (or every y) the same
        return None


class JudgeFacts:
    """What the article's judge section quotes, formatted; NOT_RUN where nothing was judged.

    The judge agrees more with the method whose images lose less when it
    rates them: the higher median of judge minus sim (the models do not
    share a scale, so only the comparison between the methods means much).
    """

    KEYS = ("model", "images", "correlation", "median_difference", "agrees_more", "other",
            "margin")

    def __init__(self, model: str | None, pairs: Sequence[Pair]):
        self.model = model
        self.by_method: dict[int, list[Pair]] = {}
        for pair in pairs:
            self.by_method.setdefault(pair.method, []).append(pair)

    def ran(self, *methods: int) -> bool:
        """Any image with both ratings; with ``methods``, two or more of each of them
        (what a correlation needs)."""
        if self.model is None:
            return False
        if not methods:
            return bool(self.by_method)
        return all(len(self.by_method.get(m, ())) >= 2 for m in methods)

    def correlation(self, method: int) -> float | None:
        pairs = self.by_method.get(method, [])
        return pearson([p.sim for p in pairs], [p.judge for p in pairs])

    def median_difference(self, method: int) -> float | None:
        pairs = self.by_method.get(method, [])
        return statistics.median(p.difference for p in pairs) if pairs else None

    def _ranked(self) -> list[tuple[float, int]]:
        """(median difference as quoted, method), the highest first."""
        medians = [(round(self.median_difference(m), 2), m) for m in sorted(self.by_method)]
        return sorted(medians, key=lambda item: -item[0])

    def agrees_more(self) -> int | None:
        """The method whose images lose least in the judge's eyes; None for a tie (at
        the two decimals the article quotes) or fewer than two methods judged."""
        ranked = self._ranked()
        if len(ranked) < 2 or ranked[0][0] == ranked[1][0]:
            return None
        return ranked[0][1]

    def fact(self, key: str, method: int | None = None) -> str:
        if key not in self.KEYS:
            raise KeyError(key)
        if self.model is None:
            return NOT_RUN
        if key == "model":
            return self.model
        if key in ("agrees_more", "other", "margin"):
            best = self.agrees_more()
            if best is None:
                return NOT_RUN
            ranked = self._ranked()
            if key == "agrees_more":
                return f"method {best}"
            if key == "other":
                return ", ".join(f"method {m}" for _, m in ranked[1:])
            return f"{ranked[0][0] - ranked[1][0]:.2f}"
        methods = sorted(self.by_method) if method is None else [method]
        pairs = [p for m in methods for p in self.by_method.get(m, [])]
        if key == "images":
            return str(len(pairs))
        if method is None:
            raise ValueError(f"{key} needs a method")
        if not pairs:
            return NOT_RUN
        if key == "correlation":
            r = self.correlation(method)
            return NOT_DEFINED if r is None else f"{r:.2f}"
        return signed(self.median_difference(method))


# --- the scatter plot ----------------------------------------------------------------


@dataclass(frozen=True)
class Dot:
    x: int
    y: int
    title: str


@dataclass(frozen=True)
class DotGroup:
    """The dots one link holds: a thing's images of one method and view."""

    href: str
    dots: list[Dot]


@dataclass(frozen=True)
class Tick:
    at: int  # x of a sim tick, y of a judge tick
    label: str


@dataclass(frozen=True)
class ScatterPanel:
    method: int
    title: str
    x0: int  # left edge of the plot area
    grid: str  # path data: a line across the plot at every inner tick
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    first: list[DotGroup]
    best: list[DotGroup]

    @property
    def centre(self) -> int:
        return self.x0 + PLOT // 2


@dataclass(frozen=True)
class LegendItem:
    kind: str  # "first", "best" or "diagonal"
    x: int
    label: str


@dataclass(frozen=True)
class Scatter:
    width: int
    height: int
    top: int
    size: int  # of each square plot area
    bottom: int  # y of the plot areas' lower edge
    panels: list[ScatterPanel]
    legend: list[LegendItem]
    legend_y: int
    x_label: str
    y_label: str
    model: str  # the judge's
    count: int  # first-attempt dots
    best_count: int  # best-of dots
    best_label: str  # "best of 64", "" without best-of dots


def axis_range(values: Sequence[float], most: int = 8) -> tuple[float, float, float]:
    """(low, high, step): round limits holding every value, at most ``most`` steps apart."""
    if not values:
        return 0.0, 1.0, 1.0
    low, high = min(values), max(values)
    step = 0.1
    while True:
        for factor in (1, 2, 5):
            size = step * factor
            # (the nudge: 31.2 / 0.1 is 311.99999999999994 in floating point)
            lo = math.floor(low / size + 1e-9) * size
            hi = math.ceil(high / size - 1e-9) * size
            if hi <= lo:
                hi = lo + size
            if (hi - lo) / size <= most + 1e-9:
                return round(lo, 6), round(hi, 6), round(size, 6)
        step *= 10


def _ticks(low: float, high: float, step: float) -> list[float]:
    count = round((high - low) / step)
    return [round(low + i * step, 6) for i in range(count + 1)]


def _tick_label(value: float) -> str:
    return f"{value:g}"


def dot_title(pair: Pair) -> str:
    name = f"{pair.prompt.animal} made of {pair.prompt.thing}"
    if pair.label:
        name += f", {pair.label}"
    return f"{name}: sim {pair.sim:.2f}, judge {pair.judge:.2f}"


def _groups(pairs: Sequence[Pair], things: Sequence[str], place) -> list[DotGroup]:
    by_thing: dict[str, list[Pair]] = {}
    for pair in pairs:
        by_thing.setdefault(pair.prompt.thing, []).append(pair)
    return [
        DotGroup("#" + selection_fragment(thing, by_thing[thing][0].method,
                                          by_thing[thing][0].view),
                 [Dot(*place(p), dot_title(p)) for p in by_thing[thing]])
        for thing in things if thing in by_thing
    ]


def build_scatter(prompts: Sequence[Prompt], model: str, first: Sequence[Pair],
                  best: Sequence[Pair] = (), methods: Sequence[int] = (1, 2),
                  best_label: str = "") -> Scatter:
    """Per method a panel of judge (y) against sim (x), one dot per pair.

    Both axes share one range over every value of every panel, so the
    methods compare at a glance and the diagonal is where the models agree.
    """
    values = [v for p in (*first, *best) for v in (p.sim, p.judge)]
    low, high, step = axis_range(values)
    span = high - low
    bottom = TOP + PLOT
    things = thing_order(prompts)
    ticks = _ticks(low, high, step)
    panels = []
    for index, method in enumerate(methods):
        x0 = LEFT + index * (LEFT + PLOT + RIGHT)

        def place(pair: Pair, x0: int = x0) -> tuple[int, int]:
            return (x0 + round((pair.sim - low) / span * PLOT),
                    bottom - round((pair.judge - low) / span * PLOT))

        at = [round((t - low) / span * PLOT) for t in ticks]
        grid = "".join(f"M{x0 + a} {TOP}v{PLOT}M{x0} {bottom - a}h{PLOT}" for a in at[1:-1])
        panels.append(ScatterPanel(
            method=method, title=f"method {method}", x0=x0, grid=grid,
            x_ticks=[Tick(x0 + a, _tick_label(t)) for a, t in zip(at, ticks, strict=True)],
            y_ticks=[Tick(bottom - a, _tick_label(t)) for a, t in zip(at, ticks, strict=True)],
            first=_groups([p for p in first if p.method == method], things, place),
            best=_groups([p for p in best if p.method == method], things, place),
        ))
    legend, x = [], LEFT
    items = [("first", "first attempt")]
    if best:
        items.append(("best", best_label or "best of N"))
    items.append(("diagonal", "judge = sim"))
    for kind, label in items:
        legend.append(LegendItem(kind, x, label))
        x += 20 + CHAR_W * len(label) + 14
    return Scatter(
        width=len(methods) * (LEFT + PLOT + RIGHT), height=bottom + BOTTOM + LEGEND_H,
        top=TOP, size=PLOT, bottom=bottom, panels=panels, legend=legend,
        legend_y=bottom + BOTTOM + LEGEND_H // 2, x_label="sim",
        y_label=f"judge ({model})", model=model, count=len(first), best_count=len(best),
        best_label=best_label if best else "",
    )
