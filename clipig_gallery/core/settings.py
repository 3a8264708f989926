"""Names and defaults shared by the command line and the library (no torch here)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL = "ViT-B/32"
MODEL_ENV = "CLIPIG_MODEL"
CACHE_ENV = "CLIPIG_CACHE"
DEFAULT_CACHE = "cache"
# Compute precisions of CLIP's image encoder (renderer.engine.precision says which a
# device computes natively); records name the one an image was rendered in.
PRECISIONS = ("fp32", "bf16", "fp16")
# Where set, the precision a run takes when --precision is not given (checked
# like --precision); unset, the fastest the device computes natively.
PRECISION_ENV = "CLIPIG_PRECISION"
# Frames each image's optimisation history keeps unless told otherwise.
DEFAULT_HISTORY_FRAMES = 24


class ModelUnavailable(RuntimeError):
    """CLIP weights could not be had; the message says how to provide them."""


def default_model_name() -> str:
    return os.environ.get(MODEL_ENV) or DEFAULT_MODEL


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)
