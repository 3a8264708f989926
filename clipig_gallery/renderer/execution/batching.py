"""How many images render together, and what happens when memory runs out.

On CUDA the batch comes from measurement: one config's step is run for 1 and
2 images at its heaviest epoch, after a warm-up step (so one-time allocations
and the optimiser's state are in place), and the difference in peak memory is
what one more image costs. Before either probe, one image runs a step and its
text is encoded, so the one-time workspaces (cuBLAS's, for the text encoder
and for autograd's backward thread) exist before the first baseline is taken
and count in neither image. On the CPU and on Apple GPUs (whose torch keeps
no peak-memory counter) the batch is a fixed number. If a batch still runs
out of memory, it is halved and rendered again; images already written stay.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..engine.clipmodel import ClipModel
from ..engine.history import buffer_bytes
from ..engine.optimise import BatchRender
from ..engine.precision import default_precision
from ..language.config import Config, EpochPlan, final_size, is_active, plan_epoch

# On 2 CPU cores (see `clipig-gallery bench`), fp32 runs fastest one image
# at a time; with bf16 autocast, four images per batch gain 3-10%. fp16 has
# no fast CPU kernels and four images are neither clearly faster nor slower
# than one (2026-11-30: method 1 7.8 vs 8.5 images/h, method 2 5.9 vs 5.3).
CPU_BATCH = {"fp32": 1, "bf16": 4, "fp16": 4}
# Apple GPUs: torch reports no peak memory there, so the batch is fixed (not
# yet measured on an Apple machine); out-of-memory halving covers a small GPU.
MPS_BATCH = 8
MAX_BATCH = 256
# Share of the free memory the batch may use: the rest absorbs the allocator's
# fragmentation and what the probe could not see.
MEMORY_SHARE = 0.85


class OutOfMemory(RuntimeError):
    """Even one image per batch does not fit on the device."""


# What torch's RuntimeError says where a device runs out of memory without an
# error class of its own: MPS (older torch releases), and the CPU when an
# allocation is refused (a memory limit, or more than the machine has).
_OUT_OF_MEMORY_TEXTS = ("MPS backend out of memory", "DefaultCPUAllocator: can't allocate memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is a device running out of memory (torch's error on CUDA,
    its RuntimeError on MPS and the CPU, or this module's OutOfMemory)."""
    if isinstance(exc, (torch.OutOfMemoryError, OutOfMemory)):
        return True
    return isinstance(exc, RuntimeError) and any(t in str(exc) for t in _OUT_OF_MEMORY_TEXTS)


class CudaMemory:
    """torch's CUDA memory counters for one device, with peaks kept across resets.

    Every reset of torch's peak counter goes through ``reset_peak``, which
    first folds the peak so far into the running maxima: whoever resets (the
    batch probe inside a bench setting, say), the peak of an enclosing window
    (``mark`` .. ``window_peak``) and of the whole run (``overall_peak``, since
    ``restart``) are never lost.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.highest = 0  # since restart
        self.window = 0  # since mark

    def sync(self) -> None:
        torch.cuda.synchronize(self.device)

    def allocated(self) -> int:
        return torch.cuda.memory_allocated(self.device)

    def peak(self) -> int:
        """torch's peak counter: since its last reset."""
        return torch.cuda.max_memory_allocated(self.device)

    def reset_peak(self) -> None:
        self.sync()
        peak = self.peak()
        self.highest, self.window = max(self.highest, peak), max(self.window, peak)
        torch.cuda.reset_peak_memory_stats(self.device)

    def mark(self) -> None:
        """Start a window: ``window_peak`` counts from here."""
        self.reset_peak()
        self.window = 0

    def window_peak(self) -> int:
        self.sync()
        return max(self.window, self.peak())

    def restart(self) -> None:
        """Forget every peak so far: ``overall_peak`` counts from here."""
        self.mark()
        self.highest = 0

    def overall_peak(self) -> int:
        self.sync()
        return max(self.highest, self.peak())

    def free(self) -> int:
        return torch.cuda.mem_get_info(self.device)[0]

    def empty_cache(self) -> None:
        torch.cuda.empty_cache()


_MEMORY: dict[torch.device, CudaMemory] = {}


