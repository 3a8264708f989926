"""Optimisation histories in a real browser: played on hover, focus and tap, never before.

Headless Chromium through Playwright, as in test_site_browser.py (whose server
and colour helpers this reuses). Here the browser is launched without a
persistent profile, so each test can open a context of its own: a touch
screen, or a reader who asked for reduced motion.

The sample's histories play for HISTORY_MS in all (first, middle frames,
last), well under a second, so a test waits for a play to end instead of
shortening it.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_site_browser import ARGS, BASE, CHROMIUM, COLOURS, POST, _contrast, _serve

from clipig_gallery.core.layout import best_of_root, history_path, png_path
from clipig_gallery.core.prompts import load_prompts
from clipig_gallery.generator.sample import (
    HISTORY_FRAMES,
    HISTORY_MS,
    NO_HISTORY,
    write_sample_cache,
)
from clipig_gallery.generator.site import build_site

THINGS = ("harp", "piano")  # the sample's best of N covers both
PROMPTS = {(p.thing, p.animal): p for p in load_prompts()}
ANIMALS = list(dict.fromkeys(p.animal for p in PROMPTS.values()))
FIRST, MIDDLE, LAST = HISTORY_MS
PLAY_MS = FIRST + MIDDLE * (HISTORY_FRAMES - 2) + LAST


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("history-browser")
    cache = write_sample_cache(root / "cache", [p for p in load_prompts() if p.thing in THINGS],
                               rankings=False)
    report = build_site(cache, root / "site", BASE)
    server, url = _serve(root / "site")
    yield SimpleNamespace(cache=cache, out=root / "site", report=report, url=url + POST)
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def chromium():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found (see test_site_browser.py)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=ARGS)
        yield browser
        browser.close()


class Reader:
    """A fresh context and page, with every request the page made from the start."""

    def __init__(self, chromium, url: str, **context):
        self.context = chromium.new_context(viewport={"width": 1100, "height": 900}, **context)
        # A page that is an image (where a click on one leads) has no icon link,
        # so Chromium may ask the server for /favicon.ico, which it lacks: when it
        # asks depends on timing, and its 404 would land in ``errors``.
        self.context.route("**/favicon.ico", lambda route: route.fulfill(status=204))
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: m.type in ("error", "warning") and self.errors.append(
            m.text))
        with self.page.expect_console_message(lambda m: m.text.startswith("CLIPig keywords")):
            self.page.goto(url)

    def histories_fetched(self) -> list[str]:
        return [u for u in self.requests if "/history/" in u]

    def figure(self, animal: str) -> str:
        """A CSS selector of the selector's figure of ``animal``."""
        return f"#selector li:nth-child({ANIMALS.index(animal) + 1}) figure"

    def selector_in_view(self) -> None:
        self.page.evaluate("() => document.getElementById('selector').scrollIntoView()")

    def watch(self, root: str) -> None:
        """Log every history overlay put into or taken out of ``root``, with times."""
        self.page.evaluate("""root => {
            window.plays = [];
            new MutationObserver(records => records.forEach(r => {
                r.addedNodes.forEach(n => n.classList && n.classList.contains('history-frame')
                    && plays.push({src: n.getAttribute('src'), added: performance.now()}));
                r.removedNodes.forEach(n => {
                    const src = n.getAttribute && n.getAttribute('src');
                    const play = plays.find(p => p.src === src);
                    if (play) play.removed = performance.now();
                });
            })).observe(document.querySelector(root), {childList: true, subtree: true});
        }""", root)

    def wait_for_plays(self, count: int) -> list[dict]:
        """Wait until ``count`` plays have begun and ended; every play so far."""
        self.page.wait_for_function(f"() => plays.length >= {count} && plays.every(p => p.removed)",
                                    timeout=10_000)
        return self.page.evaluate("() => plays")

    def close(self) -> None:
        assert self.errors == []
        self.context.close()


def _stem(thing: str, animal: str) -> str:
    return PROMPTS[(thing, animal)].stem


def _has_history(cache: Path, method: int, stem: str, best: bool = False) -> bool:
    return history_path(png_path(best_of_root(cache) if best else cache, method, stem)).is_file()


# Each figure's control: None where hidden (and not drawn: a style that showed a
# hidden control would come back as "drawn though hidden"), else its href, play
# time and whether it is drawn.
CONTROLS = """() => Array.from(document.querySelectorAll('#selector figure'), f => {
    const c = f.querySelector('a.history-control');
    const drawn = c.getClientRects().length > 0;
    if (c.hidden) return drawn ? 'drawn though hidden' : null;
    return [c.getAttribute('href'), c.getAttribute('data-history-ms'), drawn];
})"""


def _expected_controls(cache: Path, thing: str, method: int, best: bool = False) -> list:
    folder = f"../../img/{'best-of/' if best else ''}method-{method}/history"
    return [[f"{folder}/{_stem(thing, a)}.history.webp", str(PLAY_MS), True]
            if _has_history(cache, method, _stem(thing, a), best) else None for a in ANIMALS]


