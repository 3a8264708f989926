"""Constraints: losses on each transformed view, beside CLIP's feature loss.

Each constraint maps views (M, 3, H, W) to a loss per view (M,). The optimiser
multiplies by the constraint's weight and sums over views, as the reference
did sample by sample.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import torch

from ..params import ParamSpec
from .registry import Registry
from .transforms import blur_fits, gaussian_blur
from .transforms import border as draw_border

Args = Mapping[str, object]

CONSTRAINTS = Registry("constraint")
_register = CONSTRAINTS.register

# Every constraint also takes these; the optimiser handles them.
COMMON_PARAMS = {
    "weight": ParamSpec(float, default=1.0),
    "start": ParamSpec(str, default=0.0),  # a moment: "50%", a fraction or an epoch
    "end": ParamSpec(str, default=1.0),
    "loss": ParamSpec(str, default="l2", choices=("l2", "mse", "l1", "mae")),
}


def _distance(diff: torch.Tensor, loss: str) -> torch.Tensor:
    """Mean over all but the first axis of the squared (l2) or absolute (l1) difference."""
    d = diff.abs() if loss in ("l1", "mae") else diff * diff
    return d.flatten(1).mean(1)


def _band(value: torch.Tensor, args: Args, factor: float = 100.0) -> torch.Tensor:
    """Loss of a per-channel value (M, 3) against ``above`` and ``below``, x ``factor``.

    The reference penalises the distance to each threshold whichever side the
    value is on (so ``below`` also pushes up); reproduced on purpose.
    """
    total = value.new_zeros(value.shape[0])
    for key in ("above", "below"):
        if args[key] is not None:
            threshold = threshold_of(tuple(args[key]), value.device, value.dtype)
            total = total + factor * _distance(value - threshold, args["loss"])
    return total


def threshold_of(values: tuple, device: torch.device, dtype: torch.dtype):
    """Per-channel thresholds: a number when all agree, else a cached (C,) tensor.

    A number needs no host-to-device copy; differing thresholds become a
    tensor once per (values, device, dtype), not once per step.
    """
    first = values[0]
    if all(v == first for v in values):
        return float(first)
    return _threshold_tensor(tuple(float(v) for v in values), device, dtype)


@functools.lru_cache(maxsize=256)
def _threshold_tensor(values: tuple, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype, device=device)


_BAND_PARAMS = {
    "above": ParamSpec(float, 3, default=None),
    "below": ParamSpec(float, 3, default=None),
}


def saturation_of(views: torch.Tensor) -> torch.Tensor:
    """Per channel, the mean distance from the pixel's grey value: (M, 3)."""
    grey = views.mean(dim=1, keepdim=True)
    return (views - grey).abs().mean(dim=(2, 3))


@_register("saturation", _BAND_PARAMS, needs_one_of=("above", "below"))
def saturation(views, args):
    """Keep the mean saturation near the ``above`` / ``below`` thresholds."""
    return _band(saturation_of(views), args)


@_register("mean", _BAND_PARAMS, needs_one_of=("above", "below"))
def mean(views, args):
    """Keep each channel's mean near the thresholds."""
    return _band(views.mean(dim=(2, 3)), args)


@_register("std", _BAND_PARAMS, needs_one_of=("above", "below"))
def std(views, args):
    """Keep each channel's standard deviation near the thresholds."""
    return _band(views.flatten(2).std(dim=2), args)


@_register(
    "blur",
    {
        "kernel_size": ParamSpec(int, 2, default=3, minimum=1),
        "sigma": ParamSpec(float, 2, default=None),
    },
    check=blur_fits,
)
def blur(views, args):
    """Penalise the difference between a view and its gaussian-blurred self."""
    # Gradient flows through both sides, as in the reference.
    blurred = gaussian_blur(views, args["kernel_size"], args["sigma"])
    return 100.0 * _distance(views - blurred, args["loss"])


_BLUR_PARAMS = {
    "kernel_size": ParamSpec(int, 2, default=3, minimum=1),
    "sigma": ParamSpec(float, 2, default=None),
}


@_register("edge_mean", {**_BAND_PARAMS, **_BLUR_PARAMS}, needs_one_of=("above", "below"),
           check=blur_fits)
def edge_mean(views, args):
    """Keep each channel's mean edge strength, |view - blurred view|, near the thresholds."""
    edges = (views - gaussian_blur(views, args["kernel_size"], args["sigma"])).abs()
    return _band(edges.mean(dim=(2, 3)), args)


def contrast_of(views: torch.Tensor) -> torch.Tensor:
    """Per channel, the mean of the pixels above the channel's mean minus the mean of
    those below it: (M, 3). A side without pixels counts as the view's mean of the
    channel means (so a flat channel has contrast 0), as in the reference."""
    mean = views.mean(dim=(2, 3), keepdim=True)
    fallback = mean.mean(dim=1, keepdim=True).flatten(1)  # (M, 1)

    def side(mask: torch.Tensor) -> torch.Tensor:
        count = mask.sum(dim=(2, 3))
        total = (views * mask).sum(dim=(2, 3))
        return torch.where(count > 0, total / count.clamp(min=1), fallback)

    return side(views > mean) - side(views < mean)


@_register("contrast", _BAND_PARAMS, needs_one_of=("above", "below"))
def contrast(views, args):
    """Keep each channel's contrast (mean above its mean minus mean below) near the thresholds."""
    # The reference gave contrast no factor of 100, unlike the other thresholds.
    return _band(contrast_of(views), args, factor=1.0)


@_register("border", {
    "size": ParamSpec(int, 2, default=1, minimum=0),
    "color": ParamSpec(float, 3, default=0.0),
})
def border(views, args):
    """Penalise the difference between a view and the view with a painted frame."""
    framed = draw_border(views, {"size": args["size"], "color": args["color"]}, None)
    return 100.0 * _distance(views - framed, args["loss"])


def _per_channel(value):
    """A (C,) threshold as (C, 1, 1) to meet (M, C, H, W) views; a number as it is."""
    return value.view(-1, 1, 1) if isinstance(value, torch.Tensor) else value


@_register("normalize", {
    "min": ParamSpec(float, 3, default=0.0),
    "max": ParamSpec(float, 3, default=1.0),
})
def normalize(views, args):
    """Penalise the difference between a view and the view stretched to [min, max] per channel."""
    low = views.amin(dim=(2, 3), keepdim=True)
    high = views.amax(dim=(2, 3), keepdim=True)
    span = high - low
    span = torch.where(span == 0, torch.ones_like(span), span)
    lo, hi = (_per_channel(threshold_of(tuple(args[k]), views.device, views.dtype))
              for k in ("min", "max"))
    stretched = lo + (views - low) / span * (hi - lo)
    # Both sides keep their gradient, the stretched one through min and max too.
    return 10.0 * _distance(views - stretched, args["loss"])
