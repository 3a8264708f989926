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
    import gallery.paths
    import renderer.runs.ranking

    targets = ((gallery.paths, "METHODS_DIR", FOLDER / "methods"),
               (renderer.runs.ranking, "RANKING_DIR", FOLDER / "ranking"))
    for module, name, value in targets:
        if monkeypatch is None:
            setattr(module, name, value)
        else:
            monkeypatch.setattr(module, name, value)


def cli(*args) -> list[str]:
    """The arguments that run ``clipig-gallery *args`` in a child process on the small
    configs."""
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            "import small; small.install(); from app.cli import main; main()")
    return [sys.executable, "-c", code, *map(str, args)]
