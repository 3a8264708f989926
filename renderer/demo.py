"""The README's main job on any machine: a small gallery, both methods.

With the real ViT-B/32 (cached or downloadable) the images are the article's.
Where its weights cannot be had, the demo says so loudly and uses a seeded
stand-in CLIP through the same loading path, so the whole pipeline still runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

from .clipmodel import MODEL_ENV, ClipModel, ModelUnavailable, default_model_name, load_clip
from .gallery import method_config, plan, render_gallery, select
from .prompts import load_prompts
from .standin import standin_checkpoint

DEMO_THINGS = ("harp", "piano", "baguette")  # x 9 animals x 2 methods = 54 images
DEMO_EPOCHS = 20  # a glimpse; `clipig-gallery render` uses the article's epochs


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


def run_demo(
    out: Path,
    model: str | None,
    epochs: int | None,
    device: torch.device,
    precision: str | None,
    echo: Callable[[str], None] = print,
):
    """Render DEMO_THINGS x all animals x both methods into ``out``/cache."""
    clip_model, standin = model_or_standin(model, device, out / ".standin", echo)
    cache = out / "cache"
    all_prompts = load_prompts()
    prompts = select(all_prompts, things=DEMO_THINGS)
    configs = {m: method_config(m, epochs or DEMO_EPOCHS) for m in (1, 2)}
    items = plan(cache, prompts, (1, 2), configs, clip_model.name)
    pending = [i for i in items if i.pending]
    echo(
        f"demo: {len(prompts)} prompts x 2 methods, {configs[1].epochs} epochs, "
        f"{len(pending)} to render on {device}"
    )
    report = render_gallery(
        cache, pending, configs, clip_model, [p.stem for p in all_prompts], None, precision
    )
    echo(
        f"{report.rendered} images in {report.seconds:.1f} s ({report.skipped} already there)"
        + (" -- stand-in model: the sims are not CLIP's" if standin else "")
    )
    echo(f"demo cache: {cache}/")
    return report
