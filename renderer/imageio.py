"""Reading and writing images and records, atomically."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gallery.atomic import atomic_path


def save_png(image: torch.Tensor, path: Path) -> Path:
    """Write a (3, H, W) uint8 tensor as an RGB PNG."""
    if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(
            f"expected a (3, H, W) uint8 image, got {tuple(image.shape)} {image.dtype}"
        )
    array = image.permute(1, 2, 0).contiguous().cpu().numpy()
    with atomic_path(path) as tmp:
        Image.fromarray(array, mode="RGB").save(tmp, format="PNG")
    return Path(path)


def write_json(data, path: Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return Path(path)


def open_rgb(path: Path) -> Image.Image:
    """Open an image as RGB; a clear error names a missing or unreadable file."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError:
        raise FileNotFoundError(f"image not found: {path}") from None
    except OSError as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from None


def load_rgb(path: Path, width: int, height: int) -> torch.Tensor:
    """(3, height, width) floats in [0, 1]: short side scaled, centre cropped.

    An image already at the size is returned exactly, so a continued run
    starts from the saved pixels.
    """
    img = open_rgb(path)
    if img.size != (width, height):
        scale = max(width / img.width, height / img.height)
        size = (max(width, round(img.width * scale)), max(height, round(img.height * scale)))
        img = img.resize(size, Image.Resampling.BILINEAR)
        left, top = (img.width - width) // 2, (img.height - height) // 2
        img = img.crop((left, top, left + width, top + height))
    array = np.asarray(img, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()
