"""The built page in a real browser: headless Chromium (Debian's), driven by Playwright.

The site is served from a local server under a project path (as GitHub
Pages serves it) and used as a reader would: keys, buttons, links, history.
Without Chromium these tests fail rather than skip; `make test` installs it
(scripts/ensure-chromium.sh).
``$CLIPIG_CHROMIUM`` names another Chromium-based binary (GitHub's runners
have Chrome preinstalled).
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest

from gallery.prompts import load_prompts
from generator.sample import write_sample_cache
from generator.serve import make_server
from generator.site import build_site

CHROMIUM = Path(os.environ.get("CLIPIG_CHROMIUM") or "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
BASE = "/clipig-gallery/"
POST = "2021/clipig-animal-transfer/"
THINGS = ("harmonica", "harp", "hospital", "piano")
HOLES = ((2, "snail-of-harp"), (1, "cat-of-hospital"))
HOSTILE = Path(__file__).parent / "fixtures" / "hostile-prompts.json"

PROMPTS = {(p.thing, p.animal): p for p in load_prompts()}
ANIMALS = list(dict.fromkeys(p.animal for p in PROMPTS.values()))


def _serve(out: Path):
    server = make_server(out, 0, BASE, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    return server, f"http://{host}:{port}{BASE}"


@pytest.fixture(scope="module")
def site_url(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    prompts = [p for p in load_prompts() if p.thing in THINGS]
    write_sample_cache(root / "cache", prompts)
    for method, stem in HOLES:
        for suffix in (".png", ".json"):
            (root / "cache" / f"method-{method}" / f"{stem}{suffix}").unlink()
    build_site(root / "cache", root / "site", BASE)
    server, url = _serve(root / "site")
    yield url + POST
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: run `make test` (as root it installs Debian's"
                    " chromium), or `sudo apt-get install chromium`, or point $CLIPIG_CHROMIUM"
                    " at a Chromium-based browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright Python package is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),  # a fresh profile every run
            executable_path=str(CHROMIUM), headless=True, args=ARGS,
            viewport={"width": 1100, "height": 900},
        )
        yield context
        context.close()


class Reader:
    """One page and everything it printed or threw."""

    def __init__(self, context, url: str):
        self.page = context.new_page()
        self.console: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: self.console.append((m.type, m.text)))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        # The script prints the keywords once it has set up: then it is ready.
        with self.page.expect_console_message(lambda m: m.text.startswith("CLIPig keywords")):
            self.page.goto(url)

    def state(self) -> tuple[str, str]:
        return tuple(self.page.evaluate("""() => [
            document.querySelector('select[name=thing]').value,
            document.querySelector('select[name=method]').value]"""))

    def hash(self) -> str:
        return self.page.evaluate("() => location.hash")

    def shown(self) -> list[str | None]:
        """The selector's image URLs by animal; None where the render is missing."""
        self.page.wait_for_function("""() => Array.from(document.querySelectorAll('#selector img'))
            .every(img => img.complete && img.naturalWidth === 224)""")
        return self.page.evaluate("""() => Array.from(
            document.querySelectorAll('#selector figure'), f => f.querySelector('.missing')
                ? null : f.querySelector('img').getAttribute('src'))""")

    def selector_in_view(self) -> None:
        self.page.evaluate("() => document.getElementById('selector').scrollIntoView()")

    def close(self) -> None:
        self.page.close()


def expected_images(thing: str, method: int) -> list[str | None]:
    holes = set(HOLES)
    return [None if (method, PROMPTS[(thing, a)].stem) in holes
            else f"../../img/method-{method}/{PROMPTS[(thing, a)].stem}.webp" for a in ANIMALS]


def printed_prompts(thing: str, method: int) -> str:
    field = "text" if method == 1 else "first_sentence"
    lines = [getattr(PROMPTS[(thing, a)], field) for a in ANIMALS]
    return f"CLIPig: {thing}, method {method}\n" + "\n".join(lines)


def test_keys_move_through_things_and_methods(browser, site_url):
    reader = Reader(browser, site_url)
    page = reader.page
    assert reader.state() == ("harp", "2") and reader.hash() == ""
    assert reader.shown() == expected_images("harp", 2)
    reader.selector_in_view()

    steps = [("ArrowDown", "hospital", 2), ("1", "hospital", 1),
             ("ArrowUp", "harp", 1), ("2", "harp", 2)]
    for key, thing, method in steps:
        page.keyboard.press(key)
        assert reader.state() == (thing, str(method)), key
        assert reader.hash() == f"#thing={thing}&method={method}", key
        assert reader.shown() == expected_images(thing, method), key

    logs = [text for kind, text in reader.console if kind == "log"]
    assert any(text.startswith("CLIPig keywords\nthings (90): accordion, apple,")
               for text in logs)
    for _, thing, method in steps:
        assert printed_prompts(thing, method) in logs
    assert [e for e in reader.console if e[0] == "error"] == [] and reader.errors == []

    # back and forward walk through the selections
    page.go_back()
    page.wait_for_function("() => location.hash === '#thing=harp&method=1'")
    assert reader.state() == ("harp", "1")
    page.go_forward()
    page.wait_for_function("() => location.hash === '#thing=harp&method=2'")
    assert reader.state() == ("harp", "2")

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "site-selector.png"))
    page.screenshot(path=str(ARTIFACTS / "site-full.png"), full_page=True)
    reader.close()


