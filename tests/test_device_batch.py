"""The device is never silent, the batch fits, and running out of memory loses nothing."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from app.cli import main
from gallery.prompts import load_prompts
from renderer import jobs
from renderer.batching import (
    OutOfMemory,
    batch_from_memory,
    epoch_load,
    probe_epoch,
    run_batches,
)
from renderer.config import is_active
from renderer.engine import plan_epoch
from renderer.gallery import method_config, plan, render_gallery, select
from renderer.ranking import ranking_config

PROMPTS = load_prompts()
STEMS = [p.stem for p in PROMPTS]


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_batch_from_memory():
    assert batch_from_memory(80 * 2**30, 2**30) == 68
    assert batch_from_memory(80 * 2**30, 2**30, fixed_bytes=8 * 2**30) == 60
    assert batch_from_memory(10, 2**30) == 1
    assert batch_from_memory(2**40, 1, cap=256) == 256


@pytest.mark.parametrize("config", [
    method_config(1), method_config(2),
    ranking_config(1, "short", "x"), ranking_config(1, "detail", "x"),
    ranking_config(2, "short", "x"), ranking_config(2, "detail", "x"),
], ids=["method-1", "method-2", "m1-short", "m1-detail", "m2-short", "m2-detail"])
def test_memory_is_probed_at_the_heaviest_epoch(config):
    epoch = probe_epoch(config)
    loads = [epoch_load(config, e) for e in range(config.epochs)]
    assert epoch_load(config, epoch) == max(loads)
    # Every constraint of the config is active there (blur starts late in
    # most of them: epoch 0 would miss it), and at the largest resolution.
    t = plan_epoch(config, epoch).env["t"]
    for target in config.targets:
        for constraint in target.constraints:
            assert is_active(constraint.start, constraint.end, epoch, t), constraint.step.name
    assert loads[epoch][2] == max(load[2] for load in loads)


def test_run_batches_halves_after_out_of_memory():
    calls, lines = [], []

    def render(start, stop):
        calls.append((start, stop))
        if stop - start > 3:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    sizes = run_batches(10, 8, render, torch.device("cpu"), lines.append)
    assert sizes == [2, 2, 2, 2, 2]
    assert calls[:3] == [(0, 8), (0, 4), (0, 2)] and calls[-1] == (8, 10)
    assert "out of memory with 8 images per batch" in lines[0] and "--batch 4" in lines[0]
    assert "out of memory with 4 images per batch" in lines[1] and "--batch 2" in lines[1]


def test_one_image_that_does_not_fit_raises():
    def render(start, stop):
        raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    with pytest.raises(OutOfMemory, match="one image per batch"):
        run_batches(3, 1, render, torch.device("cpu"), print)


@pytest.fixture
def harp(tiny_clip):
    return select(PROMPTS, things=["harp"])[:6], {m: method_config(m, 1) for m in (1, 2)}


def test_out_of_memory_in_a_gallery_render_keeps_every_image(tmp_path, tiny_clip, harp,
                                                             monkeypatch):
    prompts, configs = harp
    real = jobs.render
    sizes = []

    def tight(config, model, seeds, *args, **kwargs):
        sizes.append(len(seeds))
        if len(seeds) > 3:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return real(config, model, seeds, *args, **kwargs)

    monkeypatch.setattr(jobs, "render", tight)
    items = plan(tmp_path, prompts, (1,), configs, tiny_clip.identity)
    lines = []
    report = render_gallery(tmp_path, items, configs, tiny_clip, STEMS, batch=6,
                            echo=lines.append)
    assert sizes == [6, 3, 3] and report.batches == [3, 3] and report.rendered == 6
    assert {i.status for i in plan(tmp_path, prompts, (1,), configs,
                                   tiny_clip.identity)} == {"complete"}
    assert any("retrying this batch with 3" in line for line in lines)


def test_batch_is_announced_before_the_first_image(tmp_path, tiny_clip, harp, monkeypatch):
    prompts, configs = harp
    lines, seen_at_first_render = [], []
    real = jobs.render_results

    def watched(*args, **kwargs):
        seen_at_first_render.append(list(lines))
        return real(*args, **kwargs)

    monkeypatch.setattr(jobs, "render_results", watched)
    items = plan(tmp_path, prompts[:2], (2,), configs, tiny_clip.identity)
    render_gallery(tmp_path, items, configs, tiny_clip, STEMS, echo=lines.append)
    assert seen_at_first_render[0] == ["method 2: 2 images, batch 1 (fixed for the CPU)"]


def test_auto_device_without_a_gpu_stops_render_and_rank(tmp_path, tiny_clip_path,
                                                         monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for args in (["render", "--thing", "harp", "--animal", "cat"],
                 ["rank", "--animal", "cat", "--thing", "harp", "--runs", "2"]):
        result = cli(*args, "--cache", tmp_path / "cache", "--model", tiny_clip_path)
        assert result.exit_code == 2, result.output
        assert "CUDA is not available" in result.output
        assert "--device cpu" in result.output and "nvidia-smi" in result.output
        assert not (tmp_path / "cache").exists()


def test_render_says_where_it_renders(tmp_path, tiny_clip_path, tiny_clip):
    result = cli("render", "--thing", "harp", "--animal", "cat", "--method", "2",
                 "--epochs", 1, "--device", "cpu", "--cache", tmp_path,
                 "--model", tiny_clip_path)
    assert result.exit_code == 0, result.output
    assert f"device cpu (CPU ({torch.get_num_threads()} threads)), precision fp32" \
        in result.output
    assert tiny_clip.identity in result.output
    assert "method 2: 1 images, batch 1 (fixed for the CPU)" in result.output


def test_renamed_model_path_renders_nothing_again(tmp_path, tiny_clip_path):
    args = ["render", "--thing", "harp", "--animal", "cat", "--method", "1", "--epochs", 1,
            "--device", "cpu", "--cache", tmp_path / "cache"]
    assert cli(*args, "--model", tiny_clip_path).exit_code == 0
    renamed = tmp_path / "elsewhere" / "renamed.pt"
    renamed.parent.mkdir()
    renamed.symlink_to(tiny_clip_path)
    result = cli(*args, "--model", renamed)
    assert "nothing to render: 1 images complete" in result.output


def test_dry_run_shows_a_mixed_cache(tmp_path, tiny_clip_path):
    args = ["render", "--thing", "harp", "--animal", "cat", "--animal", "pig", "--method", "1",
            "--epochs", 1, "--cache", tmp_path, "--model", tiny_clip_path]
    assert cli(*args, "--device", "cpu").exit_code == 0
    # As if one of the two had been rendered on a GPU.
    record_path = tmp_path / "method-1" / "pig-of-harp.json"
    record = json.loads(record_path.read_text())
    record.update(device="cuda:0", precision="bf16")
    record_path.write_text(json.dumps(record))
    result = cli(*args, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "complete (cuda bf16)" in result.output and "complete (cpu fp32)" in result.output
    assert "rendered: 1 on cpu fp32, 1 on cuda bf16 -- a mixed cache" in result.output


def test_demo_may_fall_back_to_the_cpu_but_says_so(monkeypatch):
    from renderer.device import DeviceError, resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    lines = []
    assert resolve_device("auto", need_gpu=False, echo=lines.append) == torch.device("cpu")
    assert len(lines) == 1 and "running on the CPU" in lines[0]
    assert "no usable GPU" in lines[0]
    with pytest.raises(DeviceError, match="pass --device cpu"):
        resolve_device("auto", need_gpu=True, echo=lines.append)
    with pytest.raises(DeviceError, match="CUDA is not available"):
        resolve_device("cuda:0", need_gpu=False)
    with pytest.raises(DeviceError, match="warp9"):
        resolve_device("warp9")
    assert resolve_device("cpu", need_gpu=True) == torch.device("cpu")


def test_cli_offers_every_precision_the_engine_has():
    from renderer import cli, engine

    assert cli.PRECISIONS == engine.PRECISIONS
    option = next(p for p in main.commands["render"].params if p.name == "precision")
    assert tuple(option.type.choices) == engine.PRECISIONS
