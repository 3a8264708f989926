"""The README is short and every link in it and in docs/ leads somewhere.

Relative links (images too) must name an existing file of the repository; a
``#fragment`` into a Markdown file must name one of its headings (GitHub's
anchors); every page of docs/ is linked from the README. Links inside code
blocks are not links.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_LIMIT = 10_000  # bytes
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)\)")


def prose(text: str) -> str:
    """``text`` without its fenced code blocks and inline code."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    headings = re.findall(r"^#{1,6} (.+?)\s*$", prose(page.read_text()), flags=re.M)
    return {anchor(h) for h in headings}


def broken_links(page: Path) -> list[str]:
    problems = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"^(https?:|mailto:)", target):
            continue
        path, _, fragment = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            problems.append(f"{page.relative_to(ROOT)}: {target}: no such file")
        elif fragment and file.suffix == ".md" and fragment not in anchors(file):
            problems.append(f"{page.relative_to(ROOT)}: {target}: no heading #{fragment} "
                            f"in {file.relative_to(ROOT)}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves(page):
    assert not broken_links(page), "\n".join(broken_links(page))


def test_the_checker_sees_a_broken_link_and_a_broken_anchor(tmp_path):
    (tmp_path / "other.md").write_text("# A page\n\n## Its part\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md#its-part) [gone](missing.md) [bad](other.md#nothing)\n"
                    "```\n[in code](nowhere.md)\n```\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        found = broken_links(page)
    finally:
        ROOT = saved
    assert found == ["page.md: missing.md: no such file",
                     "page.md: other.md#nothing: no heading #nothing in other.md"]


def test_the_readme_is_short_and_links_every_page():
    readme = ROOT / "README.md"
    assert len(readme.read_bytes()) < README_LIMIT
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in LINK.findall(readme.read_text())}
    unlinked = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert not unlinked, f"docs pages not linked from the README: {unlinked}"
    for command in ("make demo", "make test"):
        assert command in readme.read_text()
