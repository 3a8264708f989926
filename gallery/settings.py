"""Names and defaults shared by the command line and the library (no torch here)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL = "ViT-B/32"
MODEL_ENV = "CLIPIG_MODEL"
CACHE_ENV = "CLIPIG_CACHE"
DEFAULT_CACHE = "cache"


class ModelUnavailable(RuntimeError):
    """CLIP weights could not be had; the message says how to provide them."""


def default_model_name() -> str:
    return os.environ.get(MODEL_ENV) or DEFAULT_MODEL


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)
