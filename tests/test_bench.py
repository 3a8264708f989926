"""The benchmark's plumbing and the GPU-readiness facts it reports.

Speed itself is never asserted here: it is measured by `clipig-gallery
bench`, which prints numbers with the device and a same-run baseline.
"""

from __future__ import annotations

import contextlib

import pytest
import torch

from clipig_gallery.renderer.engine.optimise import BatchRender
from clipig_gallery.renderer.engine.precision import PRECISIONS
from clipig_gallery.renderer.execution.timing import measure_plan
from clipig_gallery.renderer.language.config import plan_epoch
from clipig_gallery.renderer.language.ops.constraints import CONSTRAINTS
from clipig_gallery.renderer.runs.bench import MemoryPeaks, ReferenceStyle, count_ops, run_bench
from clipig_gallery.renderer.runs.configs import method_config


@pytest.mark.parametrize("method", [1, 2])
def test_operator_count_does_not_grow_with_images(method, tiny_clip):
    config = method_config(method)  # the article's: 10 views per image
    two, many = count_ops(config, tiny_clip, 2), count_ops(config, tiny_clip, 8)
    assert two["host_syncs"] == many["host_syncs"] == 0
    # Random draws are one call per image and random transform...
    assert many["draw_calls"] == 4 * two["draw_calls"]
    # ...everything else is batched: no Python loop over images or views (one
    # would add an op per image, or per view: 6 or 60 here). A few ops vary
    # with tensor sizes inside torch, never by as many.
    assert abs(many["other_ops"] - two["other_ops"]) < 6


@pytest.mark.parametrize(("fraction", "said"), [
    (0.000131, "0.013%"), (0.0567, "5.7%"), (0.0994, "9.9%"), (0.0996, "10%"), (0.123, "12%"),
    (1.0, "100%"), (1.5, "150%"), (0.0, "0%"), (1.6e-6, "0.00016%"), (1e-7, "<0.0001%")])
def test_shares_read_as_plain_percentages(fraction, said):
    from clipig_gallery.renderer.runs.bench import percent

    assert percent(fraction) == said


def test_counting_ops_leaves_the_profilers_own_lines_out_of_stderr(capfd):
    import os

    from clipig_gallery.renderer.runs.bench import _without_kineto_lines

    with _without_kineto_lines():  # what torch's C++ writes to file descriptor 2
        os.write(2, b"USDT:2026-12-08 01:32:21 18463:18463 SyncActivityProfilerHandler.cpp:39] "
                    b"profiler_start\nsomething else\nSTAGE:2026-12-08 01:37:12 18503:18503 "
                    b"Logger.cpp:197] Completed Stage: Post Processing\nand more\n")
    assert capfd.readouterr().err == "something else\nand more\n"


@contextlib.contextmanager
def no_reads_from_the_device():
    """Make every way of reading a tensor's value back to Python fail."""
    names = ("item", "tolist", "numpy", "cpu", "__float__", "__int__", "__bool__", "__repr__")
    saved = {name: getattr(torch.Tensor, name) for name in names}

    def refuse(name):
        def method(self, *args, **kwargs):
            raise AssertionError(f"Tensor.{name} called inside the step loop")

        return method

    for name in names:
        setattr(torch.Tensor, name, refuse(name))
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(torch.Tensor, name, fn)


@pytest.mark.parametrize("method", [1, 2])
def test_step_never_reads_values_back(method, tiny_clip):
    """On a GPU any such read would make the host wait for the device every step."""
    config = method_config(method).with_epochs(40)
    job = BatchRender(config, tiny_clip, [1, 2], ["a", "b"])
    state = job.start()
    with no_reads_from_the_device():
        # Epochs around the resolution changes and constraint starts.
        for epoch in (0, 5, 14, 15, 20, 39):
            job.step(state, plan_epoch(config, epoch))


