"""Rating saved images the way the article did: 100 x cosine, fp32, from the PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from .clipmodel import ClipModel


@torch.no_grad()
def rate_images(model: ClipModel, paths: Sequence[Path], texts: Sequence[str],
                batch: int = 64) -> torch.Tensor:
    """Similarities (len(paths), len(texts)) of image files against prompts.

    Each file goes through the ``clip`` package's own preprocessing (short
    side scaled, centre crop, normalisation) and the model in fp32.
    """
    text_features = model.encode_texts(list(texts))
    rows = []
    for start in range(0, len(paths), batch):
        features = model.encode_pictures(list(paths[start : start + batch]))
        rows.append(100.0 * features @ text_features.T)
    if not rows:
        return torch.zeros(0, len(texts))
    return torch.cat(rows).cpu()


@torch.no_grad()
def rate_pairs(model: ClipModel, images: Sequence[Path | bytes], texts: Sequence[str],
               batch: int = 64) -> list[float]:
    """Each image against its own text (100 x cosine), ``batch`` at a time."""
    if len(images) != len(texts):
        raise ValueError(f"{len(images)} images but {len(texts)} texts")
    sims: list[float] = []
    for start in range(0, len(images), batch):
        table = rate_images(model, images[start:start + batch], texts[start:start + batch],
                            batch)
        sims += table.diagonal().tolist()
    return sims


@torch.no_grad()
def feature_similarities(model: ClipModel, config, images: Sequence[Path | bytes]) -> torch.Tensor:
    """(len(images), features): 100 x cosine of each saved image with each feature
    of ``config`` (texts and pictures), every target's in order."""
    goals = [model.encode_texts([f.text]) if f.text is not None
             else model.encode_pictures([f.image])
             for target in config.targets for f in target.features]
    features = model.encode_pictures(list(images))
    return (100.0 * features @ torch.cat(goals).T).cpu()
