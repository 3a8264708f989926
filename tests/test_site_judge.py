"""The judge on the site: loading judge.json, its figures, captions, CSVs, scatter plot.

Browser tests of the captions and the plot's links are in test_site_browser.py
(one Chromium for all); here everything is checked on files and parsed HTML.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from bs4 import BeautifulSoup
from conftest import built_site

from clipig_gallery.core.layout import judge_path
from clipig_gallery.core.prompts import Prompt, load_prompts
from clipig_gallery.core.schema import Judgement
from clipig_gallery.generator.cachedata import (
    CacheError,
    Judge,
    Render,
    load_best_of,
    load_judge,
    load_renders,
)
from clipig_gallery.generator.judge import (
    LEFT,
    NOT_DEFINED,
    NOT_RUN,
    PLOT,
    RIGHT,
    TOP,
    JudgeFacts,
    Pair,
    axis_range,
    build_scatter,
    judged_pairs,
    pearson,
)
from clipig_gallery.generator.linkcheck import check_site
from clipig_gallery.generator.sample import JUDGE_MODEL, write_sample_cache
from clipig_gallery.generator.selector import best_of_entry, sim_label
from clipig_gallery.generator.site import build_site
from clipig_gallery.generator.sitepaths import BEST

THINGS = ("harp", "piano")  # the sample's best-of gallery covers both
POST = "2021/clipig-animal-transfer/index.html"
PROMPTS = load_prompts()
STEMS = {p.stem for p in PROMPTS}
SECTION = "a-judge-that-took-no-part"


def _prompts(things=THINGS) -> list[Prompt]:
    return [p for p in PROMPTS if p.thing in things]


def _build(root: Path, things=THINGS, change=None, **sample) -> SimpleNamespace:
    cache = write_sample_cache(root / "cache", _prompts(things), rankings=False, **sample)
    if change is not None:
        change(cache)
    return built_site(cache, root / "site", POST)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("judged"))


@pytest.fixture(scope="module")
def unjudged(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("unjudged"), things=("harp",), judge=False)


def _section(soup: BeautifulSoup) -> str:
    texts = []
    for element in soup.find(id=SECTION).find_next_siblings():
        if element.name in ("h2", "h3"):
            break
        if element.name == "p":
            texts.append(" ".join(element.get_text().split()))
    return " ".join(texts)


def _ratings(cache: Path) -> dict[str, float]:
    return {k: v["sim"] for k, v in json.loads(judge_path(cache).read_text())["ratings"].items()}


def _record_sim(cache: Path, key: str) -> float:
    return json.loads((cache / key).with_suffix(".json").read_text())["sim"]


# --- loading -------------------------------------------------------------------------


def test_judge_json_is_read_into_every_render(built):
    judge = load_judge(built.cache)
    ratings = _ratings(built.cache)
    assert judge.model == JUDGE_MODEL == "ViT-B/16" and judge.sims == ratings
    assert len(ratings) == 2 * 18 + 2 * 18  # the gallery and the best of N, both methods
    first = load_renders(built.cache, 1, STEMS, judge)["cat-of-harp"]
    best = load_best_of(built.cache, 2, STEMS, judge)["cat-of-harp"]
    assert first.judge == ratings["method-1/cat-of-harp.png"]
    assert best.judge == ratings["best-of/method-2/cat-of-harp.png"] != first.judge
    # without a judge, or for an image it did not rate: None
    assert load_renders(built.cache, 1, STEMS)["cat-of-harp"].judge is None
    partial = Judge("J", {"method-1/pig-of-harp.png": 20.0})
    assert load_renders(built.cache, 1, STEMS, partial)["cat-of-harp"].judge is None
    assert load_renders(built.cache, 1, STEMS, partial)["pig-of-harp"].judge == 20.0


def test_no_judge_json_is_no_judge(tmp_path):
    assert load_judge(tmp_path) is None


GOOD = {"model": "ViT-B/16", "model_id": "sha256:x",
        "ratings": {"method-1/cat-of-harp.png": {"sim": 24.5, "png": "a", "record": "b"}}}


def _rating(**change) -> dict:
    return {**GOOD, "ratings": {"method-1/cat-of-harp.png": {
        **GOOD["ratings"]["method-1/cat-of-harp.png"], **change}}}


@pytest.mark.parametrize("content, message", [
    ("{not json", "cannot read JSON"),
    (json.dumps([GOOD]), "expected an object with a 'ratings' object"),
    (json.dumps({**GOOD, "ratings": []}), "expected an object with a 'ratings' object"),
    (json.dumps({**GOOD, "ratings": {"method-1/x.png": 24.5}}), "ratings['method-1/x.png']"),
    (json.dumps({**GOOD, "ratings": {"method-1/x.png": {"sim": 1}}}), "ratings['method-1/x.png']"),
    (json.dumps(_rating(sim="high")),
     "ratings['method-1/cat-of-harp.png'].sim must be a finite number"),
    (json.dumps(_rating(sim=True)), ".sim must be a finite number, not True"),
    (json.dumps(_rating(sim=None)), ".sim must be a finite number, not None"),
    ('{"model": "J", "model_id": "", "ratings": {"m/x.png": '
     '{"sim": NaN, "png": "", "record": ""}}}', ".sim must be a finite number, not nan"),
    ('{"model": "J", "model_id": "", "ratings": {"m/x.png": '
     '{"sim": -Infinity, "png": "", "record": ""}}}', ".sim must be a finite number, not -inf"),
    (json.dumps({**GOOD, "model": ""}), "model must name the judge model"),
    (json.dumps({**GOOD, "model": 16}), "model must be a string, not 16"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "model_id"}), "model_id"),
])
def test_a_malformed_judge_json_stops_the_build_naming_it(tmp_path, content, message):
    path = judge_path(tmp_path)
    path.write_text(content)
    with pytest.raises(CacheError, match=re.escape(message)) as error:
        load_judge(tmp_path)
    assert str(path) in str(error.value)


def test_the_build_stops_at_a_malformed_judge_json(tmp_path):
    cache = write_sample_cache(tmp_path / "cache", _prompts(("harp",)), rankings=False,
                               best_of=False, judge=False)
    judge_path(cache).write_text(json.dumps(_rating(sim="high")))
    with pytest.raises(CacheError, match="must be a finite number") as error:
        build_site(cache, tmp_path / "site")
    assert str(judge_path(cache)) in str(error.value)


def test_the_sample_judge_goes_through_the_schema(built):
    judgement = Judgement.from_json(json.loads(judge_path(built.cache).read_text()))
    rating = judgement.ratings["method-2/cat-of-harp.png"]
    assert len(rating.png) == len(rating.record) == 16 and rating.png != rating.record
    # the judge rates lower than the sim, method 1's images (adversarial detail) more so
    for key, sim in _ratings(built.cache).items():
        method = int(key.split("method-")[1][0])
        drop = _record_sim(built.cache, key) - sim
        assert {1: 6 < drop < 12.01, 2: 1 < drop < 7.01}[method], (key, drop)


# --- captions ------------------------------------------------------------------------


def test_captions_give_the_judge_where_it_rated(built):
    assert sim_label(SimpleNamespace(sim=31.204, judge=24.795)) == "sim 31.20 · judge 24.80"
    assert sim_label(SimpleNamespace(sim=31.2, judge=None)) == "sim 31.20"
    ratings = _ratings(built.cache)
    # the page's default selection (harp, method 2), filled in by Jinja
    captions = [" ".join(c.get_text().split()) for c in
                built.soup.find(id="selector").find_all(class_="sim")]
    expected = [f"sim {_record_sim(built.cache, f'method-2/{p.stem}.png'):.2f} · judge "
                f"{ratings[f'method-2/{p.stem}.png']:.2f}" for p in _prompts(("harp",))]
    assert captions == expected
    # the best of N: the judge's sim is the entry's last number
    render = load_best_of(built.cache, 1, STEMS, load_judge(built.cache))["pig-of-piano"]
    assert best_of_entry(render)[6] == f"{ratings['best-of/method-1/pig-of-piano.png']:.2f}"
    assert len(best_of_entry(replace(render, judge=None))) == 6


# --- the figures ---------------------------------------------------------------------


def test_pearson_and_its_undefined_cases():
    # hand-computed: dx = -1.5 -.5 .5 1.5, dy = -3 -1 0 4; 11 / sqrt(5 * 26)
    assert pearson([1, 2, 3, 4], [2, 4, 5, 9]) == pytest.approx(11 / math.sqrt(130))
    assert pearson([1, 2, 3, 4], [2, 4, 5, 9]) == pytest.approx(0.964764, abs=1e-6)
    assert pearson([1, 2], [5, 5]) is None and pearson([1], [2]) is None
    assert pearson([], []) is None


def _prompt(animal: str, thing: str) -> Prompt:
    return Prompt(animal, thing, f"a {animal} made of {thing}.", f"a {animal} made of {thing}.",
                  f"{animal}-of-{thing}")


def _pairs(method: int, sims, judges, thing: str = "harp", view: str = "first") -> list[Pair]:
    animals = ("cat", "pig", "snail", "tapir")
    return [Pair(method, _prompt(a, thing), s, j, view, "best of 64" if view == BEST else "")
            for a, s, j in zip(animals[:len(sims)], sims, judges, strict=True)]


def test_judge_facts_correlation_median_and_who_is_believed():
    # method 1: judge - sim = -9, -8.5, -10, -6 -> median -8.75
    # method 2: -3, -4, -3 -> median -3; r by hand: dx = -5 0 5, dy = -14/3 -2/3 16/3,
    # sum dx dy = 50, sum dy^2 = 152/3: r = 50 / sqrt(50 * 152/3) = 0.9934
    one = _pairs(1, (40, 42, 44, 46), (31, 33.5, 34, 40))
    two = _pairs(2, (30, 35, 40), (27, 31, 37))
    facts = JudgeFacts("ViT-B/16", one + two)
    assert facts.median_difference(1) == -8.75 and facts.median_difference(2) == -3
    assert facts.correlation(2) == pytest.approx(50 / math.sqrt(50 * 152 / 3))
    assert [facts.fact("correlation", m) for m in (1, 2)] == ["0.93", "0.99"]
    # dx = -3 -1 1 3, dy = -3.625 -1.125 -0.625 5.375: 27.5 / sqrt(20 * 43.6875)
    assert facts.correlation(1) == pytest.approx(27.5 / math.sqrt(20 * 43.6875))
    assert [facts.fact("median_difference", m) for m in (1, 2)] == ["-8.75", "-3.00"]
    assert facts.fact("images") == "7" and facts.fact("images", 2) == "3"
    assert facts.agrees_more() == 2
    assert (facts.fact("agrees_more"), facts.fact("other"), facts.fact("margin")) == (
        "method 2", "method 1", "5.75")
    assert facts.fact("model") == "ViT-B/16" and facts.ran() and facts.ran(1, 2)
    with pytest.raises(KeyError):
        facts.fact("nonsense")
    with pytest.raises(ValueError, match="needs a method"):
        facts.fact("correlation")


def test_judge_facts_ties_too_few_and_none():
    tied = JudgeFacts("J", _pairs(1, (40, 42), (30, 33)) + _pairs(2, (30, 31), (21, 22)))
    # medians -9.5 and -9.0 differ; these two agree to the quoted decimals
    assert tied.agrees_more() == 2
    same = JudgeFacts("J", _pairs(1, (40, 42), (30, 33)) + _pairs(2, (30, 31), (20, 22)))
    assert same.median_difference(1) == same.median_difference(2) == -9.5
    assert same.agrees_more() is None and same.fact("agrees_more") == NOT_RUN
    flat = JudgeFacts("J", _pairs(1, (40, 40), (30, 33)) + _pairs(2, (30,), (20,)))
    assert flat.fact("correlation", 1) == NOT_DEFINED  # every sim the same
    assert flat.ran(1) and not flat.ran(2) and not flat.ran(1, 2) and flat.ran()
    assert flat.fact("correlation", 2) == NOT_DEFINED and flat.fact("median_difference", 2) == (
        "-10.00")
    none = JudgeFacts(None, [])
    assert not none.ran() and {none.fact(k, 1) for k in JudgeFacts.KEYS} == {NOT_RUN}
    assert JudgeFacts("J", []).fact("correlation", 1) == NOT_RUN


def test_judged_pairs_need_both_ratings_in_prompt_order():
    cat, pig, emu = _prompt("cat", "harp"), _prompt("pig", "harp"), _prompt("emu", "harp")
    renders = {2: {cat.stem: Render(2, cat.stem, Path(), 30.0, "", judge=25.0),
                   pig.stem: Render(2, pig.stem, Path(), None, "", judge=25.0),
                   emu.stem: Render(2, emu.stem, Path(), 31.0, "", judge=None)},
               1: {pig.stem: Render(1, pig.stem, Path(), 40.0, "", judge=31.5)}}
    pairs = judged_pairs([pig, cat, emu], renders)
    assert [(p.method, p.prompt.animal, p.difference) for p in pairs] == [(1, "pig", -8.5),
                                                                         (2, "cat", -5.0)]


def test_axis_range_is_round_and_holds_every_value():
    assert axis_range([20.0, 45.0]) == (20.0, 45.0, 5.0)
    assert axis_range([18.4, 49.99]) == (15.0, 50.0, 5.0)
    assert axis_range([31.2, 31.9]) == (31.2, 31.9, 0.1)
    assert axis_range([]) == (0.0, 1.0, 1.0)


def test_the_scatter_places_each_dot_and_links_it_to_its_selection():
    one = _pairs(1, (20, 32.5), (27.34, 45))
    two = _pairs(2, (30,), (25,), thing="piano")
    best = _pairs(2, (40,), (35,), thing="harp", view=BEST)
    prompts = [p.prompt for p in (*one, *two, *best)]
    plot = build_scatter(prompts, "ViT-B/16", one + two, best, (1, 2), "best of 64")
    # one range for both axes and panels, 20 to 45: 10 px per unit of 250 px
    first, second = plot.panels
    assert (first.x0, second.x0) == (LEFT, LEFT + LEFT + PLOT + RIGHT)
    assert [t.label for t in first.x_ticks] == ["20", "25", "30", "35", "40", "45"]
    assert [t.at for t in first.y_ticks] == [TOP + PLOT - 50 * i for i in range(6)]
    (group,) = first.first
    assert group.href == "#thing=harp&method=1"
    assert [(d.x, d.y) for d in group.dots] == [(LEFT, TOP + PLOT - 73),  # 27.34 -> 73.4 px
                                                (LEFT + 125, TOP)]
    assert group.dots[0].title == "cat made of harp: sim 20.00, judge 27.34"
    assert [g.href for g in second.first] == ["#thing=piano&method=2"]
    assert second.first[0].dots[0].x == second.x0 + 100
    (best_group,) = second.best
    assert best_group.href == "#thing=harp&method=2&view=best"
    assert best_group.dots[0].title == "cat made of harp, best of 64: sim 40.00, judge 35.00"
    assert first.best == []
    assert [item.kind for item in plot.legend] == ["first", "best", "diagonal"]
    assert (plot.count, plot.best_count, plot.y_label) == (3, 1, "judge (ViT-B/16)")
    alone = build_scatter(prompts, "J", one, (), (1, 2))
    assert [item.kind for item in alone.legend] == ["first", "diagonal"]
    assert alone.panels[1].first == [] and alone.best_label == ""


# --- the built page --------------------------------------------------------------------


def test_the_judge_csvs_are_linked_and_published(built):
    help_line = built.soup.find(class_="selector-help")
    text = " ".join(help_line.get_text().split())
    assert text.endswith("The judge's ratings (ViT-B/16) as CSV: method 1, method 2; "
                         "best of 64: method 1, method 2.")
    hrefs = [a["href"] for a in help_line.find_all("a")]
    expected = ["img/method-1/judge.csv", "img/method-2/judge.csv",
                "img/best-of/method-1/judge.csv", "img/best-of/method-2/judge.csv"]
    assert hrefs[-4:] == [f"../../{path}" for path in expected]
    for path in expected:
        source = built.cache / path.removeprefix("img/")
        assert (built.out / path).read_bytes() == source.read_bytes()
        assert source.read_text().splitlines()[0] == ",prompt,sim ViT-B/16"
    assert check_site(built.out) == []


def test_the_scatter_plot_has_a_linked_dot_per_judged_image(built):
    figure = built.soup.find("figure", class_="scatter")
    svg = figure.find("svg")
    assert svg["role"] == "group" and svg["aria-labelledby"] == "judge-scatter-caption"
    assert figure.find("figcaption")["id"] == "judge-scatter-caption"
    caption = " ".join(figure.find("figcaption").get_text().split())
    assert "36 first attempts as round dots and 36 best of 64 images as squares" in caption
    links = figure.find_all("a")
    assert [a["href"] for a in links] == [
        "#thing=harp&method=1", "#thing=piano&method=1",
        "#thing=harp&method=1&view=best", "#thing=piano&method=1&view=best",
        "#thing=harp&method=2", "#thing=piano&method=2",
        "#thing=harp&method=2&view=best", "#thing=piano&method=2&view=best"]
    ratings = _ratings(built.cache)
    titles = {t.get_text() for a in links for t in a.find_all("title")}
    assert len(titles) == 72
    for key, judge in ratings.items():
        stem = key.rsplit("/", 1)[1].removesuffix(".png")
        prompt = next(p for p in PROMPTS if p.stem == stem)
        label = ", best of 64" if key.startswith("best-of/") else ""
        title = (f"{prompt.animal} made of {prompt.thing}{label}: "
                 f"sim {_record_sim(built.cache, key):.2f}, judge {judge:.2f}")
        assert title in titles, title
    # the diagonal and a labelled axis per panel
    assert len(svg.find_all("path", class_="diagonal")) == 2 + 1  # and the legend's
    assert [t.get_text() for t in svg.find_all("text") if "judge (" in t.get_text()] == [
        "judge (ViT-B/16)"] * 2


def _figures_from_files(cache: Path, method: int) -> tuple[float, float, int]:
    """(r, median judge - sim, images) of a method's first attempts, from the files."""
    pairs = [(_record_sim(cache, k), v) for k, v in _ratings(cache).items()
             if k.startswith(f"method-{method}/")]
    sims, judges = zip(*pairs, strict=True)
    return (statistics.correlation(sims, judges),
            statistics.median(j - s for s, j in pairs), len(pairs))


