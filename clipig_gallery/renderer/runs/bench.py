"""Speed benchmark: the batched renderer against a reference-style loop.

Both sides do equal work per image -- the method's transforms on 10 views and
CLIP on those 10 views per step -- and are measured in the same process, on
the same device, after a warm-up step. Speed needs no meaningful weights, so
the default model is the ViT-B/32 architecture with random weights.

The reference-style loop reproduces how the 2021 renderer spent its time:
one image at a time, a Python loop over the views and over the constraints,
CLIP not frozen (so every backward pass also runs through the text encoder
and fills weight gradients), anomaly detection on, and CLIP's weights as
``clip.load`` gave them: fp16 on CUDA (no autocast), fp32 on the CPU.

The batched renderer is timed in every precision the device computes
natively (``renderer.engine.precision``); the others are skipped, saying why, with
one matrix product per precision timed to show what emulation costs there.
Peak memory is measured on CUDA only: per setting, and as the maximum over
the whole bench. A setting that runs out of device memory is reported as
such and the bench goes on.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from clipig_gallery.core.paths import METHODS, SHOWCASE_CONFIG
from clipig_gallery.core.prompts import load_prompts

from ..engine.clipmodel import (
    CLIP_MEAN,
    CLIP_STD,
    ClipModel,
    as_convolution,
    import_clip,
    load_clip,
)
from ..engine.device import device_name
from ..engine.history import DEFAULT_FRAMES, encode_histories
from ..engine.optimise import BatchRender
from ..engine.precision import PRECISIONS, autocast_for, matmul_ms, support, synchronize
from ..engine.rng import ImageStreams
from ..engine.standin import VIT_B_32, Dims, build_clip, standin_checkpoint
from ..execution.batching import CudaMemory, auto_batch, cuda_memory, is_out_of_memory, release
from ..execution.executor import LocalExecutor, Task
from ..execution.jobs import ImageJob
from ..execution.report import QUIET
from ..execution.timing import batched_step_seconds, measure_plan, timed
from ..language.config import Config, EpochPlan, final_size, is_active, load_config
from ..language.ops.constraints import CONSTRAINTS
from ..language.ops.transforms import TRANSFORMS, resize_views
from .first import method_config
from .ranking import ranking_config

RANDOM_VIT_B_32 = "random-ViT-B/32"


def prompt_count() -> int:
    """Prompts per method, 9 animals x 90 things: read when the bench runs, not on import."""
    return len(load_prompts())

OPS_DIMS = Dims(embed_dim=32, image_resolution=64, vision_layers=1, vision_width=64,
                vision_patch_size=16, transformer_width=64, transformer_layers=1)


def random_clip(dims: Dims, device: torch.device, name: str) -> ClipModel:
    """A frozen CLIP of the given architecture with random weights."""
    model = build_clip(dims, seed=0).float().to(device).eval().requires_grad_(False)
    return ClipModel(model=model, preprocess=None, name=name, device=device)


def unless_out_of_memory(device: torch.device, fn: Callable, *args):
    """``fn(*args)``, or None if the device ran out of memory (the memory is given
    back after the ``except`` block, whose traceback still held the failed work)."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 -- only running out of memory is handled
        if not is_out_of_memory(exc):
            raise
    release(device)
    return None


def history_bench(config: Config, model: ClipModel, n: int, precision: str, steps: int,
                  frames: int = DEFAULT_FRAMES) -> dict:
    """What a history costs at a batch of ``n``: taking a frame, against a step; the
    one read-back; encoding the WebPs (on every core), against an image's render.

    The frames encoded are those of a short real run (the bench's model from
    noise), so their size is indicative only: real renders differ.
    """
    job = BatchRender(config, model, list(range(n)), [f"prompt {i}" for i in range(n)],
                      precision=precision)
    state = job.start()
    plan = measure_plan(config)
    step = timed(lambda: job.step(state, plan), steps, model.device)
    buffer = job.history_buffer(frames)
    due = buffer.steps[-1]
    capture = timed(lambda: buffer.capture(due, state.pixels), steps, model.device)
    started = time.perf_counter()
    buffer.read()
    read = time.perf_counter() - started
    short = config.with_epochs(frames - 1)  # a frame after every step
    kept = BatchRender(short, model, list(range(n)), [f"prompt {i}" for i in range(n)],
                       precision=precision).run(history=frames).history
    started = time.perf_counter()
    encoded = encode_histories(kept, [True] * n)
    encode = (time.perf_counter() - started) / n
    image = config.epochs * step / n  # one image's share of its batch's render
    taken = len(buffer.steps)
    return {
        "batch": n,
        "precision": precision,
        "frames": taken,
        "capture_seconds": capture,
        "step_seconds": step,
        "capture_share_of_step": capture / step,
        "share_of_render": taken * capture / (config.epochs * step),
        "read_back_seconds": read,
        "encode_seconds_per_image": encode,
        "encode_share_of_render": encode / image,
        "webp_kb_average": sum(len(d) for d in encoded) / n / 1000,
        "encode_threads": min(n, os.cpu_count() or 1),
    }


