"""Optimisation histories on the site: read, copied, stripped, named only where asked for.

Everything here is checked on files and parsed HTML; what a reader sees when
a history plays is in test_site_history_browser.py.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from types import SimpleNamespace

import pytest
from bs4 import BeautifulSoup
from conftest import built_site
from PIL import Image

from clipig_gallery.core.layout import (
    HISTORY_SUFFIX,
    best_of_root,
    history_path,
    png_path,
    record_path,
)
from clipig_gallery.core.prompts import load_prompts
from clipig_gallery.generator.histories import (
    STRIP_FRAMES,
    STRIP_GAP,
    STRIP_HEIGHT,
    HistoryError,
    make_strip,
    read_history,
    strip_indices,
)
from clipig_gallery.generator.linkcheck import check_site
from clipig_gallery.generator.sample import (
    HISTORY_FRAMES,
    HISTORY_MS,
    NO_HISTORY,
    write_history,
    write_sample_cache,
)
from clipig_gallery.generator.sample import main as sample_main
from clipig_gallery.generator.site import build_site

THINGS = ("harp", "piano")  # the sample's best of N covers both
POST = "2021/clipig-animal-transfer/index.html"
PROMPTS = [p for p in load_prompts() if p.thing in THINGS]
FIRST, MIDDLE, LAST = HISTORY_MS
PLAY_MS = FIRST + MIDDLE * (HISTORY_FRAMES - 2) + LAST
STRIP_SIZE = (STRIP_FRAMES * STRIP_HEIGHT + (STRIP_FRAMES - 1) * STRIP_GAP, STRIP_HEIGHT)


def _build(root: Path, change=None, **sample) -> SimpleNamespace:
    """The sample cache of THINGS (``change``d before the build) and its site."""
    cache = write_sample_cache(root / "cache", PROMPTS, rankings=False, **sample)
    if change is not None:
        change(cache)
    return built_site(cache, root / "site", POST)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("histories"))


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("no-histories"), history=False)


def _images(cache: Path):
    """(cache root, site folder, method, stem) of every gallery and best-of image."""
    for root, folder in ((cache, "img"), (best_of_root(cache), "img/best-of")):
        for png in sorted(root.glob("method-*/*.png")):
            yield root, folder, int(png.parent.name.removeprefix("method-")), png.stem


def _site_history(folder: str, method: int, stem: str) -> str:
    return f"{folder}/method-{method}/history/{stem}{HISTORY_SUFFIX}"


def _site_strip(folder: str, method: int, stem: str) -> str:
    return f"{folder}/method-{method}/history/{stem}.strip.webp"


# --- reading a history ------------------------------------------------------------------


def _animated(path: Path, durations: list[int], lossless: bool = False) -> Path:
    frames = [Image.new("RGB", (224, 224), (i * 9 % 256, 90, 200 - i * 7 % 200))
              for i in range(len(durations))]
    frames[0].save(path, "WEBP", save_all=True, append_images=frames[1:], duration=durations,
                   loop=1, quality=70, lossless=lossless, allow_mixed=False)
    return path


def _pillow_timing(path: Path) -> tuple[int, int]:
    """(frames, ms) the slow way: Pillow decodes every frame to learn its duration."""
    with Image.open(path) as image:
        total = 0
        for index in range(image.n_frames):
            image.seek(index)
            image.load()
            total += image.info["duration"]
        return image.n_frames, total


@pytest.mark.parametrize("durations, lossless", [
    ([400, *[100] * 22, 900], False),  # the renderer's: 24 frames, start and end held longer
    ([200, 60, 60, 60, 300], True),  # the sample's
    ([500, 250], False),
])
def test_the_frame_headers_give_what_pillow_decodes(tmp_path, durations, lossless):
    path = _animated(tmp_path / "h.history.webp", durations, lossless)
    history = read_history(path)
    assert (history.frames, history.ms) == _pillow_timing(path) == (len(durations),
                                                                   sum(durations))
    assert history.size == path.stat().st_size and history.source == path


def test_frames_too_short_to_show_count_as_browsers_show_them(tmp_path):
    # Browsers hold a frame that asks for 10 ms or less for 100 ms.
    assert read_history(_animated(tmp_path / "h.webp", [0, 10, 11, 500])).ms == 100 + 100 + 11 + 500


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-300])


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is no image at all" * 40)


def _still(path: Path) -> None:
    Image.new("RGB", (224, 224), "red").save(path, "WEBP")


def _chunk_past_the_end(path: Path) -> None:
    data = bytearray(path.read_bytes())
    at = data.index(b"ANMF")
    data[at + 4:at + 8] = struct.pack("<I", len(data))
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("spoil, message", [
    (_garbage, "not a WebP file"),
    (_truncated, "ends 300 bytes early"),
    (_still, "not an animated WebP"),
    (_chunk_past_the_end, "runs past the end"),
])
def test_an_unreadable_history_is_refused_naming_the_file(tmp_path, spoil, message):
    path = _animated(tmp_path / "cat.history.webp", [100, 100, 100])
    spoil(path)
    with pytest.raises(HistoryError, match=re.escape(str(path)) + ".*" + message):
        read_history(path)


@pytest.mark.parametrize("frames, expected", [(24, [0, 8, 15, 23]), (5, [0, 1, 3, 4]),
                                              (2, [0, 0, 1, 1]), (1, [0, 0, 0, 0])])
def test_the_strip_shows_the_start_the_thirds_and_the_end(frames, expected):
    assert strip_indices(frames) == expected


# --- the sample's histories -------------------------------------------------------------


def test_the_sample_writes_histories_as_the_renderer_does(built):
    for root, _, method, stem in _images(built.cache):
        png = png_path(root, method, stem)
        animal = json.loads(record_path(png).read_text())["animal"]
        path = history_path(png)
        assert path.is_file() == (animal != NO_HISTORY[method]), path
        if not path.is_file():
            continue
        with Image.open(path) as image, Image.open(png) as final:
            assert (image.format, image.size, image.n_frames) == ("WEBP", (224, 224),
                                                                  HISTORY_FRAMES)
            assert image.info["loop"] == 1  # plays once
            image.seek(image.n_frames - 1)
            # it ends on the image (the flat sample's histories are lossless)
            assert image.convert("RGB").tobytes() == final.convert("RGB").tobytes()
        assert read_history(path).ms == PLAY_MS


def test_the_sample_leaves_histories_out_when_told(tmp_path, capsys):
    plain = write_sample_cache(tmp_path / "plain", PROMPTS[:9], rankings=False,
                               best_of=False, history=False)
    assert not list(plain.rglob(f"*{HISTORY_SUFFIX}"))
    sample_main([str(tmp_path / "cli"), "--things", "1", "--no-history", "--no-best-of"])
    assert "with their histories" not in capsys.readouterr().out
    assert list((tmp_path / "cli").rglob("*.png")) and not list(
        (tmp_path / "cli").rglob(f"*{HISTORY_SUFFIX}"))
    # a render written again without one loses the one it had, as the renderer does
    cache = write_sample_cache(tmp_path / "again", PROMPTS[:9], rankings=False, best_of=False)
    assert list(cache.rglob(f"*{HISTORY_SUFFIX}"))
    write_sample_cache(cache, PROMPTS[:9], rankings=False, best_of=False, history=False)
    assert not list(cache.rglob(f"*{HISTORY_SUFFIX}"))


# --- the built site ---------------------------------------------------------------------


def test_histories_are_copied_for_the_images_that_have_one(built):
    copied = 0
    for root, folder, method, stem in _images(built.cache):
        source = history_path(png_path(root, method, stem))
        site = built.out / _site_history(folder, method, stem)
        assert site.is_file() == source.is_file(), site
        if source.is_file():
            assert site.read_bytes() == source.read_bytes()
            copied += 1
    # every image but one animal's per method and gallery has one
    assert copied == built.report.histories == 2 * 2 * (len(PROMPTS) - 2)
    # nothing that lists a method's images counts them
    assert not list(built.out.glob(f"img/method-*/*{HISTORY_SUFFIX}"))
    assert len(list(built.out.glob("img/method-*/*.webp"))) == built.report.renders


def test_each_history_has_a_four_frame_strip(built):
    strips = sorted(built.out.rglob("*.strip.webp"))
    assert len(strips) == built.report.histories == built.report.strips_made
    for root, folder, method, stem in _images(built.cache):
        source = history_path(png_path(root, method, stem))
        strip = built.out / _site_strip(folder, method, stem)
        assert strip.is_file() == source.is_file()
        if source.is_file():  # stamped as made from it
            assert strip.stat().st_mtime_ns == source.stat().st_mtime_ns
    with Image.open(strips[0]) as image:
        assert (image.format, image.size) == ("WEBP", STRIP_SIZE)
        assert getattr(image, "n_frames", 1) == 1


COLOURS = [(220, 20, 20), (20, 200, 20), (20, 20, 220), (230, 230, 20), (20, 220, 220),
           (220, 20, 220), (240, 240, 240)]


def test_a_strip_shows_the_start_the_thirds_and_the_end(tmp_path):
    history = tmp_path / "h.history.webp"
    frames = [Image.new("RGB", (224, 224), colour) for colour in COLOURS]
    frames[0].save(history, "WEBP", save_all=True, append_images=frames[1:], loop=1,
                   duration=[100] * len(frames), quality=90)
    make_strip(history, tmp_path / "h.strip.webp")
    with Image.open(tmp_path / "h.strip.webp") as image:
        strip = image.convert("RGB")
    assert strip.size == STRIP_SIZE
    step = STRIP_HEIGHT + STRIP_GAP
    shown = [strip.getpixel((i * step + STRIP_HEIGHT // 2, STRIP_HEIGHT // 2))
             for i in range(STRIP_FRAMES)]
    for pixel, wanted in zip(shown, strip_indices(len(frames)), strict=True):
        assert max(abs(a - b) for a, b in zip(pixel, COLOURS[wanted], strict=True)) < 24, (
            pixel, wanted)
    assert strip_indices(len(frames)) == [0, 2, 4, 6]


def test_the_page_names_histories_only_in_links_and_data(built):
    soup = built.soup
    # nothing a browser fetches by itself: no source, no preload or prefetch
    sources = [t.get(a) for t in soup.find_all(True) for a in ("src", "srcset", "poster")
               if t.get(a)]
    assert sources and not [u for u in sources if "/history/" in u]
    for link in soup.find_all("link"):
        assert "/history/" not in link.get("href", ""), link
        assert not {"preload", "prefetch"} & set(link.get("rel", [])), link
    # the default selection (harp, method 2): a control per image, hidden without one
    figures = soup.find(id="selector").find_all("figure")
    animals = [f.find(class_="animal").get_text() for f in figures]
    for animal, figure in zip(animals, figures, strict=True):
        stem = f"{animal}-of-harp"
        control = figure.find("a", class_="history-control")
        assert figure.find("a", attrs={"data-history-stage": True})["href"].endswith(".png")
        if animal == NO_HISTORY[2]:
            assert control.has_attr("hidden") and not control.has_attr("href")
            continue
        assert not control.has_attr("hidden")
        assert control["href"] == f"../../{_site_history('img', 2, stem)}"
        assert control["data-history-strip"] == f"../../{_site_strip('img', 2, stem)}"
        assert control["data-history-ms"] == str(PLAY_MS)
        assert f"how the {animal} image took shape" in control.get_text()
    # the script's data: the same, for every cell of both views
    history = built.data["history"]
    assert history["webp"] == "../../img/method-{method}/history/{stem}.history.webp"
    for view, data, folder in (("first", history, "img"),
                               ("best", built.data["best"]["history"], "img/best-of")):
        for thing, row in zip(built.data["things"], data["ms"], strict=True):
            for animal, cell in zip(built.data["animals"], row or [None] * 9, strict=True):
                for m, ms in zip(built.data["methods"], cell or [0, 0], strict=True):
                    source = built.out / _site_history(folder, m, f"{animal}-of-{thing}")
                    assert (ms == PLAY_MS) == source.is_file() and ms in (0, PLAY_MS), (
                        view, thing, animal, m)
    assert check_site(built.out) == []


def test_histories_are_not_in_the_page_weight(built, plain):
    # The only images added are the article figures' posters: the saved images
    # (the selector's own WebP copies), one per method; no history, no strip.
    soup = BeautifulSoup((built.out / POST).read_text(), "html.parser")
    posters = [img["src"] for img in soup.select("figure.history-figure img")]
    assert len(posters) == 2 and not any("/history/" in src for src in posters)
    assert not any("/history/" in img.get("src", "") for img in soup.find_all("img"))
    assert built.report.weight.image_count == plain.report.weight.image_count + 2
    poster_bytes = sum((built.out / POST).parent.joinpath(src).resolve().stat().st_size
                       for src in posters)
    assert built.report.weight.images == plain.report.weight.images + poster_bytes
    average = sum(p.stat().st_size for p in built.out.rglob(f"*{HISTORY_SUFFIX}")) // (
        built.report.histories)
    line = built.report.history_line()
    assert line.startswith(f"histories: {built.report.histories}, average {average / 1024:.1f} KB")
    assert line in built.report.lines()


def _figure_sims(soup: BeautifulSoup) -> list[tuple[str, str]]:
    """(history URL, sim in the caption) of each of the article's history figures."""
    found = []
    for figure in soup.find_all("figure", class_="history-figure"):
        sim = re.search(r"Its sim, ([\d.]+),", figure.find("figcaption").get_text()).group(1)
        found.append((figure.find("a", class_="history-box")["href"], sim))
    return found


