"""A seeded stand-in for CLIP, for machines that cannot get the real weights.

It is the ``clip`` package's own model class with random weights, saved as a
checkpoint and loaded through the same path as a user's local checkpoint. Its
images mean nothing; it exercises the whole pipeline at CLIP's shapes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from clipig_gallery.core.atomic import atomic_path

from .clipmodel import import_clip

VOCAB_SIZE = 49408  # the tokenizer's vocabulary; the loader infers it from the weights
CONTEXT_LENGTH = 77


@dataclass(frozen=True)
class Dims:
    """Architecture of a ViT CLIP; heads are width // 64, as the loader assumes."""

    embed_dim: int = 64
    image_resolution: int = 224
    vision_layers: int = 2
    vision_width: int = 64
    vision_patch_size: int = 32
    transformer_width: int = 64
    transformer_layers: int = 2


# The real ViT-B/32: the same speed as the real model, no meaning (benchmarks).
VIT_B_32 = Dims(512, 224, 12, 768, 32, 512, 12)
# Small enough for a demo on two CPU cores.
SMALL = Dims()


def build_clip(dims: Dims = SMALL, seed: int = 0) -> torch.nn.Module:
    """A CLIP model with seeded random weights."""
    clip = import_clip()
    torch.manual_seed(seed)
    model = clip.model.CLIP(
        embed_dim=dims.embed_dim,
        image_resolution=dims.image_resolution,
        vision_layers=dims.vision_layers,
        vision_width=dims.vision_width,
        vision_patch_size=dims.vision_patch_size,
        context_length=CONTEXT_LENGTH,
        vocab_size=VOCAB_SIZE,
        transformer_width=dims.transformer_width,
        transformer_heads=max(1, dims.transformer_width // 64),
        transformer_layers=dims.transformer_layers,
    )
    return model


def save_checkpoint(model: torch.nn.Module, path: Path) -> Path:
    """Write the state dict atomically, the format ``clip.load`` reads from a path."""
    with atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)
    return Path(path)


def standin_checkpoint(folder: Path, dims: Dims = SMALL, seed: int = 0) -> Path:
    """Path of the stand-in's checkpoint in ``folder``, made on first use."""
    tag = "-".join(str(v) for v in asdict(dims).values())
    path = Path(folder) / f"standin-clip-{tag}-seed{seed}.pt"
    if not path.is_file():
        save_checkpoint(build_clip(dims, seed), path)
    return path