def test_run_bench_reports_every_number(tiny_clip_path, fake_device, small_configs):
    # What the bench reports and how it adds up; its speed is `make bench`'s.
    # A CPU with native bf16 and without native fp16, whatever this one has.
    fake_device(cpu={"avx512_bf16"})
    lines = []
    result = run_bench(torch.device("cpu"), str(tiny_clip_path), steps=1, methods=(1,),
                       ops=False, echo=lines.append)
    assert result["torch"] == torch.__version__ and "threads" in result["device"]
    # Only the native precisions are timed; fp16 is skipped, saying why.
    assert result["precisions"] == ["fp32", "bf16"] and result["default_precision"] == "bf16"
    check = result["precision_check"]
    assert check["timed"] == ["fp32", "bf16"] and list(check["skipped"]) == ["fp16"]
    assert "AVX512-FP16" in check["skipped"]["fp16"]
    assert set(check["matmul_ms"]) == set(PRECISIONS)  # what each costs here, measured
    assert all(ms > 0 for ms in check["matmul_ms"].values())
    (method,) = result["methods"]
    keys = set(method["seconds_per_step"])
    assert keys == {"reference", "fp32 N=1", "bf16 N=1", "bf16 N=4"}
    for key in keys:
        assert method["seconds_per_step"][key] > 0
        assert method["images_per_hour"][key] > 0
    assert method["speedup"]["reference"] == 1.0
    assert set(method["clip_floor"]) == {"fp32", "bf16"}
    # A ratio per precision (its size is the bench's to measure: with one step of
    # the tiny model on a busy machine it came out below 0.9 once).
    assert set(method["floor_ratio"]) == {"fp32", "bf16"}
    assert all(0 < ratio < float("inf") for ratio in method["floor_ratio"].values())
    # Memory is measured on CUDA only; the CPU says so instead of a number.
    assert result["peak_memory_mb"] is None and method["peak_memory_mb"] == {}
    assert "not measured" in result["peak_memory"]
    assert "fp32" in result["reference"]  # 2021 on the CPU: fp32 weights
    (ranking,) = result["ranking"]
    assert set(ranking["runs_per_hour"]) == {"N=1", "N=4"} and ranking["hours_for_512"] > 0
    (rate,) = ranking["continued_per_hour"].values()
    short_rate = max(ranking["runs_per_hour"].values())
    assert ranking["best_of_512_hours_per_prompt"] == pytest.approx(512 / short_rate + 1 / rate)
    assert ranking["best_of_512_gallery_hours"] == pytest.approx(
        810 * ranking["best_of_512_hours_per_prompt"])
    assert "best_of" not in result  # one method: no projection for the whole gallery
    history = method["history"]  # in the default precision, at its batch
    assert history["frames"] == 24 and history["batch"] == 4 and history["precision"] == "bf16"
    for key in ("capture_seconds", "step_seconds", "read_back_seconds",
                "encode_seconds_per_image", "webp_kb_average"):
        assert history[key] > 0, key
    assert history["capture_share_of_step"] == pytest.approx(
        history["capture_seconds"] / history["step_seconds"])
    text = "\n".join(lines)
    assert "vs ref" in text and result["device"] in text and "bf16 N=4" in text
    assert "skipped fp16: Test CPU has no fp16 arithmetic" in text
    assert "timed: fp32, bf16 (default here: bf16)" in text
    assert "peak memory: not measured on cpu" in text
    assert "history (bf16 N=4, 24 frames): one frame" in text and "history WebP:" in text


def test_best_of_projection_adds_the_methods_and_divides_by_eight():
    from clipig_gallery.renderer.runs.bench import best_of_projection

    projection = best_of_projection([{"best_of_512_gallery_hours": 30.0},
                                     {"best_of_512_gallery_hours": 50.0}])
    assert projection["hours_one_device"] == 80.0
    assert projection["hours_eight_devices"] == 10.0
    assert (projection["runs"], projection["prompts"], projection["methods"]) == (512, 810, 2)


def fixed_matmul(monkeypatch):
    """The probe's matrix products (timed for real in the test above) as fixed numbers."""
    import clipig_gallery.renderer.runs.bench as bench

    monkeypatch.setattr(bench, "matmul_ms", lambda device: {"fp32": 5.0, "bf16": 500.0})


