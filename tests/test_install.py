"""The project as an installed wheel, not a checkout: what the notebook's
``pip install`` from a git URL or a folder gets.

The wheel is built from this checkout and installed (without its
dependencies, which this environment has) into a folder of its own that
comes first on the path; the commands then run from a folder outside the
checkout. Its prompts, method configs, article and templates must come from
the installed packages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("installed")
    wheels, target = root / "wheels", root / "site-packages"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    # A copy of the checkout: building writes build/ and *.egg-info beside the sources.
    source = root / "source"
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], check=True, capture_output=True).stdout
    for name in filter(None, files.decode().split("\0")):
        path = REPO / name
        if path.is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes(path.read_bytes())
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels),
                    str(source)], check=True, capture_output=True)
    [wheel] = wheels.glob("clipig_gallery-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    return target


def run_installed(target: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``args`` (a command of the installed bin/, or Python's arguments) from ``cwd``."""
    env = {**os.environ, "PYTHONPATH": str(target)}
    command = [str(target / "bin" / args[0]), *args[1:]] if args[0] == "clipig-gallery" else [
        sys.executable, *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_wheel_holds_the_data_and_templates_a_checkout_has(installed):
    wheel = next(installed.parent.glob("wheels/*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = subprocess.run(["git", "-C", str(REPO), "ls-files", "clipig_gallery/core/data",
                              "clipig_gallery/generator/templates"], check=True,
                             capture_output=True, text=True).stdout.split()
    assert len(tracked) > 20
    assert sorted(set(tracked) - names) == []
    assert not [n for n in names if "__pycache__" in n or n.startswith(("tests/", "scripts/"))]
    # One top-level package: nothing named app, core or renderer lands in site-packages.
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {
        "clipig_gallery"}


def test_the_installed_packages_read_their_own_data(installed, tmp_path):
    probe = """
import json
from clipig_gallery import core, generator, renderer
from clipig_gallery.core.paths import DATA_DIR, METHODS_DIR
from clipig_gallery.core.prompts import load_prompts
from clipig_gallery.generator.site import TEMPLATES_DIR
from clipig_gallery.renderer.language.config import load_config
print(json.dumps({"files": [m.__file__ for m in (core, generator, renderer)],
                  "dirs": [str(DATA_DIR), str(TEMPLATES_DIR)],
                  "prompts": len(load_prompts()),
                  "epochs": [load_config(METHODS_DIR / f"method-{m}.yaml").epochs
                             for m in (1, 2)]}))
"""
    result = run_installed(installed, tmp_path, "-c", probe)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert all(Path(f).is_relative_to(installed) for f in found["files"] + found["dirs"])
    assert found["prompts"] == 810
    assert found["epochs"] == [200, 300]


def test_the_installed_command_renders_and_builds_the_post(installed, tmp_path, tiny_clip_path):
    cache, site = tmp_path / "cache", tmp_path / "site"
    render = run_installed(installed, tmp_path, "clipig-gallery", "render", "--cache", str(cache),
                           "--model", str(tiny_clip_path), "--device", "cpu", "--method", "1",
                           "--animal", "cat", "--thing", "piano", "--epochs", "2",
                           "--no-history")
    assert render.returncode == 0, render.stderr
    assert (cache / "method-1").is_dir() and list((cache / "method-1").glob("*.png"))
    built = run_installed(installed, tmp_path, "clipig-gallery", "site", "--cache", str(cache),
                          "--out", str(site))
    assert built.returncode == 0, built.stderr
    post = site / "2021" / "clipig-animal-transfer" / "index.html"
    assert "a cat made of piano" in post.read_text(encoding="utf-8")
    assert list(site.rglob("clipig.js")) and list(site.rglob("clipig.css"))
