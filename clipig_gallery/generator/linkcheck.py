"""Checks a built site: every local URL resolves, every #fragment has a target.

Run by every build (a broken link fails it) and by the tests over the whole
site. Selector links (``#thing=harp&method=2``, ``...&view=best``) have no
element to point at: their target is a selection, which must exist in the
selector's data (a best-of view only where the page has best-of images).
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

# (tag, attribute) pairs whose value is a URL to check; a history control's data
# attributes name the files the script shows only when asked (the strip, the
# image a history ends in), so a typo in them would otherwise go unnoticed.
LINK_ATTRS = {("a", "href"), ("link", "href"), ("script", "src"), ("img", "src"),
              ("source", "src"), ("iframe", "src"), ("a", "data-history-strip"),
              ("a", "data-history-final")}


@dataclass
class ParsedPage:
    ids: set[str] = field(default_factory=set)
    links: list[tuple[str, str, str]] = field(default_factory=list)  # (tag, attribute, URL)
    duplicate_ids: set[str] = field(default_factory=set)
    scripts: dict[str, str] = field(default_factory=dict)  # id -> text of <script id=...>
    resources: list[tuple[str, str]] = field(default_factory=list)  # (css|js|image, URL)


class _Parser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.page = ParsedPage()
        self._script_id: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        ident = attrs.get("id")
        if ident is not None:
            if ident in self.page.ids:
                self.page.duplicate_ids.add(ident)
            self.page.ids.add(ident)
        for name, value in attrs.items():
            if (tag, name) in LINK_ATTRS and value is not None:
                self.page.links.append((tag, name, value))
        kind = {"img": "image", "script": "js"}.get(tag)
        if tag == "link" and "stylesheet" in (attrs.get("rel") or "").split():
            kind = "css"
        url = attrs.get("href" if tag == "link" else "src")
        if kind and url:
            self.page.resources.append((kind, url))
        if tag == "script" and ident:
            self._script_id = ident
            self.page.scripts[ident] = ""

    def handle_endtag(self, tag):
        if tag == "script":
            self._script_id = None

    def handle_data(self, data):
        if self._script_id:
            self.page.scripts[self._script_id] += data


def parse_html(text: str) -> ParsedPage:
    parser = _Parser()
    parser.feed(text)
    parser.close()
    return parser.page


def is_local(url: str) -> bool:
    parts = urlsplit(url)
    return not parts.scheme and not parts.netloc


def resolve(page: str, url: str, base_url: str = "/") -> str | None:
    """The site path a local URL of ``page`` points to; None if it leaves the site."""
    path = unquote(urlsplit(url).path)
    if not path:
        return page
    if path.startswith("/"):
        if not path.startswith(base_url):
            return None
        target = path[len(base_url):]
    else:
        target = posixpath.join(posixpath.dirname(page), path)
    folder = target.endswith("/") or target == ""
    target = posixpath.normpath(target) if target else "."
    if target.startswith(".."):
        return None
    if folder or target == ".":
        target = posixpath.join(target, "index.html") if target != "." else "index.html"
    return target


def selection_exists(page: ParsedPage, fragment: str) -> bool:
    data = page.scripts.get("clipig-selector-data")
    if data is None:
        return False
    query = parse_qs(fragment, keep_blank_values=True)
    thing = query.get("thing", [None])[0]
    method = query.get("method", [None])[0]
    selector = json.loads(data)
    # A best-of link needs the best-of view, which the page has only with best-of data.
    view = query.get("view", [None])[0]
    if view is not None and not (view == "best" and selector.get("best")):
        return False
    return thing in selector["things"] and str(method) in {str(m) for m in selector["methods"]}


def check_site(root: Path, base_url: str = "/") -> list[str]:
    """Problems found in every HTML page under ``root``, as readable lines."""
    root = Path(root)
    pages = {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*.html"))}
    parsed = {name: parse_html(path.read_text(encoding="utf-8")) for name, path in pages.items()}
    problems = []
    for name, page in parsed.items():
        problems += [f"{name}: duplicate id {i!r}" for i in sorted(page.duplicate_ids)]
        for tag, attr, url in page.links:
            if not is_local(url) or url.startswith(("mailto:", "data:")):
                continue
            target = resolve(name, url, base_url)
            where = f"{name}: <{tag} {attr}={url!r}>"
            if target is None:
                problems.append(f"{where} leaves the site")
                continue
            if not (root / target).is_file():
                problems.append(f"{where}: {target} does not exist")
                continue
            fragment = urlsplit(url).fragment
            if not fragment or target not in parsed:
                continue
            target_page = parsed[target]
            if "=" in fragment:  # still encoded: parse_qs decodes it once
                if not selection_exists(target_page, fragment):
                    problems.append(f"{where}: no such selection in {target}")
            elif unquote(fragment) not in target_page.ids:
                problems.append(f"{where}: no id {unquote(fragment)!r} in {target}")
    return problems
