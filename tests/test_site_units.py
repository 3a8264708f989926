"""The site generator's pure parts: figures, layout, slots, heatmap, ids, link checks."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from markupsafe import Markup

from clipig_gallery.core.prompts import Prompt
from clipig_gallery.generator.article import ArticleError, Slots, display_date, parse_article
from clipig_gallery.generator.figures import NOT_MEASURED, cost_figures, format_duration
from clipig_gallery.generator.heatmap import MISSING, PALETTE, bin_edges, bin_index, build_heatmap
from clipig_gallery.generator.linkcheck import check_site, resolve
from clipig_gallery.generator.ranking import cell_id
from clipig_gallery.generator.selector import Default, script_data, script_json
from clipig_gallery.generator.sitepaths import (
    BaseUrlError,
    Urls,
    link_to_page,
    normalise_base_url,
    page_for_permalink,
    selection_fragment,
)


@pytest.mark.parametrize("seconds, text", [
    (0.41, "0.41 seconds"),
    (5.25, "5.2 seconds"),
    (0.9966, "1.0 seconds"),  # rounds up into the next form: not "1 seconds"
    (0.994, "0.99 seconds"),
    (9.96, "10 seconds"),
    (137, "137 seconds"),
    (0.41 * 810, "5.5 minutes"),
    (137 * 810, "31 hours"),  # the article's 31 hours for method 1
    (194 * 810, "44 hours"),  # and 44 for method 2
    (0.41 * 810 * 512, "47 hours"),
    (137 * 810 * 512, "658 days"),
    (194 * 810 * 512, "2.5 years"),
])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_cost_figures_from_a_summary_entry():
    entry = {"seconds_per_image": 137, "device": "GTX 1660", "batch": 1, "epochs": 200}
    figures = cost_figures(entry, 810)
    assert figures["per_image"] == "137 seconds"
    assert figures["all_prompts"] == "31 hours"
    assert figures["x512"] == "658 days"
    assert figures["device"] == "GTX 1660"
    assert set(cost_figures(None, 810).values()) == {NOT_MEASURED}


@pytest.mark.parametrize("permalink, page", [
    ("/2021/clipig/", "2021/clipig/index.html"),
    ("a/b/c/d", "a/b/c/d/index.html"),
    ("/post.html", "post.html"),
])
def test_page_for_permalink(permalink, page):
    assert page_for_permalink(permalink) == page


@pytest.mark.parametrize("permalink", ["/", "/../x/", "/a b/", "/a/./b/"])
def test_bad_permalinks_are_refused(permalink):
    with pytest.raises(ValueError, match="permalink"):
        page_for_permalink(permalink)


def test_relative_urls_at_any_depth():
    assert Urls("index.html")("img/a.webp") == "img/a.webp"
    assert Urls("2021/post/index.html")("img/a.webp") == "../../img/a.webp"
    assert Urls("404.html", "repo")("img/a.webp") == "/repo/img/a.webp"
    assert normalise_base_url("") == "/" and normalise_base_url("/x/y") == "/x/y/"
    assert link_to_page("2021/post/index.html") == "2021/post/"


@pytest.mark.parametrize(("base_url", "normal"), [
    ("", "/"), ("/", "/"), ("clipig-gallery", "/clipig-gallery/"),
    ("/a//b.c_d~e/", "/a/b.c_d~e/"), (" /Repo-2021/ ", "/Repo-2021/")])
def test_a_base_url_of_plain_parts_is_normalised(base_url, normal):
    assert normalise_base_url(base_url) == normal


@pytest.mark.parametrize(("base_url", "message"), [
    ("https://me.github.io/blog/", "not an address"),
    ("//cdn.example/", "not an address"),
    ("/blog/../x/", "'..' is not a plain part of a path"),
    ("./x", "'.' is not a plain part of a path"),
    ("/my blog/", "'my blog' is not a plain part"),
    ("/x?y=1", "'x?y=1' is not a plain part"),  # would end the path in every link
    ("/x#top", "'x#top' is not a plain part"),
    ("/caf\u00e9/", "'caf\u00e9' is not a plain part"),
    ("/a%20b/", "'a%20b' is not a plain part"),
    ('/x"y/', "is not a plain part"),
])
def test_a_base_url_that_is_not_a_plain_path_is_refused(base_url, message):
    with pytest.raises(BaseUrlError, match=re.escape(message)) as info:
        normalise_base_url(base_url)
    assert str(info.value).startswith(f"base URL {base_url!r}: ")


def test_the_commands_name_a_bad_base_url(tmp_path):
    from click.testing import CliRunner

    from clipig_gallery.app.cli import main
    from clipig_gallery.generator.settings import load_settings

    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<!doctype html>")
    for command in (["site", "--cache", str(tmp_path)], ["serve", "--out", str(tmp_path / "site")],
                    ["publish", "--cache", str(tmp_path), "--dry-run", "--allow-missing"]):
        result = CliRunner().invoke(main, [*command, "--base-url", "/my blog/"])
        assert result.exit_code == 1, (command, result.output)
        assert "base URL '/my blog/': 'my blog' is not a plain part" in result.output
    settings = tmp_path / "site.yaml"
    settings.write_text("base_url: https://me.github.io/\n")
    with pytest.raises(ValueError, match=f"^{re.escape(str(settings))}: base_url: base URL "):
        load_settings(settings)


def test_selection_fragment_matches_url_search_params():
    # URLSearchParams({thing, method}).toString() gives exactly this
    assert selection_fragment("loaf of bread", 1) == "thing=loaf+of+bread&method=1"
    assert selection_fragment("a&b", 2) == "thing=a%26b&method=2"


def test_resolve_urls_against_a_page():
    assert resolve("2021/p/index.html", "../../img/a.png") == "img/a.png"
    assert resolve("2021/p/index.html", "#x") == "2021/p/index.html"
    assert resolve("index.html", "2021/p/") == "2021/p/index.html"
    assert resolve("404.html", "/repo/img/a.png", "/repo/") == "img/a.png"
    assert resolve("404.html", "/other/a.png", "/repo/") is None
    assert resolve("index.html", "../outside.html") is None


def test_script_json_cannot_close_the_script_element():
    text = str(script_json({"t": "</script><img src=x onerror=alert(1)> & \u2028"}))
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"t": "</script><img src=x onerror=alert(1)> & \u2028"}


def test_script_data_carries_each_methods_prompt_and_sim_label():
    # Python decides what each method shows; the script gets finished strings.
    cat = Prompt("cat", "h.p. lovecraft", "a cat made of h.p. lovecraft. a cat with the"
                 " texture of a h.p. lovecraft.", "a cat made of h.p. lovecraft.",
                 "cat-of-h-p-lovecraft")
    renders = {1: {cat.stem: SimpleNamespace(sim=31.2, judge=None)},
               2: {cat.stem: SimpleNamespace(sim=None, judge=None)}, 3: {},
               4: {cat.stem: SimpleNamespace(sim=31.204, judge=24.8)},
               5: {cat.stem: SimpleNamespace(sim=None, judge=19.0)}}
    data = script_data([cat], renders, [1, 2, 3, 4, 5], Default(cat.thing, 2), Urls("a/b.html"))
    assert data["cells"] == [[[cat.stem, *(cat.for_method(m) for m in (1, 2, 3, 4, 5)),
                               "sim 31.20", "", None, "sim 31.20 · judge 24.80",
                               "judge 19.00"]]]
    assert data["missing"] == ["cat: not rendered yet"]
    assert data["webp"] == "../img/method-{method}/{stem}.webp"


def test_slots_keep_generated_html_out_of_markdown():
    slots = Slots()
    block = slots.block(Markup("<div>*not emphasis*</div>"))
    inline = slots.inline("<b>")
    html = slots.fill(f"<p>{block}</p>\n<p>a {inline} b</p>")
    assert html == "<div>*not emphasis*</div>\n<p>a &lt;b&gt; b</p>"
    with pytest.raises(ArticleError, match="paragraph of its own"):
        slots.fill(f"<p>text {block}</p>")


def test_front_matter_is_required_and_checked(tmp_path):
    article = parse_article("---\ntitle: T\ndate: 2021-06\npermalink: /x/\n---\nbody\n",
                            tmp_path / "a.md")
    assert article.title == "T" and article.body == "body\n"
    assert display_date(article.meta["date"]) == ("2021-06", "June 2021")
    with pytest.raises(ArticleError, match="permalink"):
        parse_article("---\ntitle: T\ndate: 2021-06\n---\nbody\n", tmp_path / "a.md")
    with pytest.raises(ArticleError, match="front matter"):
        parse_article("no front matter\n", tmp_path / "a.md")
    path = tmp_path / "a.md"
    with pytest.raises(ArticleError) as info:  # PyYAML alone raised a ValueError
        parse_article("---\ntitle: T\ndate: 2021-06-31\npermalink: /x/\n---\nbody\n", path)
    assert str(info.value).startswith(f"{path}: front matter is not valid YAML: cannot read "
                                      "'2021-06-31' as a YAML timestamp")


def test_cell_ids_stay_unique_when_runs_collide():
    taken = {"img-penguin-of-piano-42"}
    assert cell_id("penguin-of-piano", 7, 1, taken) == "img-penguin-of-piano-7"
    assert cell_id("penguin-of-piano", 42, 2, taken) == "img-penguin-of-piano-42-m2"


def test_heatmap_bins_and_rows():
    assert bin_edges([41.2, 48.7]) == (41.0, 49.0)
    assert bin_index(41.0, 41, 49) == 0 and bin_index(49.0, 41, 49) == len(PALETTE) - 1
    stems = {("cat", "harp"): "cat-of-harp", ("pig", "harp"): "pig-of-harp",
             ("cat", "piano"): "cat-of-piano", ("pig", "piano"): "pig-of-piano"}
    sims = {1: {"cat-of-harp": 41.0, "pig-of-harp": 49.0}, 2: {"cat-of-piano": 45.0}}
    heatmap = build_heatmap(["cat", "pig"], ["harp", "piano"], stems, sims)
    assert heatmap.count == 3
    assert [p.method for p in heatmap.panels] == [1, 2]
    panel = heatmap.panels[0]
    assert [link.href for link in panel.links] == ["#thing=harp&method=1", "#thing=piano&method=1"]
    assert "cat 41.0, pig 49.0" in panel.links[0].title
    colours = {b.colour for b in panel.bins}
    assert {PALETTE[0], PALETTE[-1], MISSING} == colours
    # the missing row (piano, method 1) is one merged segment of two cells
    missing = next(b for b in panel.bins if b.colour == MISSING)
    assert missing.path.count("M") == 1 and missing.path.endswith("h27")


def _page(root: Path, name: str, body: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<!doctype html><html><body>{body}</body></html>", encoding="utf-8")


def test_link_checker_finds_each_kind_of_broken_link(tmp_path):
    _page(tmp_path, "index.html", '<a href="post/">post</a><img src="missing.png">'
          '<a href="post/#nowhere">x</a><a href="post/#here">ok</a>'
          '<a href="https://example.org/x">external</a><a href="../up.html">up</a>')
    _page(tmp_path, "post/index.html", '<h2 id="here">H</h2><p id="dup"></p><p id="dup"></p>'
          '<a href="#thing=harp&amp;method=2">ok</a><a href="#thing=nope&amp;method=2">bad</a>'
          '<script type="application/json" id="clipig-selector-data">'
          '{"things": ["harp"], "methods": [1, 2]}</script>')
    problems = check_site(tmp_path)
    assert len(problems) == 5, problems
    text = "\n".join(problems)
    for expected in ("missing.png does not exist", "no id 'nowhere'", "leaves the site",
                     "duplicate id 'dup'", "no such selection"):
        assert expected in text