def test_run_bench_takes_the_precisions_it_is_given(tiny_clip_path, fake_device, small_configs,
                                                    monkeypatch):
    fake_device(cpu={"avx512_bf16"})  # bf16 native, but only fp32 asked for
    fixed_matmul(monkeypatch)
    result = run_bench("cpu", str(tiny_clip_path), steps=1, batch=2, methods=(2,),
                       ops=False, echo=lambda _: None, precisions=("fp32",))
    (method,) = result["methods"]
    assert set(method["seconds_per_step"]) == {"reference", "fp32 N=1", "fp32 N=2"}
    assert method["auto_batch"] == {"fp32": 2}
    assert result["default_precision"] == "fp32"  # of those timed
    assert method["history"]["precision"] == result["ranking"][0]["precision"] == "fp32"
    assert result["precision_check"]["skipped"] == {"bf16": "not asked for",
                                                    "fp16": result["precision_check"]
                                                    ["skipped"]["fp16"]}


def test_a_setting_that_runs_out_of_memory_is_reported_and_the_bench_goes_on(
        tiny_clip_path, monkeypatch, small_configs):
    import clipig_gallery.renderer.runs.bench as bench

    real = bench.batched_step_seconds

    def tight(config, model, n, precision, steps):
        if n > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return real(config, model, n, precision, steps)

    released = []
    fixed_matmul(monkeypatch)
    monkeypatch.setattr(bench, "batched_step_seconds", tight)
    monkeypatch.setattr(bench, "release", released.append)
    lines = []
    result = run_bench("cpu", str(tiny_clip_path), steps=1, batch=2, methods=(1,),
                       ops=False, echo=lines.append, precisions=("fp32",))
    (method,) = result["methods"]
    assert method["seconds_per_step"]["fp32 N=2"] is None
    assert method["images_per_hour"]["fp32 N=2"] is None
    assert method["seconds_per_step"]["fp32 N=1"] > 0
    assert any("fp32 N=2" in line and "out of memory" in line for line in lines)
    assert released  # the device's cache given back after each
    # the ranking's batched settings fell back too, and it still has its numbers
    (ranking,) = result["ranking"]
    assert list(ranking["runs_per_hour"]) == ["N=1"] and ranking["hours_for_512"] > 0


@pytest.mark.parametrize("half", [False, True])
def test_reference_loop_runs_constraints_per_view(half, tiny_clip, monkeypatch):
    """Method 2's blur and saturation run once per view in the reference-style loop."""
    config = method_config(2)
    calls = []
    for name in ("blur", "saturation"):
        definition = CONSTRAINTS[name]

        def counted(views, args, fn=definition.fn, name=name):
            calls.append((name, views.shape[0]))
            return fn(views, args)

        monkeypatch.setitem(CONSTRAINTS, name, type(definition)(name, counted,
                                                                 definition.params))
    ref = ReferenceStyle(config, tiny_clip, half=half)
    before = ref.pixels.detach().clone()
    ref.step(measure_plan(config))
    views = config.targets[0].batch_size
    assert sorted(calls) == sorted([("blur", 1)] * views + [("saturation", 1)] * views)
    assert not torch.equal(before, ref.pixels.detach())
    ref.close()


def test_reference_loop_has_fp16_weights_on_its_own_copy(tiny_clip):
    """CUDA's reference: clip.load's fp16 weights (layer norms fp32), no autocast."""
    config = method_config(1)
    ref = ReferenceStyle(config, tiny_clip, half=True)
    assert ref.clip.visual.conv1.weight.dtype == torch.float16
    assert ref.clip.visual.ln_pre.weight.dtype == torch.float32
    assert ref.text.dtype == torch.float16 and ref.text.requires_grad  # graph kept, as in 2021
    assert all(p.requires_grad for p in ref.clip.parameters())
    # The shared model stays frozen and fp32 for the batched settings.
    assert tiny_clip.model.visual.conv1.weight.dtype == torch.float32
    assert not any(p.requires_grad for p in tiny_clip.model.parameters())
    ref.close()


def test_reference_weights_follow_the_device(tiny_clip):
    assert ReferenceStyle(method_config(1), tiny_clip).half is False  # CPU: fp32, as in 2021