def test_the_article_quotes_the_judge_from_the_cache(built):
    text = _section(built.soup)
    (r1, m1, n1), (r2, m2, n2) = (_figures_from_files(built.cache, m) for m in (1, 2))
    assert n1 == n2 == 18 and m1 < m2 < 0  # the sample judge's drops: 9 and 4, with noise
    assert "a second CLIP model that played no part in making it, ViT-B/16," in text
    assert (f"With method 1, the two ratings of an image correlate at r = {r1:.2f} over 18 "
            f"images, and the judge's rating minus the sim has a median of {m1:+.2f}. "
            f"With method 2 the correlation is {r2:.2f} over 18 images, the median "
            f"{m2:+.2f}.") in text
    assert (f"the judge agrees more with method 2: its median lies "
            f"{round(m2, 2) - round(m1, 2):.2f} above that of method 1.") in text
    assert "(not run yet)" not in text and "n/a" not in text


def test_without_judge_json_the_page_has_no_judge(unjudged):
    assert not judge_path(unjudged.cache).exists()
    assert unjudged.soup.find(class_="scatter") is None
    assert "judge" not in unjudged.soup.find(id="selector").get_text()
    assert "judge" not in json.dumps(unjudged.data)
    pictures = unjudged.soup.find("template", id="clipig-selector-pictures")
    assert pictures.find(class_="judge") is None and "data-slot=\"judge\"" not in str(pictures)
    assert all(len(entry) == 6 for row in unjudged.data["best"]["cells"] if row
               for cell in row for entry in cell if entry)
    assert not list(unjudged.out.rglob("judge.csv"))
    text = _section(unjudged.soup)
    assert "That judge has not been run for this page yet" in text
    assert "r =" not in text and "ViT-B/16" not in text and not re.search(r"\d", text)
    assert check_site(unjudged.out) == []


def _partly(cache: Path) -> None:
    """Keeps only the judge's ratings of method 1's first attempts, less one."""
    path = judge_path(cache)
    data = json.loads(path.read_text())
    data["ratings"] = {k: v for k, v in data["ratings"].items()
                       if k.startswith("method-1/") and k != "method-1/cat-of-harp.png"}
    path.write_text(json.dumps(data))


def test_a_judge_of_part_of_the_images_shows_what_it_rated(tmp_path):
    page = _build(tmp_path, things=("harp",), change=_partly)
    labels = {row[0]: row[3:] for row in page.data["cells"][page.data["things"].index("harp")]}
    assert re.fullmatch(r"sim \d+\.\d\d", labels["cat-of-harp"][0])
    assert re.fullmatch(r"sim \d+\.\d\d · judge \d+\.\d\d", labels["pig-of-harp"][0])
    assert all(" · judge" not in label[1] for label in labels.values())  # method 2
    links = page.soup.find("figure", class_="scatter").find_all("a")
    assert [a["href"] for a in links] == ["#thing=harp&method=1"]
    assert len(links[0].find_all("path")) == 8
    text = _section(page.soup)
    assert "too few images of each method to compare the two" in text
    assert "r =" not in text
    assert check_site(page.out) == []