def _best_with_history(cache: Path, method: int) -> tuple[str, float]:
    sims = {png.stem: json.loads(record_path(png).read_text())["sim"]
            for png in cache.glob(f"method-{method}/*.png") if history_path(png).is_file()}
    return min(sims.items(), key=lambda item: (-item[1], item[0]))


def test_each_method_section_shows_its_best_image_with_a_history(built, tmp_path):
    shown = _figure_sims(built.soup)
    expected = [_best_with_history(built.cache, m) for m in (1, 2)]
    assert shown == [(f"../../{_site_history('img', m, stem)}", f"{sim:.2f}")
                     for m, (stem, sim) in zip((1, 2), expected, strict=True)]
    # in its method's section, and linking to its selection
    for method, figure in zip((1, 2), built.soup.find_all("figure", class_="history-figure"),
                              strict=True):
        assert figure.find_previous("h3").get_text().startswith(f"Method {method}")
        stem = expected[method - 1][0]
        assert figure.find("figcaption").find("a")["href"] == (
            f"#thing={stem.split('-of-')[1]}&method={method}")
        # the saved image shows; its history is fetched only when asked
        (poster,) = figure.find_all("img")
        assert poster["src"] == f"../../img/method-{method}/{stem}.webp"
    # the best image loses its history: the next best with one is shown
    (stem, _), = [expected[0]]

    def drop(cache: Path) -> None:
        history_path(png_path(cache, 1, stem)).unlink()

    again = _build(tmp_path, change=drop)
    runner_up = _best_with_history(again.cache, 1)
    assert runner_up[0] != stem
    assert _figure_sims(again.soup)[0] == (f"../../{_site_history('img', 1, runner_up[0])}",
                                           f"{runner_up[1]:.2f}")