def test_memory_peaks_are_not_measured_on_the_cpu():
    peaks = MemoryPeaks(torch.device("cpu"))
    into = {}
    with peaks.setting(into, "x"):
        torch.zeros(1000)
    assert into == {} and peaks.overall() is None


def test_memory_peaks_keep_the_maximum_across_settings(fake_cuda):
    """Neither a setting's peak nor the bench's maximum is lost to a reset of torch's
    counter inside a setting, as the batch-size probe makes one (faked counters)."""
    from clipig_gallery.renderer.execution.batching import cuda_memory

    peaks = MemoryPeaks(torch.device("cuda"))
    into = {}
    mib = 2**20
    with peaks.setting(into, "probe inside"):
        fake_cuda.transient(400 * mib)  # the probe's own steps...
        cuda_memory(torch.device("cuda")).reset_peak()  # ...and its reset
        fake_cuda.transient(100 * mib)
    with peaks.setting(into, "big"):
        fake_cuda.transient(300 * mib)
    with peaks.setting(into, "small"):
        fake_cuda.transient(50 * mib)
    assert into == {"probe inside": 400.0, "big": 300.0, "small": 50.0}
    assert peaks.overall() == 400.0




def test_the_clipig_setting_times_the_showcase_against_the_reference(tiny_clip):
    from clipig_gallery.core.paths import SHOWCASE_CONFIG
    from clipig_gallery.renderer.language.config import parse_config
    from clipig_gallery.renderer.runs.bench import config_bench

    # The showcase at a quarter of its size: the same ops, a quick step.
    text = SHOWCASE_CONFIG.read_text().replace("resolution: 224", "resolution: 56")
    config = parse_config(text.replace("random_crop: 224", "random_crop: 56"),
                          source=str(SHOWCASE_CONFIG))
    entry = config_bench(config, tiny_clip, "fp32", steps=1, batch=2, half=False)
    assert entry["new_ops"] == [
        "repeat", "random_shift", "random_scale", "random_translate", "fnoise",
        "constraint contrast", "constraint edge_mean", "constraint normalize",
        "constraint border", "postproc border"]
    assert set(entry["seconds_per_step"]) == {"reference", "fp32 N=1", "fp32 N=2"}
    assert all(s > 0 for s in entry["seconds_per_step"].values())
    assert entry["speedup"]["reference"] == 1.0


def test_the_showcase_step_never_reads_values_back(tiny_clip):
    from dataclasses import replace

    from clipig_gallery.core.paths import SHOWCASE_CONFIG
    from clipig_gallery.renderer.language.config import load_config

    # torch's Adam reads its step counter with .item(); that counter is a CPU
    # tensor on every device (not a device read), but the guard cannot tell on
    # the CPU, so the step is checked with the methods' optimiser.
    config = replace(load_config(SHOWCASE_CONFIG).with_epochs(20), optimizer="rmsprob")
    job = BatchRender(config, tiny_clip, [1, 2], ["a", "b"])
    state = job.start()
    with no_reads_from_the_device():
        for epoch in (0, 9, 10, 19):  # normalize starts at 50%, the postproc border at 90%
            job.step(state, plan_epoch(config, epoch))


def test_a_step_with_similarity_weights_and_select_never_reads_values_back(tiny_clip):
    from clipig_gallery.renderer.language.config import parse_config

    config = parse_config("""
epochs: 4
resolution: 48
optimizer: rmsprob
targets:
  - batch_size: 3
    select: worst
    features:
      - {text: a cat, weight: "1 if sim > 10 else max(0.5, sim / 20)", loss: l2}
      - {text: a dog, scale: 1.5}
    transforms: [{random_shift: 0 1}, {rnoise: {std: 0.1, resolution: 4}}]
    constraints:
      - std: {above: 0.2, weight: "time_step(0, 1) * (1 - sim / 100)"}
  - features: [{text: a bird}]
    select: mix
""")
    job = BatchRender(config, tiny_clip, [1, 2])
    state = job.start()
    with no_reads_from_the_device():
        for epoch in range(4):
            job.step(state, plan_epoch(config, epoch))
