"""Writing the site incrementally: a file is rewritten only when its input changed.

A derived file (a copy, a WebP) carries its source's modification time, so
"up to date" is a stat, not a read: a new render (the renderer replaces files
atomically, which gives them a new time) makes exactly its own outputs stale.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from clipig_gallery.core.atomic import atomic_path


def is_current(src: Path, dst: Path, same_size: bool) -> bool:
    """``dst`` was made from ``src`` as it is now."""
    try:
        s, d = src.stat(), dst.stat()
    except FileNotFoundError:
        return False
    return s.st_mtime_ns == d.st_mtime_ns and (not same_size or s.st_size == d.st_size)


def publish_copy(src: Path, dst: Path) -> bool:
    """Copy ``src`` to ``dst`` with its time, unless current; True if copied.

    A copy, not a hard link: a tool run over the site later (an optimiser,
    a deploy step) must not be able to change the cache through it.
    """
    if is_current(src, dst, same_size=True):
        return False
    with atomic_path(dst) as tmp:
        shutil.copy2(src, tmp)
    return True


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` unless the file already holds exactly it; True if written."""
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return True
