"""Speed benchmark: the batched renderer against a reference-style loop.

Both sides do equal work per image -- the method's transforms on 10 views and
CLIP on those 10 views per step -- and are measured in the same process, on
the same device, after a warm-up step. Speed needs no meaningful weights, so
the default model is the ViT-B/32 architecture with random weights.

The reference-style loop reproduces how the 2021 renderer spent its time:
one image at a time, a Python loop over the views, CLIP not frozen (so every
backward pass also runs through the text encoder and fills weight
gradients), anomaly detection on, fp32.
"""

from __future__ import annotations

import contextlib
import platform
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

from .clipmodel import ClipModel, import_clip, load_clip
from .config import Config
from .engine import BatchRender, EpochPlan, default_precision, final_size, plan_epoch
from .gallery import auto_batch, method_config
from .ranking import ranking_config
from .rng import ImageStreams
from .standin import VIT_B_32, Dims, build_clip
from .transforms import TRANSFORMS, resize_views

RANDOM_VIT_B_32 = "random-ViT-B/32"
OPS_DIMS = Dims(embed_dim=32, image_resolution=64, vision_layers=1, vision_width=64,
                vision_patch_size=16, transformer_width=64, transformer_layers=1)


def random_clip(dims: Dims, device: torch.device, name: str) -> ClipModel:
    """A frozen CLIP of the given architecture with random weights."""
    model = build_clip(dims, seed=0).float().to(device).eval().requires_grad_(False)
    return ClipModel(model=model, preprocess=None, name=name, device=device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], None], steps: int, device: torch.device) -> float:
    """Seconds per call after one warm-up call."""
    fn()
    _sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return (time.perf_counter() - started) / steps


def measure_plan(config: Config) -> EpochPlan:
    """The step that is measured: the last epoch, at the final (largest) resolution."""
    return plan_epoch(config, config.epochs - 1)


def batched_step_seconds(config: Config, model: ClipModel, n: int, precision: str,
                         steps: int) -> float:
    texts = [f"prompt {i}" for i in range(n)]
    job = BatchRender(config, model, list(range(n)), texts, precision=precision)
    state = job.start()
    plan = measure_plan(config)
    return _timed(lambda: job.step(state, plan), steps, model.device)


def clip_floor_seconds(model: ClipModel, views: int, precision: str, steps: int) -> float:
    """CLIP's own forward and backward for ``views`` views: what a step cannot beat."""
    res = model.input_resolution
    x = torch.rand(views, 3, res, res, device=model.device, requires_grad=True)
    autocast = (torch.autocast(model.device.type, dtype=torch.bfloat16)
                if precision == "bf16" else contextlib.nullcontext())

    def once():
        with autocast:
            features = model.encode_views(x)
        features.sum().backward()

    return _timed(once, steps, model.device)


class ReferenceStyle:
    """One image, views in a Python loop, CLIP trainable, anomaly detection on."""

    def __init__(self, config: Config, model: ClipModel, text: str = "prompt 0"):
        self.config, self.model, self.device = config, model, model.device
        self.target = config.targets[0]
        width, height = final_size(config)
        self.pixels = torch.rand(3, height, width, device=self.device, requires_grad=True)
        self.optimizer = torch.optim.RMSprop([self.pixels], lr=0.003, centered=True,
                                             momentum=0.1)
        clip = import_clip()
        # The reference kept the text feature's graph and every weight trainable.
        self.weights = list(model.model.parameters())
        for p in self.weights:
            p.requires_grad_(True)
        tokens = clip.tokenize([text]).to(self.device)
        text_feature = model.model.encode_text(tokens)
        self.text = text_feature / text_feature.norm(dim=-1, keepdim=True)
        self.streams = ImageStreams([0], self.device, views=1)

    def step(self, plan: EpochPlan) -> None:
        res = self.model.input_resolution
        current = self.pixels.clamp(0, 1)
        views = []
        for _ in range(self.target.batch_size):
            x = current.unsqueeze(0)
            for step in self.target.transforms:
                x = TRANSFORMS[step.name].fn(x, step(plan.env), self.streams)
            views.append(resize_views(x, res, res))
        batch = torch.cat(views).clamp(0, 1)
        features = self.model.encode_views(batch)
        loss = torch.zeros((), device=self.device)
        for i in range(features.shape[0]):
            cos = torch.nn.functional.cosine_similarity(features[i : i + 1], self.text)
            loss = loss + (1.0 - cos[0])
            float(loss.detach())  # the reference read each loss back for its statistics
        self.optimizer.zero_grad()
        loss.backward(retain_graph=True)
        self.optimizer.step()

    def close(self) -> None:
        for p in self.weights:
            p.requires_grad_(False)
            p.grad = None


def reference_step_seconds(config: Config, model: ClipModel, steps: int) -> float:
    ref = ReferenceStyle(config, model)
    plan = measure_plan(config)
    try:
        with torch.autograd.set_detect_anomaly(True):
            return _timed(lambda: ref.step(plan), steps, model.device)
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