def test_a_link_opens_its_selection(browser, site_url):
    reader = Reader(browser, site_url + "#thing=piano&method=1")
    assert reader.state() == ("piano", "1")
    assert reader.shown() == expected_images("piano", 1)
    assert reader.errors == []
    reader.close()


FIGURES = """() => Array.from(document.querySelectorAll('#selector figure'), f => {
    const img = f.querySelector('img'), missing = f.querySelector('.missing');
    return [img ? img.alt : null, missing ? missing.getAttribute('aria-label') : null,
            f.querySelector('.sim').textContent];
})"""


def test_switching_method_shows_the_prompts_python_computed(browser, site_url):
    reader = Reader(browser, site_url)
    page = reader.page
    figures = "() => Array.from(document.querySelectorAll('#selector figure'), f => f.outerHTML)"
    templated = page.evaluate(figures)  # as Jinja wrote the default selection
    reader.selector_in_view()
    for key, thing, method in (("1", "harp", 1), ("2", "harp", 2)):
        page.keyboard.press(key)
        assert reader.state() == (thing, str(method))
    # the script fills in the same markup that the template wrote
    assert page.evaluate(figures) == templated

    page.keyboard.press("ArrowDown")
    for key, method in (("1", 1), ("2", 2), ("1", 1)):
        page.keyboard.press(key)
        assert reader.state() == ("hospital", str(method))
        shown = page.evaluate(FIGURES)
        for animal, (alt, label, sim) in zip(ANIMALS, shown, strict=True):
            if (method, PROMPTS[("hospital", animal)].stem) in HOLES:
                assert (alt, label, sim) == (None, f"{animal}: not rendered yet", "")
            else:
                assert alt == PROMPTS[("hospital", animal)].for_method(method), (animal, method)
                assert label is None and re.fullmatch(r"sim \d+\.\d\d", sim), sim
    assert reader.errors == []
    reader.close()


def test_keys_are_left_alone_while_typing_with_modifiers_or_out_of_view(browser, site_url):
    reader = Reader(browser, site_url)
    page = reader.page
    # out of view, the arrow keys scroll the page and no key changes the selection
    # (checked first: after an Alt press, headless Chromium skips one arrow scroll)
    page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
    bottom = page.evaluate("() => window.scrollY")
    page.keyboard.press("ArrowUp")
    page.wait_for_function(f"() => window.scrollY < {bottom}")
    page.keyboard.press("1")
    assert reader.state() == ("harp", "2")
    # another control has the focus: the key is its own
    reader.selector_in_view()
    page.evaluate("""() => { const input = document.createElement('input');
        input.id = 'probe'; document.querySelector('.selector-help').append(input); }""")
    page.focus("#probe")
    for key in ("ArrowDown", "1"):
        page.keyboard.press(key)
    assert reader.state() == ("harp", "2")
    assert page.input_value("#probe") == "1"
    # a modifier held: a browser or system shortcut, not ours
    page.evaluate("() => document.activeElement.blur()")
    for key in ("Alt+ArrowDown", "Shift+ArrowDown", "Alt+1"):
        page.keyboard.press(key)
    assert reader.state() == ("harp", "2")
    # the thing select handles its own arrow keys: one step, not two
    page.focus("select[name=thing]")
    page.keyboard.press("ArrowDown")
    page.wait_for_function("() => location.hash === '#thing=hospital&method=2'")
    assert reader.state() == ("hospital", "2")
    assert reader.errors == []
    reader.close()


def test_buttons_and_heatmap_links_select_for_touch_and_mouse(browser, site_url):
    reader = Reader(browser, site_url)
    page = reader.page
    page.click("button[aria-label='Next thing']")
    assert reader.state() == ("hospital", "2")
    page.click("button[aria-label='Previous thing']")
    page.click("button[aria-label='Previous thing']")
    assert reader.state() == ("harmonica", "2")
    page.locator(".heatmap a[href='#thing=piano&method=1']").click()
    assert reader.state() == ("piano", "1") and reader.hash() == "#thing=piano&method=1"
    top = page.evaluate("() => document.getElementById('selector').getBoundingClientRect().top")
    assert -1 < top < 50  # brought into view
    # at the ends there is no wrap-around: the button is disabled
    page.select_option("select[name=thing]", "accordion")
    assert page.is_disabled("button[aria-label='Previous thing']")
    assert reader.errors == []
    reader.close()