def test_the_first_load_fetches_no_history(chromium, site):
    reader = Reader(chromium, site.url)
    page = reader.page
    height = page.evaluate("() => document.body.scrollHeight")
    for y in range(0, height, 700):  # every lazy image in view once
        page.evaluate(f"() => window.scrollTo(0, {y})")
    page.wait_for_load_state("networkidle")
    assert reader.requests and any("/img/method-2/" in u for u in reader.requests)
    assert reader.histories_fetched() == []
    assert not [u for u in reader.requests if u.endswith((".history.webp", ".strip.webp"))]
    # ... although the page offers them: a control per cell that has one, two figures
    assert page.locator("#selector a.history-control:not([hidden])").count() == 8
    assert page.locator("figure.history-figure").count() == 2
    reader.close()


def test_hovering_an_image_plays_its_history_once_then_again(chromium, site):
    reader = Reader(chromium, site.url)
    page = reader.page
    reader.selector_in_view()
    stage = reader.figure("cat") + " a[data-history-stage]"
    reader.watch("#selector")
    page.hover(stage + " img")
    (play,) = reader.wait_for_plays(1)
    assert play["src"].startswith("blob:")
    assert play["removed"] - play["added"] >= PLAY_MS  # taken away after the play, not before
    wanted = f"/img/method-2/history/{_stem('harp', 'cat')}.history.webp"
    assert reader.histories_fetched() == [site.url.split(POST)[0] + wanted[1:]]
    # the image is shown again, and the object URL is given back
    assert page.locator(stage + " img").count() == 1
    assert page.evaluate("src => fetch(src).then(() => 'open', () => 'revoked')",
                         play["src"]) == "revoked"
    assert reader.errors == ["Failed to load resource: net::ERR_FILE_NOT_FOUND"]  # that fetch
    reader.errors.clear()
    # pointing at it again plays it again, from the file fetched the first time
    page.mouse.move(5, 5)
    page.hover(stage + " img")
    first, second = reader.wait_for_plays(2)
    assert second["src"].startswith("blob:") and second["src"] != first["src"]
    assert len(reader.histories_fetched()) == 1
    reader.close()


def test_keyboard_focus_plays_the_history(chromium, site):
    reader = Reader(chromium, site.url)
    page = reader.page
    reader.selector_in_view()
    reader.watch("#selector")
    page.focus("button[data-view-toggle]")
    page.keyboard.press("Tab")  # to the first animal's image
    assert page.evaluate("() => document.activeElement.matches('[data-history-stage]')")
    (play,) = reader.wait_for_plays(1)
    assert play["src"].startswith("blob:")
    assert reader.histories_fetched()[0].endswith(
        f"/method-2/history/{_stem('harp', ANIMALS[0])}.history.webp")
    page.keyboard.press("Tab")  # on to its control: focusing that plays nothing
    assert page.evaluate("() => document.activeElement.classList.contains('history-control')")
    page.keyboard.press("Enter")  # which plays it when pressed
    reader.wait_for_plays(2)
    assert page.url == site.url  # in place: the link was not followed
    reader.close()


def test_tapping_the_control_plays_on_a_touch_screen(chromium, site):
    reader = Reader(chromium, site.url, has_touch=True)
    page = reader.page
    reader.selector_in_view()
    reader.watch("#selector")
    control = reader.figure("pig") + " a.history-control"
    assert page.is_visible(control)
    page.tap(control)
    (play,) = reader.wait_for_plays(1)
    assert play["src"].startswith("blob:") and page.url == site.url
    assert reader.histories_fetched()[0].endswith(
        f"/method-2/history/{_stem('harp', 'pig')}.history.webp")
    reader.close()


def test_tapping_an_image_plays_it_and_a_tap_while_it_plays_opens_it(chromium, site):
    reader = Reader(chromium, site.url, has_touch=True)
    page = reader.page
    reader.selector_in_view()
    reader.watch("#selector")
    image = reader.figure("pig") + " [data-history-stage] img"
    page.tap(image)
    page.wait_for_function("() => plays.length == 1")
    assert page.url == site.url  # the tap played the history instead of opening the PNG
    assert reader.histories_fetched()[0].endswith(
        f"/method-2/history/{_stem('harp', 'pig')}.history.webp")
    with page.expect_navigation():
        page.tap(image)  # while it plays: opens the image, as a click always did
    assert page.url.endswith(f"/method-2/{_stem('harp', 'pig')}.png")
    reader.close()


def test_a_mouse_click_on_an_image_still_opens_it(chromium, site):
    reader = Reader(chromium, site.url)
    page = reader.page
    reader.selector_in_view()
    with page.expect_navigation():
        page.click(reader.figure("pig") + " [data-history-stage] img")
    assert page.url.endswith(f"/method-2/{_stem('harp', 'pig')}.png")
    reader.close()


