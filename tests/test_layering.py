"""Dependencies run one way: core at the bottom, renderer and generator on it, app on top.

Each package is imported whole (every submodule) in a fresh interpreter, and
what it pulled into ``sys.modules`` is checked.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

IMPORT_ALL = """
import importlib, json, pkgutil, sys
package = importlib.import_module("clipig_gallery." + sys.argv[1])
for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    importlib.import_module(info.name)
# A subpackage of the project by its own name (core, renderer...), anything else by
# its top-level name (torch, clip...).
print(json.dumps(sorted({name.split(".")[1] if name.startswith("clipig_gallery.")
                         else name.split(".")[0] for name in sys.modules})))
"""

# package -> top-level modules it must never import
FORBIDDEN = {
    "core": {"torch", "renderer", "generator", "app", "clip"},
    "generator": {"torch", "renderer", "app", "clip"},
    "renderer": {"generator", "app"},
}


@functools.cache
def imported_by(package: str) -> frozenset[str]:
    out = subprocess.run([sys.executable, "-c", IMPORT_ALL, package], cwd=REPO,
                         capture_output=True, text=True, check=True, timeout=300)
    return frozenset(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_run_one_way(package):
    found = imported_by(package)
    assert package in found  # the probe really imported it
    assert not found & FORBIDDEN[package], f"{package} imports {sorted(found & FORBIDDEN[package])}"


def test_the_probe_sees_a_forbidden_import():
    # The renderer does import torch: the same probe must notice such a thing.
    assert "torch" in imported_by("renderer")


def test_the_command_line_starts_without_torch():
    # The Pages workflow builds the site with `clipig-gallery site` and no torch.
    probe = ("import sys, clipig_gallery.app.cli; "
             "print(sorted({m.split('.')[0] for m in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                         text=True, check=True, timeout=120)
    assert "'clipig_gallery'" in out.stdout and "'torch'" not in out.stdout