def percent(fraction: float) -> str:
    """``fraction`` as a percentage in two significant digits, never in exponent form
    (whole numbers from 10%)."""
    value = 100 * fraction
    if value >= 10:
        return f"{value:.0f}%"
    return f"{value:.2g}%" if value >= 1e-4 or value == 0 else "<0.0001%"


def _echo_history(h: dict, echo) -> None:
    echo(f"  history ({h['precision']} N={h['batch']}, {h['frames']} frames): one frame "
         f"{1000 * h['capture_seconds']:.2f} ms = {percent(h['capture_share_of_step'])} "
         f"of a {h['step_seconds']:.3f} s step, {percent(h['share_of_render'])} of the "
         f"render; read back {1000 * h['read_back_seconds']:.0f} ms per batch")
    echo(f"  history WebP: {h['encode_seconds_per_image']:.3f} s per image on "
         f"{h['encode_threads']} threads = {percent(h['encode_share_of_render'])} of an "
         f"image's render; {h['webp_kb_average']:.1f} KB each (the bench's random model)")


def _clip_alone(model: ClipModel, views: int, precision: str) -> Callable[[], None]:
    """CLIP's own forward and backward for ``views`` views: what a step cannot beat."""
    res = model.input_resolution
    x = torch.rand(views, 3, res, res, device=model.device, requires_grad=True)

    def once():
        with autocast_for(model.device, precision):
            features = model.encode_views(x)
        features.sum().backward()

    return once


def clip_floor_seconds(model: ClipModel, views: int, precision: str, steps: int) -> float:
    """Seconds of CLIP's forward and backward alone for ``views`` views."""
    return timed(_clip_alone(model, views, precision), steps, model.device)


# Rounds of the floor ratio, at least: the fastest of 5 still moved it by 2-4%
# from run to run on the shared 2-core build machine, the fastest of 10 by 1-2%.
FLOOR_ROUNDS = 10


def step_over_floor(config: Config, model: ClipModel, precision: str, steps: int) -> float:
    """A step of one image over CLIP's forward and backward alone for its views.

    The two are timed in turn, call by call, and the fastest of each is taken:
    on a shared machine a neighbour's load can slow either side of a sequential
    measurement by more than the difference being measured.
    """
    job = BatchRender(config, model, [0], ["prompt 0"], precision=precision)
    state, plan = job.start(), measure_plan(config)
    sides = {"step": lambda: job.step(state, plan),
             "clip": _clip_alone(model, config.targets[0].views, precision)}
    best = dict.fromkeys(sides, float("inf"))
    for round_ in range(max(steps, FLOOR_ROUNDS) + 1):  # the first round warms both up
        for side, fn in sides.items():
            synchronize(model.device)
            started = time.perf_counter()
            fn()
            synchronize(model.device)
            if round_:
                best[side] = min(best[side], time.perf_counter() - started)
    return best["step"] / best["clip"]


