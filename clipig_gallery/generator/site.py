"""The site build: inputs -> files to publish -> pages -> checks.

Pure in the sense of the design: cache + article in, files out. It writes
only what changed (see files.py), removes what an earlier build wrote and
this one no longer does, and fails when a link in the result is broken.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from .article import display_date, render_article
from .files import publish_copy, write_if_changed
from .histories import make_strips
from .images import make_web_copies
from .inputs import Inputs, load_inputs
from .linkcheck import check_site, parse_html, resolve
from .parts import PostParts, SiteFiles
from .sitepaths import (
    BEST_OF_IMAGES,
    IMAGES,
    MANIFEST,
    Urls,
    link_to_page,
    normalise_base_url,
    page_for_permalink,
    static_file,
)

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
SITE_NAME = "clipig-gallery"


class BuildError(RuntimeError):
    pass


@dataclass
class PageWeight:
    """Bytes a reader downloads for the post, by kind (uncompressed)."""

    html: int = 0
    html_gzip: int = 0  # what a host that compresses (GitHub Pages does) sends
    css: int = 0
    js: int = 0
    images: int = 0
    image_count: int = 0

    @property
    def total(self) -> int:
        return self.html + self.css + self.js + self.images

    def text(self) -> str:
        return (f"{kb(self.total)} = HTML {kb(self.html)} ({kb(self.html_gzip)} gzipped) + "
                f"CSS {kb(self.css)} + "
                f"JS {kb(self.js)} + {self.image_count} images {kb(self.images)}")


@dataclass
class BuildReport:
    out: Path
    post: str  # site path of the post
    renders: int = 0
    best_of: int = 0  # best-of images
    webp_made: int = 0
    copied: int = 0
    pages_written: list[str] = field(default_factory=list)
    pages_unchanged: int = 0
    removed: int = 0
    weight: PageWeight = field(default_factory=PageWeight)
    png_bytes: int = 0  # every render's PNG in the site
    webp_bytes: int = 0  # and its WebP copy
    histories: int = 0  # optimisation histories in the site (gallery and best-of)
    history_bytes: int = 0
    strips_made: int = 0
    warnings: list[str] = field(default_factory=list)  # what was left out, and why
    seconds: float = 0.0

    def history_line(self) -> str:
        if not self.histories:
            return "histories: none"
        return (f"histories: {self.histories}, average {kb(self.history_bytes // self.histories)}"
                f" (played on request, not in the page weight); strips made: {self.strips_made}")

    def lines(self) -> list[str]:
        ratio = f" ({self.png_bytes / self.webp_bytes:.1f}x smaller)" if self.webp_bytes else ""
        return [
            f"post: {self.out / self.post}",
            f"renders: {self.renders}; best-of images: {self.best_of}; "
            f"WebP made: {self.webp_made}; files copied: {self.copied}; "
            f"pages written: {len(self.pages_written)}, unchanged: {self.pages_unchanged}; "
            f"stale files removed: {self.removed}",
            f"page weight: {self.weight.text()}",
            f"render images: WebP {kb(self.webp_bytes)} vs PNG {kb(self.png_bytes)}{ratio}",
            self.history_line(),
            f"built in {self.seconds:.1f} s",
            *(f"warning: {w}" for w in self.warnings),
        ]


def kb(size: int) -> str:
    return f"{size / 1024:.1f} KB" if size < 10 * 1024 * 1024 else f"{size / 2**20:.1f} MB"


def make_env(templates: Path = TEMPLATES_DIR) -> Environment:
    return Environment(
        loader=FileSystemLoader(str(templates)),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=StrictUndefined,
    )


def _versioned(url: str, source: Path) -> str:
    # A new CSS or JS gets a new URL, so no browser keeps using a cached old one.
    return f"{url}?v={hashlib.sha256(source.read_bytes()).hexdigest()[:10]}"


def _page_context(urls: Urls, templates: Path, title: str, canonical: str | None,
                  description: str | None = None) -> dict:
    return {
        "page_title": title,
        "canonical": canonical,
        "css": _versioned(urls(static_file("clipig.css")), templates / "static" / "clipig.css"),
        "js": _versioned(urls(static_file("clipig.js")), templates / "static" / "clipig.js"),
        "home": urls("") or "./",
        "site_name": SITE_NAME,
        "description": description,
    }


def _pages(inputs: Inputs, env: Environment, templates: Path, base_url: str,
           files: SiteFiles) -> dict[str, str]:
    """Site path -> HTML of every page; registers the files they link to."""
    article = inputs.article
    post = page_for_permalink(article.permalink)
    date_iso, date_text = display_date(article.meta["date"])
    description = article.meta.get("description")
    post_urls = Urls(post)
    parts = PostParts(inputs, env, post_urls, files)
    body = Markup(render_article(article, env, parts.helpers))
    pages = {post: env.get_template("post.html").render(
        **_page_context(post_urls, templates, article.title, base_url + link_to_page(post),
                        description),
        title=article.title, date_iso=date_iso, date_text=date_text, body=body,
        history_parts=bool(inputs.histories),
    )}

    def listing(urls: Urls) -> list[dict]:
        return [{"href": urls(link_to_page(post)), "title": article.title,
                 "date_iso": date_iso, "date_text": date_text, "description": description}]

    index, missing = Urls("index.html"), Urls("404.html", base_url)
    pages["index.html"] = env.get_template("index.html").render(
        **_page_context(index, templates, SITE_NAME, base_url), posts=listing(index))
    pages["404.html"] = env.get_template("404.html").render(
        **_page_context(missing, templates, f"Not found - {SITE_NAME}", None),
        posts=listing(missing))
    return pages


def read_manifest(out: Path) -> dict:
    """What the last build into ``out`` recorded (``files``: the site paths it
    wrote); empty when there is none or it cannot be read."""
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) and isinstance(data.get("files"), list) else {}


def _prune(out: Path, produced: set[str], extra: dict | None = None) -> int:
    """Delete what the previous build wrote and this one did not; count them.
    The new manifest lists ``produced`` (and ``extra``'s keys beside)."""
    manifest = out / MANIFEST
    before = set(read_manifest(out).get("files", []))
    removed = 0
    for stale in sorted(before - produced):
        path = out / stale
        if path.is_file() and out.resolve() in path.resolve().parents:
            path.unlink()
            removed += 1
            for parent in path.parents:  # drop folders the removal emptied
                if parent == out or any(parent.iterdir()):
                    break
                parent.rmdir()
    data = {"files": sorted(produced), **(extra or {})}
    write_if_changed(manifest, json.dumps(data, indent=0).encode())
    return removed


def page_weight(out: Path, page: str) -> PageWeight:
    html = (out / page).read_bytes()
    weight = PageWeight(html=len(html), html_gzip=len(gzip.compress(html)))
    seen = set()
    for kind, url in parse_html(html.decode("utf-8")).resources:
        target = resolve(page, url)
        if target is None or target in seen or not (out / target).is_file():
            continue
        seen.add(target)
        size = (out / target).stat().st_size
        if kind == "image":
            weight.images += size
            weight.image_count += 1
        else:
            setattr(weight, kind, getattr(weight, kind) + size)
    return weight


def site_files(inputs: Inputs, out: Path, templates: Path, workers: int | None
               ) -> tuple[Inputs, SiteFiles, int]:
    """Every file the post needs beside its page, registered by site path: the
    images (PNG and WebP, best of N too), the histories and their strips (made
    here, into ``out``), the script and styles. Returns the inputs without any
    history that failed to decode, the files, and how many strips were made."""
    files = SiteFiles()
    inputs, strips_made = _publish_histories(inputs, out, files, workers)
    for renders, tree in ((inputs.renders, IMAGES), (inputs.best_of, BEST_OF_IMAGES)):
        for method, by_stem in renders.items():
            for stem, render in by_stem.items():
                files.copy(tree.png(method, stem), render.png)
                files.web(tree.webp(method, stem), render.png)
                # Best of N: the winner's short run, shown small (a WebP is enough).
                if getattr(render, "short_image", None) is not None:
                    files.web(tree.short_webp(method, stem, render.run), render.short_image)
                if getattr(render, "short_sims", None) is not None:
                    files.copy(tree.short_sims(method, stem), render.short_sims)
    for source in sorted((templates / "static").iterdir()):
        files.copy(static_file(source.name), source)
    return inputs, files, strips_made


def write_files(out: Path, files: SiteFiles, workers: int | None) -> tuple[int, int]:
    """Copy and convert what changed into ``out``; (files copied, WebP copies made)."""
    copied = sum(publish_copy(src, out / dst) for dst, src in files.copies.items())
    made = make_web_copies([(src, out / dst) for dst, src in files.webp.items()], workers)
    return copied, made


def _history_files(inputs: Inputs) -> dict[Path, tuple[str, str]]:
    """(copy, strip) site paths of each image's history, by the image's path in the cache."""
    paths = {}
    for renders, tree in ((inputs.renders, IMAGES), (inputs.best_of, BEST_OF_IMAGES)):
        for method, by_stem in renders.items():
            for stem, render in by_stem.items():
                if render.png in inputs.histories:
                    paths[render.png] = (tree.history_webp(method, stem),
                                         tree.history_strip(method, stem))
    return paths


def _publish_histories(inputs: Inputs, out: Path, files: SiteFiles,
                       workers: int | None) -> tuple[Inputs, int]:
    """Make the strips of the histories, register them and the copies; drop broken ones.

    Runs before any page is rendered: a history whose frames turn out not to
    decode is left out of the inputs, so no page names it.
    """
    paths = _history_files(inputs)
    made, failed = make_strips([(inputs.histories[png].source, out / strip)
                                for png, (_, strip) in paths.items()], workers)
    if failed:
        inputs = replace(inputs, histories={png: h for png, h in inputs.histories.items()
                                            if h.source not in failed},
                         warnings=[*inputs.warnings, *failed.values()])
    for png, (copy, strip) in paths.items():
        if png in inputs.histories:
            files.copy(copy, inputs.histories[png].source)
            files.strip(strip, inputs.histories[png].source)
    return inputs, made


def build_site(cache: Path, out: Path, base_url: str = "/", *, article: Path | None = None,
               prompts: Path | None = None, data_dir: Path | None = None,
               templates: Path | None = None, workers: int | None = None) -> BuildReport:
    """Build the site from ``cache`` into ``out``; raises BuildError on broken links."""
    started = time.perf_counter()
    out, templates = Path(out), Path(templates or TEMPLATES_DIR)
    base_url = normalise_base_url(base_url)
    inputs = load_inputs(Path(cache), article, prompts, data_dir)
    env = make_env(templates)

    out.mkdir(parents=True, exist_ok=True)
    inputs, files, strips_made = site_files(inputs, out, templates, workers)
    pages = _pages(inputs, env, templates, base_url, files)

    report = BuildReport(out=out, post=page_for_permalink(inputs.article.permalink))
    report.renders = sum(len(r) for r in inputs.renders.values())
    report.best_of = sum(len(r) for r in inputs.best_of.values())
    report.histories = len(inputs.histories)
    report.history_bytes = sum(h.size for h in inputs.histories.values())
    report.strips_made, report.warnings = strips_made, list(inputs.warnings)
    report.copied, report.webp_made = write_files(out, files, workers)
    # GitHub Pages would otherwise run the site through Jekyll first.
    write_if_changed(out / ".nojekyll", b"")
    for page, html in pages.items():
        if write_if_changed(out / page, html.encode("utf-8")):
            report.pages_written.append(page)
        else:
            report.pages_unchanged += 1
    report.removed = _prune(out, {*files.copies, *files.webp, *files.strips, *pages,
                                  ".nojekyll"})

    problems = check_site(out, base_url)
    if problems:
        raise BuildError("broken links in the built site:\n  " + "\n  ".join(problems))
    report.weight = page_weight(out, report.post)
    for method, renders in inputs.renders.items():
        for stem in renders:
            report.png_bytes += (out / IMAGES.png(method, stem)).stat().st_size
            report.webp_bytes += (out / IMAGES.webp(method, stem)).stat().st_size
    report.seconds = time.perf_counter() - started
    return report
