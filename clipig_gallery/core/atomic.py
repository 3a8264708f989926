"""Atomic file writes (no torch): the site builder uses them as well."""

from __future__ import annotations

import contextlib
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
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except FileNotFoundError as exc:  # a folder that takes no files (/proc) or just went
        raise Unwritable(exc.errno, exc.strerror, str(path.parent)) from None
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


# A path the command cannot write (a file where a folder should be, no
# permission, a read-only filesystem): the user's to fix, so it ends a command
# with a message naming the path.
UNWRITABLE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR,
                               errno.EISDIR, errno.EEXIST})


class Unwritable(OSError):
    """A folder a run is to write cannot be created or written (``ensure_writable``)."""


def is_unwritable(exc: BaseException) -> bool:
    return isinstance(exc, Unwritable) or (
        isinstance(exc, OSError) and exc.errno in UNWRITABLE_ERRNOS)


def unwritable_message(exc: OSError) -> str:
    where = f" {exc.filename}" if exc.filename else ""
    return (f"cannot write{where}: {exc.strerror or exc}; check the path (a folder "
            f"that can be created, not a file) and that it may be written")


def ensure_writable(folder: Path) -> Path:
    """Check that ``folder`` can be created (if missing) and written, leaving nothing.

    A long run calls this before its first image, so a path it cannot write
    fails at once instead of after the first batch: Unwritable names the
    folder (the command line turns it into one message); a full disk raises
    its own error. Folders made for the check are removed again, so a run
    that stops later for another reason leaves no empty cache behind.
    """
    folder = Path(folder)
    missing = []
    probe = folder.absolute()
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, prefix=".write-check.", suffix=".tmp")
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        if is_disk_full(exc):
            raise
        raise Unwritable(exc.errno, exc.strerror or str(exc), str(folder)) from None
    finally:
        for made in missing:  # deepest first
            with contextlib.suppress(OSError):
                made.rmdir()
    return folder


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
