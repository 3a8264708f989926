"""Atomic file writes (no torch): the site builder uses them as well."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside ``path``; rename it into place on success.

    A crash or kill before the rename leaves the old file (or none) and at
    most a stray hidden ``.tmp`` file, never a half-written ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_text(text: str, path: Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(data, path: Path) -> Path:
    """``data`` as indented UTF-8 JSON, written atomically."""
    return write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", path)
