"""Which compute precisions a device has in hardware, and which one a run uses.

CLIP's image encoder runs in fp32, or under ``torch.autocast`` in bf16 or
fp16; the weights, features, losses and the optimiser stay fp32 in every
case. A half precision is only worth having where the hardware computes it:
where it is emulated it is not a little slower but a trap (measured on an AMD
EPYC without AVX512-BF16: a 512x768 by 768x768 matrix product 7 ms in fp32,
about 500 ms in bf16 or fp16), and the same holds for bf16 on NVIDIA GPUs
older than Ampere.

``support(device)`` says, from what the device reports (CPU feature flags, a
GPU's compute capability), which precisions are native there, fastest first;
``choose`` takes the first of them unless one is asked for, and refuses a
requested one the device only emulates, naming what it costs (measured on
the spot where the device is real) and what to use instead.
"""

from __future__ import annotations

import functools
import os
import platform
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch

from clipig_gallery.core.settings import PRECISION_ENV, PRECISIONS

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
DTYPES = {"fp32": torch.float32, **AUTOCAST_DTYPES}

# The matrix product timed when an emulated precision is asked for: one
# attention projection of a ViT-B/32 batch (512 tokens x 768 by 768 x 768).
PROBE_SHAPE = (512, 768, 768)

# CPU features (as /proc/cpuinfo and torch name them) that compute each
# half precision in hardware.
CPU_NATIVE = {
    "bf16": ("avx512_bf16", "amx_bf16", "bf16"),  # x86 (AVX-512, AMX); Arm (FEAT_BF16)
    "fp16": ("avx512_fp16", "amx_fp16", "fphp"),  # x86 (Sapphire Rapids on); Arm (FEAT_FP16)
}
FEATURE_NAMES = {"avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX-BF16", "bf16": "Arm BF16",
                 "avx512_fp16": "AVX512-FP16", "amx_fp16": "AMX-FP16", "fphp": "Arm FP16"}


class PrecisionError(ValueError):
    """A requested precision that the device does not compute natively; says why."""


