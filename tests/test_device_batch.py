"""The device is never silent, the batch fits, and running out of memory loses nothing."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import small
import torch
from click.testing import CliRunner

from clipig_gallery.app.cli import main
from clipig_gallery.core.prompts import load_prompts
from clipig_gallery.renderer.execution import executor, jobs
from clipig_gallery.renderer.execution.batching import (
    OutOfMemory,
    batch_from_memory,
    epoch_load,
    probe_epoch,
    run_batches,
)
from clipig_gallery.renderer.language.config import is_active, plan_epoch
from clipig_gallery.renderer.runs.configs import method_config, ranking_config
from clipig_gallery.renderer.runs.first import plan, render_gallery
from clipig_gallery.renderer.runs.spec import select

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
    report = render_gallery(small.spec(tmp_path, tiny_clip, batch=6,
                                       reporter=small.Lines(lines.append)),
                            small.gallery(tmp_path, items, configs, STEMS))
    assert sizes == [6, 3, 3] and report.batches == [3, 3] and report.rendered == 6
    assert {i.status for i in plan(tmp_path, prompts, (1,), configs,
                                   tiny_clip.identity)} == {"complete"}
    assert any("retrying this batch with 3" in line for line in lines)


def test_batch_is_announced_before_the_first_image(tmp_path, tiny_clip, harp, monkeypatch):
    prompts, configs = harp
    lines, seen_at_first_render = [], []
    real = executor.render_results

    def watched(*args, **kwargs):
        seen_at_first_render.append(list(lines))
        return real(*args, **kwargs)

    monkeypatch.setattr(executor, "render_results", watched)
    items = plan(tmp_path, prompts[:2], (2,), configs, tiny_clip.identity)
    render_gallery(small.spec(tmp_path, tiny_clip, reporter=small.Lines(lines.append)),
                   small.gallery(tmp_path, items, configs, STEMS))
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
    from clipig_gallery.renderer.engine.device import device_name

    assert (f"device cpu ({device_name('cpu')}), precision fp32 (from $CLIPIG_PRECISION; "
            f"native here)") in result.output
    assert f"{torch.get_num_threads()} threads" in device_name("cpu")
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
    from clipig_gallery.renderer.engine.device import DeviceError, resolve_device

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
    from clipig_gallery.core.settings import PRECISIONS
    from clipig_gallery.renderer.engine.precision import DTYPES, check_precision

    for command in ("render", "rank", "render-config", "demo"):
        option = next(p for p in main.commands[command].params if p.name == "precision")
        assert tuple(option.type.choices) == PRECISIONS, command
    assert set(DTYPES) == set(PRECISIONS) and all(map(check_precision, PRECISIONS))


# --- the automatic batch on CUDA, against faked memory counters ------------------------

STATE, PER_STEP, WORKSPACE = 300 * 2**20, 500 * 2**20, 700 * 2**20


class FakeJob:
    """A batch of ``n`` images as the probe sees it: its state (pixels, optimiser) held
    while the job lives, a transient peak per step, and the first step in the
    process allocating one-time workspaces that are never freed."""

    def __init__(self, cuda, n, fail_from=None):
        self.cuda, self.n, self.fail_from = cuda, n, fail_from
        if fail_from is not None and n >= fail_from:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        cuda.alloc(n * STATE)

    def step(self, state, plan):
        if not getattr(self.cuda, "warm", False):
            self.cuda.alloc(WORKSPACE)
            self.cuda.warm = True
        self.cuda.transient(self.n * PER_STEP)

    def __del__(self):
        if hasattr(self, "n"):
            self.cuda.free(self.n * STATE)


def fake_probe(monkeypatch, cuda, fail_from=None):
    from clipig_gallery.renderer.execution import batching

    def probe(config, model, n, plan, precision):
        job = FakeJob(cuda, n, fail_from)
        job.step(None, plan)
        return job, None

    monkeypatch.setattr(batching, "_probe_render", probe)
    return SimpleNamespace(device=torch.device("cuda"))


def test_one_time_workspaces_do_not_make_an_image_look_cheaper(fake_cuda, monkeypatch):
    from clipig_gallery.renderer.execution.batching import auto_batch

    model = fake_probe(monkeypatch, fake_cuda)
    config = method_config(1)
    n = auto_batch(config, model, "fp32")
    # What one more image really costs is its state and its step's peak; the
    # workspaces exist once, allocated by the warm-up before any baseline.
    per_image = STATE + PER_STEP
    free = fake_cuda.total - WORKSPACE
    assert n == batch_from_memory(free, per_image)
    assert fake_cuda.allocated == WORKSPACE  # the probes' jobs are gone
    # Measured without the warm-up, the 1-image probe would hold the
    # workspaces and one more image would look 700 MiB cheaper than it is.
    assert n < batch_from_memory(free, per_image - WORKSPACE)


def test_the_probe_budgets_the_history_frames_asked_for(fake_cuda, monkeypatch):
    from clipig_gallery.renderer.engine.history import buffer_bytes
    from clipig_gallery.renderer.execution.batching import auto_batch

    model = fake_probe(monkeypatch, fake_cuda)
    config = method_config(2)
    sizes = {frames: auto_batch(config, model, "fp32", frames=frames)
             for frames in (0, 24, 300)}
    free = fake_cuda.total - WORKSPACE
    for frames, n in sizes.items():
        kept = buffer_bytes(224, 224, 300, frames) if frames else 0
        assert n == batch_from_memory(free, STATE + PER_STEP + kept), frames
    assert sizes[0] > sizes[24] > sizes[300]


def test_the_probe_takes_configs_of_several_features(tiny_clip):
    # render-config sizes its --repeat batches with the same probe: a config
    # with two text features (no one prompt to replace) and an image feature.
    from clipig_gallery.renderer.execution.batching import _probe_render, probe_epoch
    from clipig_gallery.renderer.language.config import parse_config

    config = parse_config("""epochs: 2
