"""Prompt text is text: markup in a thing's name never becomes markup in the page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from clipig_gallery.core.prompts import load_prompts
from clipig_gallery.generator.linkcheck import check_site
from clipig_gallery.generator.sample import write_sample_cache
from clipig_gallery.generator.site import build_site

PROMPTS = Path(__file__).parent / "fixtures" / "hostile-prompts.json"
TAG = "<img src=x onerror=alert(1)>"
QUOTED = "\"quoted\" & 'single'"
POST = "2021/clipig-animal-transfer/index.html"


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    prompts = load_prompts(PROMPTS)
    write_sample_cache(root / "cache", prompts, rankings=False)
    build_site(root / "cache", root / "site", prompts=PROMPTS)
    html = (root / "site" / POST).read_text(encoding="utf-8")
    return root / "site", html, BeautifulSoup(html, "html.parser")


def test_the_fixture_holds_the_hostile_things():
    assert {TAG, QUOTED} <= {p.thing for p in load_prompts(PROMPTS)}


def test_no_markup_from_a_prompt_reaches_the_page(page):
    _, html, soup = page
    assert TAG not in html
    assert not soup.find_all("img", src="x")
    assert not soup.find_all(attrs={"onerror": True})
    # Outside the JSON (where quotes are plain characters of a string) the
    # quotes only appear as entities, so no attribute value can end early.
    markup = re.sub(r'id="clipig-selector-data">.*?</script>', "", html, flags=re.S)
    assert "'single'" not in markup and '"quoted"' not in markup
    assert "&#34;quoted&#34; &amp; &#39;single&#39;" in markup


def test_the_text_survives_as_text(page):
    _, _, soup = page
    options = [o for o in soup.find("select", attrs={"name": "thing"}).find_all("option")]
    assert {(o["value"], o.get_text()) for o in options} >= {(TAG, TAG), (QUOTED, QUOTED)}
    titles = [t.get_text() for t in soup.find(class_="heatmap").find_all("title")]
    assert any(t.startswith(f"{TAG}, method 1: ") for t in titles)
    assert any(t.startswith(f"{QUOTED}, method 2: ") for t in titles)


def test_the_script_data_carries_the_text_unharmed(page):
    _, html, soup = page
    raw = re.search(r'id="clipig-selector-data">(.*?)</script>', html, re.S).group(1)
    assert "<" not in raw and ">" not in raw and "&" not in raw
    data = json.loads(soup.find("script", id="clipig-selector-data").string)
    assert {TAG, QUOTED} <= set(data["things"])
    texts = [entry[1] for row in data["cells"] for entry in row if entry]
    assert f"a cat made of {TAG}. a cat with the texture of a {TAG}." in texts


def test_links_to_hostile_selections_resolve(page):
    site, _, soup = page
    hrefs = [a["href"] for a in soup.find(class_="heatmap").find_all("a")]
    assert "#thing=%3Cimg+src%3Dx+onerror%3Dalert%281%29%3E&method=1" in hrefs
    assert check_site(site) == []
