"""The selector's data: thing -> animal -> image, for the page and for its script.

The HTML shows the default selection (so the page works before and without
the script); the script gets every selection as JSON, embedded so that no
prompt text can close the <script> element or be read as markup. The JSON
holds finished strings (each method's prompt, the sim labels), and the
template's <template> holds the picture markup: the script only copies them.
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


def sim_label(render: Render | None) -> str | None:
    """A render's caption: "sim 31.20"; "" when rendered without a sim; None when not rendered."""
    if render is None:
        return None
    return "" if render.sim is None else f"sim {render.sim:.2f}"


def missing_label(animal: str) -> str:
    """What a screen reader says for a render that is not there yet."""
    return f"{animal}: not rendered yet"


def _entry(prompt: Prompt, renders: Mapping[int, Mapping[str, Render]], methods) -> list:
    # [stem, the prompt of each method..., the sim label of each method...]:
    # the script shows these strings as they are and derives nothing from them.
    labels = [sim_label(renders.get(m, {}).get(prompt.stem)) for m in methods]
    return [prompt.stem, *(method_prompt(prompt, m) for m in methods), *labels]


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
        "missing": [missing_label(a) for a in animal_names],
        "methods": list(methods),
        "default": {"thing": default.thing, "method": default.method},
        # Stems are letters and "-" only, so the script may fill these in as is.
        "webp": urls.root + render_webp("{method}", "{stem}"),
        "png": urls.root + render_png("{method}", "{stem}"),
        "cells": cells,
    }


# The cells the script fills in, as the template's <template> holds them.
BLANK_CELLS = {
    "image": {"missing": False, "alt": "", "webp": "", "png": ""},
    "missing": {"missing": True, "label": ""},
}


def _cell(prompt: Prompt | None, animal: str, method: int,
          renders: Mapping[int, Mapping[str, Render]], urls: Urls) -> dict:
    render = renders.get(method, {}).get(prompt.stem) if prompt else None
    if render is None:
        return {"animal": animal, "missing": True, "label": missing_label(animal), "sim": ""}
    return {
        "animal": animal,
        "missing": False,
        "alt": method_prompt(prompt, method),
        "webp": urls(render_webp(method, prompt.stem)),
        "png": urls(render_png(method, prompt.stem)),
        "sim": sim_label(render),
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
        "blank": BLANK_CELLS,
        "data": script_json(script_data(prompts, renders, methods, default, urls)),
    }
