"""Where the project's data files live: clipig_gallery/core/data/, package data (a
wheel holds it too)."""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
METHODS_DIR = DATA_DIR / "methods"
RANKING_DIR = DATA_DIR / "ranking"
# A CLIPig config beyond the methods (the bench's "clipig" setting, an example).
SHOWCASE_CONFIG = DATA_DIR / "clipig" / "showcase.yaml"

METHODS = (1, 2)


def method_config_path(method: int) -> Path:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; the article has methods 1 and 2")
    return METHODS_DIR / f"method-{method}.yaml"


def ranking_config_path(method: int, kind: str) -> Path:
    """The ranking experiment's ``short`` or ``detail`` config of a method."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; the article has methods 1 and 2")
    return RANKING_DIR / f"method-{method}-{kind}.yaml"
