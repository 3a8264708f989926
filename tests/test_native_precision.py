"""The precision a device computes natively: the default, the refusal, the device line.

The devices are faked (CPU feature flags, a CUDA GPU's compute capability,
whether MPS is there): what is tested is the choice and every branch that
depends on the device, on any machine.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from click.testing import CliRunner

from clipig_gallery.app.cli import main
from clipig_gallery.renderer.engine import precision
from clipig_gallery.renderer.engine.precision import (
    PrecisionError,
    choose,
    exact_fp32,
    matmul_ms,
    support,
)

CPU = torch.device("cpu")


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("flags, native", [
    ((), ("fp32",)),  # AVX2 only (AMD Zen 3, older Intel): both halves emulated
    ({"avx512_bf16"}, ("bf16", "fp32")),  # AMD Zen 4/5, Intel Cooper Lake
    ({"amx_bf16", "amx_fp16", "avx512_bf16", "avx512_fp16"}, ("bf16", "fp16", "fp32")),
    ({"bf16"}, ("bf16", "fp32")),  # Arm with FEAT_BF16 (Graviton 3, ...)
])
def test_the_cpu_default_is_its_fastest_native_precision(fake_device, flags, native):
    fake_device(cpu=flags)
    found = support(CPU)
    assert found.native == native and found.default == native[0]
    assert set(found.emulated) == {"bf16", "fp16"} - set(native)
    choice = choose(CPU)
    assert choice.precision == native[0] and choice.reason.startswith("default: ")


@pytest.mark.parametrize("capability, native", [
    ((9, 0), ("bf16", "fp16", "fp32")),  # H100
    ((8, 6), ("bf16", "fp16", "fp32")),  # RTX 30x0, A10
    ((7, 5), ("fp16", "fp32")),  # T4, RTX 20x0: the free notebook GPU
    ((7, 0), ("fp16", "fp32")),  # V100
    ((6, 0), ("fp16", "fp32")),  # P100
    ((6, 1), ("fp32",)),  # GTX 10x0: fp16 at 1/64 of fp32
])
def test_a_cuda_gpu_by_its_compute_capability(fake_device, capability, native):
    fake_device(cuda=capability)
    found = support(torch.device("cuda:0"))
    assert found.native == native
    assert f"compute capability {capability[0]}.{capability[1]}" in found.hardware
    if "bf16" not in native:
        assert "8.0" in found.emulated["bf16"]  # why: bf16 arrived with Ampere


def test_bf16_asked_for_on_a_t4_is_refused_naming_why_and_what_instead(fake_device):
    fake_device(cuda=(7, 5))
    with pytest.raises(PrecisionError) as caught:
        choose(torch.device("cuda:0"), "bf16", measure=False)
    text = str(caught.value)
    assert text.startswith("--precision bf16: Test GPU (compute capability 7.5) has no bf16")
    assert "Use --precision fp16 or fp32" in text
    assert choose(torch.device("cuda:0"), "fp16").reason == "as asked; native here"


def test_an_emulated_precision_is_refused_with_its_measured_cost(fake_device, monkeypatch):
    fake_device(cpu=())
    monkeypatch.setattr(precision, "matmul_ms",
                        lambda device, names: {"bf16": 514.0, "fp32": 7.0})
    with pytest.raises(PrecisionError) as caught:
        choose(CPU, "bf16")
    text = str(caught.value)
    assert "Test CPU has no bf16 arithmetic (none of AVX512-BF16, AMX-BF16, Arm BF16)" in text
    assert "514.0 ms in bf16 against 7.0 ms in fp32 (73x)" in text
    assert "Use --precision fp32" in text


def test_the_matrix_product_is_timed_in_each_precision_it_runs_in():
    timed = matmul_ms(CPU, ("fp32", "bf16"), shape=(16, 32, 16), repeat=1)
    assert set(timed) == {"fp32", "bf16"} and all(ms > 0 for ms in timed.values())


def test_the_environment_sets_the_default_and_is_checked_alike(fake_device, monkeypatch):
    fake_device(cpu={"avx512_bf16"})
    monkeypatch.setenv("CLIPIG_PRECISION", "fp32")
    assert choose(CPU) == precision.Choice("fp32", "from $CLIPIG_PRECISION; native here")
    assert choose(CPU, "bf16").precision == "bf16"  # --precision wins
    fake_device(cpu=())
    monkeypatch.setenv("CLIPIG_PRECISION", "bf16")
    with pytest.raises(PrecisionError, match=r"^bf16 \(from \$CLIPIG_PRECISION\): "):
        choose(CPU, measure=False)
    monkeypatch.setenv("CLIPIG_PRECISION", "fp64")
    with pytest.raises(PrecisionError, match=r"\$CLIPIG_PRECISION is 'fp64'"):
        choose(CPU)


def test_render_refuses_an_emulated_precision_before_loading_anything(
        fake_device, monkeypatch, tmp_path, tiny_clip_path):
    fake_device(cpu=())
    monkeypatch.setattr(precision, "matmul_ms",
                        lambda device, names: {"fp16": 500.0, "fp32": 5.0})
    args = ["--thing", "harp", "--animal", "cat", "--method", "1", "--device", "cpu",
            "--cache", tmp_path / "cache", "--model", tiny_clip_path, "--precision", "fp16"]
    for command in (["render"], ["render", "--dry-run"], ["render", "--best-of", 2],
                    ["render", "--history-only"]):
        result = cli(*command, *args)
        assert result.exit_code == 2, (command, result.output)
        assert "--precision fp16: Test CPU has no fp16 arithmetic" in result.output
        assert "(100x)" in result.output
    result = cli("rank", "--animal", "cat", "--thing", "harp", "--runs", 2, "--device", "cpu",
                 "--cache", tmp_path / "cache", "--model", tiny_clip_path, "--precision", "fp16")
    assert result.exit_code == 2 and "Test CPU has no fp16" in result.output
    assert not (tmp_path / "cache").exists()


def test_the_device_line_names_the_precision_and_why(fake_device, tmp_path, tiny_clip_path):
    fake_device(cpu={"avx512_bf16", "amx_bf16"})
    result = cli("render", "--thing", "harp", "--animal", "cat", "--method", "1",
                 "--epochs", 1, "--device", "cpu", "--cache", tmp_path, "--model",
                 tiny_clip_path, "--no-history")
    assert result.exit_code == 0, result.output
    assert "precision bf16 (default: native on this CPU (AVX512-BF16, AMX-BF16))" \
        in result.output
    record = (tmp_path / "method-1" / "cat-of-harp.json").read_text()
    assert '"precision": "bf16"' in record


def test_fp32_on_cuda_turns_tf32_off_for_the_step_only():
    cuda = torch.device("cuda")
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = (cudnn.allow_tf32, matmul.allow_tf32)
    cudnn.allow_tf32 = matmul.allow_tf32 = True
    try:
        with exact_fp32(cuda, "fp32"):
            assert (cudnn.allow_tf32, matmul.allow_tf32) == (False, False)
        assert (cudnn.allow_tf32, matmul.allow_tf32) == (True, True)
        for device, name in ((cuda, "bf16"), (CPU, "fp32")):
            with exact_fp32(device, name):
                assert (cudnn.allow_tf32, matmul.allow_tf32) == (True, True)
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = before


def test_every_step_runs_its_forward_and_backward_under_that_context(tiny_clip, monkeypatch):
    from clipig_gallery.renderer.engine import optimise as engine
    from clipig_gallery.renderer.runs.configs import method_config

    entered = []
    real = engine.exact_fp32

    def watching(device, name):
        entered.append((torch.device(device).type, name, torch.is_grad_enabled()))
        return real(device, name)

    monkeypatch.setattr(engine, "exact_fp32", watching)
    engine.render(method_config(1, 3), tiny_clip, [1], ["a cat"], precision="fp32")
    assert entered == [("cpu", "fp32", True)] * 3


# --- a Ray cluster's precision: every worker must have it natively -------------------


def _workers(*natives):
    from clipig_gallery.renderer.execution.cluster import RayExecutor

    executor = object.__new__(RayExecutor)
    executor.infos = [{"pid": 100 + i, "host": f"node{i}", "device_name": f"GPU {i}",
                       "native": list(native),
                       "emulated": {} if "bf16" in native else {"bf16": "no bf16 here"}}
                      for i, native in enumerate(natives)]
    return executor


def test_a_cluster_takes_the_fastest_precision_every_worker_has():
    mixed = _workers(("bf16", "fp16", "fp32"), ("fp16", "fp32"))
    assert mixed.precision(None).precision == "fp16"
    assert _workers(("bf16", "fp16", "fp32")).precision(None).precision == "bf16"
    with pytest.raises(PrecisionError, match="worker 101 on node1 .GPU 1. does not compute it "
                                             "natively: no bf16 here"):
        mixed.precision("bf16")
    assert mixed.precision("fp32").reason == "as asked; native on every worker"


# --- Apple GPUs (MPS), faked ---------------------------------------------------------


@pytest.fixture
def fake_mps(monkeypatch):
    """An Apple GPU for torch's availability checks; no CUDA."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_built", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)