def test_neighbouring_selections_are_preloaded(browser, site_url):
    reader = Reader(browser, site_url)
    reader.shown()
    reader.page.wait_for_function("""() => ['method-2/cat-of-harmonica.webp',
        'method-2/cat-of-hospital.webp', 'method-1/cat-of-harp.webp'].every(name =>
        performance.getEntriesByType('resource').some(e => e.name.endsWith(name)))""")
    reader.close()


def test_every_image_on_the_page_loads(browser, site_url):
    reader = Reader(browser, site_url)
    page = reader.page
    height = page.evaluate("() => document.body.scrollHeight")
    for y in range(0, height, 700):  # lazy images load as they come into view
        page.evaluate(f"() => window.scrollTo(0, {y})")
        page.wait_for_timeout(30)
    page.wait_for_function("""() => Array.from(document.images)
        .every(img => img.complete && img.naturalWidth > 0)""")
    assert page.evaluate("() => document.images.length") == 8 + 24
    failed = [t for kind, t in reader.console if kind == "error"]
    assert failed == [] and reader.errors == []
    reader.close()


# Draws a character on a canvas in an element's font; a hash of the pixels.
GLYPH = """([selector, ch]) => {
    const style = getComputedStyle(document.querySelector(selector));
    const canvas = document.createElement('canvas');
    canvas.width = canvas.height = 80;
    const g = canvas.getContext('2d');
    g.font = `${style.fontWeight} 48px ${style.fontFamily}`;
    g.fillText(ch, 10, 60);
    let hash = 0;
    for (const value of g.getImageData(0, 0, 80, 80).data) hash = (hash * 31 + value) | 0;
    return hash;
}"""


def test_ranking_arrows_are_drawn_from_a_font_that_has_them(browser, site_url):
    # A glyph no installed font has is drawn as the font's empty box, the same
    # box for any such character: compare with an unassigned code point.
    reader = Reader(browser, site_url)
    cell = ".ranking .desc .right"
    texts = reader.page.evaluate(f"() => Array.from(document.querySelectorAll('{cell}'),"
                                 " el => el.textContent)")
    assert len(texts) == 24
    arrows = {" ".join(t.split()).split(" ")[2] for t in texts}
    assert len(arrows) == 1, arrows
    (arrow,) = arrows
    box = reader.page.evaluate(GLYPH, [cell, "\u0378"])
    blank = reader.page.evaluate(GLYPH, [cell, " "])
    assert box != blank  # the comparison can see a missing glyph
    assert reader.page.evaluate(GLYPH, [cell, arrow]) not in (box, blank), f"U+{ord(arrow):04X}"
    reader.close()


def _luminance(rgb: list[float]) -> float:
    def channel(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(fg: list[float], bg: list[float]) -> float:
    hi, lo = sorted((_luminance(fg), _luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


COLOURS = """selector => Array.from(document.querySelectorAll(selector)).map(el => {
    let bg = el;
    while (bg && getComputedStyle(bg).backgroundColor === 'rgba(0, 0, 0, 0)') bg = bg.parentElement;
    const nums = c => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
    return [nums(getComputedStyle(el).color),
            nums(bg ? getComputedStyle(bg).backgroundColor : 'rgb(255, 255, 255)')];
})"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_captions_meet_wcag_aa_contrast(browser, site_url, scheme):
    reader = Reader(browser, site_url)
    reader.page.emulate_media(color_scheme=scheme)
    for selector in ("#selector figcaption .animal", "#selector figcaption .sim",
                     ".ranking .desc span", ".selector-help", ".heatmap figcaption"):
        pairs = reader.page.evaluate(COLOURS, selector)
        assert pairs, selector
        for fg, bg in pairs:
            assert _contrast(fg, bg) >= 4.5, (scheme, selector, fg, bg)
    reader.close()


def test_hostile_prompt_text_stays_text_in_the_browser(browser, tmp_path):
    prompts = load_prompts(HOSTILE)
    write_sample_cache(tmp_path / "cache", prompts, rankings=False)
    build_site(tmp_path / "cache", tmp_path / "site", BASE, prompts=HOSTILE)
    server, url = _serve(tmp_path / "site")
    try:
        reader = Reader(browser, url + POST)
        page = reader.page
        reader.selector_in_view()
        for key in ("ArrowUp", "ArrowUp", "1", "ArrowDown"):
            page.keyboard.press(key)
        tag = "<img src=x onerror=alert(1)>"
        page.select_option("select[name=thing]", tag)
        assert reader.state()[0] == tag
        alts = page.evaluate("() => Array.from(document.images).map(i => i.alt)")
        assert any(tag in alt for alt in alts)
        assert page.evaluate("() => document.querySelectorAll('img[src=x]').length") == 0
        assert reader.dialogs == [] and reader.errors == []
        assert any(re.search(re.escape(f"a cat made of {tag}."), t) for _, t in reader.console)
        reader.close()
    finally:
        server.shutdown()
        server.server_close()
