"""The post inside an existing Jekyll blog, built by real Jekyll (Debian's, with
the minima theme; `make test` installs them, scripts/ensure-jekyll.sh).

A small blog -- a _config.yml with minima under the base path /blog, one post
of its own -- gets the exported post; `jekyll build` builds it, and the built
blog is served under /blog and read in Chromium as in tests/test_site_browser.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from test_site_browser import ARGS, CHROMIUM, Reader

from clipig_gallery.core.prompts import load_prompts
from clipig_gallery.generator.jekyll import JekyllError, export_jekyll, liquid_safe
from clipig_gallery.generator.sample import write_renders, write_sample_cache
from clipig_gallery.generator.serve import make_server
from clipig_gallery.generator.sitepaths import static_file

THINGS = ("harp", "piano")
POST = "_posts/2021-06-09-clipig-animal-transfer.html"
BUILT = "_site/2021/06/09/clipig-animal-transfer.html"
LIQUID = Path(__file__).parent / "fixtures" / "liquid-prompts.json"
OTHER = "---\nlayout: post\ntitle: An older post\n---\nMy own words, {{ site.title }}.\n"


def jekyll_build(blog: Path) -> str:
    if shutil.which("jekyll") is None:
        pytest.fail("jekyll not found: run `make test` (as root it installs Debian's jekyll "
                    "and jekyll-theme-minima), or `sudo apt-get install jekyll "
                    "jekyll-theme-minima`")
    done = subprocess.run(["jekyll", "build", "--quiet"], cwd=blog, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def make_blog(root: Path) -> Path:
    blog = root / "blog"
    (blog / "_posts").mkdir(parents=True)
    (blog / "_config.yml").write_text("title: A blog of my own\nbaseurl: /blog\n"
                                      "theme: minima\n")
    (blog / "_posts" / "2020-01-01-older.md").write_text(OTHER)
    (blog / "index.md").write_text("---\nlayout: home\n---\n")
    return blog


def tree(blog: Path) -> dict[str, tuple[int, bytes]]:
    """Every file of the blog's source (not _site): its modification time and bytes."""
    return {str(p.relative_to(blog)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(blog.rglob("*"))
            if p.is_file() and "_site" not in p.relative_to(blog).parts
            and ".jekyll-cache" not in p.relative_to(blog).parts}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("jekyll")
    prompts = [p for p in load_prompts() if p.thing in THINGS]
    cache = write_sample_cache(root / "cache", prompts, best_of=True)
    blog = make_blog(root)
    before = tree(blog)
    report = export_jekyll(cache, blog)
    jekyll_build(blog)
    return root, cache, blog, before, report


def test_only_the_post_and_its_folder_are_written(exported):
    _, _, blog, before, report = exported
    after = tree(blog)
    for name, value in before.items():
        assert after[name] == value, name  # the blog's own files untouched
    new = set(after) - set(before)
    assert POST in new
    assert all(n == POST or n.startswith("assets/clipig-gallery/") for n in new), \
        sorted(n for n in new if n != POST and not n.startswith("assets/clipig-gallery/"))
    assert report.post == blog / POST and report.post_written


def test_jekyll_builds_the_post_in_the_theme_with_every_link_under_the_base_path(exported):
    _, _, blog, _, _ = exported
    html = (blog / BUILT).read_text(encoding="utf-8")
    soup = BeautifulSoup(html, "html.parser")
    assert soup.find("link", href=lambda h: h and "minima" in h or h and "main.css" in h)
    assert soup.select_one("#selector") is not None  # the selector's markup
    assert "CLIPig animal transfer" in soup.title.text
    urls = [t.get("src") or t.get("href") for t in soup.find_all(["img", "script", "link", "a"])]
    local = [u for u in urls if u and u.startswith("/")]
    assert local and all(u.startswith("/blog/") for u in local)
    for url in local:  # every local link and asset resolves in the built site
        path = blog / "_site" / url.removeprefix("/blog/").split("?")[0].split("#")[0]
        assert path.exists() or (path / "index.html").exists(), url
    # the blog's own post is built as before, its Liquid evaluated as its author meant
    older = (blog / "_site/2020/01/01/older.html").read_text(encoding="utf-8")
    assert "My own words, A blog of my own." in older


def test_a_rerun_with_nothing_new_writes_nothing(exported):
    _, cache, blog, _, _ = exported
    before = tree(blog)
    report = export_jekyll(cache, blog)
    assert not report.post_written and report.copied == 0 and report.webp_made == 0
    assert tree(blog) == before


def test_a_rerun_after_a_new_render_changes_only_its_files(tmp_path):
    prompts = [p for p in load_prompts() if p.thing in THINGS]
    cache = write_sample_cache(tmp_path / "cache", prompts)
    gone = next(p for p in prompts if p.thing == "piano")
    for suffix in (".png", ".json"):
        (cache / "method-1" / f"{gone.stem}{suffix}").unlink()
    blog = make_blog(tmp_path)
    export_jekyll(cache, blog)
    before = tree(blog)
    write_renders(cache, [gone], 1)  # the image is rendered now
    export_jekyll(cache, blog)
    after = tree(blog)
    changed = {n for n in after if before.get(n) != after[n]}
    assets = "assets/clipig-gallery/"
    assert {f"{assets}img/method-1/{gone.stem}.png",
            f"{assets}img/method-1/{gone.stem}.webp"} <= changed
    # beside the image's own files only the post (which shows it), the method's
    # CSV of sims (which lists it) and the manifest
    others = {n for n in changed if gone.stem not in n}
    assert others <= {POST, f"{assets}img/method-1/sims.csv",
                      f"{assets}.clipig-build.json"}, others


def test_prompts_pass_through_liquid_unevaluated(tmp_path):
    prompts = load_prompts(LIQUID)
    cache = write_sample_cache(tmp_path / "cache", prompts, rankings=False)
    blog = make_blog(tmp_path)
    export_jekyll(cache, blog, prompts=LIQUID)
    jekyll_build(blog)
    html = (blog / BUILT).read_text(encoding="utf-8")
    text = BeautifulSoup(html, "html.parser").get_text()
    for prompt in prompts:
        assert prompt.thing in text or prompt.thing in html.replace("&#123;", "{"), prompt.thing
    assert "A blog of my own" not in BeautifulSoup(html, "html.parser").select_one(
        ".clipig-post").get_text()  # {{ site.title }} stayed text
    assert "made of 42" not in text and "{{ 6 | times: 7 }}" in text  # not computed


def test_liquid_safe_keeps_the_text_and_leaves_no_tag():
    html = ('<p>{{ x }} and {% raw %}</p><script type="application/json">'
            '{"a":"{{ y }}","b":{"c":"{%- endraw -%}"}}</script>')
    safe = liquid_safe(html)
    assert "{{" not in safe and "{%" not in safe
    soup = BeautifulSoup(safe, "html.parser")
    assert soup.p.get_text() == "{{ x }} and {% raw %}"
    import json

    assert json.loads(soup.script.string) == {"a": "{{ y }}", "b": {"c": "{%- endraw -%}"}}


def test_a_folder_that_is_not_a_jekyll_site_is_refused(tmp_path):
    cache = write_sample_cache(tmp_path / "cache", load_prompts()[:9], rankings=False)
    (tmp_path / "plain").mkdir()
    with pytest.raises(JekyllError, match="not a Jekyll site"):
        export_jekyll(cache, tmp_path / "plain")
    assert list((tmp_path / "plain").iterdir()) == []


def test_a_post_or_assets_the_tool_did_not_write_are_refused(tmp_path):
    cache = write_sample_cache(tmp_path / "cache", load_prompts()[:9], rankings=False)
    blog = make_blog(tmp_path)
    (blog / POST).write_text("---\ntitle: mine\n---\n")
    before = tree(blog)
    with pytest.raises(JekyllError, match="was not written by this tool"):
        export_jekyll(cache, blog)
    (blog / POST).unlink()
    (blog / "assets" / "clipig-gallery").mkdir(parents=True)
    (blog / "assets" / "clipig-gallery" / "logo.svg").write_text("<svg/>")
    with pytest.raises(JekyllError, match="did not write .logo.svg"):
        export_jekyll(cache, blog)
    assert not (blog / POST).exists()
    assert set(tree(blog)) == (set(before) - {POST}) | {"assets/clipig-gallery/logo.svg"}


def test_front_matter_links_for_a_custom_js_layout(tmp_path):
    cache = write_sample_cache(tmp_path / "cache", load_prompts()[:9], rankings=False)
    blog = make_blog(tmp_path)
    export_jekyll(cache, blog, links="front-matter")
    text = (blog / POST).read_text(encoding="utf-8")
    front = text.split("---\n")[1]
    assert f"custom_js: /assets/clipig-gallery/{static_file('clipig.js')}" in front
    assert f"custom_css: /assets/clipig-gallery/{static_file('clipig-post.css')}" in front
    assert "<script src=" not in text and "<link rel=\"stylesheet\"" not in text


def test_the_post_styles_leave_the_blog_page_alone(exported):
    _, _, blog, _, _ = exported
    css = (blog / "assets/clipig-gallery" / static_file("clipig-post.css")).read_text()
    assert "body {" not in css and "prefers-color-scheme" not in css
    assert "/* standalone page: begin" not in css and ".clipig-post figure" in css


# --- in Chromium ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def blog_url(exported):
    _, _, blog, _, _ = exported
    server = make_server(blog / "_site", 0, "/blog/", quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    yield f"http://{host}:{port}/blog/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Chromium as tests/test_site_browser.py drives it. The test blog's layout
    (minima's) names no icon, so Chromium asks the server's root for
    /favicon.ico, outside the blog; that is answered here, not by the blog."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found (see tests/test_site_browser.py)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(CHROMIUM),
            headless=True, args=ARGS, viewport={"width": 1100, "height": 900})
        context.route("**/favicon.ico", lambda route: route.fulfill(status=204))
        failed: list[str] = []
        context.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
        context.failed = failed
        yield context
        context.close()


def test_the_selector_works_in_the_blog(browser, blog_url):
    reader = Reader(browser, blog_url + "2021/06/09/clipig-animal-transfer.html")
    page = reader.page
    assert reader.state() == ("harp", "2")
    shown = reader.shown()
    assert all(src and src.startswith("/blog/assets/clipig-gallery/img/method-2/")
               for src in shown)
    reader.selector_in_view()
    page.keyboard.press("ArrowDown")  # the next thing (the blog shows harp and piano only)
    assert reader.hash() == "#thing=hospital&method=2"
    page.select_option("select[name=thing]", "piano")
    page.focus("#selector")
    assert reader.state() == ("piano", "2") and reader.hash() == "#thing=piano&method=2"
    page.keyboard.press("1")
    assert reader.state() == ("piano", "1")
    assert all("/method-1/" in src for src in reader.shown())
    page.keyboard.press("b")  # the best of N
    page.wait_for_function("() => location.hash.includes('view=best')")
    assert all("/best-of/" in src for src in reader.shown() if src)
    page.click("button[data-view-toggle]")  # the button leads back to the first attempts
    assert reader.hash() == "#thing=piano&method=1"
    assert all("/best-of/" not in src for src in reader.shown() if src)
    assert [e for e in reader.console if e[0] == "error"] == [] and reader.errors == []
    assert browser.failed == []
    reader.close()
    # a deep link opens its selection
    deep = Reader(browser, blog_url + "2021/06/09/clipig-animal-transfer.html"
                  "#thing=piano&method=1")
    assert deep.state() == ("piano", "1")
    deep.close()


def test_histories_play_in_the_blog(browser, blog_url):
    reader = Reader(browser, blog_url + "2021/06/09/clipig-animal-transfer.html")
    page = reader.page
    control = page.locator("a.history-control").first
    control.scroll_into_view_if_needed()
    href = control.get_attribute("href")
    assert href.startswith("/blog/assets/clipig-gallery/") and href.endswith(".history.webp")
    control.click()
    page.wait_for_selector("img.history-frame", state="attached")
    assert reader.errors == [] and [e for e in reader.console if e[0] == "error"] == []
    assert browser.failed == []
    reader.close()


def test_the_blogs_other_post_is_untouched_in_the_browser(browser, blog_url):
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(blog_url + "2020/01/01/older.html")
    assert "My own words, A blog of my own." in page.inner_text("article")
    assert page.evaluate("() => !document.querySelector('script[src*=clipig]')")
    assert errors == []
    page.close()


def test_the_site_command_exports_into_a_blog(tmp_path):
    from click.testing import CliRunner

    from clipig_gallery.app.cli import main

    cache = write_sample_cache(tmp_path / "cache", load_prompts()[:9], rankings=False)
    blog = make_blog(tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["site", "--format", "jekyll", "--cache", str(cache)])
    assert result.exit_code == 2 and "--format jekyll needs --out BLOG" in result.output
    result = runner.invoke(main, ["site", "--format", "jekyll", "--cache", str(cache),
                                  "--out", str(blog), "--assets", "assets/gallery-2021"])
    assert result.exit_code == 0, result.output
    assert f"post: {blog / POST} (written)" in result.output
    assert (blog / "assets/gallery-2021/.clipig-build.json").is_file()
    result = runner.invoke(main, ["site", "--format", "jekyll", "--cache", str(cache),
                                  "--out", str(tmp_path / "cache")])
    assert result.exit_code == 1 and "not a Jekyll site" in result.output


@pytest.mark.parametrize("assets", ["/assets/x", "C:\\blog\\assets", "../x", "assets/../..",
                                    "_data/x", "assets/.x", "", "."])
def test_an_asset_folder_outside_the_blogs_pages_is_refused(tmp_path, assets):
    cache = write_sample_cache(tmp_path / "cache", load_prompts()[:9], rankings=False)
    blog = make_blog(tmp_path)
    before = tree(blog)
    with pytest.raises(JekyllError, match=f"asset folder {re.escape(repr(assets))}: a relative "
                                          "path inside the blog"):
        export_jekyll(cache, blog, assets)
    assert tree(blog) == before


@pytest.mark.parametrize(("date", "slug", "message"), [
    ("2021-13-01", None, "post date '2021-13-01': expected a day, YYYY-MM-DD"),
    ("June 9", None, "post date 'June 9': expected a day, YYYY-MM-DD"),
    (None, "My Post", "post slug 'My Post': use lower-case letters"),
    (None, "../x", "post slug '../x': use lower-case letters"),
])
def test_a_bad_post_date_or_slug_is_named(tmp_path, date, slug, message):
    cache = write_sample_cache(tmp_path / "cache", load_prompts()[:9], rankings=False)
    blog = make_blog(tmp_path)
    before = tree(blog)
    with pytest.raises(JekyllError, match=re.escape(message)):
        export_jekyll(cache, blog, date=date, slug=slug)
    assert tree(blog) == before


def test_the_site_command_names_a_bad_post_date(tmp_path):
    from click.testing import CliRunner

    from clipig_gallery.app.cli import main

    cache = write_sample_cache(tmp_path / "cache", load_prompts()[:9], rankings=False)
    blog = make_blog(tmp_path)
    result = CliRunner().invoke(main, ["site", "--format", "jekyll", "--cache", str(cache),
                                       "--out", str(blog), "--post-date", "2021-06-31"])
    assert result.exit_code == 2
    assert "Invalid value for '--post-date': '2021-06-31' is not a day" in result.output
    assert not (blog / "_posts" / "2021-06-31-clipig-animal-transfer.html").exists()


@pytest.mark.parametrize(("text", "message"), [
    ("post_date: '2021-06-31'\n", "post_date: expected a day, YYYY-MM-DD, got '2021-06-31'"),
    # unquoted, YAML itself reads it as a date, which that day is not
    ("post_date: 2021-06-31\n", "malformed YAML: cannot read '2021-06-31' as a YAML timestamp "
                               "(day is out of range for month)"),
    ("post_date: soon\n", "post_date: expected a day, YYYY-MM-DD, got 'soon'"),
    ("post_date: 20210609\n", "post_date: expected a string, got 20210609"),
])
def test_site_settings_name_a_bad_post_date(tmp_path, text, message):
    from clipig_gallery.generator.settings import load_settings

    path = tmp_path / "site.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(f"{path}: {message}")):
        load_settings(path)
    path.write_text("post_date: 2021-06-09\n")  # YAML's date, read as its ISO text
    assert load_settings(path).post_date == "2021-06-09"
