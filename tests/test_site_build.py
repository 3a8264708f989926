"""The site built from a small synthetic cache: pages, selector, table, figures, links.

The cache is written by the tests (coloured-square PNGs, made-up sims) in
the renderer's layout; nothing here needs torch or a GPU.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from bs4 import BeautifulSoup
from click.testing import CliRunner
from PIL import Image

from clipig_gallery.core.paths import DATA_DIR, METHODS_DIR
from clipig_gallery.core.prompts import load_prompts
from clipig_gallery.generator.cli import site as site_command
from clipig_gallery.generator.linkcheck import check_site
from clipig_gallery.generator.sample import noisy_image, write_renders, write_sample_cache
from clipig_gallery.generator.selector import thing_order
from clipig_gallery.generator.serve import make_server
from clipig_gallery.generator.site import TEMPLATES_DIR, build_site

REPO = Path(__file__).resolve().parent.parent
THINGS = ("harmonica", "harp", "hospital", "piano")
HOLES = ((2, "snail-of-harp"), (1, "cat-of-hospital"))  # renders the cache lacks
BASE = "/clipig-gallery/"
POST = "2021/clipig-animal-transfer/index.html"


def make_cache(cache: Path, things=THINGS, holes=HOLES, best_of: bool = False) -> Path:
    """The sample cache of ``things``, without the renders ``holes`` names.

    With ``best_of``, the sample's best-of gallery too (harp and piano);
    test_site_best_of.py tests it, here only the fixture and the rebuild use it.
    """
    prompts = [p for p in load_prompts() if p.thing in things]
    write_sample_cache(cache, prompts, best_of=best_of)
    for method, stem in holes:
        for suffix in (".png", ".json"):
            (cache / f"method-{method}" / f"{stem}{suffix}").unlink()
    return cache


def soup_of(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("built")
    cache = make_cache(root / "cache", best_of=True)
    out = root / "site"
    report = build_site(cache, out, BASE)
    post = soup_of(out / POST)
    data = json.loads(post.find("script", id="clipig-selector-data").string)
    return SimpleNamespace(cache=cache, out=out, report=report, post=post, data=data)


def test_post_sits_at_its_permalink_and_the_index_links_it(built):
    assert built.report.post == POST
    index = soup_of(built.out / "index.html")
    assert index.find("a", href="2021/clipig-animal-transfer/")
    assert built.post.find("h1").get_text() == "CLIPig animal transfer"
    assert built.post.find("link", rel="canonical")["href"] == BASE + "2021/clipig-animal-transfer/"
    # the 404 page is served at any URL, so it links through the base URL
    missing = soup_of(built.out / "404.html")
    assert missing.find("a", href=BASE + "2021/clipig-animal-transfer/")
    assert missing.find("link", rel="stylesheet")["href"].startswith(BASE + "assets/")


def test_whole_site_passes_the_link_checker(built):
    assert check_site(built.out, BASE) == []


def test_selector_controls_are_labelled_and_default_to_harp_method_2(built):
    selector = built.post.find(id="selector")
    for name in ("thing", "method"):
        select = selector.find("select", attrs={"name": name})
        assert selector.find("label", attrs={"for": select["id"]}), f"{name} select has no label"
    things = selector.find("select", attrs={"name": "thing"})
    assert [o.get_text() for o in things.find_all("option")] == thing_order(load_prompts())
    assert things.find("option", selected=True)["value"] == "harp"
    method = selector.find("select", attrs={"name": "method"}).find("option", selected=True)
    assert method["value"] == "2"
    steps = selector.find_all("button", attrs={"data-step": True})
    assert [b["aria-label"] for b in steps] == ["Previous thing", "Next thing"]
    # the view toggle is named by its text, and only the script shows it
    toggle = selector.find("button", attrs={"data-view-toggle": True})
    assert (toggle.get_text(), toggle["aria-pressed"]) == ("best of 64", "false")
    assert toggle.has_attr("hidden")
    assert built.data["default"] == {"thing": "harp", "method": 2}


def test_default_selection_shows_nine_animals_with_sized_lazy_images(built):
    prompts = {p.animal: p for p in load_prompts() if p.thing == "harp"}
    figures = built.post.find(id="selector").find_all("figure")
    assert [f.find("span", class_="animal").get_text() for f in figures] == built.data["animals"]
    for figure in figures:
        animal = figure.find("span", class_="animal").get_text()
        img = figure.find("img")
        if animal == "snail":  # a hole in the cache: shown as missing, never a broken image
            assert img is None
            assert figure.find(class_="missing").get_text() == "not rendered yet"
            continue
        stem = prompts[animal].stem
        assert img["src"] == f"../../img/method-2/{stem}.webp"
        assert (img["width"], img["height"], img["loading"]) == ("224", "224", "lazy")
        assert img["alt"] == prompts[animal].for_method(2)
        assert img.parent["href"] == f"../../img/method-2/{stem}.png"


def test_selector_data_maps_every_thing_and_animal_from_the_cache(built):
    data = built.data
    prompts = load_prompts()
    assert data["things"] == thing_order(prompts) and len(data["things"]) == 90
    assert len(data["animals"]) == 9 and data["methods"] == [1, 2]
    by_key = {(p.thing, p.animal): p for p in prompts}
    holes = {(m, stem) for m, stem in HOLES}
    judged = json.loads((built.cache / "judge.json").read_text())["ratings"]
    rendered = 0
    for thing, row in zip(data["things"], data["cells"], strict=True):
        for animal, entry in zip(data["animals"], row, strict=True):
            prompt = by_key[(thing, animal)]
            stem, *rest = entry  # [stem, prompt per method..., sim label per method...]
            texts, sims = rest[:len(data["methods"])], rest[len(data["methods"]):]
            assert stem == prompt.stem
            assert texts == [prompt.for_method(m) for m in data["methods"]]
            for method, sim in zip(data["methods"], sims, strict=True):
                record = built.cache / f"method-{method}" / f"{stem}.json"
                if thing in THINGS and (method, stem) not in holes:
                    judge = judged[f"method-{method}/{stem}.png"]["sim"]
                    assert sim == (f"sim {json.loads(record.read_text())['sim']:.2f}"
                                   f" · judge {judge:.2f}")
                    for pattern in ("webp", "png"):
                        url = data[pattern].format(method=method, stem=stem)
                        assert (built.out / POST).parent.joinpath(url).resolve().is_file()
                    rendered += 1
                else:
                    assert sim is None
    assert rendered == len(THINGS) * 9 * 2 - len(HOLES) == built.report.renders


def test_the_script_copies_what_python_wrote_and_derives_nothing(built):
    # Python writes each cell's prompt for every method, its sim label and the
    # missing cells' labels; the page's <template> holds the picture markup.
    # The script only copies them, so none of those rules may come back to it.
    script = (TEMPLATES_DIR / "static" / "clipig.js").read_text(encoding="utf-8")
    code = re.sub(r"//[^\n]*", "", script)
    for rule in ("split(", "slice(", "substr", "indexOf(\".\")", "indexOf('.')", "\". \"",
                 "'. '", "sentence", "method === 1", "method == 1", "toFixed", "\"sim ",
                 "'sim ", "not rendered", "createElement", "innerHTML", "224"):
        assert rule not in code, f"clipig.js re-implements a rule: {rule!r}"
    assert built.data["missing"] == [f"{a}: not rendered yet" for a in built.data["animals"]]
    by_key = {(p.thing, p.animal): p for p in load_prompts()}
    methods = built.data["methods"]
    for thing, row in zip(built.data["things"], built.data["cells"], strict=True):
        for animal, entry in zip(built.data["animals"], row, strict=True):
            prompt = by_key[(thing, animal)]
            assert entry[1:1 + len(methods)] == [prompt.for_method(m) for m in methods]
            assert entry[1] != entry[2] or prompt.text == prompt.first_sentence
    pictures = built.post.find("template", id="clipig-selector-pictures")
    assert pictures.find("a").find("img") and pictures.find(class_="missing")
    assert pictures.find("img")["width"] == "224" and pictures.find("img")["loading"] == "lazy"


def test_web_copies_are_webp_at_render_size(built):
    webps = sorted((built.out / "img").glob("method-*/*.webp"))
    assert len(webps) == built.report.renders
    # the best-of images and their winners' short images (the sample keeps all)
    best = sorted((built.out / "img" / "best-of").glob("method-*/*.webp"))
    short = sorted((built.out / "img" / "best-of").glob("method-*/runs/*.webp"))
    assert len(best) == len(short) == built.report.best_of == 2 * 9 * 2
    for path in webps[:5]:
        with Image.open(path) as img:
            assert (img.format, img.size) == ("WEBP", (224, 224))
    assert built.report.webp_bytes > 0 and built.report.png_bytes > 0


def test_webp_is_much_smaller_than_png_for_render_like_images(tmp_path):
    from clipig_gallery.generator.images import encode_webp

    png = tmp_path / "noise.png"
    noisy_image(3).save(png)
    encode_webp(png, tmp_path / "noise.webp")
    assert (tmp_path / "noise.webp").stat().st_size * 4 < png.stat().st_size


def test_ranking_table_has_the_article_layout(built):
    table = built.post.find(class_="ranking").find("table")
    headers = [th.get_text(" ", strip=True) for th in table.find("thead").find_all("th")]
    assert headers == ["snail of harp (method 1)", "penguin of piano (method 1)",
                       "penguin of piano (method 2)"]
    best_of = [td.get_text(" ", strip=True) for td in table.find("thead").find_all("td")]
    assert [t.split(" (")[0] for t in best_of] == ["best of 512", "best of 512", "best of 149"]
    body_rows = table.find("tbody").find_all("tr", recursive=False)
    group = [i for i, tr in enumerate(body_rows) if "group" in (tr.get("class") or [])]
    assert group == [6] and len(body_rows) == 9
    assert [th.get_text() for th in body_rows[6].find_all("th")] == [
        "worst of 512", "worst of 512", "worst of 149"]
    summary = json.loads(
        (built.cache / "ranking/penguin-of-piano/method-2/summary.json").read_text())
    best = sorted((r for r in summary["rows"] if r["group"] == "best"),
                  key=lambda r: -r["initial_sim"])
    cells = [tr.find_all("td")[2] for tr in body_rows[:6]]
    for cell, row in zip(cells, best, strict=True):
        wrapper = cell.find(class_="image-wrapper")
        assert wrapper["id"] in (f"img-penguin-of-piano-{row['run']}",
                                 f"img-penguin-of-piano-{row['run']}-m2")
        assert wrapper.find(class_="left").get_text() == f"#{row['run']}"
        assert wrapper.find(class_="right").get_text() == (
            f"sim: {row['initial_sim']:.2f} → {row['final_sim']:.2f}")
        img = wrapper.find("img")
        assert img["src"].endswith(".webp") and img["loading"] == "lazy" and img["alt"]
    ids = [w["id"] for w in table.find_all(class_="image-wrapper")]
    assert len(ids) == len(set(ids)) == 24


def test_ranking_csvs_are_published(built):
    links = built.post.find(class_="ranking").find_all("a", string=re.compile("csv"))
    assert len(links) == 6
    for link in links:
        published = (built.out / POST).parent.joinpath(link["href"]).resolve()
        relative = published.relative_to(built.out.resolve() / "ranking")
        assert published.read_bytes() == (built.cache / "ranking" / relative).read_bytes()


def test_heatmap_rows_link_to_their_selection(built):
    heatmap = built.post.find(class_="heatmap")
    links = heatmap.find_all("a")
    assert len(links) == 90 * 2
    assert links[0]["href"] == "#thing=accordion&method=1"
    harp = next(a for a in links if a["href"] == "#thing=harp&method=2")
    # Each animal's sim, as the cache records it, to one decimal; "-" where missing.
    values = []
    for prompt in (p for p in load_prompts() if p.thing == "harp"):
        record = built.cache / "method-2" / f"{prompt.stem}.json"
        sim = json.loads(record.read_text())["sim"] if record.exists() else None
        values.append(f"{prompt.animal} {'-' if sim is None else f'{sim:.1f}'}")
    assert "snail -" in values and len(values) == 9  # the hole is in the row
    assert harp.find("title").get_text() == "harp, method 2: " + ", ".join(values)
    assert "of 1620 images rendered" in heatmap.find("figcaption").get_text()


def test_headings_have_ids_and_every_in_text_link_matches(built):
    article = built.post.find("article")
    headings = article.find_all(["h2", "h3"])
    assert len(headings) >= 8 and all(h.get("id") for h in headings)
    ids = {tag["id"] for tag in built.post.find_all(id=True)}
    assert "ranking-experiment" in ids
    fragments = [a["href"][1:] for a in article.find_all("a", href=re.compile("^#"))
                 if "=" not in a["href"]]
    assert fragments and set(fragments) <= ids
    # the conclusion links to the image that ended lowest
    conclusion = article.find("h2", id="conclusion").find_next_siblings("p")
    link = next(a for p in conclusion for a in p.find_all("a", href=re.compile("^#img-")))
    assert link["href"][1:] in ids


def test_figures_are_computed_from_the_summary(built):
    text = built.post.find("article").get_text(" ")
    # sample summary: 0.41 s per image for method 1, 0.82 s for method 2, 810 prompts
    for figure in ("0.41 seconds", "0.82 seconds", "5.5 minutes", "11 minutes", "47 hours",
                   "3.9 days", "NVIDIA H100 80GB HBM3"):
        assert figure in text, figure
    assert "(not measured yet)" not in text and "(not run yet)" not in text


def test_method_configs_shown_are_the_files_rendered(built):
    blocks = built.post.find_all("figure", class_="config")
    assert len(blocks) == 2
    for method, block in zip((1, 2), blocks, strict=True):
        source = (METHODS_DIR / f"method-{method}.yaml").read_text(encoding="utf-8")
        assert block.find("code").get_text() == source
        assert block.find("a")["href"] == f"../../configs/method-{method}.yaml"
        assert f"sample{method}" in block.find("figcaption").get_text()


def test_article_types_no_measured_figure():
    body = (DATA_DIR / "article.md").read_text(encoding="utf-8").split("---", 2)[2]
    prose = re.sub(r"\{\{.*?\}\}", "", body, flags=re.S)
    prose = re.sub(r"\]\([^)]*\)", "]", prose)  # link targets (arXiv numbers) are not figures
    assert not re.search(r"\d+\.\d\d", prose), "a sim typed by hand"
    assert not re.search(r"\d\s*(seconds|minutes|hours|days|years)\b", prose)
    assert "512" not in prose and "149" not in prose


def test_page_weight_is_measured_and_reported(built):
    weight = built.report.weight
    assert weight.html == (built.out / POST).stat().st_size
    assert 0 < weight.html_gzip < weight.html
    assert weight.css and weight.js
    # default selection (one missing) + ranking table + one history poster per method
    assert weight.image_count == 8 + 24 + 2
    assert any(line.startswith("page weight:") for line in built.report.lines())


def test_build_never_imports_torch(tmp_path):
    cache = make_cache(tmp_path / "cache", things=("harp",), holes=())
    script = (
        "import sys\n"
        "from clipig_gallery.generator.site import build_site\n"
        f"build_site({str(cache)!r}, {str(tmp_path / 'site')!r})\n"
        "from clipig_gallery.generator.cli import site, serve\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=REPO)


def _mtimes(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns
            for p in root.rglob("*") if p.is_file()}


def test_rebuild_touches_only_what_changed(tmp_path):
    cache = make_cache(tmp_path / "cache", things=("harp", "piano"), holes=HOLES[:1],
                       best_of=True)
    out = tmp_path / "site"
    first = build_site(cache, out)
    # renders, ranking table, best-of images and the winners' short images
    assert first.best_of == 2 * 9 * 2
    assert first.webp_made == first.renders + 24 + 2 * first.best_of
    before = _mtimes(out)

    again = build_site(cache, out)
    assert (again.webp_made, again.copied, again.pages_written) == (0, 0, [])
    assert _mtimes(out) == before

    # one new render: its PNG copy, its WebP, the page (new data) and nothing else
    snail = [p for p in load_prompts() if p.stem == "snail-of-harp"]
    write_renders(cache, snail, 2)
    (cache / "method-2" / "sims.csv").touch()
    third = build_site(cache, out)
    assert third.webp_made == 1
    changed = {k for k, v in _mtimes(out).items() if before.get(k) != v}
    assert changed == {"img/method-2/snail-of-harp.png", "img/method-2/snail-of-harp.webp",
                       "img/method-2/sims.csv", POST, ".clipig-build.json"}

    # a render that disappears from the cache disappears from the site
    for suffix in (".png", ".json"):
        (cache / "method-1" / f"cat-of-piano{suffix}").unlink()
    fourth = build_site(cache, out)
    assert fourth.removed == 2
    assert not (out / "img/method-1/cat-of-piano.webp").exists()


def test_site_works_at_another_depth_and_base_url(tmp_path):
    cache = make_cache(tmp_path / "cache", things=("harp",), holes=())
    source = (DATA_DIR / "article.md").read_text(encoding="utf-8")
    article = tmp_path / "article.md"
    article.write_text(source.replace("permalink: /2021/clipig-animal-transfer/",
                                      "permalink: /a/b/c/post.html"), encoding="utf-8")
    out = tmp_path / "site"
    report = build_site(cache, out, "/deep/project/", article=article)
    assert report.post == "a/b/c/post.html"
    assert check_site(out, "/deep/project/") == []
    post = soup_of(out / "a/b/c/post.html")
    assert post.find("link", rel="stylesheet")["href"].startswith("../../../assets/clipig.css?v=")


def test_a_config_the_article_quotes_that_is_not_valid_yaml_is_named(tmp_path):
    import shutil

    cache = make_cache(tmp_path / "cache", things=("harp",), holes=())
    data = tmp_path / "data"
    shutil.copytree(DATA_DIR, data)
    config = data / "methods" / "method-1.yaml"
    config.write_text(config.read_text(encoding="utf-8") + "when: 2021-02-30\n")
    from clipig_gallery.generator.article import ArticleError

    with pytest.raises(ArticleError) as info:  # PyYAML alone raised a ValueError
        build_site(cache, tmp_path / "site", data_dir=data)
    assert str(info.value).startswith(f"config_value: {config.resolve()} is not valid YAML: "
                                      "cannot read '2021-02-30' as a YAML timestamp")


def test_cli_builds_and_reports(tmp_path):
    cache = make_cache(tmp_path / "cache", things=("harp",), holes=())
    runner = CliRunner()
    result = runner.invoke(site_command, ["--cache", cache, "--out", tmp_path / "site",
                                          "--base-url", "/repo/"])
    assert result.exit_code == 0, result.output
    assert "page weight:" in result.output and "WebP" in result.output
    result = runner.invoke(site_command, ["--out", tmp_path / "x"],
                           env={"CLIPIG_CACHE": str(tmp_path / "nowhere")})
    assert result.exit_code != 0 and "not found" in result.output
    assert site_command.help


def test_cli_reports_a_broken_cache_file(tmp_path):
    cache = make_cache(tmp_path / "cache", things=("harp",), holes=())
    (cache / "summary.json").write_text("{not json", encoding="utf-8")
    result = CliRunner().invoke(site_command, ["--cache", cache, "--out", tmp_path / "site"])
    assert result.exit_code != 0 and "summary.json" in result.output


@pytest.mark.parametrize("key, value, message", [
    ("sim", "high", "sim must be a finite number or null, not 'high'"),
    ("sim", float("inf"), "sim must be a finite number or null, not inf"),
    ("sim", float("nan"), "sim must be a finite number or null, not nan"),
    ("seconds", None, "seconds must be a finite number, not None"),
    ("seconds", -2.5, "seconds must be at least 0, not -2.5"),
    ("method", True, "method must be an integer or null, not True"),
    ("prompt", ["a cat"], "prompt must be a string, not ['a cat']"),
])
def test_a_record_field_of_the_wrong_type_stops_the_build_naming_file_and_key(
        tmp_path, key, value, message):
    cache = make_cache(tmp_path / "cache", things=("harp",), holes=())
    record = cache / "method-1" / "cat-of-harp.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), key: value}))
    result = CliRunner().invoke(site_command, ["--cache", cache, "--out", tmp_path / "site"])
    assert result.exit_code == 1 and result.exception.__class__ is SystemExit, result.output
    assert f"{record}: {message}" in result.output
    assert not (tmp_path / "site" / POST).exists()


@pytest.mark.parametrize("damage", ["truncated", "not an image"])
def test_a_render_that_does_not_decode_stops_the_build_naming_it(tmp_path, damage):
    cache = make_cache(tmp_path / "cache", things=("harp",), holes=())
    png = cache / "method-2" / "cat-of-harp.png"
    whole = png.read_bytes()
    png.write_bytes(whole[: len(whole) // 3] if damage == "truncated" else b"<html>")
    result = CliRunner().invoke(site_command, ["--cache", cache, "--out", tmp_path / "site"])
    assert result.exit_code == 1 and result.exception.__class__ is SystemExit, result.output
    assert f"{png}: the image does not decode (" in result.output
    assert "`render` (or `rank`, `render --best-of`) renders it again" in result.output
    assert not (tmp_path / "site" / POST).exists()


def test_preview_server_serves_under_the_project_path(built):
    server = make_server(built.out, 0, BASE, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        with urllib.request.urlopen(f"http://{host}:{port}{BASE}2021/clipig-animal-transfer/") as r:
            assert b"CLIPig animal transfer" in r.read()
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(f"http://{host}:{port}/2021/clipig-animal-transfer/")
        assert error.value.code == 404 and b"Not found" in error.value.read()
    finally:
        server.shutdown()
        server.server_close()


def test_serve_on_a_port_in_use_names_the_port(built):
    from clipig_gallery.generator.cli import serve as serve_command

    taken = make_server(built.out, 0, BASE, quiet=True)
    try:
        port = taken.server_address[1]
        result = CliRunner().invoke(serve_command, ["--out", built.out, "--port", port])
        assert result.exit_code == 1, result.output
        assert f"Error: port {port} on 127.0.0.1 is in use: pass another --port" in result.output
    finally:
        taken.server_close()


def test_building_needs_no_environment_beyond_the_cache(tmp_path, monkeypatch):
    # The default cache comes from $CLIPIG_CACHE; a build with it set works from anywhere.
    cache = make_cache(tmp_path / "cache", things=("harp",), holes=())
    for name in [n for n in os.environ if n.startswith("CLIPIG_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CLIPIG_CACHE", str(cache))
    result = CliRunner().invoke(site_command, [])
    assert result.exit_code == 0, result.output
    # The page was built from that cache: its harp images, none of another thing.
    post = soup_of(tmp_path / "site" / POST)
    data = json.loads(post.find("script", id="clipig-selector-data").string)
    sims = [(thing, sim) for thing, row in zip(data["things"], data["cells"], strict=True)
            for entry in row for sim in entry[3:] if sim is not None]
    assert len(sims) == 9 * 2 and {thing for thing, _ in sims} == {"harp"}


def test_ranking_summaries_are_checked(tmp_path):
    from clipig_gallery.generator.cachedata import CacheError, load_rankings

    cache = make_cache(tmp_path / "cache", things=("harp",), holes=())
    summary_path = cache / "ranking/snail-of-harp/method-1/summary.json"
    summary = json.loads(summary_path.read_text())
    (summary_path.parent / "final.csv").unlink()
    column = load_rankings(cache)["snail-of-harp/1"]
    assert set(column.csv) == {"initial"}  # no link to a CSV that is not there
    assert [r.initial_sim for r in column.worst] == sorted(r.initial_sim for r in column.worst)

    summary["rows"][0]["image"] = "../../../../summary.json"
    summary_path.write_text(json.dumps(summary))
    with pytest.raises(CacheError, match="leaves the ranking folder"):
        load_rankings(cache)
    summary["rows"][0]["image"] = "continued/not-there.png"
    summary_path.write_text(json.dumps(summary))
    with pytest.raises(CacheError, match="continued image"):
        load_rankings(cache)


def test_an_empty_cache_builds_a_page_that_says_so(tmp_path):
    (tmp_path / "cache").mkdir()
    report = build_site(tmp_path / "cache", tmp_path / "site")
    assert report.renders == 0 and check_site(tmp_path / "site") == []
    post = soup_of(tmp_path / "site" / POST)
    assert len(post.find(id="selector").find_all(class_="missing")) == 9
    text = " ".join(post.find("article").get_text(" ").split())
    assert "have not been timed yet" in text and "(not measured yet)" not in text
    note = " ".join(post.find("p", class_="note").get_text().split())
    assert note == ("Not run yet: snail-of-harp (method 1), penguin-of-piano (method 1), "
                    "penguin-of-piano (method 2).")
    assert post.find(class_="ranking") is None and "(not run yet)" not in text


def test_ranking_text_quotes_the_epochs_that_ran(tmp_path):
    """The short and continued runs' epochs come from the ranking summary."""
    from clipig_gallery.core.prompts import load_prompts
    from clipig_gallery.generator.site import build_site

    cache = write_sample_cache(tmp_path / "cache", load_prompts()[:9])
    for summary in (cache / "ranking").rglob("summary.json"):
        data = json.loads(summary.read_text())
        data["epochs"] = {"short": 7, "detail": 9}
        summary.write_text(json.dumps(data))
    report = build_site(cache, tmp_path / "site")
    text = BeautifulSoup((report.out / report.post).read_text(), "html.parser").get_text(" ")
    text = re.sub(r"\s+", " ", text)
    assert "cut short to 7 epochs" in text and "another 9 epochs" in text
