"""Strip a notebook's outputs, execution counts and run metadata, in place.

The committed notebook carries none (a test checks it): run this, or
`make notebook-strip`, after running it in Jupyter and before committing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

DEFAULT = Path(__file__).resolve().parent.parent / "notebooks" / "clipig-gallery.ipynb"


def strip(path: Path) -> bool:
    """Strip ``path``; whether anything changed."""
    before = path.read_text(encoding="utf-8")
    notebook = nbformat.reads(before, as_version=4)
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("collapsed", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    notebook.metadata.pop("widgets", None)
    # The kernel's version details (Python's, the editor mode) differ per machine.
    notebook.metadata["language_info"] = {"name": "python"}
    after = nbformat.writes(notebook) + "\n"
    if after != before:
        path.write_text(after, encoding="utf-8")
    return after != before


if __name__ == "__main__":
    for name in sys.argv[1:] or [str(DEFAULT)]:
        print(f"{name}: {'stripped' if strip(Path(name)) else 'already clean'}")
