"""How many images render together, and what happens when memory runs out.

On CUDA the batch comes from measurement: one config's step is run for 1 and
2 images at its heaviest epoch, after a warm-up step (so one-time allocations
and the optimiser's state are in place), and the difference in peak memory is
what one more image costs. On the CPU the batch is a fixed, benchmarked
number. If a batch still runs out of memory, it is halved and rendered again;
images already written stay.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .clipmodel import ClipModel
from .config import Config, is_active
from .device import default_precision
from .engine import BatchRender, EpochPlan, final_size, plan_epoch
from .history import buffer_bytes

# On 2 CPU cores (see `clipig-gallery bench`), fp32 runs fastest one image
# at a time; with bf16 autocast, four images per batch gain 3-10%. fp16 has
# no fast CPU kernels and four images are neither clearly faster nor slower
# than one (2026-11-30: method 1 7.8 vs 8.5 images/h, method 2 5.9 vs 5.3).
CPU_BATCH = {"fp32": 1, "bf16": 4, "fp16": 4}
MAX_BATCH = 256
# Share of the free memory the batch may use: the rest absorbs the allocator's
# fragmentation and what the probe could not see.
MEMORY_SHARE = 0.85


class OutOfMemory(RuntimeError):
    """Even one image per batch does not fit on the device."""


def batch_from_memory(free_bytes: int, per_image_bytes: int, cap: int = MAX_BATCH,
                      fixed_bytes: int = 0) -> int:
    """How many images fit in ``free_bytes`` after ``fixed_bytes``, keeping a margin."""
    if per_image_bytes <= 0:
        return cap
    usable = MEMORY_SHARE * free_bytes - fixed_bytes
    return max(1, min(cap, int(usable // per_image_bytes)))


def epoch_load(config: Config, epoch: int) -> tuple[int, int, int]:
    """(views, active constraints, pixels) of one epoch: what its step's memory grows with.

    Post-processing is left out: it runs on the raw pixels without gradient,
    while a constraint keeps activations of every view for the backward pass.
    """
    plan = plan_epoch(config, epoch)
    t = plan.env["t"]
    active = [tg for tg in config.targets if is_active(tg.start, tg.end, epoch, t)]
    views = sum(tg.views for tg in active)
    constraints = sum(is_active(c.start, c.end, epoch, t)
                      for tg in active for c in tg.constraints)
    return views, constraints, plan.width * plan.height


def probe_epoch(config: Config) -> int:
    """The epoch that needs the most memory: most views, then most constraints, then pixels."""
    return max(range(config.epochs), key=lambda e: epoch_load(config, e))


def step_peak_memory(config: Config, model: ClipModel, n: int, plan: EpochPlan,
                     precision: str) -> int:
    """Peak bytes of the second of two steps of ``n`` images at ``plan``, over the start."""
    device = model.device
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated(device)
    job = BatchRender(config, model, list(range(n)), ["probe"] * n, precision=precision)
    state = job.start()
    job.step(state, plan)  # warm-up: resize, fresh optimiser and its state, workspaces
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    job.step(state, plan)
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - base
    del job, state
    return peak


def auto_batch(config: Config, model: ClipModel, precision: str | None = None) -> int:
    """Images per batch for this device: measured on CUDA, fixed on the CPU."""
    precision = precision or default_precision(model.device)
    if model.device.type != "cuda":
        return CPU_BATCH[precision]
    plan = plan_epoch(config, probe_epoch(config))
    one, two = (step_peak_memory(config, model, n, plan, precision) for n in (1, 2))
    # Blocks the probe left in torch's cache are free for the real batch.
    torch.cuda.empty_cache()
    free, _total = torch.cuda.mem_get_info(model.device)
    # Each image may also keep the frames of its history on the device.
    history = buffer_bytes(*final_size(config), config.epochs)
    per_image = max(1, two - one)
    return batch_from_memory(free, per_image + history, fixed_bytes=max(0, one - per_image))


def run_batches(
    count: int,
    size: int,
    render: Callable[[int, int], None],
    device: torch.device,
    echo: Callable[[str], None] = print,
) -> list[int]:
    """Call ``render(start, stop)`` over ``count`` items, ``size`` at a time.

    A batch that runs out of device memory is retried at half the size (and
    the rest continue at that size); a batch of one that does not fit raises
    OutOfMemory. Returns the sizes of the batches that were rendered.
    """
    done, sizes = 0, []
    while done < count:
        stop = min(count, done + size)
        try:
            render(done, stop)
        except torch.OutOfMemoryError:
            if device.type == "cuda":
                torch.cuda.empty_cache()
            if stop - done == 1:
                raise OutOfMemory(
                    f"out of memory on {device} with one image per batch; free memory on "
                    f"the device, or try --precision bf16 or fp16"
                ) from None
            size = max(1, (stop - done) // 2)
            echo(f"out of memory with {stop - done} images per batch on {device}: retrying "
                 f"this batch with {size} (--batch {size} starts there next time)")
            continue
        sizes.append(stop - done)
        done = stop
    return sizes
