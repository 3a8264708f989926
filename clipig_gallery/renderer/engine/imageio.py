"""Images to and from tensors: PNG bytes out, files or bytes in."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_uint8(pixels: torch.Tensor) -> torch.Tensor:
    """The saved form: clamp to [0, 1], scale to 255, round half up, as 8-bit."""
    return (pixels.detach().float().clamp(0, 1) * 255 + 0.5).to(torch.uint8)


def encode_png(image: torch.Tensor) -> bytes:
    """A (3, H, W) uint8 tensor as the bytes of an RGB PNG."""
    if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(
            f"expected a (3, H, W) uint8 image, got {tuple(image.shape)} {image.dtype}"
        )
    array = image.permute(1, 2, 0).contiguous().cpu().numpy()
    buffer = io.BytesIO()
    Image.fromarray(array, mode="RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def open_rgb(path: Path | bytes) -> Image.Image:
    """Open an image file (or its bytes) as RGB; a clear error names a bad file."""
    try:
        with Image.open(io.BytesIO(path) if isinstance(path, bytes) else path) as img:
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
