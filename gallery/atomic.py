"""Atomic file writes (no torch): the site builder uses them as well."""

from __future__ import annotations

import errno
import json
import os
import shutil
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
    except OSError as exc:
        if is_disk_full(exc) and exc.filename == tmp:
            exc.filename = str(path)  # the file the user knows, not its hidden temporary
        raise
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_text(text: str, path: Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(data, path: Path) -> Path:
    """``data`` as indented UTF-8 JSON, written atomically."""
    return write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", path)


# A write that fails for want of space (or of quota): the user can fix it and
# run again, so it ends a command with a message, not a traceback.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def free_space(path: Path) -> str:
    """The free space of the filesystem holding ``path`` (or its nearest existing
    parent), in words."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return "free space unknown"
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if free >= size:
            return f"{free / size:.1f} {unit} free"
    return f"{free} bytes free"


def disk_full_message(exc: OSError, folder: Path, kept: str) -> str:
    """One message for a full disk: where, how much is free, what was kept, what to do."""
    where = Path(exc.filename) if exc.filename else Path(folder)
    said = exc.strerror if exc.strerror and exc.strerror != os.strerror(exc.errno) else ""
    return (f"no space left on the device while writing {where} ({free_space(where)}"
            f"{'; ' + said if said else ''}): "
            f"{kept}. Every file is written whole or not at all, so nothing half-written "
            f"is left. Free some space and run the command again.")