class ReferenceStyle:
    """One image as the 2021 renderer computed it: Python loops, CLIP trainable.

    ``half`` gives CLIP fp16 weights the way ``clip.load`` did on CUDA
    (``clip.model.convert_weights``: convolutions, linear and attention
    weights in fp16, layer norms in fp32), with no autocast, so features and
    the loss come out in fp16. None means: on CUDA only, as in 2021. The
    model is copied, so the batched settings keep their frozen fp32 CLIP.
    """

    def __init__(self, config: Config, model: ClipModel, text: str = "prompt 0",
                 half: bool | None = None):
        self.config, self.model, self.device = config, model, model.device
        self.half = self.device.type == "cuda" if half is None else half
        self.target = config.targets[0]
        width, height = final_size(config)
        self.pixels = torch.rand(3, height, width, device=self.device, requires_grad=True)
        self.optimizer = torch.optim.RMSprop([self.pixels], lr=0.003, centered=True,
                                             momentum=0.1)
        clip = import_clip()
        # As the clip package builds it: the patch embedding a convolution.
        self.clip = as_convolution(copy.deepcopy(model.model))
        if self.half:
            clip.model.convert_weights(self.clip)
        # The reference kept the text feature's graph and every weight trainable.
        self.clip.requires_grad_(True)
        tokens = clip.tokenize([text]).to(self.device)
        text_feature = self.clip.encode_text(tokens)
        self.text = text_feature / text_feature.norm(dim=-1, keepdim=True)
        self.mean = torch.tensor(CLIP_MEAN, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(CLIP_STD, device=self.device).view(1, 3, 1, 1)
        self.streams = ImageStreams([0], self.device, views=1)

    def step(self, plan: EpochPlan) -> None:
        res = self.model.input_resolution
        t = plan.env["t"]
        current = self.pixels.clamp(0, 1)
        views = []
        for _ in range(self.target.batch_size):
            x = current.unsqueeze(0)
            for step in self.target.transforms:
                x = TRANSFORMS[step.name].fn(x, step(plan.env), self.streams)
            views.append(resize_views(x, res, res))
        batch = torch.cat(views).clamp(0, 1)
        # CLIP casts its input to its weights' dtype (fp16 on CUDA).
        features = self.clip.encode_image((batch - self.mean) / self.std)
        loss = torch.zeros((), device=self.device, dtype=features.dtype)
        for i in range(features.shape[0]):
            cos = torch.nn.functional.cosine_similarity(features[i : i + 1], self.text)
            loss = loss + (1.0 - cos[0])
            float(loss.detach())  # the reference read each loss back for its statistics
        for constraint in self.target.constraints:
            if not is_active(constraint.start, constraint.end, plan.epoch, t):
                continue
            fn, args = CONSTRAINTS[constraint.step.name].fn, constraint.step(plan.env)
            weight = constraint.weight.first(plan.env)
            for i in range(batch.shape[0]):
                loss = loss + fn(batch[i : i + 1], args)[0] * weight
        self.optimizer.zero_grad()
        loss.backward(retain_graph=True)
        self.optimizer.step()

    def close(self) -> None:
        self.clip = self.text = None


def reference_step_seconds(config: Config, model: ClipModel, steps: int,
                           half: bool | None = None) -> float:
    ref = ReferenceStyle(config, model, half=half)
    plan = measure_plan(config)
    try:
        with torch.autograd.set_detect_anomaly(True):
            return timed(lambda: ref.step(plan), steps, model.device)
    finally:
        ref.close()


_DRAWS = ("aten::rand", "aten::randn")
_SYNCS = ("aten::item", "aten::_local_scalar_dense")


def _inside_draw(event) -> bool:
    while event is not None:
        if event.name in _DRAWS:
            return True
        event = event.cpu_parent
    return False


# Kineto, torch's profiler backend, writes lines like
# "USDT:2026-12-08 01:32:21 18463:18463 SyncActivityProfilerHandler.cpp:39] profiler_start"
# straight to the process's stderr, whatever its log level.
_KINETO_LINE = re.compile(r"^[A-Z]+:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \d+:\d+ \w+\.cpp:\d+\]")


@contextlib.contextmanager
def _without_kineto_lines():
    """Leave Kineto's lines out of stderr (file descriptor 2); keep everything else."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            for line in caught.read().decode(errors="replace").splitlines(keepends=True):
                if not _KINETO_LINE.match(line):
                    sys.stderr.write(line)


def count_ops(config: Config, model: ClipModel, n: int) -> dict[str, int]:
    """Torch operator calls in one optimisation step of n images.

    ``other_ops`` leaves out the per-image random draws: it must not grow
    with n, or some Python loop runs over images or views inside the step.
    """
    # Kineto also logs an ERROR for a CUDA build without a GPU; this counts CPU
    # operators only.
    os.environ.setdefault("KINETO_LOG_LEVEL", "5")
    from torch.profiler import ProfilerActivity, profile

    job = BatchRender(config, model, list(range(n)), ["x"] * n)
    state = job.start()
    plan = measure_plan(config)
    job.step(state, plan)
    with _without_kineto_lines(), profile(activities=[ProfilerActivity.CPU]) as prof:
        job.step(state, plan)
    events = [e for e in prof.events() if e.name.startswith("aten::")]
    return {
        "ops": len(events),
        "draw_calls": sum(e.name in _DRAWS for e in events),
        "other_ops": sum(not _inside_draw(e) for e in events),
        "host_syncs": sum(e.name in _SYNCS for e in events),
    }


@dataclass
class MethodBench:
    method: int
    epochs: int
    views_per_image: int
    auto_batch: dict[str, int]  # per precision
    seconds_per_step: dict[str, float] = field(default_factory=dict)
    images_per_hour: dict[str, float] = field(default_factory=dict)
    speedup: dict[str, float] = field(default_factory=dict)  # vs "reference", same run
    ops_per_step: dict[str, dict[str, int]] = field(default_factory=dict)
    # CLIP forward + backward alone for one image's views, per precision.
    clip_floor: dict[str, float] = field(default_factory=dict)
    # A step of one image over that floor, per precision: what the rest of the step adds
    # (the fastest of each, timed in turn: see step_over_floor).
    floor_ratio: dict[str, float] = field(default_factory=dict)
    # Peak allocated CUDA memory of each timed setting, MiB; empty on the CPU.
    peak_memory_mb: dict[str, float] = field(default_factory=dict)
    # What keeping a history costs (history_bench).
    history: dict[str, float | int | str] = field(default_factory=dict)


class MemoryPeaks:
    """Peak allocated CUDA memory, per setting and over the whole bench.

    Each setting is a window of the device's ``CudaMemory``, whose peaks
    survive the resets that the batch-size probe makes inside a setting, so
    neither a setting's peak nor the maximum over the bench can come out too
    low. On other devices nothing is measured.
    """

    def __init__(self, device: torch.device, memory: CudaMemory | None = None):
        self.cuda = device.type == "cuda"
        self.memory = memory or (cuda_memory(device) if self.cuda else None)
        if self.memory is not None:
            self.memory.restart()

    @contextlib.contextmanager
    def setting(self, into: dict[str, float] | None = None, key: str = ""):
        """Measure the block on its own; its peak goes to ``into[key]`` if given."""
        if self.memory is None:
            yield
            return
        self.memory.mark()
        yield
        if into is not None:
            into[key] = round(self.memory.window_peak() / 2**20, 1)

    def overall(self) -> float | None:
        if self.memory is None:
            return None
        return round(self.memory.overall_peak() / 2**20, 1)


def precision_check(device: torch.device, precisions: tuple[str, ...] | None) -> dict:
    """Which precisions the bench times: ``precisions`` as given, or (None) those
    the device computes natively; with the others' reasons and a matrix product
    timed in each precision (what emulation costs here)."""
    found = support(device)
    timed = tuple(p for p in PRECISIONS if p in found.native) if precisions is None \
        else tuple(precisions)
    return {"native": list(found.native), "timed": list(timed),
            "skipped": {p: found.emulated.get(p, "not asked for")
                        for p in PRECISIONS if p not in timed},
            "matmul_ms": {p: round(ms, 2) for p, ms in matmul_ms(device).items()}}


def _echo_precisions(check: dict, echo) -> None:
    times = check["matmul_ms"]
    fp32 = times.get("fp32")
    echo("one matrix product (512x768 by 768x768): " + ", ".join(
        f"{p} {ms:.1f} ms" + (f" ({ms / fp32:.1f}x fp32)" if fp32 and p != "fp32" else "")
        for p, ms in times.items()))
    for precision, why in check["skipped"].items():
        echo(f"skipped {precision}: {why}")


def run_bench(device: torch.device, model_name: str = RANDOM_VIT_B_32, steps: int = 3,
              batch: int | None = None, methods=METHODS, ops: bool = True,
              echo: Callable[[str], None] = print,
              precisions: tuple[str, ...] | None = None) -> dict:
    """Time the methods' steps on ``device``; print a table per method, return the numbers.

    ``precisions`` are the batched renderer's settings (default: those the
    device computes natively); each is timed for one image and for its
    automatic batch (``batch`` overrides that). Returns JSON-ready data:
    device, torch, threads, model, steps, precisions, precision_check (native,
    timed, skipped with reasons, matmul_ms per precision), reference (what the
    reference loop does), measured_at; methods (one MethodBench as a dict per
    method: seconds_per_step, images_per_hour and speedup keyed "reference"
    and "<precision> N=<n>" (None where it ran out of memory), auto_batch and
    clip_floor per precision, floor_ratio (a step of one image over CLIP's
    forward and backward alone, the fastest of each timed in turn), peak_memory_mb
    per setting on CUDA,
    ops_per_step); ranking (per method: short runs per hour, continued images
    per hour, best of 512 per prompt and per method in hours); best_of (the
    projection of best of 512 for the whole gallery on 1 and 8 devices);
    peak_memory_mb (maximum over the whole bench on CUDA, else None) with
    peak_memory saying how it was measured; projected_gallery_seconds;
    configs (with every method: config_bench of the showcase config, which uses
    CLIPig ops the methods do not).
    """
    device = torch.device(device)
    peaks = MemoryPeaks(device)
    if model_name == RANDOM_VIT_B_32:
        model = random_clip(VIT_B_32, device, RANDOM_VIT_B_32)
    else:
        model = load_clip(model_name, device)
    check = precision_check(device, precisions)
    precisions = tuple(check["timed"])
    default = support(device).default
    default = default if default in precisions else precisions[0]
    reference_half = device.type == "cuda"
    result = {
        "device": device_name(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "model": model.name,
        "steps": steps,
        "precisions": list(precisions),
        "default_precision": default,
        "precision_check": check,
        "reference": ("one image, Python loops over views and constraints, CLIP trainable, "
                      "anomaly detection, CLIP weights "
                      + ("fp16 (clip.load on CUDA)" if reference_half else "fp32")),
        "measured_at": "the last epoch (final resolution), after one warm-up step",
        "methods": [],
    }
    echo(f"bench on {result['device']}, torch {result['torch']}, model {model.name}, "
         f"{steps} steps after warm-up")
    _echo_precisions(check, echo)
    echo(f"timed: {', '.join(precisions)} (default here: {default})")
    echo(f"reference: {result['reference']}")
    for method in methods:
        config = method_config(method)
        autos = {}
        for p in precisions:
            with peaks.setting():
                autos[p] = batch or unless_out_of_memory(device, auto_batch, config, model,
                                                         p) or 0
        bench = MethodBench(method, config.epochs, config.targets[0].views, autos)
        memory = bench.peak_memory_mb
        with peaks.setting(memory, "reference"):
            bench.seconds_per_step["reference"] = reference_step_seconds(
                config, model, steps, half=reference_half)
        for precision in precisions:
            with peaks.setting(memory, f"{precision} CLIP alone"):
                bench.clip_floor[precision] = clip_floor_seconds(
                    model, config.targets[0].views, precision, steps
                )
            for n in sorted({1, autos[precision]} - {0}):
                key = f"{precision} N={n}"
                with peaks.setting(memory, key):
                    bench.seconds_per_step[key] = unless_out_of_memory(
                        device, batched_step_seconds, config, model, n, precision, steps)
            if bench.seconds_per_step.get(f"{precision} N=1"):
                bench.floor_ratio[precision] = step_over_floor(config, model, precision, steps)
        if autos[default]:
            with peaks.setting():
                bench.history = unless_out_of_memory(
                    device, history_bench, config, model, autos[default], default, steps) or {}
        for key, seconds in bench.seconds_per_step.items():
            n = 1 if key == "reference" else int(key.split("N=")[1])
            bench.images_per_hour[key] = 3600.0 * n / (config.epochs * seconds) \
                if seconds else None
        for key, rate in bench.images_per_hour.items():
            bench.speedup[key] = rate / bench.images_per_hour["reference"] if rate else None
        if ops:
            with peaks.setting():
                small = random_clip(OPS_DIMS, device, "small")
                bench.ops_per_step = {f"N={n}": count_ops(config, small, n)
                                      for n in (1, 2, 32)}
        result["methods"].append(asdict(bench))
        _echo_method(bench, result["device"], echo)
        if bench.history:
            _echo_history(bench.history, echo)
    configs = (SHOWCASE_CONFIG,) if set(methods) == set(METHODS) else ()
    result["configs"] = []
    for path in configs:
        with peaks.setting():
            entry = config_bench(load_config(path), model, default, steps, batch,
                                 reference_half)
        result["configs"].append(entry)
        _echo_config(entry, result["device"], echo)
    with peaks.setting():
        result["ranking"] = [
            ranking_bench(method, model, steps, batch, echo, default) for method in methods
        ]
    if set(methods) == set(METHODS):
        result["best_of"] = best_of_projection(result["ranking"])
        echo(f"best of 512 over the whole gallery ({2 * prompt_count()} prompt x method): "
             f"{result['best_of']['hours_one_device']:.0f} h on this device, "
             f"{result['best_of']['hours_eight_devices']:.0f} h on eight like it")
    result["peak_memory_mb"] = peaks.overall()
    result["peak_memory"] = (
        "torch.cuda.max_memory_allocated, the maximum over the whole bench"
        if peaks.cuda else f"not measured on {device.type}"
    )
    gallery = sum(
        prompt_count() / max(r for r in m["images_per_hour"].values() if r) * 3600
        for m in result["methods"]
    ) if set(methods) == {1, 2} else None
    result["projected_gallery_seconds"] = gallery
    if gallery:
        echo(f"projected gallery (1620 images, fastest setting per method): "
             f"{gallery / 3600:.2f} h")
    if result["peak_memory_mb"] is None:
        echo(f"peak memory: {result['peak_memory']}")
    else:
        echo(f"peak memory {result['peak_memory_mb']:.0f} MiB (maximum over the whole bench)")
    return result


def ops_beyond_the_methods(config: Config) -> list[str]:
    """The transforms and constraints of ``config`` that neither method uses."""
    used = set()
    for method in METHODS:
        for target in method_config(method).targets:
            used |= {s.name for s in target.transforms}
            used |= {f"constraint {c.step.name}" for c in target.constraints}
    names = [s.name for t in config.targets for s in t.transforms]
    names += [f"constraint {c.step.name}" for t in config.targets for c in t.constraints]
    names += [f"postproc {p.step.name}" for p in config.postproc]
    return [n for n in dict.fromkeys(names) if n not in used]


def config_bench(config: Config, model: ClipModel, precision: str, steps: int,
                 batch: int | None, half: bool) -> dict:
    """A CLIPig config's step, timed as the methods' are: the reference-style loop,
    then ``precision`` (the device's default) for one image and for its automatic
    batch (``batch`` overrides it). Returns source, epochs, views, new_ops (what
    the methods do not use), seconds_per_step, images_per_hour and speedup (vs
    the reference)."""
    device = model.device
    entry = {"source": str(config.source), "epochs": config.epochs,
             "views": config.targets[0].views, "new_ops": ops_beyond_the_methods(config),
             "seconds_per_step": {}, "images_per_hour": {}, "speedup": {}}
    seconds = entry["seconds_per_step"]
    seconds["reference"] = reference_step_seconds(config, model, steps, half=half)
    n_auto = batch or unless_out_of_memory(device, auto_batch, config, model, precision) or 0
    for n in sorted({1, n_auto} - {0}):
        seconds[f"{precision} N={n}"] = unless_out_of_memory(
            device, batched_step_seconds, config, model, n, precision, steps)
    for key, value in seconds.items():
        n = 1 if key == "reference" else int(key.split("N=")[1])
        entry["images_per_hour"][key] = 3600.0 * n / (config.epochs * value) if value else None
    reference = entry["images_per_hour"]["reference"]
    entry["speedup"] = {k: (r / reference if r else None)
                        for k, r in entry["images_per_hour"].items()}
    return entry


def _echo_config(entry: dict, device: str, echo) -> None:
    echo(f"clipig config {entry['source']} on {device}: {entry['epochs']} epochs, "
         f"{entry['views']} views/image; beyond the methods: {', '.join(entry['new_ops'])}")
    echo(f"  {'setting':14} {'s/step':>8} {'images/h':>10} {'vs ref':>7}")
    for key, seconds in entry["seconds_per_step"].items():
        if seconds is None:
            echo(f"  {key:14} {'out of memory':>28}")
            continue
        echo(f"  {key:14} {seconds:8.3f} {entry['images_per_hour'][key]:10.1f} "
             f"{entry['speedup'][key]:6.2f}x")


def ranking_bench(method: int, model: ClipModel, steps: int, batch: int | None,
                  echo: Callable[[str], None], precision: str | None = None) -> dict:
    """Throughput of the short and the continued runs, as `rank` and `render --best-of` run them.

    Short runs per hour one at a time and batched; continued images per hour
    batched; from these, the hours of best of 512 for one prompt and for all
    810 prompts of the method on one device.
    """
    device = model.device
    precision = precision or support(device).default
    entry = {"method": method, "precision": precision, "runs_per_hour": {}}
    short = ranking_config(method, "short", "prompt")
    n_batch = batch or max(4, unless_out_of_memory(device, auto_batch, short, model,
                                                   precision) or 1)
    entry["epochs"] = short.epochs
    for n in sorted({1, n_batch}):
        seconds = unless_out_of_memory(device, batched_step_seconds, short, model, n,
                                       precision, steps)
        if seconds:
            entry["runs_per_hour"][f"N={n}"] = 3600.0 * n / (short.epochs * seconds)
    detail = ranking_config(method, "detail", "prompt")
    n_detail = batch or unless_out_of_memory(device, auto_batch, detail, model, precision) or 1
    seconds = unless_out_of_memory(device, batched_step_seconds, detail, model, n_detail,
                                   precision, steps)
    if seconds is None:  # the batch did not fit after all: one at a time
        n_detail, seconds = 1, batched_step_seconds(detail, model, 1, precision, steps)
    entry["epochs_detail"] = detail.epochs
    entry["continued_per_hour"] = {f"N={n_detail}": 3600.0 * n_detail / (detail.epochs * seconds)}
    rates = entry["runs_per_hour"]
    short_rate, detail_rate = max(rates.values()), max(entry["continued_per_hour"].values())
    entry["hours_for_512"] = 512 / short_rate
    entry["best_of_512_hours_per_prompt"] = 512 / short_rate + 1 / detail_rate
    entry["best_of_512_gallery_hours"] = prompt_count() * entry["best_of_512_hours_per_prompt"]
    echo(f"short runs, method {method} ({short.epochs} epochs, {precision}): "
         + ", ".join(f"{k}: {v:.0f} runs/h" for k, v in rates.items())
         + f"; continued ({detail.epochs} epochs) N={n_detail}: {detail_rate:.1f} images/h")
    echo(f"  best of 512, method {method}: {entry['best_of_512_hours_per_prompt']:.2f} h per "
         f"prompt, {entry['best_of_512_gallery_hours']:.0f} h for its {prompt_count()} prompts "
         f"on this device")
    return entry


def best_of_projection(ranking: list[dict]) -> dict:
    """Hours of best of 512 over the whole gallery (both methods), on 1 and 8 devices.

    Eight devices are counted as eight times one: prompts are independent and
    a cluster hands them out in batches, so only scheduling and transfer
    (not measured here) come on top.
    """
    hours = sum(entry["best_of_512_gallery_hours"] for entry in ranking)
    return {"runs": 512, "prompts": prompt_count(), "methods": len(ranking),
            "hours_one_device": hours, "hours_eight_devices": hours / 8}


def _echo_method(bench: MethodBench, device: str, echo) -> None:
    echo(f"method {bench.method} on {device}: {bench.epochs} epochs, "
         f"{bench.views_per_image} views/image")
    memory = bench.peak_memory_mb
    extra = f" {'peak MiB':>9}" if memory else ""
    echo(f"  {'setting':14} {'s/step':>8} {'images/h':>10} {'vs ref':>7}{extra}")
    for key, seconds in bench.seconds_per_step.items():
        extra = f" {memory[key]:9.0f}" if key in memory else ""
        if seconds is None:
            echo(f"  {key:14} {'out of memory':>28}{extra}")
            continue
        echo(f"  {key:14} {seconds:8.3f} {bench.images_per_hour[key]:10.1f} "
             f"{bench.speedup[key]:6.2f}x{extra}")
    for precision, floor in bench.clip_floor.items():
        ratio = bench.floor_ratio.get(precision)
        if ratio:
            echo(f"  {precision}: CLIP forward+backward alone {floor:.3f} s; a step of one "
                 f"image is {ratio:.3f}x that (fastest of each, timed in turn)")
    for key, counts in bench.ops_per_step.items():
        echo(f"  ops per step ({key}, small model): {counts['ops']} torch ops = "
             f"{counts['other_ops']} + {counts['draw_calls']} random draws; "
             f"{counts['host_syncs']} host syncs")


def cluster_bench(model: ClipModel, device: str = "cpu", counts: Sequence[int] = (1, 2),
                  epochs: int = 2, batch: int = 1, cpus_per_worker: int = 1,
                  echo: Callable[[str], None] = print) -> dict:
    """Images per hour on this process and on 1, 2, ... workers of the joined cluster,
    in the same run, and the overhead per batch (hand-out to result, minus the
    worker's own render time: scheduling and transfer).

    Renders ``2 * max(counts)`` images of method 1 at ``epochs`` epochs and
    writes nothing. The workers start once, as many as the largest count (each
    loads the model once, as in a real run); a setting of k workers hands its
    batches to the first k, after one warm-up batch each.
    """
    from ..execution.cluster import BatchTiming, RayExecutor, _ray

    ray = _ray()
    config = method_config(1, epochs)
    images = 2 * max(counts) * batch
    jobs = [ImageJob(f"a penguin made of piano {i}.", i, Path(f"/bench/{i}.png"))
            for i in range(images)]

    def discard(_jobs, _results) -> None:
        pass

    def timed_run(executor, warm: int) -> float:
        precision = executor.precision(None).precision
        executor.run(Task(config, jobs[:warm * batch], batch, precision, write=discard), QUIET)
        executor.timing = BatchTiming()  # the warm-up's batches do not count
        started = time.perf_counter()
        executor.run(Task(config, jobs, batch, precision, write=discard), QUIET)
        return time.perf_counter() - started

    local = timed_run(LocalExecutor(model), 1)
    result = {"images": images, "epochs": epochs, "batch": batch, "config": "method-1.yaml",
              "local": {"device": device_name(model.device), "seconds": round(local, 2),
                        "images_per_hour": round(3600 * images / local, 1)},
              "workers": []}
    echo(f"ray bench: {images} images of method 1, {epochs} epochs, batch {batch}")
    echo(f"  this process ({result['local']['device']}): {local:.1f} s, "
         f"{result['local']['images_per_hour']:.0f} images/h")
    executor = RayExecutor(model, device, max(counts), cpus_per_worker, echo=lambda _: None)
    every = executor.slots
    for count in counts:
        executor.slots = every[:count]
        seconds = timed_run(executor, count)
        entry = {"workers": count, "device": executor.device_label, "seconds": round(seconds, 2),
                 "images_per_hour": round(3600 * images / seconds, 1),
                 "vs_this_process": round(local / seconds, 2)}
        entry["overhead_per_batch_s"] = round(executor.timing.overhead, 3)
        entry["batches"] = len(executor.timing.wall)
        result["workers"].append(entry)
        echo(f"  {count} worker(s) ({entry['device']}): {seconds:.1f} s, "
             f"{entry['images_per_hour']:.0f} images/h, {entry['vs_this_process']:.2f}x this "
             f"process; overhead {entry['overhead_per_batch_s'] * 1000:.0f} ms per batch")
    for slot in every:
        ray.kill(slot.actor)
    return result


def ray_bench(machine, epochs: int, batch: int, echo: Callable[[str], None] = print) -> dict:
    """`bench --ray`: this process against 1 and 2 (or ``machine.ray.workers``) workers
    of the cluster, each image ``epochs`` epochs at ``batch`` per batch."""
    import tempfile

    from ..execution.cluster import connect, leave
    from ..execution.report import Reporter
    from .session import load_model, local_device

    ray_request = machine.ray
    with tempfile.TemporaryDirectory() as scratch:
        # Workers get the weights as a file: ViT-B/32's shape, random weights.
        name = (str(standin_checkpoint(Path(scratch), VIT_B_32))
                if machine.model == RANDOM_VIT_B_32 else machine.model)
        # This process renders the same-run baseline on its own device.
        model = load_model(name, local_device(machine, "any", Reporter(echo).note))
        connect(ray_request.address, echo=echo)
        try:
            device = machine.device
            if device == "auto":  # the cluster's GPUs if it has any, else its CPUs
                import ray

                device = "cuda" if ray.cluster_resources().get("GPU") else "cpu"
            counts = sorted({1, ray_request.workers or 2})
            return cluster_bench(model, device, counts, epochs, batch,
                                 ray_request.cpus_per_worker, echo=echo)
        finally:
            leave()
