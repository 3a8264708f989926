"""The optimisation history of a render: K frames of the image as it emerged.

Frames are taken in the step loop without waiting for the device: each one is
the saved form of the pixels at that moment (``imageio.to_uint8``), scaled to
the display size and copied into a buffer allocated before the first step.
The buffer is read back once, after the last step, and each image's frames
are encoded as one small animated WebP that plays once
(``core.layout.history_path``: ``{stem}.history.webp`` beside the PNG).

Frame ``i`` of ``K`` shows the image after ``round(i * epochs / (K - 1))``
steps: the first is the start (noise, or the image a run continues from),
the last is the saved image. Early frames smaller than the display (method
2 starts at 8x8) are enlarged with nearest-neighbour, so their pixels show.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from clipig_gallery.core.layout import history_path
from clipig_gallery.core.settings import DEFAULT_HISTORY_FRAMES as DEFAULT_FRAMES

from .imageio import to_uint8

# The size frames are shown at: the selector's 224 pixels.
DISPLAY_SIZE = 224
# At most this many bytes per history: the gallery's average stays under it.
BUDGET_BYTES = 80_000
# WebP qualities tried in turn until the file fits the budget.
QUALITIES = (60, 45, 30, 15)
# Milliseconds each frame is shown; the start and the result stay longer.
FRAME_MS = 100
FIRST_MS = 400
LAST_MS = 900


def capture_steps(epochs: int, frames: int = DEFAULT_FRAMES) -> list[int]:
    """After how many steps each frame is taken: 0 (the start) to ``epochs``.

    Fewer than ``frames`` when there are fewer steps than frames.
    """
    if frames < 2:
        raise ValueError(f"a history needs at least 2 frames, got {frames}")
    if epochs < 1:
        raise ValueError(f"a history needs at least 1 epoch, got {epochs}")
    return sorted({round(i * epochs / (frames - 1)) for i in range(frames)})


def display_size(width: int, height: int, display: int = DISPLAY_SIZE) -> tuple[int, int]:
    """(width, height) of the frames: the final image scaled to fit ``display``."""
    scale = min(1.0, display / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def buffer_bytes(width: int, height: int, epochs: int, frames: int = DEFAULT_FRAMES) -> int:
    """Device memory one image's frames take (for the batch size)."""
    w, h = display_size(width, height)
    return len(capture_steps(epochs, frames)) * 3 * w * h


def frame_durations(count: int) -> list[int]:
    """Milliseconds per frame: the first and last held longer than the rest."""
    if count == 1:
        return [LAST_MS]
    return [FIRST_MS] + [FRAME_MS] * (count - 2) + [LAST_MS]


class HistoryBuffer:
    """A preallocated (frames, N, 3, H, W) uint8 stack on the render's device."""

    def __init__(self, count: int, epochs: int, size: tuple[int, int],
                 device: torch.device, frames: int = DEFAULT_FRAMES):
        self.steps = capture_steps(epochs, frames)
        self.slots = {step: slot for slot, step in enumerate(self.steps)}
        width, height = size
        self.frames = torch.empty((len(self.steps), count, 3, height, width),
                                  dtype=torch.uint8, device=device)

    @torch.no_grad()
    def capture(self, steps_done: int, pixels: torch.Tensor) -> None:
        """Keep the saved form of ``pixels`` if a frame is due; never reads a value back."""
        slot = self.slots.get(steps_done)
        if slot is None:
            return
        self.frames[slot].copy_(scaled_frame(pixels, self.frames.shape[-1],
                                             self.frames.shape[-2]))

    def read(self) -> torch.Tensor:
        """Every frame, (N, frames, 3, H, W) on the CPU: the one read-back."""
        return self.frames.cpu().transpose(0, 1)


def scaled_frame(pixels: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """The saved form of ``pixels`` (N, 3, h, w) as uint8 at (width, height).

    Enlarged by pixel repetition (nearest-neighbour), reduced by averaging;
    at the same size it is exactly the saved image.
    """
    h, w = pixels.shape[-2:]
    if (h, w) == (height, width):
        return to_uint8(pixels)
    if h <= height and w <= width:
        saved = to_uint8(pixels).float()
        return F.interpolate(saved, size=(height, width), mode="nearest-exact").to(torch.uint8)
    x = pixels.detach().float().clamp(0, 1)
    return to_uint8(F.interpolate(x, size=(height, width), mode="area"))


@dataclass(frozen=True)
class Encoded:
    data: bytes
    quality: int
    frames: int


def encode_history(frames: torch.Tensor, budget: int = BUDGET_BYTES,
                   qualities: Sequence[int] = QUALITIES) -> Encoded:
    """One image's frames (F, 3, H, W) uint8 as an animated WebP that plays once.

    The first quality whose file fits ``budget`` is kept; failing all, the
    smallest is (its size is reported with the rest).
    """
    images = [Image.fromarray(f.permute(1, 2, 0).contiguous().numpy(), "RGB") for f in frames]
    durations = frame_durations(len(images))
    best = None
    for quality in qualities:
        buffer = io.BytesIO()
        images[0].save(buffer, "WEBP", save_all=True, append_images=images[1:],
                       duration=durations, loop=1, quality=quality, method=4,
                       allow_mixed=False)
        best = Encoded(buffer.getvalue(), quality, len(images))
        if len(best.data) <= budget:
            break
    return best


def encode_histories(histories: torch.Tensor, wanted: Sequence[bool]) -> list[bytes | None]:
    """Each wanted image's history of a batch (N, F, 3, H, W), encoded in parallel.

    Pillow lets go of the GIL while it encodes, so threads use every core.
    """
    indices = [i for i, want in enumerate(wanted) if want]
    out: list[bytes | None] = [None] * len(wanted)
    if not indices:
        return out
    with ThreadPoolExecutor(min(len(indices), os.cpu_count() or 1)) as pool:
        encoded = pool.map(lambda i: encode_history(histories[i]), indices)
        for i, history in zip(indices, encoded, strict=True):
            out[i] = history.data
    return out


def decode_history(data: bytes) -> list[Image.Image]:
    """Every frame of a history as RGB images (for tests and the report)."""
    with Image.open(io.BytesIO(data)) as image:
        frames = []
        for index in range(getattr(image, "n_frames", 1)):
            image.seek(index)
            frames.append(image.convert("RGB"))
        return frames


def sizes_line(pngs: Sequence[Path], frames: int) -> str | None:
    """The histories' sizes over the selection, against the budget (None: nothing to
    say)."""
    sizes = [p.stat().st_size for p in map(history_path, pngs) if p.exists()]
    if not sizes:
        return "no histories in the selection" if frames else None
    average = sum(sizes) / len(sizes)
    hint = (" (--history-only adds them to complete images without one)"
            if frames and len(sizes) < len(pngs) else "")
    return (f"histories: {len(sizes)} of {len(pngs)} images, average "
            f"{average / 1000:.1f} KB, largest {max(sizes) / 1000:.1f} KB "
            f"(budget {BUDGET_BYTES // 1000} KB on average){hint}")
