"""The selector's data: thing -> animal -> image, for the page and for its script.

The HTML shows the default selection (so the page works before and without
the script); the script gets every selection as JSON, embedded so that no
prompt text can close the <script> element or be read as markup.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup

from gallery.prompts import Prompt, animals, things

from .cachedata import Render
from .layout import Urls, render_png, render_webp, selection_fragment, sims_csv


def thing_order(prompts: Sequence[Prompt]) -> list[str]:
    """Things alphabetically, so stepping with the arrow keys is predictable."""
    return sorted(things(prompts), key=str.casefold)


def method_prompt(prompt: Prompt, method: int) -> str:
    return prompt.for_method(method)


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


def _entry(prompt: Prompt, renders: Mapping[int, Mapping[str, Render]], methods) -> list:
    # [stem, text, first sentence, per method: sim, true (rendered, no sim) or
    # null (not rendered)]; the first sentence travels as its length when it
    # is a prefix of the text, which keeps the page ~25 KB lighter.
    first = prompt.first_sentence
    first_out = len(first) if prompt.text.startswith(first) else first
    sims = []
    for m in methods:
        render = renders.get(m, {}).get(prompt.stem)
        sims.append(None if render is None else (render.sim if render.sim is not None else True))
    return [prompt.stem, prompt.text, first_out, *sims]


def script_data(prompts: Sequence[Prompt], renders: Mapping[int, Mapping[str, Render]],
                methods: Sequence[int], default: Default, urls: Urls) -> dict:
    """Everything the script needs; image URLs are patterns over method and stem."""
    grid = {(p.thing, p.animal): p for p in prompts}
    thing_names, animal_names = thing_order(prompts), animals(prompts)
    cells = [
        [_entry(grid[(t, a)], renders, methods) if (t, a) in grid else None
         for a in animal_names]
        for t in thing_names
    ]
    return {
        "things": thing_names,
        "animals": animal_names,
        "methods": list(methods),
        "default": {"thing": default.thing, "method": default.method},
        # Stems are letters and "-" only, so the script may fill these in as is.
        "webp": urls.root + render_webp("{method}", "{stem}"),
        "png": urls.root + render_png("{method}", "{stem}"),
        "cells": cells,
    }


def _cell(prompt: Prompt | None, animal: str, method: int,
          renders: Mapping[int, Mapping[str, Render]], urls: Urls) -> dict:
    render = renders.get(method, {}).get(prompt.stem) if prompt else None
    if render is None:
        return {"animal": animal, "missing": True, "sim": ""}
    return {
        "animal": animal,
        "missing": False,
        "alt": method_prompt(prompt, method),
        "webp": urls(render_webp(method, prompt.stem)),
        "png": urls(render_png(method, prompt.stem)),
        "sim": "" if render.sim is None else f"sim {render.sim:.2f}",
    }


def selector_context(prompts: Sequence[Prompt], renders: Mapping[int, Mapping[str, Render]],
                     methods: Sequence[int], default: Default, urls: Urls,
                     csv_methods: Sequence[int]) -> dict:
    """What the selector template shows, the default selection filled in."""
    by_animal = {p.animal: p for p in prompts if p.thing == default.thing}
    return {
        "things": [{"name": t, "selected": t == default.thing} for t in thing_order(prompts)],
        "methods": [{"value": m, "selected": m == default.method} for m in methods],
        "cells": [_cell(by_animal.get(a), a, default.method, renders, urls)
                  for a in animals(prompts)],
        "state": selection_fragment(default.thing, default.method),
        "csv": [{"method": m, "href": urls(sims_csv(m))} for m in csv_methods],
        "data": script_json(script_data(prompts, renders, methods, default, urls)),
    }
