"""Rendering on a Ray cluster: the same tasks and writers, batches on many workers.

``RayExecutor`` follows ``renderer.execution.executor.Executor``, so every run
plans exactly as it does locally and hands it the same tasks. Each worker is
a Ray actor holding one CLIP, built from the driver's weights file, which
travels through Ray's object store (workers need no network and no shared
filesystem). A worker renders a batch and returns
each image's PNG bytes and record; this process -- the driver -- writes
them with the caller's writer as results arrive, so it stays the only writer
of the cache. A batch whose worker dies is handed to another worker; a batch
that runs out of device memory is split in two.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..engine.clipmodel import ClipModel
from ..engine.precision import Choice, PrecisionError, instead
from ..language.config import Config
from .batching import OutOfMemory, is_out_of_memory
from .executor import Task
from .jobs import ImageJob
from .report import Reporter

CONNECT_TIMEOUT_S = 5.0
MAX_FAILURES = 3  # a worker that dies this often is given up


class ClusterError(RuntimeError):
    """The cluster cannot be used: named address, resources or versions."""


def _ray():
    try:
        import ray
    except ImportError:
        raise ClusterError("Ray is not installed: pip install -e '.[ray]'") from None
    return ray


def code_version() -> str:
    """A digest of the renderer's and the contract's source, to compare driver and workers."""
    import hashlib

    from clipig_gallery import core, renderer

    digest = hashlib.sha256()
    for package in (core, renderer):
        root = Path(package.__file__).parent
        for path in sorted(root.rglob("*.py")):
            digest.update(str(path.relative_to(root.parent)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def versions() -> dict[str, str]:
    import torch

    ray = _ray()
    return {"python": ".".join(map(str, sys.version_info[:3])), "ray": ray.__version__,
            "torch": torch.__version__, "code": code_version()}


def _reachable(address: str) -> None:
    """Fail within seconds when nothing listens at ``host:port`` (or ``ray://host:port``)."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if not parts.hostname or not parts.port:
        raise ClusterError(f"Ray address {address!r}: use host:port, ray://host:port or auto")
    try:
        with socket.create_connection((parts.hostname, parts.port), CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise ClusterError(f"cannot reach the Ray cluster at {address}: "
                           f"{exc.strerror or exc}") from None


def connect(address: str | None, echo: Callable[[str], None] = print) -> str:
    """Join the cluster at ``address`` (or $RAY_ADDRESS), or start one on this machine.

    The project's own code (the ``clipig_gallery`` package) travels to the workers
    in Ray's runtime environment; its dependencies (torch, clip-anytorch...)
    must be installed where the workers run. Returns what was joined, in words.
    """
    ray = _ray()
    # Ray reports usage statistics to its makers unless told not to; a render
    # job has no business doing that unasked (set it to 1 to allow it).
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address and address != "auto":
        _reachable(address)
    import clipig_gallery

    # The whole package (its generator and app are small and never imported there).
    modules = [str(Path(clipig_gallery.__file__).parent)]
    try:
        ray.init(address=address, runtime_env={"py_modules": modules},
                 include_dashboard=False, log_to_driver=False, configure_logging=False,
                 ignore_reinit_error=True)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        said = f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        if "AuthToken" in f"{exc} {exc.__cause__}":
            said += (" -- the cluster wants its authentication token: set RAY_AUTH_MODE=token "
                     "and give the head's token (~/.ray/auth_token there) as RAY_AUTH_TOKEN or "
                     "in ~/.ray/auth_token here")
        raise ClusterError(f"cannot connect to the Ray cluster at {address or 'a new local'}: "
                           f"{said}") from None
    where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
    echo(f"ray: joined {where} ({_resources_text(ray.cluster_resources())})")
    return where


def _resources_text(resources: dict) -> str:
    return ", ".join(f"{resources.get(k, 0):g} {k}" for k in ("GPU", "CPU"))


class Worker:
    """One CLIP on one device of the cluster (a Ray actor)."""

    def __init__(self, weights: bytes, suffix: str, device: str, threads: int | None):
        import torch

        from ..engine.clipmodel import load_clip

        if threads:
            torch.set_num_threads(threads)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"weights{suffix}"
            path.write_bytes(weights)
            self.model = load_clip(str(path), device)

    def info(self) -> dict:
        from ..engine.device import device_name
        from ..engine.precision import support

        native = support(self.model.device)
        return {"pid": os.getpid(), "host": socket.gethostname(),
                "device": str(self.model.device), "device_name": device_name(self.model.device),
                "identity": self.model.identity, "native": list(native.native),
                "emulated": dict(native.emulated), **versions()}

    def batch_size(self, config: Config, precision: str, frames: int = 0) -> int:
        from .batching import auto_batch

        return auto_batch(config, self.model, precision, frames)

    def step_seconds(self, config: Config, n: int, precision: str) -> float:
        from .timing import batched_step_seconds

        return batched_step_seconds(config, self.model, n, precision, steps=1)

    def render(self, config: Config, jobs: Sequence[ImageJob], precision: str,
               starts: Sequence[tuple[str, bytes] | None]) -> tuple[list, float]:
        """The batch's results and the seconds it took here."""
        from .jobs import render_results

        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            paths = []
            for i, start in enumerate(starts):
                if start is None:
                    paths.append(None)
                    continue
                # Its own folder per image: start images of one batch may share a name.
                path = Path(folder) / str(i) / start[0]
                path.parent.mkdir()
                path.write_bytes(start[1])
                paths.append(path)
            results = render_results(config, self.model, jobs, precision,
                                     init_images=paths if any(paths) else None)
        return results, time.perf_counter() - started


@dataclass
class _Slot:
    actor: object
    index: int
    failures: int = 0


@dataclass
class BatchTiming:
    """Per batch: the wall time from hand-out to result, and the worker's own time."""

    wall: list[float] = field(default_factory=list)
    compute: list[float] = field(default_factory=list)

    @property
    def overhead(self) -> float | None:
        """Mean seconds per batch spent outside the worker's render (scheduling, transfer)."""
        if not self.wall:
            return None
        return sum(w - c for w, c in zip(self.wall, self.compute, strict=True)) / len(self.wall)


class RayExecutor:
    """Renders batches on Ray actors; the caller's process writes every result."""

    def __init__(self, model: ClipModel, device: str = "auto", workers: int | None = None,
                 cpus_per_worker: int = 1, echo: Callable[[str], None] = print):
        """``device``: cuda (one worker per GPU), cpu (one per ``cpus_per_worker`` CPUs)
        or auto (GPUs; an error on a cluster without). ``workers`` caps their number."""
        ray = _ray()
        if model.source is None:
            raise ClusterError(f"model {model.name}: no weights file to send to the workers")
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
        kind = "cuda" if device in ("auto", "cuda") or device.startswith("cuda:") else device
        if kind == "cuda" and gpus == 0:
            raise ClusterError(f"the cluster has no GPU ({_resources_text(resources)}); "
                               f"--device cpu renders on its CPUs")
        if kind not in ("cuda", "cpu"):
            raise ClusterError(f"--device {device} on a cluster: use auto, cuda or cpu")
        count = gpus if kind == "cuda" else cpus // max(1, cpus_per_worker)
        count = min(count, workers) if workers else count
        if count < 1:
            raise ClusterError(f"the cluster has {cpus} CPUs, fewer than one worker's "
                               f"{cpus_per_worker}")
        self.model, self.echo, self.kind = model, echo, kind
        self.timing = BatchTiming()
        self._running: dict = {}  # object ref -> (slot, start, stop, handed out at)
        # Kept referenced for as long as the executor lives: a restarted
        # worker reads its weights from here again.
        self.weights = weights = ray.put(Path(model.source).read_bytes())
        options = ({"num_gpus": 1} if kind == "cuda" else {"num_cpus": cpus_per_worker})
        actor_class = ray.remote(Worker).options(max_restarts=MAX_FAILURES, **options)
        threads = None if kind == "cuda" else cpus_per_worker
        self.slots = [_Slot(actor_class.remote(weights, Path(model.source).suffix, kind,
                                               threads), i) for i in range(count)]
        self.infos = self._check_workers()
        names = sorted({i["device_name"] for i in self.infos})
        echo(f"ray: {count} worker(s) on {', '.join(names)}, model {model.name} "
             f"({model.identity})")

    def _check_workers(self) -> list[dict]:
        """Every worker's weights and versions against the driver's, before any work."""
        ray = _ray()
        try:
            infos = ray.get([s.actor.info.remote() for s in self.slots])
        except ray.exceptions.RayError as exc:
            raise ClusterError(f"a worker could not start: {_first_line(exc)}") from None
        mine = versions()
        for info in infos:
            if info["identity"] != self.model.identity:
                raise ClusterError(f"worker {info['pid']} on {info['host']} built weights "
                                   f"{info['identity']}, the driver {self.model.identity}")
            differ = {k: (mine[k], info[k]) for k in mine if info[k] != mine[k]}
            if differ:
                text = ", ".join(f"{k} {a} here, {b} on {info['host']}"
                                 for k, (a, b) in differ.items())
                raise ClusterError(f"driver and cluster differ: {text}")
        return infos

    @property
    def parallel(self) -> int:
        """Batches rendered at once: one per worker."""
        return len(self.slots)

    @property
    def device_label(self) -> str:
        names = sorted({i["device_name"] for i in self.infos})
        return f"{len(self.slots)} x {', '.join(names)} (Ray)"

    def pids(self, timeout: float = 60.0) -> list[int]:
        """The workers' process ids (they change when a worker is restarted: this
        waits for a restarting one, up to ``timeout`` seconds)."""
        ray = _ray()
        deadline = time.monotonic() + timeout
        while True:
            try:
                return [i["pid"] for i in ray.get([s.actor.info.remote() for s in self.slots])]
            except ray.exceptions.ActorUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def busy(self) -> list[int]:
        """The workers (by index, as in ``pids``) with a batch in flight now."""
        return sorted(slot.index for slot, *_ in self._running.values())

    def batch_size(self, config: Config, precision: str, frames: int = 0) -> int:
        ray = _ray()
        return min(ray.get([s.actor.batch_size.remote(config, precision, frames)
                            for s in self.slots]))

    def batch_source(self, batch: int | None) -> str:
        if batch:
            return "--batch"
        return ("measured free memory on each worker" if self.kind == "cuda"
                else "fixed for the CPU")

    def precision(self, requested: str | None) -> Choice:
        """The precision every worker renders in: ``requested`` if all of them compute
        it natively (else PrecisionError naming one that does not), or the fastest
        that all compute natively."""
        native = [p for p in self.infos[0]["native"]
                  if all(p in info["native"] for info in self.infos)]
        if requested is None:
            return Choice(native[0], "default: the fastest every worker computes natively")
        for info in self.infos:
            if requested not in info["native"]:
                why = info["emulated"].get(requested, "not native there")
                raise PrecisionError(
                    f"--precision {requested}: worker {info['pid']} on {info['host']} "
                    f"({info['device_name']}) does not compute it natively: {why}. Use "
                    f"--precision {instead(native[0])}, or leave "
                    f"--precision out for the fastest every worker has ({native[0]}).")
        return Choice(requested, "as asked; native on every worker")

    def step_seconds(self, config: Config, n: int, precision: str) -> float:
        """One batch's step on one worker (``parallel`` of them render at once: the
        estimate counts that, not this)."""
        ray = _ray()
        return ray.get(self.slots[0].actor.step_seconds.remote(config, n, precision))

    def run(self, task: Task, reporter: Reporter) -> list[int]:
        """Hand out the task's batches, one per idle worker; write each as it comes
        back. Returns the sizes of the batches written."""
        ray = _ray()
        jobs, init_images, echo = task.jobs, task.starts, reporter.say
        queue = deque((start, min(start + task.size, len(jobs)))
                      for start in range(0, len(jobs), task.size))
        idle = deque(self.slots)
        running = self._running
        running.clear()
        sizes = []
        while queue or running:
            while queue and idle:
                slot, (start, stop) = idle.popleft(), queue.popleft()
                starts = [None if init_images is None or init_images[i] is None else
                          (init_images[i].name, Path(init_images[i]).read_bytes())
                          for i in range(start, stop)]
                # Timed from before the hand-out: the worker may start before .remote()
                # returns, so a clock read after it could miss part of the batch.
                handed_out = time.perf_counter()
                ref = slot.actor.render.remote(task.config, list(jobs[start:stop]),
                                               task.precision, starts)
                running[ref] = (slot, start, stop, handed_out)
            if not running:
                raise ClusterError("every worker has died; finished images are kept")
            (ref,), _ = ray.wait(list(running), num_returns=1)
            slot, start, stop, handed_out = running.pop(ref)
            try:
                results, seconds = ray.get(ref)
            except ray.exceptions.RayActorError as exc:
                slot.failures += 1
                queue.appendleft((start, stop))
                echo(f"ray: worker {slot.index} lost mid-batch ({_first_line(exc)}); its "
                     f"{stop - start} image(s) go to another worker")
                if slot.failures < MAX_FAILURES:
                    idle.append(slot)  # Ray restarts it
                continue
            except ray.exceptions.RayTaskError as exc:
                if not is_out_of_memory(exc.cause):
                    raise
                idle.append(slot)
                if stop - start == 1:
                    raise OutOfMemory(f"out of memory on worker {slot.index} with one image "
                                      "per batch; try a half --precision the workers have "
                                      "natively") from None
                half = start + (stop - start) // 2
                queue.extendleft([(half, stop), (start, half)])
                echo(f"ray: out of memory with {stop - start} images per batch on worker "
                     f"{slot.index}: split in two")
                continue
            idle.append(slot)
            task.write(jobs[start:stop], results)
            self.timing.wall.append(time.perf_counter() - handed_out)
            self.timing.compute.append(seconds)
            sizes.append(stop - start)
            reporter.advance(stop - start)
        return sizes


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def shutdown() -> None:
    ray = _ray()
    if ray.is_initialized():
        ray.shutdown()


def leave() -> None:
    """Disconnect on the way out: a failed disconnect must not hide the run's result."""
    try:
        shutdown()
    except Exception:  # noqa: BLE001 -- on the way out, whatever went wrong
        pass