def test_auto_takes_mps_where_there_is_no_cuda(fake_mps):
    from clipig_gallery.renderer.engine.device import resolve_device

    assert resolve_device("auto") == torch.device("mps")
    assert resolve_device("mps") == torch.device("mps")


def test_mps_asked_for_without_it_is_a_clear_error(monkeypatch, tmp_path, tiny_clip_path):
    from clipig_gallery.renderer.engine.device import DeviceError, resolve_device

    monkeypatch.setattr(torch.backends.mps, "is_built", lambda: False)
    with pytest.raises(DeviceError, match="MPS is not available: this torch .* without MPS"):
        resolve_device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_built", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="finds no Apple GPU"):
        resolve_device("mps")
    with pytest.raises(DeviceError, match="renders run on cpu, cuda, mps"):
        resolve_device("meta")
    # The dry run, too, names the device it could not use (it renders nothing).
    for command in (["render", "--dry-run"], ["render"], ["render", "--best-of", 2, "--dry-run"]):
        result = cli(*command, "--device", "mps", "--thing", "harp", "--cache",
                     tmp_path / "cache", "--model", tiny_clip_path)
        assert result.exit_code == 2, (command, result.output)
        assert "MPS is not available" in result.output and "--device cpu" in result.output


def test_mps_renders_in_fp16_and_refuses_bf16(fake_mps, monkeypatch):
    monkeypatch.delenv("CLIPIG_PRECISION")
    mps = torch.device("mps")
    assert support(mps).native == ("fp16", "fp32")
    assert choose(mps).precision == "fp16"
    with pytest.raises(PrecisionError, match="Apple GPUs compute fp16 natively"):
        choose(mps, "bf16", measure=False)


