"""Tests for the prompt list (clipig_gallery/core/prompts.py, scripts/derive_prompts.py and
clipig_gallery/core/data/prompts.json)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from clipig_gallery.core.prompts import (
    Prompt,
    animals,
    derive_prompts,
    first_sentence_of_marked,
    load_prompts,
    stem,
    strip_markers,
    things,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE = REPO_ROOT / "clipig_gallery" / "core" / "data" / "dall-e-samples.json"
PROMPTS_JSON = REPO_ROOT / "clipig_gallery" / "core" / "data" / "prompts.json"


@pytest.fixture(scope="module")
def prompts() -> list[Prompt]:
    return load_prompts()


def _by_thing(prompts: list[Prompt], thing: str) -> list[Prompt]:
    return [p for p in prompts if p.thing == thing]


def _load_script():
    spec = importlib.util.spec_from_file_location(
        "derive_prompts_script", REPO_ROOT / "scripts" / "derive_prompts.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the shipped list ------------------------------------------------------


def test_counts(prompts: list[Prompt]) -> None:
    assert len(prompts) == 810
    assert len(animals(prompts)) == 9
    assert len(things(prompts)) == 90
    assert len({p.stem for p in prompts}) == 810


def test_every_animal_thing_pair_once(prompts: list[Prompt]) -> None:
    pairs = {(p.animal, p.thing) for p in prompts}
    assert pairs == {(a, t) for a in animals(prompts) for t in things(prompts)}


def test_first_seen_order(prompts: list[Prompt]) -> None:
    assert animals(prompts)[0] == "cat"
    assert things(prompts)[:2] == ["baguette", "banana"]


def test_things_missing_from_variable_info_are_present(prompts: list[Prompt]) -> None:
    assert {"coldness", "hospital", "warmth"} <= set(things(prompts))


def test_rubiks_cube_stem(prompts: list[Prompt]) -> None:
    # the data spells it with a right single quotation mark, not an ASCII apostrophe
    assert "rubik\u2019s cube" in things(prompts)
    cube = _by_thing(prompts, "rubik\u2019s cube")
    assert len(cube) == 9
    assert {p.stem for p in cube} == {f"{a}-of-rubik-s-cube" for a in animals(prompts)}


def test_coral_reef_stem(prompts: list[Prompt]) -> None:
    assert {p.stem for p in _by_thing(prompts, "coral reef")} == {
        f"{a}-of-coral-reef" for a in animals(prompts)
    }


def test_stems_are_dash_separated_letters(prompts: list[Prompt]) -> None:
    for p in prompts:
        assert p.stem == stem(p.animal, p.thing)
        assert "--" not in p.stem
        assert all(c.isascii() and (c.isalpha() or c == "-") for c in p.stem)


def test_texts_have_no_markers_and_contain_both_words(prompts: list[Prompt]) -> None:
    for p in prompts:
        assert "{" not in p.text and "}" not in p.text
        assert p.animal in p.first_sentence and p.thing in p.first_sentence


def test_first_sentence_is_a_prefix_ending_in_period(prompts: list[Prompt]) -> None:
    for p in prompts:
        assert p.first_sentence.endswith(".")
        assert p.text.startswith(p.first_sentence)
        assert len(p.first_sentence) < len(p.text)
        assert p.text[len(p.first_sentence)] == " "


def test_texts_come_from_the_file_not_a_template(prompts: list[Prompt]) -> None:
    garlic = _by_thing(prompts, "garlic")[0]
    assert garlic.text == "a cat made of garlic. a cat with the texture of a head of garlic."
    assert garlic.first_sentence == "a cat made of garlic."
    elephant = next(p for p in prompts if p.animal == "elephant" and p.thing == "harp")
    assert elephant.first_sentence == "an elephant made of harp."


def test_prompts_json_matches_a_fresh_derivation() -> None:
    script = _load_script()
    assert PROMPTS_JSON.read_text(encoding="utf-8") == script.derive_document_text(SOURCE)


def test_script_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "prompts.json"
    assert _load_script().main([str(SOURCE), "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == PROMPTS_JSON.read_text(encoding="utf-8")


def test_script_missing_source(tmp_path: Path) -> None:
    assert _load_script().main([str(tmp_path / "nope.json"), "-o", str(tmp_path / "o.json")]) == 2


# --- helpers on synthetic input ----------------------------------------------


def test_strip_markers() -> None:
    assert strip_markers("a {0:cat} made of {1:coral reef}.") == "a cat made of coral reef."
    assert strip_markers("no markers. here.") == "no markers. here."


@pytest.mark.parametrize(
    ("animal", "thing", "expected"),
    [
        ("cat", "baguette", "cat-of-baguette"),
        ("cat", "coral reef", "cat-of-coral-reef"),
        ("cat", "rubik\u2019s cube", "cat-of-rubik-s-cube"),
        ("cat", "rubik's cube", "cat-of-rubik-s-cube"),
        ("cat", "h.p. lovecraft", "cat-of-h-p--lovecraft"),
        ("polar bear", "crème brûlée", "polar-bear-of-cr-me-br-l-e"),
        ("Cat", "7up", "Cat-of--up"),
    ],
)
def test_stem_synthetic(animal: str, thing: str, expected: str) -> None:
    assert stem(animal, thing) == expected


def test_first_sentence_keeps_dots_inside_the_thing() -> None:
    marked = (
        "a {0:cat} made of {1:h.p. lovecraft}. a {0:cat} with the texture of {1:h.p. lovecraft}."
    )
    assert first_sentence_of_marked(marked) == "a cat made of h.p. lovecraft."


def test_first_sentence_of_marked_errors() -> None:
    with pytest.raises(ValueError, match="marker"):
        first_sentence_of_marked("a {0:cat} made of cheese. a cat.")
    with pytest.raises(ValueError, match="period"):
        first_sentence_of_marked("a {0:cat} made of {1:cheese}")


# --- malformed input -----------------------------------------------------------


def _entry(animal: str = "cat", thing: str = "cheese") -> dict:
    return {
        "text": (
            f"a {{0:{animal}}} made of {{1:{thing}}}. "
            f"a {{0:{animal}}} with the texture of {{1:{thing}}}."
        ),
        "variable_assignments": [animal, thing],
    }


def test_derive_prompts_synthetic() -> None:
    (p,) = derive_prompts({"completion_info": [_entry("owl", "tea pot")]})
    assert p == Prompt(
        animal="owl",
        thing="tea pot",
        text="a owl made of tea pot. a owl with the texture of tea pot.",
        first_sentence="a owl made of tea pot.",
        stem="owl-of-tea-pot",
    )


@pytest.mark.parametrize(
    "broken",
    [
        {"variable_assignments": ["cat", "cheese"]},
        {"text": "a {0:cat} made of {1:cheese}."},
        {"text": "a {0:cat} made of {1:cheese}.", "variable_assignments": ["cat"]},
        {"text": "a {0:cat} made of {1:cheese}.", "variable_assignments": ["cat", "cheese", "x"]},
        {"text": "a cat made of cheese.", "variable_assignments": ["cat", "cheese"]},
        "not an object",
    ],
)
def test_derive_prompts_names_the_bad_index(broken) -> None:
    samples = {"completion_info": [_entry(), _entry(), broken]}
    with pytest.raises(ValueError, match=r"completion_info\[2\]"):
        derive_prompts(samples)


def test_derive_prompts_needs_completion_info() -> None:
    with pytest.raises(ValueError, match="completion_info"):
        derive_prompts({"variable_info": []})


def test_load_prompts_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "prompts.json"
    with pytest.raises(FileNotFoundError, match="prompts.json"):
        load_prompts(missing)


def test_load_prompts_bad_json(tmp_path: Path) -> None:
    bad = tmp_path / "prompts.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_prompts(bad)


def test_load_prompts_names_file_and_index(tmp_path: Path) -> None:
    good = {
        "animal": "cat",
        "thing": "x",
        "text": "a cat made of x.",
        "first_sentence": "a cat made of x.",
        "stem": "cat-of-x",
    }
    broken = dict(good)
    del broken["stem"]
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps({"count": 2, "prompts": [good, broken]}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"prompts\.json.*prompts\[1\].*stem"):
        load_prompts(path)


def test_load_prompts_count_mismatch(tmp_path: Path) -> None:
    good = {"animal": "cat", "thing": "x", "text": "t.", "first_sentence": "t.", "stem": "cat-of-x"}
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps({"count": 3, "prompts": [good]}), encoding="utf-8")
    with pytest.raises(ValueError, match="count"):
        load_prompts(path)


def test_load_prompts_without_prompts_key(tmp_path: Path) -> None:
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps({"count": 0}), encoding="utf-8")
    with pytest.raises(ValueError, match="'prompts'"):
        load_prompts(path)
