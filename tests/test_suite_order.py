"""The suite's own schedule: the long files that conftest.py puts first."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import LONG_FIRST

TESTS = Path(__file__).resolve().parent


def test_every_long_file_named_first_is_a_test_file():
    assert len(set(LONG_FIRST)) == len(LONG_FIRST)
    missing = [name for name in LONG_FIRST if not (TESTS / name).is_file()]
    assert not missing, f"tests/conftest.py LONG_FIRST names no such file: {missing}"


def test_make_test_keeps_the_collection_order():
    # Without the flag pytest-xdist hands out files by their number of tests,
    # and the order set in conftest.py would be lost.
    makefile = (TESTS.parent / "Makefile").read_text()
    (command,) = re.findall(r"-m pytest .*", makefile)
    assert "--dist loadfile" in command and "--no-loadscope-reorder" in command


def test_the_long_files_come_first_in_the_collection(request):
    files = []
    for item in request.session.items:
        if not files or files[-1] != item.path.name:
            files.append(item.path.name)
    assert len(files) == len(set(files)), "a file's tests are split up"
    present = [name for name in LONG_FIRST if name in files]
    assert files[:len(present)] == present
