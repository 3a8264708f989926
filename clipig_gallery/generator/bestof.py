"""The best-of-N gallery's figures for the article: coverage, cost, gain.

Every figure comes from the cache: N and the short runs' time from the
best-of records, the continued runs' time and device from the best-of
``summary.json`` (from the records where it has no entry), the gain from the
best-of sim and the first attempt's sim of the same prompt and method.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from clipig_gallery.core.prompts import Prompt

from .cachedata import BestOfRender, Render
from .figures import format_duration
from .selector import runs_text

NOT_RUN = "(not run yet)"


@dataclass(frozen=True)
class Gain:
    """One prompt and method with both images: how much the best of N gained."""

    method: int
    prompt: Prompt
    first: float
    best: float

    @property
    def gain(self) -> float:
        return self.best - self.first


def signed(value: float) -> str:
    return f"{value:+.2f}"


def gain_list(prompts: Sequence[Prompt], renders: Mapping[int, Mapping[str, Render]],
              best_of: Mapping[int, Mapping[str, BestOfRender]]) -> list[Gain]:
    """Every prompt x method with a first-attempt and a best-of sim, in prompt order."""
    out = []
    for method in sorted(best_of):
        for prompt in prompts:
            first = renders.get(method, {}).get(prompt.stem)
            best = best_of[method].get(prompt.stem)
            if first is not None and best is not None and None not in (first.sim, best.sim):
                out.append(Gain(method, prompt, float(first.sim), float(best.sim)))
    return out


def most_and_least(gains: Sequence[Gain]) -> tuple[Gain, Gain] | None:
    """The largest and the smallest gain; a tie goes to the one listed first."""
    if not gains:
        return None
    # max and min keep the first of equals: gain_list's order (method, then prompt)
    return max(gains, key=lambda g: g.gain), min(gains, key=lambda g: g.gain)


class BestOfFacts:
    """What the article's best-of section quotes, formatted; NOT_RUN where nothing ran."""

    KEYS = ("images", "prompts", "runs", "label", "short_per_run", "continued_per_image",
            "per_prompt", "all_prompts", "device", "epochs_short", "epochs_detail",
            "median_gain", "compared")

    def __init__(self, prompts: Sequence[Prompt], renders: Mapping[int, Mapping[str, Render]],
                 best_of: Mapping[int, Mapping[str, BestOfRender]],
                 summary: Mapping[int, dict]):
        self.prompts = list(prompts)
        self.best_of = {m: dict(by_stem) for m, by_stem in best_of.items() if by_stem}
        self.summary = summary
        self.gains = gain_list(prompts, renders, self.best_of)

    def ran(self, *methods: int) -> bool:
        """Any best-of image; with ``methods``, some of each of them."""
        if not methods:
            return bool(self.best_of)
        return all(m in self.best_of for m in methods)

    def _images(self, method: int | None) -> list[BestOfRender]:
        methods = sorted(self.best_of) if method is None else [method]
        return [r for m in methods for r in self.best_of.get(m, {}).values()]

    def _continued_per_image(self, method: int | None, images: list[BestOfRender]) -> float:
        entries = [self.summary.get(m) for m in
                   (sorted(self.best_of) if method is None else [method])]
        measured = [e for e in entries if e and isinstance(e.get("seconds_per_image"),
                                                         (int, float))]
        if len(measured) == len(entries):  # the summary speaks for every method asked about
            total = sum(e["seconds_per_image"] * max(int(e.get("images") or 0), 1)
                        for e in measured)
            return total / sum(max(int(e.get("images") or 0), 1) for e in measured)
        return statistics.fmean(r.seconds for r in images)

    def _device(self, method: int | None, images: list[BestOfRender]) -> str:
        for m in sorted(self.best_of) if method is None else [method]:
            device = (self.summary.get(m) or {}).get("device")
            if device:
                return str(device)
        named = Counter(r.device for r in images if r.device)
        return named.most_common(1)[0][0] if named else "an unnamed device"

    def fact(self, key: str, method: int | None = None) -> str:
        if key not in self.KEYS:
            raise KeyError(key)
        gains = [g for g in self.gains if method is None or g.method == method]
        if key == "compared":
            return str(len(gains))
        if key == "median_gain":
            return signed(statistics.median(g.gain for g in gains)) if gains else NOT_RUN
        images = self._images(method)
        if not images:
            return NOT_RUN
        runs = sum(r.runs for r in images)
        short = sum(r.short_seconds for r in images)
        continued = self._continued_per_image(method, images)
        per_prompt = short / len(images) + continued
        methods = 1 if method is not None else len(self.best_of)
        return {
            "images": lambda: str(len(images)),
            "prompts": lambda: str(len({r.stem for r in images})),
            "runs": lambda: runs_text([r.runs for r in images]),
            "label": lambda: f"best of {runs_text([r.runs for r in images])}",
            "short_per_run": lambda: format_duration(short / runs),
            "continued_per_image": lambda: format_duration(continued),
            "per_prompt": lambda: format_duration(per_prompt),
            "all_prompts": lambda: format_duration(per_prompt * len(self.prompts) * methods),
            "device": lambda: self._device(method, images),
            "epochs_short": lambda: runs_text([r.short_epochs for r in images]),
            "epochs_detail": lambda: runs_text([r.epochs for r in images]),
        }[key]()