def test_mps_has_a_fixed_batch_and_its_own_sync_and_cache(monkeypatch):
    from clipig_gallery.renderer.engine.device import device_name
    from clipig_gallery.renderer.execution import batching
    from clipig_gallery.renderer.execution.executor import batch_source
    from clipig_gallery.renderer.language.ops.transforms import _exact

    model = SimpleNamespace(device=torch.device("mps"))
    # torch keeps no peak-memory counter on MPS: a fixed batch, said as such
    assert batching.auto_batch(None, model, "fp16", frames=24) == batching.MPS_BATCH
    assert batch_source(model, None) == "fixed for Apple GPUs"
    calls = []
    monkeypatch.setattr(torch.mps, "synchronize", lambda: calls.append("sync"))
    monkeypatch.setattr(torch.mps, "empty_cache", lambda: calls.append("empty"))
    precision.synchronize(torch.device("mps"))
    batching.release(torch.device("mps"))
    assert calls == ["sync", "empty"]
    assert batching.is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated"))
    assert not batching.is_out_of_memory(RuntimeError("something else"))
    # the CPU's allocator, refused an allocation (a memory limit, ulimit -v)
    assert batching.is_out_of_memory(RuntimeError(
        "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
        "memory: you tried to allocate 5529600000 bytes. Error code 12"))
    assert _exact(torch.device("mps")) == torch.float32  # MPS has no float64
    assert device_name("mps") == "Apple GPU (MPS)"