def count_ops(config: Config, model: ClipModel, n: int) -> dict[str, int]:
    """Torch operator calls in one optimisation step of n images.

    ``other_ops`` leaves out the per-image random draws: it must not grow
    with n, or some Python loop runs over images or views inside the step.
    """
    from torch.profiler import ProfilerActivity, profile

    job = BatchRender(config, model, list(range(n)), ["x"] * n)
    state = job.start()
    plan = measure_plan(config)
    job.step(state, plan)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
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
    speedup: dict[str, float] = field(default_factory=dict)
    ops_per_step: dict[str, dict[str, int]] = field(default_factory=dict)
    # CLIP forward + backward alone for one image's views, per precision.
    clip_floor: dict[str, float] = field(default_factory=dict)


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # ru_maxrss is in KiB on Linux: the process's peak resident memory.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_bench(device: torch.device, model_name: str = RANDOM_VIT_B_32, steps: int = 3,
              batch: int | None = None, methods=(1, 2), ops: bool = True,
              echo: Callable[[str], None] = print) -> dict:
    if model_name == RANDOM_VIT_B_32:
        model = random_clip(VIT_B_32, device, RANDOM_VIT_B_32)
    else:
        model = load_clip(model_name, device)
    precisions = ["fp32", "bf16"]
    result = {
        "device": _device_label(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "model": model.name,
        "steps": steps,
        "measured_at": "the last epoch (final resolution), after one warm-up step",
        "methods": [],
    }
    echo(f"bench on {result['device']}, torch {result['torch']}, model {model.name}, "
         f"{steps} steps after warm-up")
    for method in methods:
        config = method_config(method)
        autos = {p: batch or auto_batch(config, model, p) for p in precisions}
        bench = MethodBench(method, config.epochs, config.targets[0].views, autos)
        ref = reference_step_seconds(config, model, steps)
        bench.seconds_per_step["reference"] = ref
        for precision in precisions:
            bench.clip_floor[precision] = clip_floor_seconds(
                model, config.targets[0].views, precision, steps
            )
            for n in sorted({1, autos[precision]}):
                key = f"{precision} N={n}"
                seconds = batched_step_seconds(config, model, n, precision, steps)
                bench.seconds_per_step[key] = seconds
        for key, seconds in bench.seconds_per_step.items():
            n = 1 if key == "reference" else int(key.split("N=")[1])
            bench.images_per_hour[key] = 3600.0 * n / (config.epochs * seconds)
        for key, rate in bench.images_per_hour.items():
            bench.speedup[key] = rate / bench.images_per_hour["reference"]
        if ops:
            small = random_clip(OPS_DIMS, device, "small")
            bench.ops_per_step = {f"N={n}": count_ops(config, small, n) for n in (1, 2, 32)}
        result["methods"].append(asdict(bench))
        _echo_method(bench, echo)
    result["ranking"] = [
        ranking_bench(method, model, steps, batch, echo) for method in methods
    ]
    result["peak_memory_mb"] = round(_peak_memory_mb(device), 1)
    gallery = sum(
        810 / max(m["images_per_hour"].values()) * 3600 for m in result["methods"]
    ) if set(methods) == {1, 2} else None
    result["projected_gallery_seconds"] = gallery
    if gallery:
        echo(f"projected gallery (1620 images, fastest setting per method): "
             f"{gallery / 3600:.2f} h")
    echo(f"peak memory {result['peak_memory_mb']:.0f} MiB")
    return result


def ranking_bench(method: int, model: ClipModel, steps: int, batch: int | None,
                  echo: Callable[[str], None]) -> dict:
    """Short runs per hour of the ranking experiment, one at a time and batched."""
    config = ranking_config(method, "short", "prompt")
    precision = default_precision(model.device)
    n_batch = batch or max(4, auto_batch(config, model, precision))
    entry = {"method": method, "epochs": config.epochs, "precision": precision,
             "runs_per_hour": {}}
    for n in (1, n_batch):
        seconds = batched_step_seconds(config, model, n, precision, steps)
        entry["runs_per_hour"][f"N={n}"] = 3600.0 * n / (config.epochs * seconds)
    rates = entry["runs_per_hour"]
    best = max(rates.values())
    entry["hours_for_512"] = 512 / best
    echo(f"ranking short runs, method {method} ({config.epochs} epochs, {precision}): "
         + ", ".join(f"{k}: {v:.0f} runs/h" for k, v in rates.items())
         + f"; 512 runs in {entry['hours_for_512']:.2f} h")
    return entry


def _device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def _echo_method(bench: MethodBench, echo) -> None:
    echo(f"method {bench.method}: {bench.epochs} epochs, {bench.views_per_image} views/image")
    echo(f"  {'setting':14} {'s/step':>8} {'images/h':>10} {'vs ref':>7}")
    for key, seconds in bench.seconds_per_step.items():
        echo(f"  {key:14} {seconds:8.3f} {bench.images_per_hour[key]:10.1f} "
             f"{bench.speedup[key]:6.2f}x")
    for precision, floor in bench.clip_floor.items():
        step = bench.seconds_per_step[f"{precision} N=1"]
        echo(f"  {precision}: CLIP forward+backward alone {floor:.3f} s of the "
             f"{step:.3f} s step ({100 * floor / step:.0f}%)")
    for key, counts in bench.ops_per_step.items():
        echo(f"  ops per step ({key}, small model): {counts['ops']} torch ops = "
             f"{counts['other_ops']} + {counts['draw_calls']} random draws; "
             f"{counts['host_syncs']} host syncs")


