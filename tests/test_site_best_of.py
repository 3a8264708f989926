"""The best-of gallery on the site: loading it, its files, selector data, heatmap, article.

Browser tests of the best-of view are in test_site_browser.py (one Chromium
for all); here everything is checked on files and parsed HTML.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from types import SimpleNamespace

import pytest
from bs4 import BeautifulSoup
from conftest import built_site

from clipig_gallery.core.layout import best_of_root, png_path, record_path
from clipig_gallery.core.prompts import Prompt, load_prompts
from clipig_gallery.core.ratings import read_ratings
from clipig_gallery.generator.bestof import NOT_RUN, BestOfFacts, gain_list, most_and_least
from clipig_gallery.generator.cachedata import BestOfRender, CacheError, Render, load_best_of
from clipig_gallery.generator.heatmap import (
    GAIN_PALETTE,
    MISSING,
    PALETTE,
    bin_edges,
    build_best_of_heatmap,
    build_heatmap,
    gain_edges,
)
from clipig_gallery.generator.linkcheck import check_site
from clipig_gallery.generator.sample import sample_gain, sample_sim, write_sample_cache
from clipig_gallery.generator.selector import best_of_entry, runs_text
from clipig_gallery.generator.site import build_site
from clipig_gallery.generator.sitepaths import selection_fragment

THINGS = ("harmonica", "harp", "hospital", "piano")
BEST_THINGS = ("harp", "piano")  # the sample's best-of gallery
POST = "2021/clipig-animal-transfer/index.html"
PROMPTS = load_prompts()
STEMS = {p.stem for p in PROMPTS}


def _prompts(things=THINGS) -> list[Prompt]:
    return [p for p in PROMPTS if p.thing in things]


def _text(soup: BeautifulSoup) -> str:
    return " ".join(soup.find("article").get_text(" ").split())


def _build(root: Path, best_of: bool = True, things=THINGS) -> SimpleNamespace:
    cache = write_sample_cache(root / "cache", _prompts(things), best_of=best_of)
    return built_site(cache, root / "site", POST)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("best-of"))


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("no-best-of"), best_of=False, things=("harp",))


def _records(cache: Path) -> dict[tuple[int, str], dict]:
    return {(int(path.parent.name[-1]), path.stem): json.loads(path.read_text())
            for path in best_of_root(cache).glob("method-*/*.json")}


# --- loading -----------------------------------------------------------------------


def test_the_sample_best_of_is_what_the_renderer_leaves(built):
    best = load_best_of(built.cache, 2, STEMS)
    assert sorted(best) == sorted(p.stem for p in _prompts(BEST_THINGS))
    harp = best["cat-of-harp"]
    assert isinstance(harp, BestOfRender) and harp.runs == 64
    # the winner is the argmax of the short runs' sims, as the CSV lists them best first
    ratings = read_ratings(harp.short_sims)
    first_path, (first_sim,) = ratings.rows[0]
    assert len(ratings.rows) == 64 and first_path == f"runs/cat-of-harp-{harp.run}.png"
    assert harp.short_sim == first_sim == max(s for _, (s,) in ratings.rows)
    assert harp.short_image == best_of_root(built.cache) / "method-2" / first_path
    assert harp.sim == round(sample_sim("cat-of-harp", 2) + sample_gain("cat-of-harp", 2), 2)
    assert (harp.seconds, harp.short_seconds, harp.device) == (0.6, 6.4, "NVIDIA H200")
    assert load_best_of(built.cache, 1, {"cat-of-harmonica"}) == {}


@pytest.fixture(scope="module")
def small_cache(tmp_path_factory) -> Path:
    return write_sample_cache(tmp_path_factory.mktemp("small") / "cache", _prompts(("harp",)),
                              rankings=False)


@pytest.fixture
def broken(small_cache):
    """Breaks one best-of record of the shared cache for a test, mends it afterwards."""
    record = record_path(png_path(best_of_root(small_cache), 1, "snail-of-harp"))
    good = record.read_text()

    def breaking(change) -> Path:
        record.write_text(change(json.loads(good)) if callable(change) else change)
        return record

    yield breaking
    record.write_text(good)


@pytest.mark.parametrize("change, message", [
    ("{not json", "cannot read JSON"),
    (lambda d: json.dumps([d]), "must be an object"),
    (lambda d: json.dumps({**d, "best_of": None}), "needs a 'best_of' object"),
    (lambda d: json.dumps({**d, "best_of": 5}), "best_of must be an object or null"),
    (lambda d: json.dumps({**d, "best_of": {**d["best_of"], "runs": 0}}), "best_of.runs"),
    (lambda d: json.dumps({**d, "best_of": {**d["best_of"], "runs": "64"}}), "best_of.runs"),
    (lambda d: json.dumps({**d, "best_of": {**d["best_of"], "run": 64}}), "not one of the 64"),
    (lambda d: json.dumps({**d, "best_of": {**d["best_of"], "short_sim": "high"}}),
     "short_sim must be a finite number"),
    (lambda d: json.dumps({**d, "best_of": {**d["best_of"], "short_seconds": -1}}),
     "best_of.short_seconds must be at least 0, not -1"),
    (lambda d: json.dumps({**d, "best_of": {**d["best_of"], "short_seconds": float("inf")}}),
     "best_of.short_seconds must be a finite number, not inf"),
    (lambda d: json.dumps({**d, "best_of": {**d["best_of"], "short_image": "../../x.png"}}),
     "leaves the method folder"),
    (lambda d: json.dumps({**d, "best_of": {**d["best_of"], "short_sims": "/etc/passwd"}}),
     "leaves the method folder"),
    (lambda d: json.dumps({**d, "best_of": {**d["best_of"], "nonsense": 1, "run": 1.5}}),
     "best_of.run"),
])
def test_a_broken_best_of_record_stops_the_build_naming_its_file(small_cache, broken, tmp_path,
                                                                 change, message):
    record = broken(change)
    with pytest.raises(CacheError, match=re.escape(message)) as error:
        build_site(small_cache, tmp_path / "site")
    assert str(record) in str(error.value)


def test_files_a_record_names_but_the_cache_lacks_are_left_out(tmp_path):
    cache = write_sample_cache(tmp_path / "cache", _prompts(("harp",)), rankings=False)
    folder = best_of_root(cache) / "method-1"
    data = json.loads((folder / "cat-of-harp.json").read_text())
    (folder / data["best_of"]["short_image"]).unlink()
    (folder / data["best_of"]["short_sims"]).unlink()
    render = load_best_of(cache, 1, STEMS)["cat-of-harp"]
    assert render.short_image is None and render.short_sims is None
    assert best_of_entry(render)[4:] == [0, 0]
    report = build_site(cache, tmp_path / "site")
    assert report.best_of == 18 and check_site(tmp_path / "site") == []
    site = tmp_path / "site" / "img" / "best-of" / "method-1"
    assert not list(site.glob("runs/cat-of-harp-*")) and not (site / "short-sims/cat-of-harp.csv"
                                                               ).exists()
    assert (site / "runs").is_dir() and (site / "short-sims/pig-of-harp.csv").is_file()


# --- the site's files and the selector's data ----------------------------------------


def test_best_of_files_are_published_and_the_data_points_at_them(built):
    records = _records(built.cache)
    judged = json.loads((built.cache / "judge.json").read_text())["ratings"]
    assert len(records) == built.report.best_of == 2 * 9 * 2
    best = built.data["best"]
    assert best["label"] == "best of 64"
    assert best["missing"] == [f"{a}: no best-of run yet" for a in built.data["animals"]]
    page = (built.out / POST).parent
    seen = 0
    for thing, row in zip(built.data["things"], best["cells"], strict=True):
        if thing not in BEST_THINGS:
            assert row is None, thing  # no best-of image of the thing: one null
            continue
        for animal, cell in zip(built.data["animals"], row, strict=True):
            stem = next(p.stem for p in PROMPTS if (p.thing, p.animal) == (thing, animal))
            for method, entry in zip(built.data["methods"], cell, strict=True):
                record = records[(method, stem)]
                info = record["best_of"]
                judge = judged[f"best-of/method-{method}/{stem}.png"]["sim"]
                assert entry == [64, f"{info['short_sim']:.2f}", f"{record['sim']:.2f}",
                                 info["run"], 1, 1, f"{judge:.2f}"]
                fill = {"method": method, "stem": stem, "run": info["run"]}
                for key in ("webp", "png", "short", "csv"):
                    assert page.joinpath(best[key].format(**fill)).resolve().is_file(), key
                source = best_of_root(built.cache) / f"method-{method}" / info["short_sims"]
                published = page.joinpath(best["csv"].format(**fill)).resolve()
                assert published.read_bytes() == source.read_bytes()
                seen += 1
    assert seen == 36


def test_without_javascript_the_page_shows_first_attempts_and_fetches_no_best_of(built):
    selector = built.soup.find(id="selector")
    # no best-of URL is anywhere a browser would fetch it without being asked
    fetched = [t.get("src") for t in built.soup.find_all(src=True)]
    assert fetched and not [u for u in fetched if "best-of" in u]
    assert not [link for link in built.soup.find_all("link", href=True)
                if "best-of" in link["href"]]
    assert all("/method-2/" in img["src"] for img in selector.find_all("img"))
    assert selector.find("button", attrs={"data-view-toggle": True}).has_attr("hidden")
    help_line = " ".join(selector.find(class_="selector-help").get_text().split())
    assert "b first attempt / best of 64 (also the button above)" in help_line
    assert "best of 64: method 1, method 2." in help_line
    csvs = [a["href"] for a in selector.find(class_="selector-help").find_all("a")]
    assert "../../img/best-of/method-1/sims.csv" in csvs
    pictures = built.soup.find("template", id="clipig-selector-pictures")
    # (bs4's get_text leaves out text inside a <template>: read the markup)
    assert pictures.find(class_="best-missing").string == "no best-of run yet"
    caption = re.sub(r"<[^>]+>", "", str(pictures.find(class_="best-caption")))
    # numbers go in; the judge's part only where the judge rated the image
    assert " ".join(caption.split()) == "best of , short sim , final · judge"
    assert pictures.find(class_="best-caption").find(class_="judge").find(
        attrs={"data-slot": "judge"}) is not None


def test_a_cache_without_best_of_builds_the_page_as_before(plain):
    assert "best" not in plain.data and plain.report.best_of == 0
    assert plain.soup.find(attrs={"data-view-toggle": True}) is None
    assert plain.soup.find(class_="heatmap-best-of") is None
    assert len(plain.soup.find_all("figure", class_="heatmap")) == 1
    pictures = plain.soup.find("template", id="clipig-selector-pictures")
    assert pictures.find(class_="best-of") is None
    help_line = plain.soup.find(class_="selector-help").get_text()
    assert "best of" not in help_line and "<kbd>b</kbd>" not in str(plain.soup)
    text = _text(plain.soup)
    assert "That has not been run for this page yet" in text
    assert "Unless the selector's best of view is on" not in text
    assert not (plain.out / "img" / "best-of").exists()
    assert check_site(plain.out) == []


def test_selection_links_name_the_view_and_the_checker_knows_it(built, plain):
    assert selection_fragment("harp", 2) == "thing=harp&method=2"
    assert selection_fragment("harp", 2, "first") == "thing=harp&method=2"
    assert selection_fragment("loaf of bread", 1, "best") == (
        "thing=loaf+of+bread&method=1&view=best")
    with pytest.raises(ValueError, match="view"):
        selection_fragment("harp", 2, "worst")
    for site, ok in ((built.out, True), (plain.out, False)):
        page = site / "probe.html"
        data = (site / POST).read_text(encoding="utf-8")
        script = re.search(r'<script type="application/json" id="clipig-selector-data">.*?'
                           r"</script>", data, re.S).group(0)
        page.write_text(f'<a href="#thing=harp&amp;method=2&amp;view=best">b</a>'
                        f'<a href="#thing=harp&amp;method=2&amp;view=bogus">x</a>{script}')
        problems = [p for p in check_site(site) if p.startswith("probe.html")]
        page.unlink()
        assert len(problems) == (1 if ok else 2), problems
        assert all("no such selection" in p for p in problems)


# --- heatmap -----------------------------------------------------------------------

ANIMALS2 = ["cat", "pig"]
THINGS2 = ["harp", "piano", "tuba"]
STEMS2 = {(a, t): f"{a}-of-{t}" for a in ANIMALS2 for t in THINGS2}


def test_best_of_heatmap_has_a_best_and_a_gain_panel_per_method():
    first = {1: {"cat-of-harp": 40.0, "pig-of-harp": 44.0, "cat-of-piano": 41.0},
             2: {"cat-of-harp": 38.0}}
    best = {1: {"cat-of-harp": 43.5, "pig-of-harp": 42.0, "pig-of-piano": 47.0},
            2: {"cat-of-harp": 38.0}}
    heatmap = build_best_of_heatmap(ANIMALS2, THINGS2, STEMS2, first, best, "best of 64")
    assert [(p.method, p.kind) for p in heatmap.panels] == [(1, "best"), (1, "gain"),
                                                           (2, "best"), (2, "gain")]
    assert [t for _, t in heatmap.rows] == ["harp", "piano"]  # no best-of image of tuba
    assert heatmap.count == 4
    best1, gain1, best2, gain2 = heatmap.panels
    assert [link.href for link in best1.links] == ["#thing=harp&method=1&view=best",
                                                    "#thing=piano&method=1&view=best"]
    assert best1.links[0].title == ("harp, method 1, best of 64 (gain): cat 43.5 (+3.5), "
                                    "pig 42.0 (-2.0)")
    # pig of piano has no first attempt, cat of piano no best of N: no gain either
    assert best1.links[1].title == "piano, method 1, best of 64 (gain): cat -, pig 47.0"
    # one link per row spans both panels: 2 x 2 cells of 14 px and the gap between
    assert gain1.links == [] and best1.link_width == 2 * 2 * 14 + 6
    assert gain1.x == best1.x + 2 * 14 + 6
    assert [link.href for link in best2.links] == ["#thing=harp&method=2&view=best"]
    # the gain's scale: symmetric whole numbers around 0, its own palette
    assert gain_edges([3.5, -2.0, 0.0]) == (-4.0, 4.0) and gain_edges([]) == (-1.0, 1.0)
    colours = {b.colour: b for b in gain1.bins}
    assert set(colours) == {GAIN_PALETTE[7], GAIN_PALETTE[2], MISSING}
    assert colours[GAIN_PALETTE[7]].label == "+3.0 to +4.0"
    assert colours[MISSING].label == "either missing"
    assert {b.colour for b in gain2.bins} == {GAIN_PALETTE[4], MISSING}  # +0.0 exactly
    # the best-of sims share the first attempts' scale: 38 to 47 over both
    assert bin_edges([38.0, 47.0]) == (38.0, 47.0)
    shared = build_heatmap(ANIMALS2, THINGS2, STEMS2, first, also=[43.5, 42.0, 47.0, 38.0])
    assert shared.legend[0].label == "38.0" and shared.legend[len(PALETTE)].label == "47.0"
    labels = [item.label for item in heatmap.legend]
    assert labels[:2] == ["sim", "38.0"] and "gain" in labels and "-4.0" in labels
    assert labels[-1] == "either missing"


def test_the_page_has_the_best_of_heatmap_with_links_to_best_of_selections(built):
    figure = built.soup.find("figure", class_="heatmap-best-of")
    links = figure.find_all("a")
    assert len(links) == len(BEST_THINGS) * 2  # a row per thing with best-of images, per method
    records = _records(built.cache)
    harp = figure.find("a", href="#thing=harp&method=2&view=best")
    parts = []
    for prompt in (p for p in PROMPTS if p.thing == "harp"):
        first = sample_sim(prompt.stem, 2)
        best = records[(2, prompt.stem)]["sim"]
        parts.append(f"{prompt.animal} {best:.1f} ({best - first:+.1f})")
    assert harp.find("title").get_text() == "harp, method 2, best of 64 (gain): " + ", ".join(
        parts)
    caption = " ".join(figure.find("figcaption").get_text().split())
    assert "36 of 1620 images have a best-of run, 36 of them a first attempt" in caption
    # the first heatmap stays, its rows still link to the first attempts
    assert len(built.soup.find("figure", class_="heatmap").find_all("a")) == 90 * 2


# --- the article's figures -----------------------------------------------------------


def _gains_from_files(cache: Path) -> list[tuple[float, int, str]]:
    """(gain, method, stem) from the record files, independent of the generator."""
    out = []
    for (method, stem), record in _records(cache).items():
        first = json.loads((cache / f"method-{method}" / f"{stem}.json").read_text())
        out.append((record["sim"] - first["sim"], method, stem))
    return out


def test_the_article_quotes_the_best_of_figures_from_the_cache(built):
    text = _text(built.soup)
    gains = _gains_from_files(built.cache)
    assert len(gains) == 36
    median = statistics.median(g for g, _, _ in gains)
    assert f"the median change of the final rating, over 36 images, is {median:+.2f}." in text
    most = max(gains)
    least = min(gains)
    assert most[0] > 5 and least[0] < 0  # the sample has both: a real gain and a loss
    section = built.soup.find(id="the-best-of-many-runs-for-every-prompt").find_next_siblings("p")
    links = [a for p in section for a in p.find_all("a", href=re.compile("^#thing="))]
    for (_, method, stem), word, link in zip((most, least), ("most", "least"), links,
                                             strict=True):
        prompt = next(p for p in PROMPTS if p.stem == stem)
        assert link["href"] == "#" + selection_fragment(prompt.thing, method, "best")
        assert link.get_text() == f"{prompt.animal} made of {prompt.thing}"
        first = sample_sim(stem, method)
        best = json.loads((best_of_root(built.cache) / f"method-{method}" / f"{stem}.json"
                           ).read_text())["sim"]
        said = "gained most" if word == "most" else "least"
        assert (f"{prompt.animal} made of {prompt.thing} (method {method}) {said} "
                f"({first:.2f} → {best:.2f})") in text
    # coverage and cost: N from the records, short runs' time from the records,
    # the continued runs' time and device from the best-of summary
    assert "So far 18 of the 810 prompts have such a winner (36 images over both methods), "\
           "each picked from 64 short runs." in text
    assert ("On NVIDIA H200, one short run took 0.05 seconds with method 1 and 0.1 seconds "
            "with method 2, and continuing a winner 0.3 seconds and 0.6 seconds.") in text
    assert "3.5 seconds and 7.0 seconds per prompt, or 47 minutes and 95 minutes" in text
    assert "(not run yet)" not in text and "(not measured yet)" not in text
    assert "Unless the selector's best of view is on, every image here" in text
    assert check_site(built.out) == []


def _best(stem: str, method: int, sim: float | None, runs: int = 64, short: float = 3.2,
          seconds: float = 0.5, device: str = "GPU A") -> BestOfRender:
    return BestOfRender(method=method, stem=stem, png=Path(f"{stem}.png"), sim=sim, prompt="",
                        runs=runs, run=0, short_sim=20.0, short_image=None, short_sims=None,
                        short_seconds=short, short_epochs=20, seconds=seconds, epochs=300,
                        device=device)


def _prompt(animal: str, thing: str) -> Prompt:
    return Prompt(animal, thing, f"a {animal} made of {thing}.", f"a {animal} made of {thing}.",
                  f"{animal}-of-{thing}")


def test_best_of_facts_median_most_least_and_a_mixed_n():
    prompts = [_prompt(a, t) for t in ("harp", "piano") for a in ("cat", "pig")]
    first = {1: {p.stem: Render(1, p.stem, Path(), sim, "") for p, sim in
                 zip(prompts, (40.0, 41.0, 42.0, None), strict=True)},
             2: {prompts[0].stem: Render(2, prompts[0].stem, Path(), 30.0, "")}}
    best = {1: {"cat-of-harp": _best("cat-of-harp", 1, 43.0, runs=64, short=6.4),
                "pig-of-harp": _best("pig-of-harp", 1, 40.0, runs=512, short=51.2,
                                     seconds=1.5),
                "cat-of-piano": _best("cat-of-piano", 1, 42.5),
                "pig-of-piano": _best("pig-of-piano", 1, 50.0)},  # no first attempt
            2: {"cat-of-harp": _best("cat-of-harp", 2, 30.0, device="GPU B")}}
    gains = gain_list(prompts, first, best)
    assert [(g.method, g.prompt.stem, g.gain) for g in gains] == [
        (1, "cat-of-harp", 3.0), (1, "pig-of-harp", -1.0), (1, "cat-of-piano", 0.5),
        (2, "cat-of-harp", 0.0)]
    most, least = most_and_least(gains)
    assert (most.prompt.stem, least.prompt.stem) == ("cat-of-harp", "pig-of-harp")
    facts = BestOfFacts(prompts, first, best, summary={})
    assert facts.fact("median_gain") == "+0.25" and facts.fact("median_gain", 2) == "+0.00"
    assert facts.fact("compared") == "4" and facts.fact("compared", 1) == "3"
    assert facts.fact("runs") == "64 to 512" == runs_text([512, 64, 64])
    assert facts.fact("label", 2) == "best of 64"
    assert facts.fact("images") == "5" and facts.fact("prompts") == "4"
    # 6.4 + 51.2 + 3.2 + 3.2 s over 64 + 512 + 64 + 64 runs; continued: the records' mean
    assert facts.fact("short_per_run", 1) == "0.091 seconds"
    assert facts.fact("continued_per_image", 1) == "0.75 seconds"
    assert facts.fact("device", 1) == "GPU A" and facts.fact("device", 2) == "GPU B"
    # the summary, where it has the method, speaks for the continued runs
    summarised = BestOfFacts(prompts, first, best, summary={
        1: {"seconds_per_image": 2.0, "images": 4, "device": "GPU C"}})
    assert summarised.fact("continued_per_image", 1) == "2.0 seconds"
    assert summarised.fact("device", 1) == "GPU C"
    assert summarised.fact("continued_per_image", 2) == "0.5 seconds"
    assert facts.ran() and facts.ran(1, 2) and not BestOfFacts(prompts, first, {}, {}).ran()
    empty = BestOfFacts(prompts, first, {1: {}}, {})
    assert not empty.ran(1)
    assert {empty.fact(k) for k in ("images", "runs", "median_gain", "device")} == {NOT_RUN}
    assert most_and_least([]) is None
    with pytest.raises(KeyError):
        facts.fact("nonsense")
