"""The selector's data: thing -> animal -> image, for the page and for its script.

The HTML shows the default selection (so the page works before and without
the script); the script gets every selection as JSON, embedded so that no
prompt text can close the <script> element or be read as markup. The JSON
holds finished strings (each method's prompt, the sim labels: "sim 31.20",
with " · judge 24.80" where a judge model rated the image), and the
template's <template> holds the picture markup: the script only copies them.

The best-of view (where the cache has a best-of gallery) works the same way:
its numbers come as finished strings, its words (the caption around them,
"no best-of run yet") are in the <template>, and its image URLs exist only
in the JSON, so no best-of image is fetched before a reader asks for that view.

Optimisation histories (where the cache has them) are the same again: the
page names a history only in its data (a play time per cell, URL patterns)
and in links, never as an image source, so none is fetched before a reader
hovers, focuses or taps; a page built from a cache without any history has
no trace of them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup

from clipig_gallery.core.prompts import Prompt, animals, things

from .cachedata import BestOfRender, Render
from .histories import History
from .sitepaths import BEST_OF_IMAGES, IMAGES, ImageTree, Urls, selection_fragment

BestOfs = Mapping[int, Mapping[str, BestOfRender]]
Histories = Mapping[Path, History]  # by the image's path in the cache


def thing_order(prompts: Sequence[Prompt]) -> list[str]:
    """Things alphabetically, so stepping with the arrow keys is predictable."""
    return sorted(things(prompts), key=str.casefold)


def script_json(data: object) -> Markup:
    """JSON safe inside <script type="application/json">: no '<', '>' or '&' in it."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return Markup(
        text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    )


@dataclass(frozen=True)
class Default:
    thing: str
    method: int


def choose_default(thing_names: Sequence[str], methods: Sequence[int],
                   wanted_thing: str | None, wanted_method: int | None) -> Default:
    """The article's default (harp, method 2), or the first of each if absent."""
    thing = wanted_thing if wanted_thing in thing_names else thing_names[0]
    method = wanted_method if wanted_method in methods else methods[0]
    return Default(thing, method)


def sim_label(render: Render | None) -> str | None:
    """A render's caption: "sim 31.20", "sim 31.20 · judge 24.80" where the judge rated
    it; "" when rendered without either; None when not rendered."""
    if render is None:
        return None
    parts = [f"{name} {value:.2f}" for name, value in (("sim", render.sim),
                                                       ("judge", render.judge))
             if value is not None]
    return " · ".join(parts)


def missing_label(animal: str) -> str:
    """What a screen reader says for a render that is not there yet."""
    return f"{animal}: not rendered yet"


def best_of_missing_label(animal: str) -> str:
    """What a screen reader says where the best-of view has no image."""
    return f"{animal}: no best-of run yet"


def runs_text(counts: Sequence[int]) -> str:
    """N of "best of N": one number, or the range where prompts had different N."""
    if not counts:
        return ""
    low, high = min(counts), max(counts)
    return str(low) if low == high else f"{low} to {high}"


def best_of_label(best_of: BestOfs) -> str | None:
    """The toggle's name, "best of 64"; None without any best-of image."""
    counts = [r.runs for by_stem in best_of.values() for r in by_stem.values()]
    return f"best of {runs_text(counts)}" if counts else None


def sim_text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def best_of_entry(render: BestOfRender | None) -> list | None:
    """[N, short sim, final sim, winning run, short image there (0/1), CSV there (0/1)],
    and the judge's sim of the image where the judge rated it.

    The words around them ("best of", "short sim", "final", "judge", "all N
    sims") are the template's; numbers only here, so 1620 cells stay a few dozen KB.
    """
    if render is None:
        return None
    entry = [render.runs, sim_text(render.short_sim), sim_text(render.sim), render.run,
             int(render.short_image is not None), int(render.short_sims is not None)]
    return entry if render.judge is None else [*entry, sim_text(render.judge)]