def cuda_memory(device: torch.device) -> CudaMemory:
    """The one CudaMemory of ``device`` in this process."""
    device = torch.device(device)
    if device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return _MEMORY.setdefault(device, CudaMemory(device))


def release(device: torch.device) -> None:
    """Give cached blocks back after an out-of-memory error (call it after the
    ``except`` block: inside it, the traceback still holds the failed batch)."""
    kind = torch.device(device).type
    if kind == "cuda":
        torch.cuda.empty_cache()
    elif kind == "mps":
        torch.mps.empty_cache()


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


def _probe_render(config: Config, model: ClipModel, n: int, plan: EpochPlan,
                  precision: str) -> tuple[BatchRender, object]:
    """``n`` images set up and through one step at ``plan`` (resize, a fresh optimiser
    and its state, one-time workspaces). A config with one text feature gets a text
    per image, as the gallery's prompts do; any other keeps its own features."""
    texts = ["probe"] * n if len(config.text_features) == 1 else None
    job = BatchRender(config, model, list(range(n)), texts, precision=precision)
    state = job.start()
    job.step(state, plan)
    return job, state


def step_peak_memory(config: Config, model: ClipModel, n: int, plan: EpochPlan,
                     precision: str, memory: CudaMemory | None = None) -> int:
    """Peak bytes of the second of two steps of ``n`` images at ``plan``, over the start."""
    memory = memory or cuda_memory(model.device)
    memory.empty_cache()
    base = memory.allocated()
    job, state = _probe_render(config, model, n, plan, precision)
    memory.reset_peak()
    job.step(state, plan)
    memory.sync()
    peak = memory.peak() - base
    del job, state
    return peak


def auto_batch(config: Config, model: ClipModel, precision: str | None = None,
               frames: int = 0) -> int:
    """Images per batch for this device: measured on CUDA, fixed on the CPU and MPS.

    ``frames`` is the history frames each image keeps of its optimisation (0: none):
    they stay on the device until the batch ends, so they count per image.
    Raises OutOfMemory if not even one image fits.
    """
    precision = precision or default_precision(model.device)
    if model.device.type == "mps":
        return MPS_BATCH
    if model.device.type != "cuda":
        return CPU_BATCH[precision]
    memory = cuda_memory(model.device)
    plan = plan_epoch(config, probe_epoch(config))
    peaks, failed = [], False
    try:
        # Warm-up first, so the first baseline already holds every one-time
        # workspace (else the 1-image probe would count them and the 2-image
        # one not, and one more image would look cheaper than it is).
        _probe_render(config, model, 1, plan, precision)
        for n in (1, 2):
            peaks.append(step_peak_memory(config, model, n, plan, precision, memory))
    except Exception as exc:  # noqa: BLE001 -- only running out of memory is handled
        if not is_out_of_memory(exc):
            raise
        failed = True
    if failed:
        release(model.device)
        if len(peaks) < 1:
            raise OutOfMemory(f"out of memory on {model.device} measuring one image of "
                              f"{config.source or 'the config'} in {precision}: free memory "
                              f"on the device, or try a lower --precision")
        return 1  # one fits, two do not
    one, two = peaks
    # Blocks the probe left in torch's cache are free for the real batch.
    memory.empty_cache()
    kept = buffer_bytes(*final_size(config), config.epochs, frames) if frames else 0
    per_image = max(1, two - one)
    return batch_from_memory(memory.free(), per_image + kept,
                             fixed_bytes=max(0, one - per_image))


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
        failed = False
        try:
            render(done, stop)
        except Exception as exc:  # noqa: BLE001 -- only running out of memory is handled
            if not is_out_of_memory(exc):
                raise
            failed = True
        if failed:
            # Here, not in the except block: its traceback held the failed batch.
            release(device)
            if stop - done == 1:
                raise OutOfMemory(
                    f"out of memory on {device} with one image per batch; free memory on "
                    f"the device, or try a half --precision the device has natively"
                ) from None
            size = max(1, (stop - done) // 2)
            echo(f"out of memory with {stop - done} images per batch on {device}: retrying "
                 f"this batch with {size} (--batch {size} starts there next time)")
            continue
        sizes.append(stop - done)
        done = stop
    return sizes
