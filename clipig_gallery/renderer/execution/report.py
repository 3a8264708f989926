"""Where a run says what it does and how far it has come.

Runs and executors talk through a ``Reporter``: ``say`` for a line (a batch
size, a retry at half the size, an estimate), ``note`` for a side remark,
``advance`` for images written, ``progress`` around a stretch of work whose total is known. The
default prints lines and shows no progress; a ``BarReporter`` (the command
line's, the notebook's) shows one progress bar, which nested stretches share.
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


class BarReporter(Reporter):
    """Progress as one bar (``new_bar``: a tqdm of the subclass's kind); a stretch
    inside another adds to the outer bar instead of opening its own."""

    def __init__(self, echo: Callable[[str], None] = print):
        super().__init__(echo)
        self.bar = None

    def new_bar(self, total: int, label: str, unit: str):
        raise NotImplementedError

    def advance(self, images: int) -> None:
        if self.bar is not None:
            self.bar.update(images)

    @contextmanager
    def progress(self, total: int, label: str, unit: str = "image") -> Iterator[None]:
        if self.bar is not None:  # nested: the outer bar counts
            yield
            return
        with self.new_bar(total, label, unit) as self.bar:
            try:
                yield
            finally:
                self.bar = None


QUIET = Reporter(lambda _line: None)
