"""Everything a build reads, loaded once: prompts, article, cache contents."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gallery.paths import DATA_DIR, METHODS
from gallery.prompts import Prompt, load_prompts

from .article import Article, read_article
from .cachedata import (
    BestOfRender,
    Judge,
    RankingColumn,
    Render,
    load_best_of,
    load_best_of_summary,
    load_judge,
    load_rankings,
    load_renders,
    load_summary,
)


@dataclass(frozen=True)
class Inputs:
    cache: Path
    data_dir: Path  # method configs and ranking configs live under it
    prompts: list[Prompt]
    article: Article
    summary: dict[int, dict]
    renders: dict[int, dict[str, Render]]
    rankings: dict[str, RankingColumn]
    methods: tuple[int, ...]
    # The best-of-N gallery (CACHE/best-of): images by method and stem, its cost.
    best_of: dict[int, dict[str, BestOfRender]] = field(default_factory=dict)
    best_of_summary: dict[int, dict] = field(default_factory=dict)
    # A second model's ratings (CACHE/judge.json), also in each render's ``judge``;
    # None where no judge has run.
    judge: Judge | None = None


def load_inputs(cache: Path, article: Path | None = None, prompts: Path | None = None,
                data_dir: Path | None = None) -> Inputs:
    data_dir = Path(data_dir) if data_dir is not None else DATA_DIR
    prompt_list = load_prompts(prompts)
    stems = {p.stem for p in prompt_list}
    judge = load_judge(cache)
    return Inputs(
        cache=Path(cache),
        data_dir=data_dir,
        prompts=prompt_list,
        article=read_article(Path(article) if article is not None else data_dir / "article.md"),
        summary=load_summary(cache),
        renders={m: load_renders(cache, m, stems, judge) for m in METHODS},
        rankings=load_rankings(cache),
        methods=tuple(METHODS),
        best_of={m: load_best_of(cache, m, stems, judge) for m in METHODS},
        best_of_summary=load_best_of_summary(cache),
        judge=judge,
    )
