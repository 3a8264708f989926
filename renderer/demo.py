"""The README's main job on any machine: a few prompts, both methods.

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
from .config import load_config
from .output import ImageJob, render_files
from .paths import method_config_path
from .prompts import load_prompts
from .seeds import derive_seed
from .standin import standin_checkpoint

DEMO_PROMPTS = (("penguin", "piano"), ("snail", "harp"))


def prompt_text(prompt, method: int) -> str:
    """Method 1 uses the full two-sentence prompt, method 2 the first sentence."""
    return prompt.text if method == 1 else prompt.first_sentence


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
) -> list:
    clip_model, standin = model_or_standin(model, device, out / ".standin", echo)
    by_key = {(p.animal, p.thing): p for p in load_prompts()}
    prompts = [by_key[key] for key in DEMO_PROMPTS]
    records = []
    for method in (1, 2):
        config = load_config(method_config_path(method))
        if epochs is not None:
            config = config.with_epochs(epochs)
        jobs = [
            ImageJob(
                prompt_text(p, method),
                derive_seed(p.stem, method, 0),
                out / f"method-{method}" / f"{p.stem}.png",
            )
            for p in prompts
        ]
        echo(f"method {method}: {len(jobs)} prompts x {config.epochs} epochs on {device}")
        for job, record in zip(
            jobs, render_files(config, clip_model, jobs, precision), strict=True
        ):
            echo(f"  {job.png}  sim {record.sim:6.2f}  {record.seconds:6.1f} s/image")
            records.append(record)
    if standin:
        echo("(stand-in model: the sims above are not CLIP's.)")
    echo(f"demo images in {out}/")
    return records
