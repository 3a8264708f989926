"""A path that cannot be written: one message naming it, no traceback, and a long
run fails before its first image rather than after its first batch.

A file standing where a folder should be works as root too (permissions do
not stop root); a read-only filesystem is mounted where the test may.
"""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest
from click.testing import CliRunner

from clipig_gallery.app.cli import main
from clipig_gallery.core.prompts import load_prompts
from clipig_gallery.generator.sample import write_sample_cache


@pytest.fixture
def blocked(tmp_path):
    """A plain file: every path below it is unwritable."""
    path = tmp_path / "a-file"
    path.write_text("in the way")
    return path


def _never(*_args, **_kwargs):
    raise AssertionError("rendered although the output cannot be written")


def _says_cannot_write(result, path) -> None:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert f"Error: cannot write {path}: " in result.output, result.output


def _render_into(cache, model, monkeypatch):
    """`render` into ``cache``, failing the test if any image is rendered."""
    from clipig_gallery.renderer.execution import executor

    monkeypatch.setattr(executor, "render_results", _never)
    return CliRunner().invoke(main, ["render", "--device", "cpu", "--thing", "harp",
                                     "--epochs", "1", "--cache", str(cache),
                                     "--model", str(model)])


def test_render_into_an_unwritable_cache_stops_before_the_first_image(
        blocked, tiny_clip_path, monkeypatch):
    result = _render_into(blocked / "cache", tiny_clip_path, monkeypatch)
    _says_cannot_write(result, blocked / "cache")
    assert "Not a directory" in result.output


def test_render_config_to_an_unwritable_folder_stops_before_rendering(
        blocked, tmp_path, tiny_clip_path, monkeypatch):
    from clipig_gallery.renderer.runs import single

    monkeypatch.setattr(single, "_render", _never)
    config = tmp_path / "a.yaml"
    config.write_text("epochs: 1\nresolution: 32\ntargets:\n  - features: [{text: a harp}]\n")
    result = CliRunner().invoke(main, ["render-config", str(config), "-o",
                                       str(blocked / "out" / "x.png"),
                                       "--model", str(tiny_clip_path)])
    _says_cannot_write(result, blocked / "out")


def test_bench_checks_its_json_path_before_timing(blocked, monkeypatch):
    from clipig_gallery.renderer.runs import bench

    monkeypatch.setattr(bench, "run_bench", _never)
    result = CliRunner().invoke(main, ["bench", "--device", "cpu", "--json",
                                       str(blocked / "numbers" / "bench.json")])
    _says_cannot_write(result, blocked / "numbers")


def test_a_site_into_an_unwritable_folder_is_one_message(blocked, tmp_path):
    cache = write_sample_cache(tmp_path / "cache", load_prompts()[:3], rankings=False,
                               best_of=False, judge=False)
    result = CliRunner().invoke(main, ["site", "--cache", str(cache), "--out",
                                       str(blocked / "site")])
    _says_cannot_write(result, blocked / "site")


def test_the_notebook_stops_with_the_same_message(blocked):
    from clipig_gallery.app.notebook import Stop, friendly
    from clipig_gallery.core.atomic import ensure_writable

    with pytest.raises(Stop, match=f"cannot write {blocked / 'cache'}: "):
        with friendly(blocked / "cache"):
            ensure_writable(blocked / "cache")


@pytest.fixture
def read_only(tmp_path):
    folder = tmp_path / f"ro-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=16k", "tmpfs", str(folder)],
            capture_output=True).returncode != 0:
        pytest.skip("mounting a read-only tmpfs needs root with CAP_SYS_ADMIN; the file "
                    "in the way above covers the message")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_read_only_filesystem_is_named(read_only, tiny_clip_path, monkeypatch):
    result = _render_into(read_only / "cache", tiny_clip_path, monkeypatch)
    _says_cannot_write(result, read_only / "cache")
    assert "Read-only file system" in result.output


def test_the_check_leaves_no_folder_behind(tmp_path):
    from clipig_gallery.core.atomic import ensure_writable

    assert ensure_writable(tmp_path / "a" / "b" / "cache") == tmp_path / "a" / "b" / "cache"
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "kept").mkdir()
    ensure_writable(tmp_path / "kept")
    assert [p.name for p in tmp_path.iterdir()] == ["kept"]
    assert list((tmp_path / "kept").iterdir()) == []


def test_a_cache_that_turns_unwritable_mid_run_says_what_is_kept(tmp_path, tiny_clip_path,
                                                                  monkeypatch):
    import errno

    from clipig_gallery.renderer.execution import executor

    def denied(*_args, **_kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "cache" / "x"))

    monkeypatch.setattr(executor, "render_results", denied)
    result = CliRunner().invoke(main, ["render", "--device", "cpu", "--thing", "harp",
                                       "--epochs", "1", "--cache", str(tmp_path / "cache"),
                                       "--model", str(tiny_clip_path)])
    _says_cannot_write(result, tmp_path / "cache" / "x")
    assert f"finished images are kept in {tmp_path / 'cache'}/" in result.output


@pytest.mark.parametrize("extra", [["--epochs", "1"],
                                   ["--best-of", "3", "--epochs-short", "1",
                                    "--epochs-detail", "1"]], ids=["list", "estimate"])
def test_a_dry_run_lists_but_says_the_cache_cannot_be_written(blocked, tiny_clip_path, extra):
    # A dry run writes nothing, so it goes on; the same command without it would stop.
    cache = blocked / "cache"
    result = CliRunner().invoke(main, ["render", "--device", "cpu", "--thing", "harp",
                                       "--animal", "cat", "--method", "1", "--cache", str(cache),
                                       "--model", str(tiny_clip_path), "--dry-run", *extra])
    assert result.exit_code == 0, result.output
    assert f"note: cannot write {cache}: " in result.output
    assert "a run without --dry-run would stop before its first image" in result.output
    assert "cat" in result.output  # the listing itself
    assert blocked.read_text() == "in the way"


def test_a_folder_that_takes_no_files_is_named(tmp_path):
    # /proc exists and may be listed, but no file can be made in it, not even by
    # root: creating one fails with ENOENT, which is no permission error
    from pathlib import Path

    from clipig_gallery.core.atomic import Unwritable, unwritable_message, write_text

    if not Path("/proc/self").is_dir():
        pytest.skip("this system has no /proc")
    with pytest.raises(Unwritable) as info:
        write_text("x", Path("/proc/clipig-test.txt"))
    assert unwritable_message(info.value).startswith("cannot write /proc: No such file")
