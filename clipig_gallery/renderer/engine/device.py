"""Choosing the device, and saying which one was chosen and why.

A render on the CPU takes a hundred times longer than on a GPU, so a missing
GPU is never passed over in silence: ``--device auto`` stops with the reason
(a CPU-only torch build, no driver, a driver too old for the build) unless the
caller allows a CPU fallback, and then it says so.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from .precision import Choice, choose, cpu_name

# The wheel index of the oldest CUDA build the README recommends for older drivers.
OLDER_CUDA_INDEX = "https://download.pytorch.org/whl/cu126"


class DeviceError(ValueError):
    """The requested device cannot be used; the message says what to do."""


def cuda_status() -> tuple[bool, str]:
    """(usable, why not): whether torch can use a CUDA GPU here, and if not, why."""
    if torch.version.cuda is None:
        return False, f"this torch ({torch.__version__}) is a CPU-only build"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
    if available:
        return True, ""
    said = " ".join(str(w.message).strip() for w in caught) or nvidia_driver()
    reason = f"torch {torch.__version__} (built for CUDA {torch.version.cuda}) finds no usable GPU"
    return False, f"{reason}; {said}"


def nvidia_driver() -> str:
    """What Linux says of the NVIDIA kernel driver, for the message above."""
    try:
        return "driver: " + Path("/proc/driver/nvidia/version").read_text().splitlines()[0]
    except (OSError, IndexError):
        return "no NVIDIA driver is loaded (/proc/driver/nvidia/version is missing)"


def no_gpu_message(why: str) -> str:
    return (
        f"CUDA is not available: {why}.\n"
        f"If this machine has an NVIDIA GPU, its driver may be too old for this torch build: "
        f"`nvidia-smi` shows the newest CUDA version the driver supports. Install a torch "
        f"build for it, e.g. `pip install torch torchvision --index-url {OLDER_CUDA_INDEX}` "
        f"(README: \"Which torch for which driver\").\n"
        f"To render on the CPU anyway (about 10-40 images an hour), pass --device cpu."
    )


def mps_status() -> tuple[bool, str]:
    """(usable, why not): whether torch can use an Apple GPU (MPS) here."""
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_built():
        return False, f"this torch ({torch.__version__}) is built without MPS (Apple GPU) support"
    if not mps.is_available():
        return False, ("torch has MPS support but finds no Apple GPU (it needs macOS 12.3 or "
                       "newer on Apple silicon)")
    return True, ""


def no_mps_message(why: str) -> str:
    return (f"MPS is not available: {why}.\n"
            f"On a Mac with Apple silicon, install the macOS build of torch "
            f"(`pip install torch torchvision`). To render on the CPU anyway, pass --device cpu.")


# Device types a render can use; others torch names (xpu, meta, ...) are refused.
DEVICE_TYPES = ("cpu", "cuda", "mps")


def resolve_device(name: str, need_gpu: bool = True,
                   echo: Callable[[str], None] = print) -> torch.device:
    """The torch device for ``--device NAME``.

    ``auto`` means CUDA, else MPS (an Apple GPU). Without either it raises
    DeviceError when ``need_gpu``, otherwise falls back to the CPU and says so
    through ``echo``. A named device that cannot be used raises DeviceError.
    """
    if name == "auto":
        usable, why = cuda_status()
        if usable:
            return torch.device("cuda")
        mps, _why_not_mps = mps_status()
        if mps:
            return torch.device("mps")
        if need_gpu:
            raise DeviceError(no_gpu_message(why))
        echo(f"no usable GPU ({why}): running on the CPU")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise DeviceError(f"--device {name!r}: {exc}") from None
    if device.type not in DEVICE_TYPES:
        raise DeviceError(f"--device {name}: renders run on {', '.join(DEVICE_TYPES)} "
                          f"(or auto), not {device.type}")
    if device.type == "cuda":
        usable, why = cuda_status()
        if not usable:
            raise DeviceError(no_gpu_message(why))
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {name}: this machine has "
                              f"{torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps":
        usable, why = mps_status()
        if not usable:
            raise DeviceError(no_mps_message(why))
        if device.index not in (None, 0):
            raise DeviceError(f"--device {name}: MPS has one device, mps (or mps:0)")
    return device


def device_name(device: str | torch.device) -> str:
    """A readable name of the hardware behind ``device``."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return f"{cpu_name()}, {torch.get_num_threads()} threads"


def describe(device: torch.device, precision: Choice | str | None, model_name: str,
             model_id: str) -> str:
    """The line printed before the first image of a run: where, in which precision
    and why, with which model. ``precision`` is a Choice already made, or what was
    asked for (None: the device's default)."""
    choice = precision if isinstance(precision, Choice) else choose(device, precision,
                                                                    measure=False)
    return (f"device {device} ({device_name(device)}), {choice.text()}, "
            f"model {model_name} ({model_id})")
