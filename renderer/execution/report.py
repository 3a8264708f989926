"""Where a run says what it does and how far it has come.

Runs and executors talk through a ``Reporter``: ``say`` for a line (a batch
size, a retry at half the size, an estimate), ``note`` for a side remark,
``advance`` for images written, ``progress`` around a stretch of work whose total is known. The
default prints lines and shows no progress; the command line's draws a bar
and prints lines above it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Reporter:
    def __init__(self, echo: Callable[[str], None] = print):
        self.echo = echo

    def say(self, line: str) -> None:
        self.echo(line)

    def note(self, line: str) -> None:
        """A side remark (a fallback to the CPU), apart from the run's own lines."""
        self.say(line)

    def advance(self, images: int) -> None:
        """``images`` more images are written."""

    @contextmanager
    def progress(self, total: int, label: str, unit: str = "image") -> Iterator[None]:
        """Around work of ``total`` units (advanced by ``advance``)."""
        yield


QUIET = Reporter(lambda _line: None)
