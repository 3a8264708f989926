"""The gallery cache: skip and redo decisions, CSV and summary, kill safety.

Plumbing, so on the small copies of the configs (tests/small.py).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import small

from clipig_gallery.core.prompts import load_prompts
from clipig_gallery.renderer.execution.cache import png_is_whole, read_record
from clipig_gallery.renderer.runs.configs import method_config
from clipig_gallery.renderer.runs.first import plan, render_gallery
from clipig_gallery.renderer.runs.spec import select

PROMPTS = load_prompts()
STEMS = [p.stem for p in PROMPTS]


def configs(epochs=2, **per_method):
    return {m: method_config(m, per_method.get(f"m{m}", epochs)) for m in (1, 2)}


@pytest.fixture(scope="module", autouse=True)
def _small_configs():
    with pytest.MonkeyPatch.context() as patch:
        small.install(patch)
        yield


def harp_prompts(n=3):
    return select(PROMPTS, things=["harp"])[:n]


def test_select_filters_and_names_unknown_values():
    assert len(select(PROMPTS)) == 810
    assert {p.animal for p in select(PROMPTS, animals=["snail"])} == {"snail"}
    assert len(select(PROMPTS, animals=["snail"], things=["harp", "piano"])) == 2
    with pytest.raises(ValueError, match="unicorn"):
        select(PROMPTS, animals=["unicorn"])


@pytest.fixture(scope="module")
def rendered_once(tmp_path_factory, tiny_clip):
    """A cache with 3 harp prompts x 2 methods at 2 epochs, rendered once."""
    cache = tmp_path_factory.mktemp("gallery") / "cache"
    cfg = configs()
    items = plan(cache, harp_prompts(), (1, 2), cfg, tiny_clip.identity)
    report = render_gallery(small.spec(cache, tiny_clip, batch=2),
                            small.gallery(cache, items, cfg, STEMS))
    assert report.rendered == 6 and report.batches == [2, 1, 2, 1]
    return cache


@pytest.fixture
def rendered(rendered_once, tmp_path):
    """A fresh copy of that cache for each test, which may change it."""
    return Path(shutil.copytree(rendered_once, tmp_path / "cache", copy_function=shutil.copy2))


def statuses(cache, cfg, model, seed=0):
    return {(i.method, i.prompt.stem): i.status
            for i in plan(cache, harp_prompts(), (1, 2), cfg, model, seed)}


def test_complete_images_are_skipped(rendered, tiny_clip):
    assert set(statuses(rendered, configs(), tiny_clip.identity).values()) == {"complete"}
    record = read_record(rendered / "method-2" / "cat-of-harp.png")
    assert record.prompt == "a cat made of harp."
    assert (record.animal, record.thing, record.method) == ("cat", "harp", 2)


def test_changed_config_redoes_that_method_only(rendered, tiny_clip):
    found = statuses(rendered, configs(m1=3), tiny_clip.identity)
    assert {s for (m, _), s in found.items() if m == 1} == {"changed (config_hash)"}
    assert {s for (m, _), s in found.items() if m == 2} == {"complete"}


def test_changed_model_or_seed_redoes(rendered, tiny_clip):
    assert set(statuses(rendered, configs(), "other-model").values()) == {"changed (model)"}
    assert set(statuses(rendered, configs(), tiny_clip.identity, seed=1).values()) == {
        "changed (seed)"
    }


def test_corrupt_or_half_written_png_is_redone(rendered, tiny_clip):
    png = rendered / "method-1" / "cat-of-harp.png"
    png.write_bytes(png.read_bytes()[: png.stat().st_size // 2])
    second = harp_prompts()[1].stem
    (rendered / "method-1" / f"{second}.png").unlink()
    broken_record = rendered / "method-2" / "cat-of-harp.json"
    broken_record.write_text("{not json")
    found = statuses(rendered, configs(), tiny_clip.identity)
    assert found[1, "cat-of-harp"] == "corrupt"
    assert found[1, second] == "missing"
    assert found[2, "cat-of-harp"] == "missing"
    cfg = configs()
    items = plan(rendered, harp_prompts(), (1, 2), cfg, tiny_clip.identity)
    report = render_gallery(small.spec(rendered, tiny_clip),
                            small.gallery(rendered, items, cfg, STEMS))
    assert report.rendered == 3
    assert set(statuses(rendered, cfg, tiny_clip.identity).values()) == {"complete"}


def test_a_record_with_a_field_of_the_wrong_type_counts_as_missing(rendered, tiny_clip):
    # A hand-edited record is not trusted: its image is rendered again, others kept.
    record = rendered / "method-1" / "cat-of-harp.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "seed": "7"}))
    assert read_record(rendered / "method-1" / "cat-of-harp.png") is None
    found = statuses(rendered, configs(), tiny_clip.identity)
    assert found.pop((1, "cat-of-harp")) == "missing"
    assert set(found.values()) == {"complete"}


def test_csv_in_the_article_format(rendered):
    with open(rendered / "method-1" / "sims.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["", "prompt", "sim"]
    assert [r[0] for r in rows[1:]] == [
        f"method-1/{p.stem}.png" for p in harp_prompts()
    ]
    record = read_record(rendered / "method-1" / "cat-of-harp.png")
    assert rows[1][1] == record.prompt and float(rows[1][2]) == record.sim


def test_summary_measures_each_method(rendered):
    summary = json.loads((rendered / "summary.json").read_text())
    for method in ("1", "2"):
        entry = summary["methods"][method]
        assert entry["images"] == 3 and entry["epochs"] == 2
        assert entry["seconds_per_image"] > 0
        assert entry["config"] == f"method-{method}.yaml"


def test_stale_temp_files_are_removed(rendered, tiny_clip):
    stray = rendered / "method-1" / ".cat-of-harp.png.abc.tmp"
    stray.write_bytes(b"half")
    render_gallery(small.spec(rendered, tiny_clip), small.gallery(rendered, [], configs(), STEMS))
    assert not stray.exists()


def _whole_images(cache):
    return {p: p.read_bytes() for p in sorted(cache.glob("method-*/*.png"))
            if read_record(p) is not None}


def _default_sigint():
    # A child inherits an ignored SIGINT (pytest started in the background of a
    # non-interactive shell), and Python then never raises KeyboardInterrupt.
    # Give the render the disposition it has when a user runs it from a terminal.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for_images(proc, cache, count, timeout):
    deadline = time.monotonic() + timeout
    while len(_whole_images(cache)) < count:
        if proc.poll() is not None:
            pytest.fail(f"the render exited ({proc.returncode}) before {count} images:\n"
                        + proc.stdout.read())
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {count} finished images within {timeout} s:\n"
                        + proc.communicate()[0])
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_render_loses_nothing_finished(sig, tmp_path, tiny_clip_path):
    # Five short renders, one at a time: the signal comes after the third is
    # finished, while a later one is being rendered or written.
    cache = tmp_path / "cache"
    animals = [a for p in harp_prompts(5) for a in ("--animal", p.animal)]
    # Renders long enough that the signal lands while one is still to come.
    args = ["render", "--cache", cache, "--model", tiny_clip_path, "--epochs", 30,
            "--thing", "harp", *animals, "--method", "1", "--batch", 1, "--device", "cpu"]
    proc = subprocess.Popen(small.cli(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, preexec_fn=_default_sigint)
    try:
        _wait_for_images(proc, cache, 3, timeout=120)
        proc.send_signal(sig)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    if sig == signal.SIGINT:
        assert proc.returncode == 1, output  # the CLI's own error exit, not a traceback
        assert "interrupted: finished images are kept in" in output
        assert "Traceback" not in output
    else:
        assert proc.returncode == -signal.SIGKILL
    # Every file under its final name is complete; a killed write leaves at
    # most a hidden temp file.
    for png in cache.glob("method-*/*.png"):
        assert png_is_whole(png, small.SIZE), png
    for record in cache.glob("method-*/*.json"):
        json.loads(record.read_text())
    before = _whole_images(cache)
    assert 3 <= len(before) < 5
    mtimes = {p: os.stat(p).st_mtime_ns for p in before}

    # The resume runs in this process: the same command, without a second start-up.
    from click.testing import CliRunner

    from clipig_gallery.app.cli import main

    resumed = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert resumed.exit_code == 0, resumed.output
    after = _whole_images(cache)
    assert len(after) == 5
    for path, data in before.items():
        assert after[path] == data
        assert os.stat(path).st_mtime_ns == mtimes[path]
    assert not list(cache.rglob("*.tmp"))


def test_the_gallery_run_says_its_plan_without_the_command_line(rendered, tiny_clip):
    from clipig_gallery.renderer.runs.first import run_gallery
    from clipig_gallery.renderer.runs.spec import Selection

    lines = small.Lines()
    selection = Selection(things=("harp",), animals=tuple(p.animal for p in harp_prompts()))
    spec = small.spec(rendered, tiny_clip, reporter=lines, selection=selection,
                      device_line="device cpu, as the session says")
    assert run_gallery(spec, epochs=2, dry_run=True) is None
    assert lines.lines[:2] == [f"skip    method 1  {harp_prompts()[0].stem:32} complete (cpu fp32)",
                               f"skip    method 1  {harp_prompts()[1].stem:32} complete (cpu fp32)"]
    assert lines.lines[-2:] == [f"0 to render, 6 not in this run (6 complete) in {rendered}/",
                                "complete images were rendered: 6 on cpu fp32"]
    lines.lines.clear()
    assert run_gallery(spec, epochs=2) is None  # nothing to do: nothing announced
    assert lines.lines == [f"nothing to render: 6 images complete in {rendered}/"]
    lines.lines.clear()
    report = run_gallery(spec, epochs=3)  # another epoch count: every image again
    assert report.rendered == 6 and lines.lines[0] == "device cpu, as the session says"
    assert lines.lines[1].startswith("estimated ") and " for 6 images on " in lines.lines[1]
    assert "method 1: 3 at batch 1, method 2: 3 at batch 1;" in lines.lines[1]
    assert lines.lines[2] == "method 1: 3 images, batch 1 (fixed for the CPU)"
