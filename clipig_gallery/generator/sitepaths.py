"""Where each file goes in the built site, and URLs between them.

Every site path is relative to the site root and uses "/". Pages link with
relative URLs (``../../img/...``), so the site works at any depth and under
a GitHub Pages project path (``/repo-name/``) without knowing it. The one
exception is the 404 page, which the host serves at whatever URL was asked
for: it links through the ``--base-url``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import quote, urlencode

from clipig_gallery.core.layout import HISTORY_SUFFIX

STATIC_DIR = "assets"
MANIFEST = ".clipig-build.json"

_PERMALINK_PART = re.compile(r"^[A-Za-z0-9._-]+$")


@dataclass(frozen=True)
class ImageTree:
    """The site's files of one gallery root: the first attempts under ``img``, best of
    N under ``img/best-of``, with the same names below each. Stems are letters and
    "-" and runs numbers, so the script may fill in these patterns as they are."""

    root: str

    def _method(self, method: int | str) -> str:
        return f"{self.root}/method-{method}"

    def png(self, method: int | str, stem: str) -> str:
        return f"{self._method(method)}/{stem}.png"

    def webp(self, method: int | str, stem: str) -> str:
        return f"{self._method(method)}/{stem}.webp"

    def sims_csv(self, method: int | str) -> str:
        return f"{self._method(method)}/sims.csv"

    def judge_csv(self, method: int | str) -> str:
        """The judge model's ratings of a method's images, beside its sims.csv."""
        return f"{self._method(method)}/judge.csv"

    # Optimisation histories, in a folder of their own beside the images they show
    # (so nothing that lists a method's images counts them), each with the
    # four-frame strip shown instead where a reader asked for reduced motion.
    def history_webp(self, method: int | str, stem: str) -> str:
        return f"{self._method(method)}/history/{stem}{HISTORY_SUFFIX}"

    def history_strip(self, method: int | str, stem: str) -> str:
        return f"{self._method(method)}/history/{stem}{STRIP_SUFFIX}"

    # Best of N only: the winner's image after its short run (a WebP: it is shown
    # small) and every short run's sim of one prompt, in the article's CSV format.
    def short_webp(self, method: int | str, stem: str, run: int | str) -> str:
        return f"{self._method(method)}/runs/{stem}-{run}.webp"

    def short_sims(self, method: int | str, stem: str) -> str:
        return f"{self._method(method)}/short-sims/{stem}.csv"


STRIP_SUFFIX = ".strip.webp"
IMAGES = ImageTree("img")  # first attempts
BEST_OF_IMAGES = ImageTree("img/best-of")


def config_file(name: str) -> str:
    return f"configs/{name}"


def static_file(name: str) -> str:
    return f"{STATIC_DIR}/{name}"


def ranking_file(stem: str, method: int, relative: str) -> str:
    """A file of a ranking column, at the same relative place as in the cache."""
    return f"ranking/{stem}/method-{method}/{relative}"


def webp_of(site_path: str) -> str:
    return str(PurePosixPath(site_path).with_suffix(".webp"))


def page_for_permalink(permalink: str) -> str:
    """``/2021/clipig/`` -> ``2021/clipig/index.html``; ``/a/b.html`` stays a file."""
    parts = [p for p in str(permalink).strip().split("/") if p]
    bad = [p for p in parts if p in (".", "..") or not _PERMALINK_PART.match(p)]
    if not parts or bad:
        raise ValueError(
            f"permalink {permalink!r}: use folder names of letters, digits, '.', '_' and '-'"
        )
    if parts[-1].endswith(".html"):
        return "/".join(parts)
    return "/".join([*parts, "index.html"])


def link_to_page(page: str) -> str:
    """The URL to use for a page: a folder URL for ``.../index.html``."""
    return page[: -len("index.html")] if page.endswith("index.html") else page


class BaseUrlError(ValueError):
    """A base URL that is not a path the site could be served under."""


# A part of the path: URL-safe characters (RFC 3986's unreserved), what a
# repository's name on GitHub is made of.
_BASE_PART = re.compile(r"[A-Za-z0-9._~-]+")


def normalise_base_url(base_url: str) -> str:
    """``repo-name`` or ``/repo-name`` -> ``/repo-name/``; empty -> ``/``. Anything
    but a path of URL-safe parts (an address, ``..``, a space, ``?``) is refused."""
    text = str(base_url).strip()
    if "://" in text or text.startswith("//"):
        raise BaseUrlError(f"base URL {base_url!r}: give the path the site is served "
                           "under, such as /repo-name/, not an address")
    parts = [p for p in text.split("/") if p]
    for part in parts:
        if part in (".", "..") or not _BASE_PART.fullmatch(part):
            raise BaseUrlError(
                f"base URL {base_url!r}: {part!r} is not a plain part of a path; use "
                "letters, digits, '-', '_', '.' and '~'")
    return "/" + "".join(f"{p}/" for p in parts)


FIRST, BEST = "first", "best"  # the selector's views: first attempt, best of N


def selection_fragment(thing: str, method: int, view: str | None = None) -> str:
    """The selector's URL state; the same encoding as the browser's URLSearchParams.

    The first attempt is the default view and leaves ``view`` out, so links
    made before there was a best-of view still mean what they meant.
    """
    if view not in (None, FIRST, BEST):
        raise ValueError(f"unknown selector view {view!r}; use {FIRST!r} or {BEST!r}")
    state = {"thing": thing, "method": method}
    return urlencode({**state, "view": BEST} if view == BEST else state)


class Urls:
    """URLs from one page to any site path."""

    def __init__(self, page: str, base_url: str | None = None):
        # A page at depth d reaches the site root through d "../"; a page
        # served at unknown URLs (404) goes through the absolute base URL.
        depth = page.count("/")
        self.root = normalise_base_url(base_url) if base_url is not None else "../" * depth

    def __call__(self, site_path: str) -> str:
        return self.root + quote(site_path, safe="/")
