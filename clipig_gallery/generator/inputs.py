"""Everything a build reads, loaded once: prompts, article, cache contents."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from clipig_gallery.core.paths import DATA_DIR, METHODS
from clipig_gallery.core.prompts import Prompt, load_prompts

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
from .histories import History, find_histories


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
    # The optimisation history of each gallery and best-of image that has a
    # readable one, by the image's path in the cache (see histories.py).
    histories: dict[Path, History] = field(default_factory=dict)
    # What the build should tell its user but need not stop for.
    warnings: list[str] = field(default_factory=list)


def load_inputs(cache: Path, article: Path | None = None, prompts: Path | None = None,
                data_dir: Path | None = None) -> Inputs:
    data_dir = Path(data_dir) if data_dir is not None else DATA_DIR
    prompt_list = load_prompts(prompts)
    stems = {p.stem for p in prompt_list}
    judge = load_judge(cache)
    # Read in the order the fields are listed, so the first broken file reported stays the same.
    article_path = Path(article) if article is not None else data_dir / "article.md"
    parsed, summary = read_article(article_path), load_summary(cache)
    renders = {m: load_renders(cache, m, stems, judge) for m in METHODS}
    rankings = load_rankings(cache)
    best_of = {m: load_best_of(cache, m, stems, judge) for m in METHODS}
    warnings: list[str] = []
    histories = find_histories([r.png for by_method in (renders, best_of)
                                for by_stem in by_method.values() for r in by_stem.values()],
                               warnings)
    return Inputs(
        cache=Path(cache),
        data_dir=data_dir,
        prompts=prompt_list,
        article=parsed,
        summary=summary,
        renders=renders,
        rankings=rankings,
        methods=tuple(METHODS),
        best_of=best_of,
        best_of_summary=load_best_of_summary(cache),
        judge=judge,
        histories=histories,
        warnings=warnings,
    )