def test_a_cache_without_histories_builds_the_page_as_before(plain):
    soup = plain.soup
    assert "history" not in plain.data and "history" not in plain.data["best"]
    assert soup.find(class_="history-control") is None
    assert soup.find(attrs={"data-history-stage": True}) is None
    assert soup.find("template", id="clipig-history-parts") is None
    pictures = soup.find("template", id="clipig-selector-pictures")
    assert "history" not in str(pictures)
    assert soup.find("figure", class_="history-figure") is None
    assert "took shape" not in soup.get_text()
    assert not list(plain.out.rglob("history"))
    assert plain.report.history_line() == "histories: none" and plain.report.warnings == []
    assert check_site(plain.out) == []


def _frames_spoiled(path: Path) -> None:
    """The container stays sound, every frame's image data is zeros."""
    data = bytearray(path.read_bytes())
    at = 0
    while (at := data.find(b"ANMF", at)) >= 0:
        size = struct.unpack("<I", data[at + 4:at + 8])[0]
        start = at + 8 + 16 + 8  # frame header, then the image chunk's header
        data[start:at + 8 + size] = bytes(at + 8 + size - start)
        at += 8 + size
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("spoil, message", [
    (_garbage, "not a WebP file"),
    (_truncated, "a truncated file"),
    (_frames_spoiled, "its frames do not decode"),
])
def test_a_broken_history_is_left_out_with_a_warning(tmp_path, spoil, message):
    broken = png_path(tmp_path / "cache", 2, "pig-of-harp")

    def spoiling(cache: Path) -> None:
        spoil(history_path(broken))

    site = _build(tmp_path, change=spoiling)
    (warning,) = site.report.warnings
    assert warning.startswith(f"{history_path(broken)}: ") and message in warning
    assert warning.endswith("the image is shown without its history")
    assert f"warning: {warning}" in site.report.lines()
    # shown as an image without one: no copy, no strip, no control, no data
    assert not (site.out / _site_history("img", 2, "pig-of-harp")).exists()
    assert not (site.out / _site_strip("img", 2, "pig-of-harp")).exists()
    pig = site.soup.find(id="selector").find_all("figure")[site.data["animals"].index("pig")]
    assert pig.find("a", class_="history-control").has_attr("hidden")
    row = site.data["history"]["ms"][site.data["things"].index("harp")]
    assert row[site.data["animals"].index("pig")] == [PLAY_MS, 0]
    assert site.report.histories == 2 * 2 * (len(PROMPTS) - 2) - 1
    assert check_site(site.out) == []