def check_precision(precision: str) -> str:
    """``precision`` if it is one of PRECISIONS, else a ValueError naming them."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


# --- what the device reports (small functions, so tests can fake a device) ----------


def cpu_features() -> frozenset[str]:
    """The CPU's feature flags that matter here, lower case.

    From torch's own CPU probe where it has one, and from ``/proc/cpuinfo``
    (the ``flags`` line on x86, ``Features`` on Arm) on Linux.
    """
    found = set()
    probes = {"avx512_bf16": "_is_avx512_bf16_supported", "amx_bf16": "_is_amx_tile_supported",
              "amx_fp16": "_is_amx_fp16_supported"}
    for flag, name in probes.items():
        probe = getattr(torch.cpu, name, None)
        try:
            if probe is not None and probe():
                found.add(flag)
        except RuntimeError:
            pass
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            found.update(value.split())
    wanted = {flag for flags in CPU_NATIVE.values() for flag in flags}
    return frozenset(f.lower() for f in found if f.lower() in wanted)


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"


def cuda_capability(device: torch.device) -> tuple[int, int]:
    return tuple(torch.cuda.get_device_capability(device))


def cuda_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device)


# --- what is native where ------------------------------------------------------------


@dataclass(frozen=True)
class Support:
    """The precisions a device computes natively, fastest first, and why the others not."""

    hardware: str  # what was asked, in words: "NVIDIA T4 (compute capability 7.5)"
    native: tuple[str, ...]
    emulated: dict[str, str] = field(default_factory=dict)  # precision -> why not native
    why_default: str = ""  # why native[0] is the fastest

    @property
    def default(self) -> str:
        return self.native[0]


def _cuda_support(device: torch.device) -> Support:
    major, minor = cuda_capability(device)
    hardware = f"{cuda_name(device)} (compute capability {major}.{minor})"
    # bf16 has tensor cores from Ampere (8.0) on; fp16 runs at full or double
    # rate on 5.3, 6.0, 6.2 and from Volta (7.0) on, at 1/64 on the other Pascals.
    bf16 = major >= 8
    fp16 = major >= 7 or (major, minor) in ((5, 3), (6, 0), (6, 2))
    emulated = {}
    if not bf16:
        emulated["bf16"] = (f"{hardware} has no bf16 arithmetic (it came with compute "
                            f"capability 8.0, Ampere): torch emulates it in fp32 "
                            f"instructions")
    if not fp16:
        emulated["fp16"] = f"{hardware} computes fp16 at a fraction of its fp32 rate"
    native = tuple(p for p, ok in (("bf16", bf16), ("fp16", fp16)) if ok) + ("fp32",)
    why = {"bf16": "native on this GPU, with fp16's speed and fp32's range",
           "fp16": "native on this GPU, which has no native bf16",
           "fp32": "this GPU has no fast half precision"}[native[0]]
    return Support(hardware, native, emulated, why)


def _cpu_support() -> Support:
    features = cpu_features()
    has = {p: [f for f in flags if f in features] for p, flags in CPU_NATIVE.items()}
    hardware = cpu_name()
    emulated = {p: (f"{hardware} has no {p} arithmetic (none of "
                    f"{', '.join(FEATURE_NAMES[f] for f in CPU_NATIVE[p])}): torch emulates it")
                for p, flags in has.items() if not flags}
    # bf16 before fp16 where both are native: fp32's range, so no gradient underflows.
    native = tuple(p for p in ("bf16", "fp16") if has[p]) + ("fp32",)
    if native[0] == "bf16":
        why = f"native on this CPU ({', '.join(FEATURE_NAMES[f] for f in has['bf16'])})"
    else:
        why = "this CPU computes bf16 and fp16 only by emulation"
    return Support(hardware, native, emulated, why)


def _mps_support() -> Support:
    # Apple GPUs compute fp16 natively; bf16 needs macOS 14 and is not
    # known to run in hardware there. Not yet measured on an Apple machine.
    return Support("Apple GPU (MPS)", ("fp16", "fp32"),
                   {"bf16": "Apple GPUs compute fp16 natively; bf16 is not known to run in "
                            "their hardware (and needs macOS 14)"},
                   "native on Apple GPUs")


def support(device: torch.device | str) -> Support:
    """What ``device`` computes natively (cached per device)."""
    device = torch.device(device)
    return _support(device.type, device.index)


@functools.lru_cache(maxsize=16)
def _support(kind: str, index: int | None) -> Support:
    if kind == "cuda":
        return _cuda_support(torch.device(kind, index if index is not None else 0))
    if kind == "mps":
        return _mps_support()
    if kind == "cpu":
        return _cpu_support()
    return Support(kind, ("fp32",), {p: f"not known to be native on {kind}"
                                     for p in AUTOCAST_DTYPES}, "the only one known here")


def default_precision(device: torch.device | str) -> str:
    """The precision a run on ``device`` takes when none is asked for: $CLIPIG_PRECISION
    if set (PrecisionError if the device only emulates it), else the fastest native one."""
    return choose(device, measure=False).precision


# --- choosing ------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """The precision of a run and why it was taken, for the line before the first image."""

    precision: str
    reason: str

    def text(self) -> str:
        return f"precision {self.precision} ({self.reason})"


def choose(device: torch.device | str, requested: str | None = None,
           measure: bool = True) -> Choice:
    """``requested`` if the device computes it natively, else PrecisionError; without
    a request, $CLIPIG_PRECISION (checked alike) or else the fastest native one."""
    device = torch.device(device)
    found = support(device)
    how = "as asked"
    if requested is None:
        requested = os.environ.get(PRECISION_ENV) or None
        if requested is None:
            return Choice(found.default, f"default: {found.why_default}")
        how = f"from ${PRECISION_ENV}"
        if requested not in PRECISIONS:
            raise PrecisionError(f"${PRECISION_ENV} is {requested!r}; use one of "
                                 f"{', '.join(PRECISIONS)}, or unset it")
    check_precision(requested)
    if requested in found.native:
        return Choice(requested, f"{how}; native here")
    raise PrecisionError(refusal(device, requested, found, measure, how))


def refusal(device: torch.device, precision: str, found: Support, measure: bool = True,
            how: str = "as asked") -> str:
    """Why ``precision`` is refused on ``device``: the known reason, the measured cost
    where it can be measured, and what to use instead."""
    cost = ""
    if measure:
        timed = matmul_ms(device, (precision, "fp32"))
        if timed.get(precision) and timed.get("fp32"):
            ratio = timed[precision] / timed["fp32"]
            cost = (f"; measured here, a {PROBE_SHAPE[0]}x{PROBE_SHAPE[1]} by "
                    f"{PROBE_SHAPE[1]}x{PROBE_SHAPE[2]} matrix product takes "
                    f"{timed[precision]:.1f} ms in {precision} against {timed['fp32']:.1f} ms "
                    f"in fp32 ({ratio:.0f}x)")
    asked = f"--precision {precision}" if how == "as asked" else f"{precision} ({how})"
    return (f"{asked}: {found.emulated.get(precision, 'not native here')}{cost}. Use "
            f"--precision {instead(found.default)}, or neither --precision nor "
            f"${PRECISION_ENV} for this device's fastest native one ({found.default}).")


def instead(default: str) -> str:
    """What to ask for in place of an emulated precision: the default, or fp32."""
    return " or ".join(dict.fromkeys((default, "fp32")))


def matmul_ms(device: torch.device | str, precisions=PRECISIONS,
              shape: tuple[int, int, int] = PROBE_SHAPE, repeat: int = 3) -> dict[str, float]:
    """Milliseconds of one ``shape`` matrix product per precision on ``device`` (best of
    ``repeat`` after a warm-up, or the warm-up alone where it took over 0.1 s: an
    emulated product, whose time needs no second look); a precision torch cannot
    run there is left out."""
    device = torch.device(device)
    m, k, n = shape
    out = {}
    for precision in precisions:
        dtype = DTYPES[precision]
        try:
            a = torch.randn(m, k, device=device).to(dtype)
            b = torch.randn(k, n, device=device).to(dtype)
            synchronize(device)
            started = time.perf_counter()
            a @ b
            synchronize(device)
            best = time.perf_counter() - started
            for _ in range(repeat if best < 0.1 else 0):
                synchronize(device)
                started = time.perf_counter()
                a @ b
                synchronize(device)
                best = min(best, time.perf_counter() - started)
        except (RuntimeError, TypeError):
            continue
        out[precision] = 1000 * best
    return out


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA, MPS); nothing on the CPU."""
    kind = torch.device(device).type
    if kind == "cuda":
        torch.cuda.synchronize(device)
    elif kind == "mps":
        torch.mps.synchronize()


# --- running in a precision ----------------------------------------------------------


def autocast_for(device: torch.device, precision: str):
    """The context CLIP's image encoder runs in for ``precision``."""
    dtype = AUTOCAST_DTYPES.get(check_precision(precision))
    if dtype is None:
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


@contextmanager
def exact_fp32(device: torch.device, precision: str):
    """For fp32 on CUDA: convolutions without TF32 (torch allows TF32 in cuDNN's
    convolutions by default, which would make "fp32" a 10-bit mantissa there).

    Wraps a step's forward and backward pass; elsewhere, and for bf16 and
    fp16, it changes nothing.
    """
    if torch.device(device).type != "cuda" or precision != "fp32":
        yield
        return
    cudnn = torch.backends.cudnn
    matmul = torch.backends.cuda.matmul
    before = (cudnn.allow_tf32, matmul.allow_tf32)
    cudnn.allow_tf32 = matmul.allow_tf32 = False
    try:
        yield
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = before