def test_cells_without_a_history_have_no_control_and_play_nothing(chromium, site):
    reader = Reader(chromium, site.url)
    page = reader.page
    reader.selector_in_view()
    # Jinja's default selection, then the script's, follow the cache
    for key, thing, method in ((None, "harp", 2), ("1", "harp", 1), ("piano", "piano", 1),
                               ("2", "piano", 2), ("ArrowDown", "pickle", 2),
                               ("ArrowUp", "piano", 2)):
        if key == "piano":
            page.select_option("select[name=thing]", key)
            page.focus("#selector")
        elif key:
            page.keyboard.press(key)
        shown = page.evaluate(CONTROLS)
        assert shown == _expected_controls(site.cache, thing, method), (thing, method)
        if thing in THINGS:
            assert shown.count(None) == 1 and shown[ANIMALS.index(NO_HISTORY[method])] is None
        else:  # not rendered at all
            assert shown == [None] * 9
    # pointing at the one without, then at one with: only the second is fetched
    reader.watch("#selector")
    page.hover(reader.figure(NO_HISTORY[2]) + " a img")
    page.hover(reader.figure("pig") + " a img")
    reader.wait_for_plays(1)
    assert [u.rsplit("/", 1)[1] for u in reader.histories_fetched()] == [
        f"{_stem('piano', 'pig')}.history.webp"]
    reader.close()


def test_the_best_of_view_plays_the_best_of_history(chromium, site):
    reader = Reader(chromium, site.url)
    page = reader.page
    reader.selector_in_view()
    page.keyboard.press("b")
    page.wait_for_function("() => location.hash.endsWith('view=best')")
    assert page.evaluate(CONTROLS) == _expected_controls(site.cache, "harp", 2, best=True)
    reader.watch("#selector")
    page.hover(reader.figure("cat") + " .best-of a img")
    (play,) = reader.wait_for_plays(1)
    assert reader.histories_fetched()[0].endswith(
        f"/img/best-of/method-2/history/{_stem('harp', 'cat')}.history.webp")
    page.keyboard.press("b")  # and back: the first attempt's again
    page.wait_for_function("() => !location.hash.endsWith('view=best')")
    page.mouse.move(5, 5)
    page.hover(reader.figure("cat") + " a img")
    reader.wait_for_plays(2)
    assert reader.histories_fetched()[1].endswith(
        f"/img/method-2/history/{_stem('harp', 'cat')}.history.webp")
    reader.close()


def test_reduced_motion_plays_nothing_and_the_control_shows_a_strip(chromium, site):
    reader = Reader(chromium, site.url, reduced_motion="reduce")
    page = reader.page
    reader.selector_in_view()
    figure = reader.figure("cat")
    page.hover(figure + " a img")  # would have played
    page.focus("button[data-view-toggle]")
    page.keyboard.press("Tab")  # so would this
    page.click(figure + " a.history-control")
    strip = figure + " a[data-history-stage] img.history-strip"
    page.wait_for_function(f"""() => {{ const s = document.querySelector({json.dumps(strip)});
        return s && s.complete && s.naturalWidth > 0; }}""")
    src = page.get_attribute(strip, "src")
    assert src == f"../../img/method-2/history/{_stem('harp', 'cat')}.strip.webp"
    assert page.get_attribute(strip, "alt").startswith("Four moments")
    # the strip was fetched, the animation never was
    assert [u.rsplit("/", 1)[1] for u in reader.histories_fetched()] == [
        f"{_stem('harp', 'cat')}.strip.webp"]
    page.click(figure + " a.history-control")  # and pressed again, it goes
    assert page.locator(strip).count() == 0
    assert page.locator("#selector img.history-frame").count() == 0
    reader.close()


def test_the_article_figure_plays_in_place(chromium, site):
    reader = Reader(chromium, site.url)
    page = reader.page
    box = "figure.history-figure >> nth=0"
    # The saved image shows from the start; its history is fetched only when asked.
    poster = page.locator(box).locator("img.history-final")
    assert poster.count() == 1 and "/history/" not in poster.get_attribute("src")
    page.locator(box).scroll_into_view_if_needed()
    reader.watch("article")
    page.locator(box).locator("a.history-box").click()
    (play,) = reader.wait_for_plays(1)
    assert play["src"].startswith("blob:") and page.url == site.url
    # what stays is the image the history ends in
    final = page.locator(box).locator("img.history-final")
    assert final.count() == 1 and final.get_attribute("src").endswith(".webp")
    assert "/history/" not in final.get_attribute("src")
    assert len(reader.histories_fetched()) == 1
    reader.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_controls_meet_wcag_aa_contrast(chromium, site, scheme):
    reader = Reader(chromium, site.url, color_scheme=scheme)
    for selector in ("#selector a.history-control:not([hidden])", ".history-box .history-label",
                     ".history-figure figcaption"):
        pairs = reader.page.evaluate(COLOURS, selector)
        assert pairs, selector
        for fg, bg in pairs:
            assert _contrast(fg, bg) >= 4.5, (scheme, selector, fg, bg)
    reader.close()