def _mtimes(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns
            for p in root.rglob("*") if p.is_file()}


def test_a_rebuild_remakes_only_the_strips_of_changed_histories(tmp_path):
    site = _build(tmp_path)
    before = _mtimes(site.out)
    again = build_site(site.cache, site.out)
    assert (again.strips_made, again.copied, again.pages_written) == (0, 0, [])
    assert _mtimes(site.out) == before

    # one history written again: its copy and its strip, nothing else
    png = png_path(site.cache, 1, "pig-of-piano")
    write_history(png, seed=99)
    third = build_site(site.cache, site.out)
    assert (third.strips_made, third.copied, third.pages_written) == (1, 1, [])
    changed = {k for k, v in _mtimes(site.out).items() if before.get(k) != v}
    assert changed == {_site_history("img", 1, "pig-of-piano"),
                       _site_strip("img", 1, "pig-of-piano")}

    # one history gone from the cache: gone from the site, and from the page
    history_path(png).unlink()
    fourth = build_site(site.cache, site.out)
    assert fourth.removed == 2 and fourth.pages_written == [POST]
    assert not (site.out / _site_history("img", 1, "pig-of-piano")).exists()
    assert not (site.out / _site_strip("img", 1, "pig-of-piano")).exists()


def test_the_link_checker_follows_a_controls_strip(built, tmp_path):
    page = (built.out / POST).read_text(encoding="utf-8")
    wrong = page.replace(".strip.webp", ".strips.webp", 1)
    (tmp_path / "2021/clipig-animal-transfer").mkdir(parents=True)
    (tmp_path / POST).write_text(wrong, encoding="utf-8")
    problems = check_site(tmp_path)
    assert any("data-history-strip=" in p and ".strips.webp" in p for p in problems)
