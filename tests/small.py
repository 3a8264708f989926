"""Small copies of the article's configs, for the tests about plumbing.

The cache, resuming, the command line, best-of bookkeeping, histories and the
Ray hand-out work the same whatever a config's resolution and number of
views: ``fixtures/small/`` holds the article's method and ranking configs
with the same keys, transforms, constraints and schedules, at 48 pixels (the
final size, SIZE) and 2 views per step. ``install`` points the renderer at
them for this process; ``cli`` starts the command line in a child process
that uses them. Tests about the configs themselves (fidelity, batch
equivalence, the bench) keep the full ones.
"""

from __future__ import annotations

import sys
from pathlib import Path

FOLDER = Path(__file__).parent / "fixtures" / "small"
SIZE = (48, 48)


def install(monkeypatch=None) -> None:
    """Make ``method_config`` and ``ranking_config`` read the small configs (undone
    after the test when given pytest's ``monkeypatch``)."""
    from clipig_gallery.core import paths

    targets = ((paths, "METHODS_DIR", FOLDER / "methods"),
               (paths, "RANKING_DIR", FOLDER / "ranking"))
    for module, name, value in targets:
        if monkeypatch is None:
            setattr(module, name, value)
        else:
            monkeypatch.setattr(module, name, value)


def cli(*args) -> list[str]:
    """The arguments that run ``clipig-gallery *args`` in a child process on the small
    configs."""
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            "import small; small.install(); from clipig_gallery.app.cli import main; main()")
    return [sys.executable, "-c", code, *map(str, args)]


class Lines:
    """A reporter for tests: keeps the lines said (or drops them) and calls
    ``on_batch`` with every batch's image count."""

    def __init__(self, echo=None, on_batch=None):
        from contextlib import nullcontext

        self.lines: list[str] = []
        self.echo, self.on_batch = echo, on_batch
        self.progress = lambda *a, **k: nullcontext()

    def say(self, line: str) -> None:
        self.lines.append(line)
        if self.echo is not None:
            self.echo(line)

    note = say

    def advance(self, images: int) -> None:
        if self.on_batch is not None:
            self.on_batch(images)


def spec(cache, model, *, executor=None, precision=None, reporter=None, **fields):
    """A run spec for ``cache`` on ``model`` (this process's executor unless given,
    the device's own precision unless given, a quiet reporter unless given); other
    fields (batch, frames, seed, selection) as given."""
    from clipig_gallery.renderer.engine.precision import choose
    from clipig_gallery.renderer.execution.executor import LocalExecutor
    from clipig_gallery.renderer.runs.spec import RunSpec

    executor = executor if executor is not None else LocalExecutor(model)
    choice = (executor.precision(precision) if executor is not None
              else choose(model.device, precision))
    return RunSpec(Path(cache), model, executor, choice, reporter=reporter or Lines(), **fields)


def gallery(cache, items, configs, stems):
    """A gallery plan of ``items`` (those not complete to render)."""
    from clipig_gallery.renderer.runs.first import GalleryPlan

    items = list(items)
    return GalleryPlan(Path(cache), configs, items, [i for i in items if i.pending], list(stems))
