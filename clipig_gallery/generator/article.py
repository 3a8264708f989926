"""The article: front matter, Jinja calls for the generated parts, Markdown.

The Markdown source calls helpers (``{{ selector() }}``, ``{{ cost(1, "per_image") }}``)
where generated content goes. A helper never returns HTML into the Markdown:
it returns a token, Markdown converts the text, and the tokens are replaced
by the helper's HTML afterwards. So generated HTML is never reinterpreted as
Markdown, and cache text (prompts, device names) is escaped once, by Jinja.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import markdown
import yaml
from jinja2 import Environment
from markupsafe import Markup, escape

from clipig_gallery.core.textfiles import NotUTF8, load_yaml, read_utf8

REQUIRED_META = ("title", "date", "permalink")
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.S)


class ArticleError(ValueError):
    pass


@dataclass(frozen=True)
class Article:
    path: Path
    meta: dict
    body: str  # Markdown with Jinja calls

    @property
    def title(self) -> str:
        return str(self.meta["title"])

    @property
    def permalink(self) -> str:
        return str(self.meta["permalink"])


def parse_article(text: str, path: Path) -> Article:
    match = _FRONT_MATTER.match(text)
    if not match:
        raise ArticleError(f"{path}: must start with front matter between '---' lines")
    try:
        meta = load_yaml(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise ArticleError(f"{path}: front matter is not valid YAML: {exc}") from None
    if not isinstance(meta, dict):
        raise ArticleError(f"{path}: front matter must be a mapping")
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ArticleError(f"{path}: front matter lacks {', '.join(missing)}")
    return Article(path, meta, text[match.end():])


def read_article(path: Path) -> Article:
    try:
        text = read_utf8(path)
    except NotUTF8 as exc:
        raise ArticleError(f"{path}: {exc}") from None
    return parse_article(text, Path(path))


def display_date(value: object) -> tuple[str, str]:
    """(machine-readable, human) forms of a front-matter date: 2021-06 -> June 2021."""
    if isinstance(value, _dt.date):
        return value.isoformat(), f"{value.day} {value:%B %Y}"
    text = str(value)
    try:
        month = _dt.datetime.strptime(text, "%Y-%m")
    except ValueError:
        return text, text
    return text, f"{month:%B %Y}"


class Slots:
    """Tokens standing in for generated HTML while Markdown runs."""

    def __init__(self):
        self._html: list[Markup] = []
        self._block: list[bool] = []

    def _add(self, html: Markup, block: bool) -> Markup:
        self._html.append(Markup(html))
        self._block.append(block)
        # Letters and digits only: Markdown leaves such a word alone.
        return Markup(f"clipigslot{len(self._html) - 1}x")

    def inline(self, content: object) -> Markup:
        """Text (escaped unless already Markup) inside a sentence."""
        return self._add(escape(content), block=False)

    def block(self, html: Markup) -> Markup:
        """HTML that must stand alone, as its own paragraph of the Markdown."""
        return self._add(html, block=True)

    def fill(self, html: str) -> str:
        def replace(match: re.Match) -> str:
            index = int(match.group(2))
            wrapped = match.group(1) is not None
            if self._block[index] and not wrapped:
                raise ArticleError(
                    f"a block (slot {index}) must be a paragraph of its own in the Markdown"
                )
            if wrapped and not self._block[index]:
                return f"<p>{self._html[index]}</p>"
            return str(self._html[index])

        return re.sub(r"(<p>)?clipigslot(\d+)x(?(1)</p>)", replace, html)


def markdown_to_html(text: str) -> str:
    """The one place Markdown becomes HTML: headings get ids and a link to themselves."""
    converter = markdown.Markdown(
        extensions=["toc", "fenced_code", "tables"],
        extension_configs={"toc": {"permalink": "#", "permalink_title": "Link to this section"}},
        output_format="html",
    )
    return converter.convert(text)


def render_article(article: Article, env: Environment,
                   helpers_for: Callable[[Slots], dict[str, Callable]]) -> str:
    """Article body -> HTML, with every helper's output in place."""
    slots = Slots()
    source = env.from_string(article.body).render(**helpers_for(slots))
    return slots.fill(markdown_to_html(source))