def _best_row(prompts: Sequence[Prompt | None], best_of: BestOfs, methods) -> list | None:
    """One thing's best-of entries by animal and method; None where it has none at all."""
    row = [[best_of_entry(best_of.get(m, {}).get(p.stem)) for m in methods] if p else None
           for p in prompts]
    return row if any(e is not None for cell in row if cell for e in cell) else None


def history_ms(render: Render | None, histories: Histories) -> int:
    """How long the render's history plays; 0 where it has none."""
    if render is None or not histories:
        return 0
    history = histories.get(render.png)
    return 0 if history is None else history.ms


def _history_data(grid: Mapping[tuple[str, str], Prompt], thing_names, animal_names,
                  renders: Mapping[int, Mapping[str, Render]], methods, histories: Histories,
                  patterns: dict[str, str]) -> dict | None:
    """Each cell's history play time in ms (0: none) and the URL patterns; None without any.

    Per thing: None (no history in that row) or per animal: None or per method,
    so a gallery whose histories cover part of it pays little for the rest.
    """
    rows = []
    for thing in thing_names:
        row = []
        for animal in animal_names:
            prompt = grid.get((thing, animal))
            cell = [history_ms(renders.get(m, {}).get(prompt.stem), histories)
                    for m in methods] if prompt else []
            row.append(cell if any(cell) else None)
        rows.append(row if any(row) else None)
    if not any(rows):
        return None
    return {"webp": patterns["history_webp"], "strip": patterns["history_strip"], "ms": rows}


def url_patterns(tree: ImageTree, urls: Urls) -> dict[str, str]:
    """The URL patterns of one image tree over ``{method}``, ``{stem}`` and ``{run}``:
    stems are letters and "-" only, so the script may fill these in as is."""
    return {"webp": urls.root + tree.webp("{method}", "{stem}"),
            "png": urls.root + tree.png("{method}", "{stem}"),
            "history_webp": urls.root + tree.history_webp("{method}", "{stem}"),
            "history_strip": urls.root + tree.history_strip("{method}", "{stem}"),
            "short": urls.root + tree.short_webp("{method}", "{stem}", "{run}"),
            "csv": urls.root + tree.short_sims("{method}", "{stem}")}


def _best_data(grid: Mapping[tuple[str, str], Prompt], thing_names, animal_names,
               best_of: BestOfs, methods, urls: Urls, histories: Histories) -> dict | None:
    label = best_of_label(best_of)
    if label is None:
        return None
    patterns = url_patterns(BEST_OF_IMAGES, urls)
    history = _history_data(grid, thing_names, animal_names, best_of, methods, histories,
                            patterns)
    return {
        "label": label,
        "missing": [best_of_missing_label(a) for a in animal_names],
        **{key: patterns[key] for key in ("webp", "png", "short", "csv")},
        # per thing: None (no best-of image at all) or per animal: per method
        "cells": [_best_row([grid.get((t, a)) for a in animal_names], best_of, methods)
                  for t in thing_names],
        **({"history": history} if history else {}),
    }


def _entry(prompt: Prompt, renders: Mapping[int, Mapping[str, Render]], methods) -> list:
    # [stem, the prompt of each method..., the sim label of each method...]:
    # the script shows these strings as they are and derives nothing from them.
    labels = [sim_label(renders.get(m, {}).get(prompt.stem)) for m in methods]
    return [prompt.stem, *(prompt.for_method(m) for m in methods), *labels]


def script_data(prompts: Sequence[Prompt], renders: Mapping[int, Mapping[str, Render]],
                methods: Sequence[int], default: Default, urls: Urls,
                best_of: BestOfs | None = None, histories: Histories | None = None) -> dict:
    """Everything the script needs; image URLs are patterns over method and stem.

    ``best`` is there only when the cache has best-of images, ``history`` (and
    ``best.history``) only when some of those images have a history.
    """
    grid = {(p.thing, p.animal): p for p in prompts}
    thing_names, animal_names = thing_order(prompts), animals(prompts)
    patterns = url_patterns(IMAGES, urls)
    cells = [
        [_entry(grid[(t, a)], renders, methods) if (t, a) in grid else None
         for a in animal_names]
        for t in thing_names
    ]
    data = {
        "things": thing_names,
        "animals": animal_names,
        "missing": [missing_label(a) for a in animal_names],
        "methods": list(methods),
        "default": {"thing": default.thing, "method": default.method},
        **{key: patterns[key] for key in ("webp", "png")},
        "cells": cells,
    }
    history = _history_data(grid, thing_names, animal_names, renders, methods, histories or {},
                            patterns)
    if history is not None:
        data["history"] = history
    best = _best_data(grid, thing_names, animal_names, best_of or {}, methods, urls,
                      histories or {})
    if best is not None:
        data["best"] = best
    return data


