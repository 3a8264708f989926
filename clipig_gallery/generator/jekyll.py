"""The post as one post of an existing Jekyll blog (the form the 2021 article had).

``export_jekyll`` writes two things into the blog and nothing else: the post,
``_posts/YYYY-MM-DD-<slug>.html``, and one asset folder (by default
``assets/clipig-gallery/``) with the images, histories, strips, CSVs, script
and styles. Every link in the post goes through Jekyll's ``relative_url``, so
the blog may live under a base path. The asset folder keeps a manifest of what
was written; a rerun copies only what changed and removes only files the
manifest names. A folder that is not a Jekyll site, a post file of the same
name that this did not write, or an asset folder holding files this did not
write is refused before anything is written.

Liquid runs over the whole post. The post's own text and every prompt reach the
reader unchanged and are never evaluated: each ``{{`` and ``{%`` in the page is
written with ``{`` as an HTML character reference (in the selector's JSON as a
JSON escape), so the only Liquid in the file is the URLs this module writes.

The post is HTML (``.html``), not Markdown: Jekyll would run a Markdown post's
HTML blocks through kramdown, which rewrites them.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from markupsafe import Markup

from .article import render_article
from .files import write_if_changed
from .inputs import load_inputs
from .parts import PostParts
from .settings import load_settings
from .site import TEMPLATES_DIR, _prune, make_env, read_manifest, site_files, write_files
from .sitepaths import MANIFEST, Urls, static_file

DEFAULT_ASSETS = "assets/clipig-gallery"
POST_CSS = "clipig-post.css"  # the styles without the standalone page's own
# Where links point before they become Liquid: no brace, nothing a page or prompt has.
_MARK = "@@clipig-asset@@/"
_STANDALONE = re.compile(r"/\* standalone page: begin.*?/\* standalone page: end \*/\n?",
                         re.S)
LINK_MODES = ("body", "front-matter")
# What the standalone page's global figure and image rules do, kept to the post.
_POST_RULES = """
/* The post inside a blog's page */
.clipig-post figure { margin: 0; }
.clipig-post img { max-width: 100%; height: auto; }
"""


class JekyllError(ValueError):
    """The blog folder cannot take the post; the message says why and what to do."""


@dataclass
class JekyllReport:
    post: Path
    assets: Path
    files: int = 0  # in the asset folder
    copied: int = 0
    webp_made: int = 0
    post_written: bool = False
    removed: int = 0
    warnings: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [f"post: {self.post} ({'written' if self.post_written else 'unchanged'})",
                f"assets: {self.assets}: {self.files} files; copied {self.copied}, WebP made "
                f"{self.webp_made}, stale files removed {self.removed}",
                *(f"warning: {w}" for w in self.warnings)]


class _AssetUrls(Urls):
    """Links from the post to its asset folder, marked until they become Liquid."""

    def __init__(self):
        self.root = _MARK


def post_name(meta: dict, date: str | None, slug: str | None) -> str:
    """``_posts/YYYY-MM-DD-slug.html``: the date and slug given, else the article's
    (its date must then name the day, its permalink's last part is the slug)."""
    day = str(date if date is not None else meta.get("date", ""))
    try:
        _dt.date.fromisoformat(day)
    except ValueError:
        if date is not None:
            raise JekyllError(f"post date {date!r}: expected a day, YYYY-MM-DD") from None
        raise JekyllError(
            f"a Jekyll post needs a day: the article's date is {meta.get('date')!r}; set "
            "post_date (YYYY-MM-DD) in clipig_gallery/core/data/site.yaml or pass "
            "--post-date") from None
    slug = slug or [p for p in str(meta.get("permalink", "")).split("/") if p][-1]
    slug = slug.removesuffix(".html")
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", slug):
        raise JekyllError(f"post slug {slug!r}: use lower-case letters, digits, '.', '_', '-'")
    return f"_posts/{day}-{slug}.html"


def _asset_folder(assets: str) -> str:
    path = str(assets).replace("\\", "/")
    parts = [p for p in path.split("/") if p]
    absolute = path.startswith("/") or re.match(r"[A-Za-z]:", path)
    if not parts or absolute or any(p in (".", "..") or p.startswith(("_", "."))
                                    for p in parts):
        raise JekyllError(
            f"asset folder {assets!r}: a relative path inside the blog whose parts do not "
            "start with '_' or '.' (Jekyll leaves those out of the site)")
    return "/".join(parts)


def liquid_safe(html: str) -> str:
    """``html`` with no ``{{`` or ``{%`` left for Liquid to find, showing the same text."""
    def json_part(match: re.Match) -> str:
        # Inside the JSON script a character reference would stay literal; a JSON
        # escape decodes to the same brace. (A brace pair there only occurs in strings.)
        return re.sub(r"\{(?=[{%])", r"\\u007b", match.group(0))

    html = re.sub(r'<script type="application/json"[^>]*>.*?</script>', json_part, html,
                  flags=re.S)
    return re.sub(r"\{(?=[{%])", "&#123;", html)


def _liquid_links(text: str, assets: str) -> str:
    # The folder's URL from Liquid, the rest as it was: the selector's URL patterns
    # hold braces ({stem}) that a Liquid string could not.
    return text.replace(_MARK, "{{ '/" + assets + "/' | relative_url }}")


def _check_blog(blog: Path, assets: str, post: str) -> None:
    if not (blog / "_config.yml").is_file() and not (blog / "_config.yaml").is_file():
        raise JekyllError(f"{blog} is not a Jekyll site (it has no _config.yml)")
    out = blog / assets
    manifest = read_manifest(out)
    owned = set(manifest.get("files", []))
    if out.exists():
        if not out.is_dir():
            raise JekyllError(f"{out} is a file, not the post's asset folder")
        foreign = sorted(str(p.relative_to(out)) for p in out.rglob("*")
                         if p.is_file() and p.name != MANIFEST
                         and str(p.relative_to(out)) not in owned)
        if foreign:
            shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
            raise JekyllError(f"{out} holds files this tool did not write ({shown}); "
                              "choose another --assets folder or move them")
    if (blog / post).exists() and manifest.get("post") != post:
        raise JekyllError(f"{blog / post} exists and was not written by this tool; "
                          "move it, or give the post another --post-date or --slug")


def export_jekyll(cache: Path, blog: Path, assets: str = DEFAULT_ASSETS, *,
                  date: str | None = None, slug: str | None = None, links: str = "body",
                  article: Path | None = None, prompts: Path | None = None,
                  data_dir: Path | None = None, workers: int | None = None) -> JekyllReport:
    """Write the post and its assets into the Jekyll site ``blog``; see the module doc.

    ``links`` says how the page loads the post's script and styles: ``body``
    links them from the post itself (any layout, minima included);
    ``front-matter`` names them as ``custom_css`` and ``custom_js`` for a
    layout that links those (the 2021 blog's convention). The date and slug
    default to clipig_gallery/core/data/site.yaml's post_date and post_slug, then the article's.
    """
    settings = load_settings()
    date = date if date is not None else settings.post_date
    slug = slug if slug is not None else settings.post_slug
    if links not in LINK_MODES:
        raise JekyllError(f"links {links!r}: expected one of {', '.join(LINK_MODES)}")
    blog, assets = Path(blog), _asset_folder(assets)
    inputs = load_inputs(Path(cache), article, prompts, data_dir)
    post = post_name(inputs.article.meta, date, slug)
    _check_blog(blog, assets, post)
    out = blog / assets
    out.mkdir(parents=True, exist_ok=True)
    env = make_env(TEMPLATES_DIR)
    inputs, files, _ = site_files(inputs, out, TEMPLATES_DIR, workers)
    urls = _AssetUrls()
    parts = PostParts(inputs, env, urls, files)
    body = Markup(render_article(inputs.article, env, parts.helpers))
    css_source = (TEMPLATES_DIR / "static" / "clipig.css").read_text(encoding="utf-8")
    css = static_file(POST_CSS)
    page = env.get_template("jekyll-post.html").render(
        body=body, history_parts=bool(inputs.histories), links=links == "body",
        css=urls(css), js=urls(static_file("clipig.js")))
    meta = {"layout": "post", "title": inputs.article.title, "date": post[7:17]}
    if inputs.article.meta.get("description"):
        meta["description"] = str(inputs.article.meta["description"])
    if links == "front-matter":
        meta["custom_css"] = f"/{assets}/{css}"
        meta["custom_js"] = f"/{assets}/{static_file('clipig.js')}"
    # Front matter is data to Jekyll (a layout prints page.title, never evaluates it).
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000)
    text = f"---\n{front}---\n{_liquid_links(liquid_safe(page), assets)}"

    report = JekyllReport(post=blog / post, assets=out, warnings=list(inputs.warnings))
    report.copied, report.webp_made = write_files(out, files, workers)
    post_css = _STANDALONE.sub("", css_source) + _POST_RULES
    if write_if_changed(out / css, post_css.encode("utf-8")):
        report.copied += 1
    old_post = read_manifest(out).get("post")
    if old_post and old_post != post and (blog / old_post).is_file():
        (blog / old_post).unlink()  # the post moved (a new date or slug): ours, so removed
        report.removed += 1
    (blog / post).parent.mkdir(parents=True, exist_ok=True)
    report.post_written = write_if_changed(blog / post, text.encode("utf-8"))
    produced = {*files.copies, *files.webp, *files.strips, css}
    report.removed += _prune(out, produced, {"post": post})
    report.files = len(produced)
    return report
