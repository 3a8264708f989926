"""Optimisation histories: the animated WebP beside a render, and its still strip.

A history (``core.layout.history_path``) is optional: an image without
one is complete, and older caches have none. So a history that cannot be
read never stops the build: it is left out with a warning that names the
file, and its image is shown as if it had none.

Two reads, for two costs. Every build needs each history's play time (the
page tells the script when to take the animation away again); decoding 24
frames with Pillow to add up their durations takes ~15 ms a file, ~50 s for a
full gallery on every build. The WebP container states each frame's duration
in its frame header, so :func:`read_history` reads only those headers
(microseconds). Pillow decodes a history only when its strip is (re)made,
which happens once per new history; a history whose frames do not decode is
dropped then, before any page names it.

The strip is what a reader who asked for reduced motion gets instead of the
animation: four frames (the start, a third, two thirds, the result) side by
side, a small lossy WebP made beside the history's copy in the site.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from clipig_gallery.core.atomic import atomic_path
from clipig_gallery.core.layout import history_path

from .files import is_current

# The strip: four frames, each this tall, with a thin line between them.
STRIP_FRAMES = 4
STRIP_HEIGHT = 112
STRIP_GAP = 2
STRIP_GAP_COLOUR = (128, 128, 128)  # as visible on a light page as on a dark one
STRIP_QUALITY = 70
STRIP_METHOD = 2  # libwebp's effort: 4 saves ~10% of a ~3 KB strip for twice the time
# Browsers show a frame of 10 ms or less for 100 ms (an old guard against
# "flashing" GIF ads that Chromium and Firefox apply to WebP too).
SHORTEST_SHOWN_MS = 10
SHOWN_INSTEAD_MS = 100


class HistoryError(ValueError):
    """A history file that is not a readable animated WebP; the message names it."""


@dataclass(frozen=True)
class History:
    source: Path  # the animated WebP in the cache
    frames: int
    ms: int  # how long it plays, once
    size: int  # bytes

    @property
    def seconds(self) -> float:
        return self.ms / 1000


def _chunks(f, path: Path, end: int):
    """(FourCC, payload offset, payload size) of each chunk up to ``end``."""
    offset = 12
    while offset + 8 <= end:
        f.seek(offset)
        fourcc, size = struct.unpack("<4sI", f.read(8))
        if offset + 8 + size > end:
            raise HistoryError(f"{path}: chunk {fourcc!r} runs past the end of the file "
                               "(a truncated file?)")
        yield fourcc, offset + 8, size
        offset += 8 + size + (size & 1)  # chunks are padded to an even length


def shown_ms(duration: int) -> int:
    """How long a browser shows a frame that asks for ``duration`` ms."""
    return SHOWN_INSTEAD_MS if duration <= SHORTEST_SHOWN_MS else duration


def read_history(path: Path) -> History:
    """The history's frame count and play time, from its container's frame headers.

    Raises HistoryError (naming the file) for anything but an animated WebP
    whose chunks all lie within the file.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WEBP":
                raise HistoryError(f"{path}: not a WebP file")
            end = 8 + struct.unpack("<I", head[4:8])[0]
            if end > size:
                raise HistoryError(f"{path}: the file ends {end - size} bytes early "
                                   "(a truncated file?)")
            animated, durations = False, []
            for fourcc, start, length in _chunks(f, path, end):
                f.seek(start)
                if fourcc == b"VP8X" and length >= 1:
                    animated = bool(f.read(1)[0] & 0x02)
                elif fourcc == b"ANMF":
                    header = f.read(16)
                    if length < 16 or len(header) < 16:
                        raise HistoryError(f"{path}: a frame header is cut short")
                    durations.append(int.from_bytes(header[12:15], "little"))
    except OSError as exc:
        raise HistoryError(f"{path}: cannot read it: {exc}") from None
    if not animated or not durations:
        raise HistoryError(f"{path}: not an animated WebP (no frames)")
    return History(source=path, frames=len(durations),
                   ms=sum(shown_ms(d) for d in durations), size=size)


def find_histories(pngs: Iterable[Path], warnings: list[str]) -> dict[Path, History]:
    """The history beside each image that has a readable one, by the image's path.

    An unreadable history is left out and described in ``warnings``.
    """
    found = {}
    for png in pngs:
        path = history_path(png)
        if not path.is_file():
            continue
        try:
            found[Path(png)] = read_history(path)
        except HistoryError as exc:
            warnings.append(f"{exc}; the image is shown without its history")
    return found


def strip_indices(frames: int, count: int = STRIP_FRAMES) -> list[int]:
    """Which frames the strip shows: the first, evenly spaced ones, the last."""
    if frames < 1:
        raise ValueError(f"a history has at least one frame, not {frames}")
    return [round(i * (frames - 1) / (count - 1)) for i in range(count)]


def _strip_frames(src: Path) -> list[Image.Image]:
    """The strip's frames of ``src``; decodes every frame, so a broken one raises."""
    with Image.open(src) as image:
        total = getattr(image, "n_frames", 1)
        wanted = strip_indices(total)
        kept = {}
        for index in range(total):  # in order: seeking back would decode them twice
            image.seek(index)
            image.load()
            if index in wanted:
                kept[index] = image.convert("RGB")
    return [kept[i] for i in wanted]


def make_strip(src: Path, dst: Path) -> None:
    """Write the four-frame strip of the history ``src`` at ``dst``, with ``src``'s time."""
    frames = _strip_frames(src)
    width, height = frames[0].size
    cell = (max(1, round(width * STRIP_HEIGHT / height)), STRIP_HEIGHT)
    strip = Image.new("RGB", (cell[0] * len(frames) + STRIP_GAP * (len(frames) - 1), cell[1]),
                      STRIP_GAP_COLOUR)
    for i, frame in enumerate(frames):
        # BOX: an area average, as sharp as Lanczos at these halvings, four times as fast
        strip.paste(frame.resize(cell, Image.Resampling.BOX), (i * (cell[0] + STRIP_GAP), 0))
    with atomic_path(dst) as tmp:
        strip.save(tmp, "WEBP", quality=STRIP_QUALITY, method=STRIP_METHOD)
        stat = src.stat()
        os.utime(tmp, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _try_strip(src: Path, dst: Path) -> str | None:
    try:
        make_strip(src, dst)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        return f"{src}: its frames do not decode ({exc}); the image is shown without its history"
    return None


def make_strips(pairs: Sequence[tuple[Path, Path]],
                workers: int | None = None) -> tuple[int, dict[Path, str]]:
    """Make every stale (history, strip) pair's strip.

    Returns how many were made and, by history, why a history could not be
    (those are to be left out of the site).
    """
    stale = [(s, d) for s, d in pairs if not is_current(s, d, same_size=False)]
    if len(stale) < 4:
        problems = [_try_strip(s, d) for s, d in stale]
    else:  # Pillow releases the GIL while it decodes and encodes: threads suffice
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            problems = list(pool.map(lambda pair: _try_strip(*pair), stale))
    failed = {src: problem for (src, _), problem in zip(stale, problems, strict=True) if problem}
    return len(stale) - len(failed), failed