# The cells the script fills in, as the template's <template> holds them.
BLANK_CELLS = {
    "image": {"missing": False, "alt": "", "webp": "", "png": ""},
    "missing": {"missing": True, "label": ""},
}


def _cell_history(render: Render, urls: Urls, histories: Histories) -> dict | None:
    """What the cell's history control links to (a first attempt's); None without one."""
    ms = history_ms(render, histories)
    return {
        "href": urls(IMAGES.history_webp(render.method, render.stem)),
        "strip": urls(IMAGES.history_strip(render.method, render.stem)),
        "ms": ms,
    } if ms else None


def _cell(prompt: Prompt | None, animal: str, method: int,
          renders: Mapping[int, Mapping[str, Render]], urls: Urls,
          histories: Histories) -> dict:
    render = renders.get(method, {}).get(prompt.stem) if prompt else None
    if render is None:
        return {"animal": animal, "missing": True, "label": missing_label(animal), "sim": "",
                "history": None}
    return {
        "animal": animal,
        "missing": False,
        "alt": prompt.for_method(method),
        "webp": urls(IMAGES.webp(method, prompt.stem)),
        "png": urls(IMAGES.png(method, prompt.stem)),
        "sim": sim_label(render),
        "history": _cell_history(render, urls, histories),
    }


def selector_context(prompts: Sequence[Prompt], renders: Mapping[int, Mapping[str, Render]],
                     methods: Sequence[int], default: Default, urls: Urls,
                     csv_methods: Sequence[int], best_of: BestOfs | None = None,
                     best_csv_methods: Sequence[int] = (), judge_model: str | None = None,
                     judge_csv_methods: Sequence[int] = (),
                     best_judge_csv_methods: Sequence[int] = (),
                     histories: Histories | None = None) -> dict:
    """What the selector template shows, the default selection filled in.

    The page opens with the first attempts, script or not; ``best`` (None
    without best-of images) names the toggle and the best-of CSVs; ``judge``
    (None where no judge has run) names the judge model and its CSVs;
    ``history`` says whether cells get a history control (only where some
    image shown in either view has a history).
    """
    histories = histories or {}
    data = script_data(prompts, renders, methods, default, urls, best_of, histories)
    by_animal = {p.animal: p for p in prompts if p.thing == default.thing}
    label = best_of_label(best_of or {})
    best = None if label is None else {
        "label": label,
        "csv": [{"method": m, "href": urls(BEST_OF_IMAGES.sims_csv(m))} for m in best_csv_methods],
    }
    judge = None if judge_model is None else {
        "model": judge_model,
        "csv": [{"method": m, "href": urls(IMAGES.judge_csv(m))} for m in judge_csv_methods],
        "best_csv": [{"method": m, "href": urls(BEST_OF_IMAGES.judge_csv(m))}
                     for m in best_judge_csv_methods],
    }
    return {
        "things": [{"name": t, "selected": t == default.thing} for t in thing_order(prompts)],
        "methods": [{"value": m, "selected": m == default.method} for m in methods],
        "cells": [_cell(by_animal.get(a), a, default.method, renders, urls, histories)
                  for a in animals(prompts)],
        "state": selection_fragment(default.thing, default.method),
        "csv": [{"method": m, "href": urls(IMAGES.sims_csv(m))} for m in csv_methods],
        "blank": BLANK_CELLS,
        "best": best,
        "judge": judge,
        "history": "history" in data or "history" in data.get("best", {}),
        "data": script_json(data),
    }
