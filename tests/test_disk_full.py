"""A disk that fills up: one clear message, no traceback, nothing lost, a rerun completes.

The render runs into a real small filesystem (a tmpfs this test mounts, as
root where the kernel lets it); the site build and publishing, whose
failures are the same error from other writers, get it injected.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import small
from click.testing import CliRunner

from clipig_gallery.app.cli import main
from clipig_gallery.core.layout import record_path
from clipig_gallery.core.prompts import load_prompts
from clipig_gallery.generator.sample import write_sample_cache
from clipig_gallery.renderer.execution.cache import png_is_whole


def _mount(folder: Path, size: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 40 kB filesystem (room for a few small images), unmounted after."""
    folder = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    if os.geteuid() != 0 or not _mount(folder, "40k"):
        pytest.skip("mounting a tmpfs needs root with CAP_SYS_ADMIN; the injected tests below "
                    "cover the messages")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def _args(cache: Path, model: Path) -> list[str]:
    return ["render", "--device", "cpu", "--thing", "harp", "--method", "1", "--epochs", "1",
            "--no-history", "--cache", str(cache), "--model", str(model)]


def _render(cache: Path, model: Path):
    # A child process, as a user runs it: the whole command, its exit code and
    # output (on the small configs: what is tested is the writing).
    return subprocess.run(small.cli(*_args(cache, model)), capture_output=True, text=True,
                          timeout=300)


def test_a_full_disk_stops_the_render_with_one_message_and_keeps_what_it_finished(
        small_disk, small_configs, tiny_clip_path):
    cache = small_disk / "cache"
    full = _render(cache, tiny_clip_path)
    assert full.returncode == 1, full.stdout + full.stderr
    said = full.stderr.strip().splitlines()
    assert "Traceback" not in full.stderr and len(said) == 1, full.stderr
    (line,) = said
    assert line.startswith(f"Error: no space left on the device while writing {cache}")
    assert "free)" in line and "the images finished before it are kept" in line
    assert "Free some space and run the command again" in line
    finished = sorted(cache.glob("method-1/*.png"))
    assert 1 <= len(finished) < 9
    assert f"({len(finished)} complete images there)" in line
    for png in finished:  # every image there is whole and recorded
        assert png_is_whole(png, small.SIZE) and record_path(png).is_file(), png
    assert not list(cache.rglob("*.tmp"))
    kept = {p: p.stat().st_mtime_ns for p in finished}
    # Space is freed (the filesystem grows): the rerun (here, the same command)
    # renders only the rest.
    subprocess.run(["mount", "-o", "remount,size=20m", str(small_disk)], check=True)
    rerun = CliRunner().invoke(main, _args(cache, tiny_clip_path), catch_exceptions=False)
    assert rerun.exit_code == 0, rerun.output
    assert f"{9 - len(finished)} images in" in rerun.output
    assert len(list(cache.glob("method-1/*.png"))) == 9
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_under_the_site_is_one_message(small_disk, tmp_path):
    cache = write_sample_cache(tmp_path / "cache", load_prompts()[:30], rankings=False)
    result = subprocess.run([sys.executable, "-m", "clipig_gallery.app.cli", "site",
                             "--cache", str(cache), "--out", str(small_disk / "site")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: no space left on the device while writing")
    assert not list((small_disk / "site").rglob("*.tmp"))


def test_a_full_disk_during_the_site_build_is_one_message(tmp_path, monkeypatch):
    from clipig_gallery.generator import site

    cache = write_sample_cache(tmp_path / "cache", load_prompts()[:3], rankings=False,
                               best_of=False, judge=False)
    monkeypatch.setattr(site, "write_if_changed", _no_space)
    result = CliRunner().invoke(main, ["site", "--cache", str(cache), "--out",
                                       str(tmp_path / "site")])
    assert result.exit_code == 1, result.output
    assert "Error: no space left on the device" in result.output
    assert "free)" in result.output and "run the command again" in result.output
    assert not isinstance(result.exception, OSError)  # a message, not a traceback


def test_a_full_disk_while_publishing_is_one_message(tmp_path, monkeypatch):
    from clipig_gallery.generator import publish

    real = subprocess.run

    def git_without_space(args, **kwargs):
        if args[:2] == ["git", "write-tree"] or args[:2] == ["git", "hash-object"]:
            return subprocess.CompletedProcess(
                args, 128, "", "error: unable to write file: No space left on device")
        return real(args, **kwargs)

    cache = write_sample_cache(tmp_path / "cache", load_prompts()[:3], rankings=False,
                               best_of=False, judge=False)
    repo = tmp_path / "repo"
    repo.mkdir()
    real(["git", "init", "--quiet", "--bare", str(tmp_path / "remote.git")], check=True)
    real(["git", "init", "--quiet", "-b", "main"], cwd=repo, check=True)
    real(["git", "remote", "add", "origin", str(tmp_path / "remote.git")], cwd=repo, check=True)
    monkeypatch.setattr(publish.subprocess, "run", git_without_space)
    monkeypatch.chdir(repo)
    result = CliRunner().invoke(main, ["publish", "--cache", str(cache), "--out",
                                       str(tmp_path / "site"), "--allow-missing"])
    assert result.exit_code == 1, result.output
    assert "Error: no space left on the device while writing" in result.output
    assert "No space left on device" in result.output and "run the command again" in result.output


def test_the_message_names_the_file_being_written_not_its_temporary(tmp_path):
    from clipig_gallery.core.atomic import atomic_path

    target = tmp_path / "x.png"
    with pytest.raises(OSError) as caught:
        with atomic_path(target) as tmp:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
    assert caught.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []  # no temporary left, no half file
