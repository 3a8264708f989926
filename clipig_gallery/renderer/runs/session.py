"""From what a user asks for to a ``RunSpec``: device, precision, model and executor,
each resolved once and by one rule.

``open_run`` is what the command line and the demo call. ``purpose`` says
what the run does with the device:

- ``render``: renders; ``--device auto`` without a GPU stops (a gallery run
  on a CPU is the user's choice, made with ``--device cpu``);
- ``estimate``: a dry run that measures a step (best of N, histories): on
  the device asked for, falling back to the CPU under ``auto``;
- ``list``: a dry run that only lists: the model loads on the CPU (it is
  identified by its weights) and no cluster is joined;
- ``any``: renders wherever it is (one image, a rating): ``auto`` falls back
  to the CPU.

A named device (and a precision asked for on it) is checked even by a dry
run, with the message a real run would give. With Ray, this process's model
is on the CPU (it identifies the weights and plans); the workers render,
and the precision is what every worker computes natively.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from clipig_gallery.core.atomic import (
    ensure_writable,
    is_disk_full,
    is_unwritable,
    unwritable_message,
)
from clipig_gallery.core.settings import default_model_name

from ..engine.clipmodel import ClipModel, load_clip
from ..engine.device import describe, resolve_device
from ..engine.precision import Choice, choose
from ..execution.executor import LocalExecutor
from ..execution.report import Reporter
from .spec import EVERYTHING, RunSpec, Selection

PURPOSES = ("render", "estimate", "list", "any")


@dataclass(frozen=True)
class RayRequest:
    """``--ray``: the cluster's address (None: $RAY_ADDRESS, else a new local one)."""

    address: str | None = None
    workers: int | None = None
    cpus_per_worker: int = 1


@dataclass(frozen=True)
class Machine:
    """Where to render, as asked: ``--device``, ``--precision``, ``--model``, ``--ray``."""

    device: str = "auto"
    precision: str | None = None
    model: str | None = None
    ray: RayRequest | None = None


@dataclass(frozen=True)
class Settings:
    """What a run covers, whatever the machine."""

    cache: Path
    batch: int | None = None
    frames: int = 0
    seed: int = 0
    selection: Selection = EVERYTHING


def check_device(machine: Machine) -> None:
    """A named device (and a precision asked for on it) must be usable: DeviceError or
    PrecisionError, as a real run would raise."""
    if machine.device != "auto":
        choose(resolve_device(machine.device, echo=lambda _: None), machine.precision)


def local_device(machine: Machine, purpose: str, notice: Callable[[str], None]):
    """This process's device for ``purpose`` (see the module's text)."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}; one of {', '.join(PURPOSES)}")
    if purpose in ("estimate", "list"):
        check_device(machine)
    on_cpu = purpose == "list" or (machine.ray is not None and purpose != "any")
    return resolve_device("cpu" if on_cpu else machine.device,
                          need_gpu=purpose == "render", echo=notice)


def warn_if_unwritable(cache: Path, reporter: Reporter) -> None:
    """A dry run writes nothing, so a cache it cannot write does not stop it; it says
    so, since the same command without ``--dry-run`` would stop before its first image."""
    try:
        ensure_writable(cache)
    except OSError as exc:
        if is_disk_full(exc):
            reporter.note(f"note: no space left to write {cache}: a run without --dry-run "
                          f"would stop before its first image")
        elif is_unwritable(exc):
            reporter.note(f"note: {unwritable_message(exc)}; a run without --dry-run "
                          f"would stop before its first image")
        else:
            raise


@contextmanager
def open_run(machine: Machine, settings: Settings, reporter: Reporter,
             purpose: str = "render", model: ClipModel | None = None) -> Iterator[RunSpec]:
    """The run's spec, with Ray joined for its duration when asked for; ``model``, if
    given, is the model already loaded for it (the demo's stand-in).

    Raises DeviceError or PrecisionError (what was asked for cannot be had),
    ModelUnavailable, or ClusterError.
    """
    device = model.device if model is not None else local_device(machine, purpose,
                                                                 reporter.note)
    on_ray = machine.ray is not None and purpose in ("render", "estimate")
    choice = None
    if not on_ray:
        choice = (choose(device, machine.precision) if purpose != "list"
                  else Choice(machine.precision or "fp32", "a dry run renders nothing"))
    model = model or load_model(machine.model, device)
    if purpose in ("render", "any"):
        ensure_writable(settings.cache)  # before the first batch, not after it
    else:
        warn_if_unwritable(settings.cache, reporter)
    if not on_ray:
        yield RunSpec(settings.cache, model, LocalExecutor(model), choice, settings.batch,
                      settings.frames, settings.seed, settings.selection, reporter,
                      describe(device, choice, model.name, model.identity))
        return
    with ray_executor(machine, model, reporter) as executor:
        choice = executor.precision(machine.precision)
        reporter.say(f"ray: {choice.text()}")
        yield RunSpec(settings.cache, model, executor, choice, settings.batch,
                      settings.frames, settings.seed, settings.selection, reporter)


def load_model(name: str | None, device) -> ClipModel:
    """``name`` (or the default model) on ``device``; ModelUnavailable if it cannot be had."""
    return load_clip(name or default_model_name(), device)


@contextmanager
def ray_executor(machine: Machine, model: ClipModel, reporter: Reporter):
    """Join the cluster and start the workers; disconnect after."""
    from ..execution.cluster import RayExecutor, connect, leave

    ray = machine.ray
    connect(ray.address, echo=reporter.say)
    try:
        yield RayExecutor(model, machine.device, ray.workers, ray.cpus_per_worker,
                          echo=reporter.say)
    finally:
        leave()


def judge_device(spec: RunSpec, purpose: str):
    """Where a judge rates short runs (always in this process): on the render device;
    with Ray (rendering), on this machine's own GPU where it has one, else its CPU."""
    if isinstance(spec.executor, LocalExecutor) or purpose != "render":
        return spec.device
    return resolve_device("auto", need_gpu=False, echo=lambda _: None)