resolution: 32
targets:
  - features: [{text: a red square}, {text: a blue circle}]
  - features: [{text: a harp}]
""")
    job, _ = _probe_render(config, tiny_clip, 2, plan_epoch(config, probe_epoch(config)),
                           "fp32")
    # Each feature keeps its own text: the second differs from the first.
    assert not torch.equal(job.goals[0, 0], job.goals[0, 1])
    assert torch.equal(job.goals[0, 0][0], tiny_clip.encode_texts(["a red square"])[0])


def test_running_out_of_memory_in_the_probe(fake_cuda, monkeypatch):
    from clipig_gallery.renderer.execution import batching

    released = []
    monkeypatch.setattr(batching, "release", released.append)
    model = fake_probe(monkeypatch, fake_cuda, fail_from=2)
    assert batching.auto_batch(method_config(1), model, "fp32") == 1  # one fits, two do not
    model = fake_probe(monkeypatch, fake_cuda, fail_from=1)
    with pytest.raises(OutOfMemory, match="measuring one image of .*method-1.yaml in fp32"):
        batching.auto_batch(method_config(1), model, "fp32")
    assert released == [torch.device("cuda")] * 2


def test_memory_is_given_back_once_the_failed_batch_is_let_go(monkeypatch):
    import weakref

    from clipig_gallery.renderer.execution import batching

    held, seen = [], []

    class Batch:  # stands for the failed batch's tensors
        pass

    def render(start, stop):
        batch = Batch()
        held.append(weakref.ref(batch))
        if stop - start > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    # Inside the except block the traceback would still hold `batch`.
    monkeypatch.setattr(batching, "release", lambda device: seen.append(held[-1]() is None))
    assert run_batches(2, 2, render, torch.device("cuda"), lambda _: None) == [1, 1]
    assert seen == [True]


def test_running_out_of_memory_while_sizing_a_run_is_a_message(tmp_path, tiny_clip_path,
                                                                monkeypatch):
    from clipig_gallery.renderer.execution.executor import LocalExecutor

    def no_room(self, config, precision, frames=0):
        raise OutOfMemory("out of memory on cuda:0 measuring one image of method-1.yaml")

    monkeypatch.setattr(LocalExecutor, "batch_size", no_room)
    base = ["--thing", "harp", "--animal", "cat", "--method", "1", "--device", "cpu",
            "--cache", tmp_path, "--model", tiny_clip_path]
    for args in (["render", "--epochs", 1], ["render", "--best-of", 2, "--epochs-short", 1,
                                             "--epochs-detail", 1]):
        result = CliRunner().invoke(main, [str(a) for a in args + base])
        assert result.exit_code == 1, result.output
        assert "out of memory on cuda:0 measuring one image" in result.output
        assert "Traceback" not in result.output and result.exception.__class__ is SystemExit


def test_the_torch_floor_has_what_the_renderer_catches():
    """torch.OutOfMemoryError (caught in renderer.execution.batching) and MPS autocast
    came with 2.5."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    floor = re.search(r'"torch>=(\d+)\.(\d+)"', text)
    assert floor and (int(floor[1]), int(floor[2])) >= (2, 5)
    assert hasattr(torch, "OutOfMemoryError")
