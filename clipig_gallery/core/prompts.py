"""The 810 animal/thing prompts of the DALL-E "animal concept transfer" samples.

The raw source is OpenAI's ``dall-e-samples.json``; ``scripts/derive_prompts.py``
turns it into ``clipig_gallery/core/data/prompts.json``, which is what the rest of the project
reads through :func:`load_prompts`.

This module is deliberately free of torch and of import-time side effects so
that page builders and tests can use it cheaply.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .paths import DATA_DIR
from .textfiles import NotUTF8, read_utf8

# A variable marker in the source texts, e.g. ``{0:cat}`` or ``{1:coral reef}``.
_MARKER = re.compile(r"\{(\d+):([^{}]*)\}")
_NON_LETTER = re.compile(r"[^A-Za-z]")

DEFAULT_PROMPTS_PATH = DATA_DIR / "prompts.json"

PROMPT_FIELDS = ("animal", "thing", "text", "first_sentence", "stem")


@dataclass(frozen=True)
class Prompt:
    animal: str
    thing: str
    text: str
    first_sentence: str
    stem: str

    def for_method(self, method: int) -> str:
        """The text a gallery method renders: method 2 dropped the second sentence."""
        return self.first_sentence if method == 2 else self.text


def strip_markers(text: str) -> str:
    """Replace every ``{n:value}`` marker by its value."""
    return _MARKER.sub(lambda m: m.group(2), text)


def first_sentence_of_marked(marked: str) -> str:
    """First sentence of a *marked* source text, markers stripped.

    Cutting at the first "." would split a value that itself contains dots
    (a thing like "h.p. lovecraft"). The first sentence always names both
    variables, so its end is the first "." after the first ``{1:...}`` marker
    closes; dots inside markers are never looked at.
    """
    thing_marker = next((m for m in _MARKER.finditer(marked) if m.group(1) == "1"), None)
    if thing_marker is None:
        raise ValueError(f"no {{1:...}} marker in text: {marked!r}")
    end = marked.find(".", thing_marker.end())
    if end < 0:
        raise ValueError(f"no period after the {{1:...}} marker in text: {marked!r}")
    return strip_markers(marked[: end + 1])


def stem(animal: str, thing: str) -> str:
    """File-name stem: non-ASCII-letters become "-", e.g. ``cat-of-rubik-s-cube``."""
    return f"{_NON_LETTER.sub('-', animal)}-of-{_NON_LETTER.sub('-', thing)}"


def _check(ok: bool, message: str) -> None:
    # Malformed data is a bad *value* for callers, hence ValueError throughout.
    if not ok:
        raise ValueError(message)


def _prompt_from_entry(entry: Any, index: int) -> Prompt:
    _check(
        isinstance(entry, dict),
        f"completion_info[{index}]: expected an object, got {type(entry).__name__}",
    )
    text = entry.get("text")
    assignments = entry.get("variable_assignments")
    _check(isinstance(text, str), f"completion_info[{index}]: missing or non-string 'text'")
    if not isinstance(assignments, list) or len(assignments) != 2:
        raise ValueError(
            f"completion_info[{index}]: 'variable_assignments' must be a list of "
            f"[animal, thing], got {assignments!r}"
        )
    animal, thing = assignments
    if not isinstance(animal, str) or not isinstance(thing, str) or not animal or not thing:
        raise ValueError(f"completion_info[{index}]: animal and thing must be non-empty strings")
    try:
        sentence = first_sentence_of_marked(text)
    except ValueError as exc:
        raise ValueError(f"completion_info[{index}]: {exc}") from None
    return Prompt(
        animal=animal,
        thing=thing,
        text=strip_markers(text),
        first_sentence=sentence,
        stem=stem(animal, thing),
    )


def derive_prompts(samples: dict[str, Any]) -> list[Prompt]:
    """Build the prompt list from the loaded ``dall-e-samples.json``, in file order.

    Only ``completion_info`` is used: ``variable_info`` misses three things.
    The texts are taken as they are (articles vary, one thing is written
    "head of garlic" in its second sentence), never rebuilt from a template.
    """
    _check(
        isinstance(samples, dict) and isinstance(samples.get("completion_info"), list),
        "samples: expected an object with a 'completion_info' list",
    )
    return [_prompt_from_entry(e, i) for i, e in enumerate(samples["completion_info"])]


def prompts_document(prompts: list[Prompt], source: str) -> dict[str, Any]:
    """The JSON shape of ``clipig_gallery/core/data/prompts.json``."""
    return {"source": source, "count": len(prompts), "prompts": [asdict(p) for p in prompts]}


def dump_prompts_document(document: dict[str, Any]) -> str:
    """Serialise deterministically, so regenerating the file gives identical bytes."""
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


def _prompt_from_record(record: Any, index: int, where: Path) -> Prompt:
    _check(isinstance(record, dict), f"{where}: prompts[{index}] is not an object")
    missing = [k for k in PROMPT_FIELDS if not isinstance(record.get(k), str)]
    if missing:
        raise ValueError(f"{where}: prompts[{index}] lacks string field(s) {', '.join(missing)}")
    return Prompt(**{k: record[k] for k in PROMPT_FIELDS})


def load_prompts(path: str | Path | None = None) -> list[Prompt]:
    """Read the derived prompt list (default: the package's ``core/data/prompts.json``)."""
    where = Path(path) if path is not None else DEFAULT_PROMPTS_PATH
    if not where.is_file():
        raise FileNotFoundError(
            f"prompt list not found: {where} (generate it with scripts/derive_prompts.py)"
        )
    try:
        document = json.loads(read_utf8(where))
    except NotUTF8 as exc:
        raise ValueError(f"{where}: {exc}") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{where}: not valid JSON: {exc}") from None
    _check(
        isinstance(document, dict) and isinstance(document.get("prompts"), list),
        f"{where}: expected an object with a 'prompts' list",
    )
    records = document["prompts"]
    prompts = [_prompt_from_record(r, i, where) for i, r in enumerate(records)]
    count = document.get("count")
    if count is not None and count != len(prompts):
        raise ValueError(f"{where}: 'count' is {count!r} but there are {len(prompts)} prompts")
    return prompts


def _unique(values: Iterable[str]) -> list[str]:
    # dict keeps insertion order, so this is first-seen order
    return list(dict.fromkeys(values))


def animals(prompts: Iterable[Prompt]) -> list[str]:
    """Distinct animals in first-seen order."""
    return _unique(p.animal for p in prompts)


def things(prompts: Iterable[Prompt]) -> list[str]:
    """Distinct things in first-seen order."""
    return _unique(p.thing for p in prompts)
