"""The README's main job on any machine: a small gallery, both methods.

With the real ViT-B/32 (cached or downloadable) the images are the article's.
Where its weights cannot be had, the demo says so loudly and uses a seeded
stand-in CLIP through the same loading path, so the whole pipeline still runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from clipig_gallery.core.paths import METHODS
from clipig_gallery.core.prompts import load_prompts
from clipig_gallery.core.settings import MODEL_ENV, ModelUnavailable, default_model_name
from clipig_gallery.generator.site import build_site
from clipig_gallery.renderer.engine.clipmodel import ClipModel, load_clip
from clipig_gallery.renderer.engine.history import DEFAULT_FRAMES
from clipig_gallery.renderer.engine.precision import choose
from clipig_gallery.renderer.engine.standin import standin_checkpoint
from clipig_gallery.renderer.execution.report import Reporter
from clipig_gallery.renderer.runs.bestof import (
    BestOfSpec,
    batch_sizes,
    plan_best_of,
    render_best_of,
)
from clipig_gallery.renderer.runs.first import estimate_line, plan_gallery, render_gallery
from clipig_gallery.renderer.runs.histories import add_histories, missing_in_gallery
from clipig_gallery.renderer.runs.histories import batch_sizes as history_batch_sizes
from clipig_gallery.renderer.runs.judge import DEFAULT_JUDGE, SameModel, judge_cache
from clipig_gallery.renderer.runs.ranking import Experiment, RankingSpec, run_experiment
from clipig_gallery.renderer.runs.session import Machine, Settings, local_device, open_run
from clipig_gallery.renderer.runs.spec import Selection

DEMO_THINGS = ("harp", "piano", "baguette")  # x 9 animals x 2 methods = 54 images
# A glimpse that fits in about two minutes on two CPU cores with the
# stand-in model; `clipig-gallery render` and `rank` use the article's epochs.
DEMO_EPOCHS = 15
# The article's ranking columns, shrunk: (animal, thing, method), 6 short runs
# of 10 epochs, the best 2 and the worst 1 continued for 10 epochs.
DEMO_RANKING = (("snail", "harp", 1), ("penguin", "piano", 1), ("penguin", "piano", 2))
DEMO_RUNS, DEMO_BEST, DEMO_WORST, DEMO_RANK_EPOCHS = 6, 2, 1, 10
# Best of 3 for the first thing only, so the page shows both the best-of view
# and what a thing without best-of images looks like: 3 short runs of 5
# epochs per prompt x method, the winner continued for 10.
DEMO_BEST_OF_THING, DEMO_BEST_OF, DEMO_BEST_OF_EPOCHS = DEMO_THINGS[0], 3, (5, 10)


def model_or_standin(
    name: str | None, device: torch.device, standin_dir: Path, echo: Callable[[str], None]
) -> tuple[ClipModel, bool]:
    """The requested model, or -- only when none was named -- the stand-in.

    A model named with --model or CLIPIG_MODEL never falls back: a typo in a
    path must not quietly produce meaningless images.
    """
    requested = name or os.environ.get(MODEL_ENV)
    try:
        return load_clip(requested or default_model_name(), device), False
    except ModelUnavailable as exc:
        if requested:
            raise
        banner = "!" * 78
        echo(
            f"{banner}\n  CLIP weights unavailable: {exc}\n"
            f"  USING A SEEDED STAND-IN MODEL WITH RANDOM WEIGHTS: the images show the\n"
            f"  pipeline at work, not the article's pictures.\n{banner}"
        )
        return load_clip(str(standin_checkpoint(standin_dir)), device), True


def judge_or_standin(device: torch.device, standin_dir: Path, echo: Callable[[str], None]
                     ) -> ClipModel:
    """The default judge (ViT-B/16), or where its weights cannot be had a second,
    differently seeded stand-in, said loudly."""
    try:
        return load_clip(DEFAULT_JUDGE, device)
    except ModelUnavailable as exc:
        echo(f"judge {DEFAULT_JUDGE} unavailable ({exc}); USING A SECOND STAND-IN MODEL as "
             f"the judge: its ratings show the pipeline, not CLIP's opinion")
        return load_clip(str(standin_checkpoint(standin_dir, seed=1)), device)


def run_demo(out: Path, asked: Machine, epochs: int | None, reporter: Reporter):
    """Render DEMO_THINGS x all animals x both methods into ``out``/cache, a few
    ranking columns and best of 3 for one thing; judge them; build the site.

    The same library calls as `render`, `rank`, `render --best-of`, `judge` and
    `site`, on one run spec; the model is the stand-in where ViT-B/32 cannot be had.
    """
    echo = reporter.say
    device = local_device(asked, "any", reporter.note)
    choose(device, asked.precision)  # an emulated precision is refused before any loading
    clip_model, standin = model_or_standin(asked.model, device, out / ".standin", echo)
    cache = out / "cache"
    settings = Settings(cache, frames=DEFAULT_FRAMES, selection=Selection(things=DEMO_THINGS))
    with open_run(asked, settings, reporter, "any", clip_model) as spec:
        echo(spec.device_line)
        planned = plan_gallery(cache, clip_model.identity, spec.selection,
                               epochs or DEMO_EPOCHS)
        echo(f"demo: {len(planned.items) // len(METHODS)} prompts x {len(METHODS)} methods, "
             f"{planned.configs[1].epochs} epochs, {len(planned.todo)} to render on {device}")
        if planned.todo:
            echo(estimate_line(spec, planned))
        report = render_gallery(spec, planned)
        # A cache from before histories existed: give its images theirs.
        missing, _ = missing_in_gallery(spec, epochs or DEMO_EPOCHS)
        if missing:
            added = add_histories(spec, missing, history_batch_sizes(spec, missing))
            echo(f"{added.added} histories added to images rendered without one")
        echo(f"{report.rendered} images in {report.seconds:.1f} s ({report.skipped} already "
             f"there)" + (" -- stand-in model: the sims are not CLIP's" if standin else ""))
        by_key = {(p.animal, p.thing): p for p in load_prompts()}
        ranking = RankingSpec(DEMO_RUNS, DEMO_BEST, DEMO_WORST, epochs or DEMO_RANK_EPOCHS,
                              epochs or DEMO_RANK_EPOCHS)
        for animal, thing, method in DEMO_RANKING:
            prompt = by_key[animal, thing]
            experiment = Experiment(prompt.text, prompt.stem, method, animal, thing)
            ranked = run_experiment(spec, experiment, ranking)
            echo(f"ranking {prompt.stem} method {method}: {ranked.short_rendered} short and "
                 f"{ranked.detail_rendered} continued runs in {ranked.seconds:.1f} s")
        best_spec = replace(spec, selection=Selection(things=(DEMO_BEST_OF_THING,)))
        best = plan_best_of(cache, clip_model.identity, BestOfSpec(
            DEMO_BEST_OF, 1, epochs or DEMO_BEST_OF_EPOCHS[0], epochs or DEMO_BEST_OF_EPOCHS[1]),
            best_spec.selection)
        echo(f"best of {DEMO_BEST_OF} for {DEMO_BEST_OF_THING}: {best.work().text()}")
        chosen = render_best_of(best_spec, best, batch_sizes(best, best_spec))
        echo(f"best of {DEMO_BEST_OF}: {chosen.short_rendered} short and {chosen.continued} "
             f"continued runs in {chosen.seconds:.1f} s")
    judge = judge_or_standin(device, out / ".standin", echo)
    try:
        judged = judge_cache(cache, judge, [p.stem for p in load_prompts()])
        echo(f"judge {judge.name}: {judged.judged} of {judged.images} images rated")
    except SameModel as exc:  # e.g. CLIPIG_MODEL names ViT-B/16
        echo(f"no judge: {exc}")
    site = out / "site"
    build = build_site(cache, site, "/")
    for line in build.lines():
        echo(line)
    echo(f"demo cache: {cache}/")
    echo(f"to look at it: clipig-gallery serve --out {site} --base-url /   "
         f"(then open http://127.0.0.1:8000/)")
    return report
