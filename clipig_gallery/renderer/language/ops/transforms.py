"""Image transforms, batched over views.

Each transform takes ``x`` of shape (M, C, H, W) -- M views, image-major -- the
evaluated parameter values, and the per-image random streams, and returns a
new (M, C, H', W') tensor. Random transforms draw one value per view from the
view's own image stream, so a view never depends on how many images share the
batch.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..params import ParamSpec
from .registry import Registry

Args = Mapping[str, object]

TRANSFORMS = Registry("transform")
_register = TRANSFORMS.register


def _rgb(values, like: torch.Tensor):
    """Per-channel values as a plain number when all three agree, else (1, 3, 1, 1).

    A Python number needs no host-to-device copy; on a GPU that keeps the
    step free of transfers for every config of the article.
    """
    first = values[0]
    if all(v == first for v in values):
        return float(first)
    return _channel_tensor(tuple(values), like.device, like.dtype)


@functools.lru_cache(maxsize=256)
def _channel_tensor(values: tuple, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype, device=device).view(1, -1, 1, 1)


# --- geometry -----------------------------------------------------------------


def _padded(h: int, w: int, args) -> tuple[int, int]:
    sx, sy = args["size"]
    if sx < 0 or sy < 0:  # torch would crop
        raise ValueError(f"size must be >= 0, got {sx} {sy}")
    if args["mode"] == "wrap" and (sx > w or sy > h):
        raise ValueError(f"size {sx} {sy} wraps around the {w}x{h} image more than once")
    return h + 2 * sy, w + 2 * sx


def _at_least_one(what: str, x: int, y: int) -> None:
    if x < 1 or y < 1:
        raise ValueError(f"{what} must be >= 1, got {x} {y}")


@_register(
    "pad",
    {
        "size": ParamSpec(int, 2, minimum=0),
        "color": ParamSpec(float, 3, default=0.0),
        "mode": ParamSpec(str, default="fill", choices=("fill", "edge", "wrap")),
    },
    size=_padded,
)
def pad(x, args, rng):
    """Grow the image by ``size`` pixels per side: a colour, the border pixels, or wrap-around."""
    sx, sy = args["size"]
    if args["mode"] == "edge":
        return F.pad(x, (sx, sx, sy, sy), mode="replicate")
    if args["mode"] == "wrap":
        return F.pad(x, (sx, sx, sy, sy), mode="circular")
    m, c, h, w = x.shape
    color = _rgb(args["color"], x)
    if isinstance(color, float):
        return F.pad(x, (sx, sx, sy, sy), mode="constant", value=color)
    out = color.expand(m, c, h + 2 * sy, w + 2 * sx).clone()
    out[:, :, sy : sy + h, sx : sx + w] = x
    return out


@dataclass(frozen=True, eq=False)
class Sampling:
    """Which source pixel each output pixel of each view takes (nearest neighbour).

    ``index`` is (M, h, w): a flat index into the source's ``pixels`` (its
    height x width), or ``pixels`` itself for a point outside the source,
    which reads zero. Rotations and crops are samplings; a run of them
    composes into one, so the engine gathers the views once from the image
    they share instead of copying it per view and resampling each copy.
    """

    index: torch.Tensor
    pixels: int

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the output."""
        return self.index.shape[1], self.index.shape[2]

    def then(self, later: Sampling) -> Sampling:
        """This sampling followed by ``later``, whose indices point into this one's output."""
        m = self.index.shape[0]
        flat = torch.cat([self.index.reshape(m, -1), self.index.new_full((m, 1), self.pixels)], 1)
        return Sampling(flat.gather(1, later.index.reshape(m, -1)).view_as(later.index),
                        self.pixels)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) sources -> (M, C, h, w) views, M a multiple of B: each
        source's views in a row, image-major. One gather; its backward one scatter-add."""
        b, c = x.shape[:2]
        m, h, w = self.index.shape
        k = m // b
        source = F.pad(x.reshape(b, c, -1), (0, 1))  # and the zero outside
        index = self.index.reshape(b, 1, k * h * w).expand(b, c, k * h * w)
        out = source.gather(2, index).view(b, c, k, h, w)
        return out.transpose(1, 2).reshape(m, c, h, w)


def rotation(h: int, w: int, degrees, centre_x, centre_y) -> Sampling:
    """A counter-clockwise rotation of each (h, w) view about its own centre pixel.

    ``degrees``, ``centre_x`` and ``centre_y`` are (M,) tensors; the centre is
    in pixels and the fixed point of the rotation lies at pixel index
    (centre - 0.5), as in torchvision's rotate. Each output pixel takes the
    source pixel nearest to where it came from (ties to even, as
    ``grid_sample``'s nearest mode); zeros outside the source.
    """
    m, device = degrees.shape[0], degrees.device
    theta = degrees.to(torch.float32) * (math.pi / 180.0)
    cos, sin = torch.cos(theta).view(m, 1, 1), torch.sin(theta).view(m, 1, 1)
    fx = (centre_x.to(torch.float32) - 0.5).view(m, 1, 1)
    fy = (centre_y.to(torch.float32) - 0.5).view(m, 1, 1)
    py = torch.arange(h, device=device, dtype=torch.float32).view(1, h, 1)
    px = torch.arange(w, device=device, dtype=torch.float32).view(1, 1, w)
    dx, dy = px - fx, py - fy
    # Inverse map: the source pixel that lands on each output pixel. With y
    # pointing down, a counter-clockwise turn on screen maps (dx, dy) to
    # (dx cos + dy sin, -dx sin + dy cos); its inverse is below.
    sx = _grid_sample_nearest(cos * dx - sin * dy + fx, w)
    sy = _grid_sample_nearest(sin * dx + cos * dy + fy, h)
    inside = (sx >= 0) & (sx <= w - 1) & (sy >= 0) & (sy <= h - 1)
    index = torch.where(inside, sy.long() * w + sx.long(), h * w)
    return Sampling(index, h * w)


def _grid_sample_nearest(coordinate: torch.Tensor, size: int) -> torch.Tensor:
    """The pixel ``grid_sample``'s nearest mode takes for a float32 pixel coordinate.

    The coordinate goes through the normalised grid and back in float32, the
    way the rotation was first computed (with ``grid_sample``), so the rare
    coordinate a rounding step puts on the other side of a half lands on the
    same pixel as before; then ties to even.
    """
    normalised = (2 * coordinate + 1) / size - 1
    return torch.round(((normalised + 1) * size - 1) / 2)


def rotate_views(x: torch.Tensor, degrees, centre_x, centre_y) -> torch.Tensor:
    """Rotate each view of ``x`` (M, C, H, W) as ``rotation`` describes."""
    return rotation(*x.shape[-2:], degrees, centre_x, centre_y).apply(x)


def _exact(device: torch.device) -> torch.dtype:
    # MPS has no float64; everywhere else the centre is computed in double.
    return torch.float32 if torch.device(device).type == "mps" else torch.float64


def _centre_pixels(fraction: torch.Tensor, size: int) -> torch.Tensor:
    """The centre pixel ``int(fraction * size)``, truncated in double precision.

    The reference drew the fraction with ``random.uniform`` and multiplied in
    Python floats; a float32 product can round up across an integer
    (0.29 * 100 is 29.0 in float32, 28.999999999999996 in double).
    """
    return torch.trunc(fraction.to(_exact(fraction.device)) * size)


def _rotate_sampling(h, w, m, args, rng, device) -> Sampling:
    (deg,), (fx, fy) = args["degree"], args["center"]
    full = torch.full((m,), 1.0, device=device, dtype=_exact(device))
    return rotation(h, w, full * deg, _centre_pixels(full * fx, w), _centre_pixels(full * fy, h))


def _resample(sampling, x, args, rng) -> torch.Tensor:
    """A sampling transform on its own: ``sampling(h, w, views, args, rng, device)``
    applied to the views of ``x``, each view its own source."""
    return sampling(*x.shape[-2:], x.shape[0], args, rng, x.device).apply(x)


@_register("rotate", {"degree": ParamSpec(float), "center": ParamSpec(float, 2, default=0.5)},
           sampling=_rotate_sampling)
def rotate(x, args, rng):
    """Rotate by ``degree`` (counter-clockwise) about ``center`` (fractions x y)."""
    return _resample(_rotate_sampling, x, args, rng)


def _random_rotate_sampling(h, w, m, args, rng, device) -> Sampling:
    (a, b), (c, d) = args["degree"], args["center"]
    u = rng.uniform(3)  # angle, centre x, centre y
    degrees = a + (b - a) * u[:, 0]
    # The centre fraction in double, as the reference's Python floats were.
    centre = c + (d - c) * u[:, 1:].to(_exact(u.device))
    return rotation(h, w, degrees, _centre_pixels(centre[:, 0], w),
                    _centre_pixels(centre[:, 1], h))


@_register(
    "random_rotate",
    {"degree": ParamSpec(float, 2), "center": ParamSpec(float, 2, default=0.5)},
    random=True, sampling=_random_rotate_sampling,
)
def random_rotate(x, args, rng):
    """Rotate by a uniform angle in [a, b] about a centre drawn per axis from [c, d]."""
    return _resample(_random_rotate_sampling, x, args, rng)


def resize_views(x: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Bilinear resize without antialiasing; a no-op at the same size."""
    if x.shape[-2:] == (height, width):
        return x
    return F.interpolate(
        x, size=(height, width), mode="bilinear", align_corners=False, antialias=False
    )


def _resized(h: int, w: int, args) -> tuple[int, int]:
    rw, rh = args["size"]
    _at_least_one("size", rw, rh)
    return rh, rw


@_register("resize", {"size": ParamSpec(int, 2, minimum=1)}, size=_resized)
def resize(x, args, rng):
    """Bilinear resize to ``size`` (width height)."""
    h, w = _resized(*x.shape[-2:], args)
    return resize_views(x, w, h)


def _cropped(height: int, width: int, args) -> tuple[int, int]:
    """(height, width) of a ``size`` (width height) crop, which must fit the image."""
    w, h = args["size"]
    _at_least_one("size", w, h)
    if w > width or h > height:
        raise ValueError(f"crop {w}x{h} is larger than the image {width}x{height}")
    return h, w


def window(h: int, w: int, left: torch.Tensor, top: torch.Tensor, width: int,
           height: int) -> Sampling:
    """A width x height window of each (h, w) view at a per-view integer offset ((M,))."""
    m = left.shape[0]
    rows = top.view(m, 1, 1) + torch.arange(height, device=left.device).view(1, height, 1)
    cols = left.view(m, 1, 1) + torch.arange(width, device=left.device).view(1, 1, width)
    return Sampling(rows * w + cols, h * w)


def crop_views(x: torch.Tensor, left: torch.Tensor, top: torch.Tensor, w: int, h: int):
    """Crop a w x h window at a per-view integer offset; (M,) offsets.

    One gather from each view's flattened pixels: its backward is a
    scatter-add, about three times faster on the CPU than advanced indexing's
    (10 views of 288 pixels), with the same result.
    """
    return window(*x.shape[-2:], left, top, w, h).apply(x)


def _random_crop_sampling(h, w, m, args, rng, device) -> Sampling:
    ch, cw = _cropped(h, w, args)
    u = rng.uniform(2)
    # floor(u * (n + 1)) is uniform over 0..n; the min guards u's upper edge.
    left = torch.clamp((u[:, 0] * (w - cw + 1)).long(), max=w - cw)
    top = torch.clamp((u[:, 1] * (h - ch + 1)).long(), max=h - ch)
    return window(h, w, left, top, cw, ch)


@_register("random_crop", {"size": ParamSpec(int, 2, minimum=1)}, random=True, size=_cropped,
           sampling=_random_crop_sampling)
def random_crop(x, args, rng):
    """Crop ``size`` (width height) at a uniformly random offset, no padding."""
    return _resample(_random_crop_sampling, x, args, rng)


@_register("center_crop", {"size": ParamSpec(int, 2, minimum=1)}, size=_cropped)
def center_crop(x, args, rng):
    """Crop ``size`` (width height) from the middle."""
    h, w = _cropped(*x.shape[-2:], args)
    top = int(round((x.shape[-2] - h) / 2.0))
    left = int(round((x.shape[-1] - w) / 2.0))
    return x[:, :, top : top + h, left : left + w]


# --- colour and noise -------------------------------------------------------------


@_register("mul", {"rgb": ParamSpec(float, 3)})
def mul(x, args, rng):
    """Multiply each channel by a factor."""
    return x * _rgb(args["rgb"], x)


@_register("add", {"rgb": ParamSpec(float, 3)})
def add(x, args, rng):
    """Add a value to each channel."""
    return x + _rgb(args["rgb"], x)


@_register("mean", {"rgb": ParamSpec(float, 3)})
def mean(x, args, rng):
    """Shift each channel so that its mean is the given value (no rescaling)."""
    # The mean is not detached, so the gradient loses its per-channel average.
    return x + (_rgb(args["rgb"], x) - x.mean(dim=(2, 3), keepdim=True))


@_register("noise", {"std": ParamSpec(float, 3)}, random=True)
def noise(x, args, rng):
    """Add independent gaussian noise to each channel."""
    m, c, h, w = x.shape
    return x + rng.normal(c, h, w).to(x.dtype) * _rgb(args["std"], x)


@_register("bwnoise", {"std": ParamSpec(float)}, random=True)
def bwnoise(x, args, rng):
    """Add one grey gaussian noise map to all channels."""
    m, c, h, w = x.shape
    (std,) = args["std"]
    return x + rng.normal(1, h, w).to(x.dtype) * std


@_register("clamp", {"range": ParamSpec(float, 2)})
def clamp(x, args, rng):
    """Clamp every value to [min, max]."""
    lo, hi = args["range"]
    return torch.clamp(x, lo, hi)


# --- blur -----------------------------------------------------------------------


def default_sigma(kernel_size: int) -> float:
    """The sigma torchvision picks for a kernel size (2.0 for 11, 0.8 for 3)."""
    return 0.3 * ((kernel_size - 1) * 0.5 - 1) + 0.8


def odd_kernel(size: int) -> int:
    """The reference raises an even kernel size by one."""
    return max(1, size + 1 if size % 2 == 0 else size)


@functools.lru_cache(maxsize=64)
def _gaussian_kernel(size: int, sigma: float, device: torch.device, dtype: torch.dtype):
    # Cached: the blur runs every step with the same few kernels.
    half = (size - 1) * 0.5
    pos = torch.linspace(-half, half, size, device=device, dtype=torch.float32)
    k = torch.exp(-0.5 * (pos / sigma) ** 2)
    return (k / k.sum()).to(dtype)


@functools.lru_cache(maxsize=64)
def _depthwise_weight(size: int, sigma: float, device: torch.device, dtype: torch.dtype,
                      channels: int, vertical: bool) -> torch.Tensor:
    """The 1-D kernel as a depthwise conv weight, (C, 1, 1, k) or (C, 1, k, 1); cached."""
    kernel = _gaussian_kernel(size, sigma, device, dtype)
    shape = (channels, 1, size, 1) if vertical else (channels, 1, 1, size)
    return kernel.reshape(shape[1:]).expand(shape).contiguous()


def _blur_axis(x: torch.Tensor, kernel: torch.Tensor, dim: int) -> torch.Tensor:
    """Weighted sum of shifted copies along ``dim`` of an already padded tensor.

    A sum of slices beats a one-channel convolution here on the CPU, forward
    and backward, and keeps the kernel weights in exact torchvision order.
    """
    size = kernel.shape[0]
    out_len = x.shape[dim] - size + 1
    out = x.narrow(dim, 0, out_len) * kernel[0]
    for k in range(1, size):
        out = out + x.narrow(dim, k, out_len) * kernel[k]
    return out


# A blur form maps (M, C, H, W) views and the (size, sigma) of each axis to the
# blurred (M, C, H, W), with reflect padding (the border pixel is not repeated).


def _reflect_pad(x: torch.Tensor, kx: int, ky: int) -> torch.Tensor:
    return F.pad(x, (kx // 2, kx // 2, ky // 2, ky // 2), mode="reflect")


def blur_slices(x: torch.Tensor, x_axis: tuple[int, float], y_axis: tuple[int, float]):
    """Rows, then columns, each a sum of ``size`` shifted slices of the padded views."""
    padded = _reflect_pad(x, x_axis[0], y_axis[0])
    d, t = padded.device, padded.dtype
    rows = _blur_axis(padded, _gaussian_kernel(*x_axis, d, t), dim=3)
    return _blur_axis(rows, _gaussian_kernel(*y_axis, d, t), dim=2)


def blur_conv(x: torch.Tensor, x_axis: tuple[int, float], y_axis: tuple[int, float]):
    """The accelerator form: two depthwise 1-D convolutions (groups = channels).

    The slice form allocates one full-size tensor per kernel tap and axis; on
    a GPU each is a separate kernel launch, where a depthwise convolution is
    one launch per axis. Convolution is cross-correlation, so the taps line
    up with the slice form: out[i] = sum_k x[i + k] * kernel[k].
    """
    padded = _reflect_pad(x, x_axis[0], y_axis[0])
    d, t, c = padded.device, padded.dtype, padded.shape[1]
    rows = F.conv2d(padded, _depthwise_weight(*x_axis, d, t, c, False), groups=c)
    return F.conv2d(rows, _depthwise_weight(*y_axis, d, t, c, True), groups=c)


def _reflected_sources(n: int, size: int) -> list[list[int]]:
    """For each of n blurred pixels, the pixels its ``size`` kernel taps read, with
    reflection at the borders (the border pixel itself is not repeated)."""

    def reflect(j: int) -> int:
        j = abs(j)
        return 2 * (n - 1) - j if j > n - 1 else j

    return [[reflect(i + k - size // 2) for k in range(size)] for i in range(n)]


def _reflect_blur_matrix(n: int, size: int, sigma: float, device: torch.device,
                         dtype: torch.dtype) -> torch.Tensor:
    """(n, n): row i holds the kernel's weights at the pixels that blurred pixel i
    reads, the reflection at the borders folded in (made once, in _blur_bands)."""
    kernel = _gaussian_kernel(size, sigma, torch.device("cpu"), torch.float32).double()
    source = torch.tensor(_reflected_sources(n, size))
    matrix = torch.zeros(n, n, dtype=torch.float64)
    matrix.scatter_add_(1, source, kernel.expand(n, size).contiguous())
    return matrix.to(device=device, dtype=dtype)


# Rows per block of a banded product: blocks skip the matrix's zeros, and at
# about 32 rows each they stay large enough for the CPU's matrix kernels.
BAND_BLOCK_ROWS = 32


@dataclass(frozen=True, eq=False)
class Band:
    """A banded (n, n) matrix cut into row blocks, each with the columns it reads."""

    matrix: torch.Tensor
    blocks: tuple[tuple[int, int, int, int], ...]  # (first row, end row, first col, end col)

    @classmethod
    def of(cls, matrix: torch.Tensor, reads: list[list[int]],
           rows: int = BAND_BLOCK_ROWS) -> Band:
        """``reads[i]``: the columns row i of ``matrix`` may have non-zero. Plain
        numbers, so cutting the blocks reads nothing back from the device."""
        n = len(reads)
        count = max(1, n // rows)
        edges = [round(i * n / count) for i in range(count + 1)]
        blocks = []
        for r0, r1 in zip(edges[:-1], edges[1:], strict=True):
            cols = [c for row in reads[r0:r1] for c in row]
            blocks.append((r0, r1, min(cols), max(cols) + 1) if cols else (r0, r1, 0, 1))
        return cls(matrix, tuple(blocks))

    def along(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        """The matrix applied along ``dim`` (-1: ``x @ M.T``; -2: ``M @ x``), block by
        block: each block's product reads only the columns its rows touch."""
        parts = []
        for r0, r1, c0, c1 in self.blocks:
            block = self.matrix[r0:r1, c0:c1]
            parts.append(x[..., c0:c1] @ block.T if dim == -1 else block @ x[..., c0:c1, :])
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim)


class _BandedProduct(torch.autograd.Function):
    """A banded matrix along one axis; the backward pass is its transpose's, banded too."""

    @staticmethod
    def forward(ctx, x, band: Band, transposed: Band, dim: int):
        ctx.bands = (transposed, dim)
        return band.along(x, dim)

    @staticmethod
    def backward(ctx, grad):
        transposed, dim = ctx.bands
        return transposed.along(grad, dim), None, None, None


@functools.lru_cache(maxsize=64)
def _blur_bands(n: int, size: int, sigma: float, device: torch.device,
                dtype: torch.dtype) -> tuple[Band, Band]:
    matrix = _reflect_blur_matrix(n, size, sigma, device, dtype)
    reads = [sorted(set(row)) for row in _reflected_sources(n, size)]
    read_by: list[list[int]] = [[] for _ in range(n)]  # the transpose's rows
    for i, row in enumerate(reads):
        for j in row:
            read_by[j].append(i)
    return Band.of(matrix, reads), Band.of(matrix.T.contiguous(), read_by)


def blur_matmul(x: torch.Tensor, x_axis: tuple[int, float], y_axis: tuple[int, float]):
    """The CPU form: each axis a product with a banded matrix that holds the kernel
    and the border's reflection (no padded copy, no per-tap tensor).

    Matrix products run at the CPU's full rate, forward and backward, where the
    sum of slices is bound by memory; cut into blocks of rows that read only
    their band's columns, they skip most of the zeros (measured for method
    2's blur constraint, 10 views of 224 pixels, on 2 cores: 21 ms forward
    and backward as whole products, 14-15 ms in blocks, 32 ms as slices).
    """
    (kx, sx), (ky, sy) = x_axis, y_axis
    h, w = x.shape[-2:]
    if kx // 2 >= w or ky // 2 >= h:
        return blur_slices(x, x_axis, y_axis)  # reflect padding as wide as the image
    rows = _BandedProduct.apply(x, *_blur_bands(w, kx, sx, x.device, x.dtype), -1)  # along W
    return _BandedProduct.apply(rows, *_blur_bands(h, ky, sy, x.device, x.dtype), -2)  # along H


BLUR_FORMS = {"slices": blur_slices, "conv": blur_conv, "matmul": blur_matmul}


def blur_form(device: torch.device) -> str:
    """The faster blur form for a device: matrix products on the CPU, convolutions
    elsewhere."""
    return "matmul" if torch.device(device).type == "cpu" else "conv"


def blur_fits(h: int, w: int, args) -> None:
    """A blur's reflected border must lie inside the image: half the (odd) kernel
    below its size, as torch's reflect padding requires."""
    kx, ky = (odd_kernel(int(k)) for k in args["kernel_size"])
    if kx // 2 >= w or ky // 2 >= h:
        raise ValueError(f"kernel_size {kx} {ky} is too large for the {w}x{h} image it gets "
                         f"(at most {2 * w - 1} {2 * h - 1})")


def gaussian_blur(x: torch.Tensor, kernel_size, sigma=None, *, form: str | None = None):
    """Gaussian blur with reflect padding, one kernel for all channels.

    ``kernel_size`` and ``sigma`` are (x, y) pairs; sigma None picks the default.
    ``form`` ("slices", "conv" or "matmul") forces one implementation; by
    default it follows the device (``blur_form``). All compute the same sums.
    """
    kx, ky = (odd_kernel(int(k)) for k in kernel_size)
    sx, sy = sigma if sigma is not None else (default_sigma(kx), default_sigma(ky))
    fn = BLUR_FORMS[form or blur_form(x.device)]
    return fn(x, (kx, float(max(sx, 1e-4))), (ky, float(max(sy, 1e-4))))


@_register(
    "blur",
    {
        "kernel_size": ParamSpec(int, 2, default=3, minimum=1),
        "sigma": ParamSpec(float, 2, default=None),
    },
    check=blur_fits,
)
def blur(x, args, rng):
    """Gaussian blur; sigma defaults to torchvision's choice for the kernel size."""
    return gaussian_blur(x, args["kernel_size"], args["sigma"])


# --- CLIPig's other transforms ---------------------------------------------------------
#
# Sizes and offsets below 1 (in absolute value, for offsets) are fractions of
# the image, others pixels; a fraction becomes pixels by a product in double
# precision truncated towards zero, as the reference's Python floats did.


def _to_pixels(value: float, size: int) -> int:
    """``value * size`` for a fraction (below 1), else ``value``, truncated."""
    return int(value * size if value < 1 else value)


def _window(h: int, w: int, args) -> tuple[int, int, int, int]:
    """``crop``'s window in pixels of an (h, w) image: left, top, width, height."""
    left, top, width, height = (
        _to_pixels(v, n) for v, n in zip(args["xywh"], (w, h, w, h), strict=True)
    )
    if width < 1 or height < 1:
        raise ValueError(f"the window {width}x{height} has no pixels")
    return left, top, width, height


def _windowed(h: int, w: int, args) -> tuple[int, int]:
    _, _, width, height = _window(h, w, args)
    return height, width


@_register("crop", {"xywh": ParamSpec(float, 4)}, size=_windowed)
def crop(x, args, rng):
    """Cut a fixed window (x y width height, fractions below 1 or pixels); zeros outside."""
    h, w = x.shape[-2:]
    left, top, width, height = _window(h, w, args)
    pads = (max(0, -left), max(0, left + width - w), max(0, -top), max(0, top + height - h))
    if any(pads):
        # torchvision's crop fills what lies outside the image with zeros.
        x = F.pad(x, pads)
        left, top = left + pads[0], top + pads[2]
    return x[:, :, top : top + height, left : left + width]


def _repeated(h: int, w: int, args) -> tuple[int, int]:
    cx, cy = args["count"]
    _at_least_one("count", cx, cy)
    return h * cy, w * cx


@_register("repeat", {"count": ParamSpec(int, 2, minimum=1)}, size=_repeated)
def repeat(x, args, rng):
    """Tile the image ``count`` times to the right and downwards (x y)."""
    cx, cy = args["count"]
    return x.repeat(1, 1, cy, cx)


def _wrap_offset(value, size: int):
    """A shift in whole pixels in [0, size): fractions (|v| < 1) scaled, truncated, wrapped.

    ``value`` is a Python number or a tensor of them (one per view).
    """
    if isinstance(value, torch.Tensor):
        pixels = torch.where(value.abs() < 1, value * size, value)
        return torch.remainder(torch.trunc(pixels), size).long()
    return int(value * size if abs(value) < 1 else value) % size


@_register("shift", {"offset": ParamSpec(float, 2)})
def shift(x, args, rng):
    """Move the image right and down by ``offset`` (x y), wrapping around the edges."""
    h, w = x.shape[-2:]
    dx, dy = (_wrap_offset(v, n) for v, n in zip(args["offset"], (w, h), strict=True))
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def roll_views(x: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Each view moved right by ``dx`` and down by ``dy`` pixels ((M,) in [0, size)),
    wrapping around: out[i, j] = x[(i - dy) % H, (j - dx) % W]. One gather."""
    m, c, h, w = x.shape
    rows = torch.remainder(torch.arange(h, device=x.device).view(1, h) - dy.view(m, 1), h)
    cols = torch.remainder(torch.arange(w, device=x.device).view(1, w) - dx.view(m, 1), w)
    index = (rows.view(m, h, 1) * w + cols.view(m, 1, w)).view(m, 1, h * w).expand(m, c, h * w)
    return x.reshape(m, c, h * w).gather(2, index).view(m, c, h, w)


@_register("random_shift", {"offset": ParamSpec(float, 4, tiles=(1, 2))}, random=True)
def random_shift(x, args, rng):
    """Wrap-around move by a uniform offset: min max for both axes, or x-min x-max y-min y-max."""
    h, w = x.shape[-2:]
    x0, x1, y0, y1 = args["offset"]
    u = rng.uniform(2).to(_exact(x.device))  # x, then y
    dx = _wrap_offset(x0 + (x1 - x0) * u[:, 0], w)
    dy = _wrap_offset(y0 + (y1 - y0) * u[:, 1], h)
    return roll_views(x, dx, dy)


def affine_views(x: torch.Tensor, scale: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor):
    """Scale each view about the image centre, then move it by (tx, ty) pixels; (M,) each.

    The output pixel p shows the source at centre + (p - centre - t) / scale,
    nearest neighbour, zeros outside: torchvision's affine without rotation.
    """
    m, _, h, w = x.shape
    s = scale.to(torch.float32).view(m, 1, 1)
    cx, cy = (w - 1) * 0.5, (h - 1) * 0.5
    px = torch.arange(w, device=x.device, dtype=torch.float32).view(1, 1, w)
    py = torch.arange(h, device=x.device, dtype=torch.float32).view(1, h, 1)
    sx = (px - cx - tx.to(torch.float32).view(m, 1, 1)) / s + cx
    sy = (py - cy - ty.to(torch.float32).view(m, 1, 1)) / s + cy
    sx, sy = sx.expand(m, h, w), sy.expand(m, h, w)
    grid = torch.stack(((2 * sx + 1) / w - 1, (2 * sy + 1) / h - 1), dim=-1)
    return F.grid_sample(
        x, grid.to(x.dtype), mode="nearest", padding_mode="zeros", align_corners=False
    )


def _scale_positive(h: int, w: int, args) -> None:
    """The factors must be above 0, as torchvision's RandomAffine required."""
    lo, hi = args["scale"]
    if min(lo, hi) <= 0:
        raise ValueError(f"scale must be > 0, got {lo:g} {hi:g}")


@_register("random_scale", {"scale": ParamSpec(float, 2)}, random=True, check=_scale_positive)
def random_scale(x, args, rng):
    """Scale the content by a uniform factor in [min, max] about the centre; zeros outside."""
    lo, hi = args["scale"]
    u = rng.uniform(1)[:, 0]
    zero = torch.zeros_like(u)
    return affine_views(x, lo + (hi - lo) * u, zero, zero)


def _offset_fractions(h: int, w: int, args) -> None:
    """The offsets are fractions of the size from 0 to 1, as torchvision's
    RandomAffine required."""
    a, b = args["offset"]
    if not (0 <= a <= 1 and 0 <= b <= 1):
        raise ValueError(f"offset must be fractions from 0 to 1, got {a:g} {b:g}")


@_register("random_translate", {"offset": ParamSpec(float, 2)}, random=True,
           check=_offset_fractions)
def random_translate(x, args, rng):
    """Move by whole pixels drawn from +-offset (fractions x y of the size); zeros outside."""
    h, w = x.shape[-2:]
    a, b = args["offset"]
    u = rng.uniform(2).to(_exact(x.device))  # x, then y
    # uniform in [-max, max], rounded half to even as Python's round did
    tx = torch.round((2 * u[:, 0] - 1) * (a * w))
    ty = torch.round((2 * u[:, 1] - 1) * (b * h))
    return affine_views(x, torch.ones_like(tx), tx, ty)


@_register("border", {
    "size": ParamSpec(int, 2, default=1, minimum=0),
    "color": ParamSpec(float, 3, default=0.0),
})
def border(x, args, rng):
    """Paint a frame of ``size`` pixels (x y) in ``color``; the size does not change."""
    h, w = x.shape[-2:]
    sx, sy = (max(0, min(s, n)) for s, n in zip(args["size"], (w, h), strict=True))
    rows = torch.arange(h, device=x.device).view(h, 1)
    cols = torch.arange(w, device=x.device).view(1, w)
    frame = (rows < sy) | (rows >= h - sy) | (cols < sx) | (cols >= w - sx)
    return torch.where(frame, _rgb(args["color"], x), x)


def _edge_values(args) -> tuple[int, int]:
    """``edge``'s kernel sizes, which must be odd (its blur does not round them up),
    and a sigma above 0 if one is given."""
    sizes = tuple(int(k) for k in args["kernel_size"])
    if any(k < 1 or k % 2 == 0 for k in sizes):
        raise ValueError(f"kernel_size must be odd and positive, got {sizes}")
    sigma = args["sigma"]
    if sigma is not None and min(sigma) <= 0:
        raise ValueError(f"sigma must be > 0, got {tuple(sigma)}")
    return sizes


@_register("edge", {
    "kernel_size": ParamSpec(int, 2, default=3, minimum=1),
    "sigma": ParamSpec(float, 2, default=None),
    "amount": ParamSpec(float, 3, default=1.0),
}, check=lambda h, w, args: (_edge_values(args), blur_fits(h, w, args)))
def edge(x, args, rng):
    """Keep only edges: (image - blurred image) x amount, clamped to [0, 1]."""
    sizes, sigma = _edge_values(args), args["sigma"]
    blurred = gaussian_blur(x, sizes, sigma)
    # The reference clamps the signed difference (its docs say abs).
    return torch.clamp((x - blurred) * _rgb(args["amount"], x), 0, 1)


@_register("rnoise", {"std": ParamSpec(float, 3), "resolution": ParamSpec(int, 2, minimum=1)},
           random=True, check=lambda h, w, args: _at_least_one("resolution", *args["resolution"]))
def rnoise(x, args, rng):
    """Add gaussian noise drawn at ``resolution`` (x y) and resized to the image."""
    h, w = x.shape[-2:]
    rw, rh = args["resolution"]
    _at_least_one("resolution", rw, rh)
    noise = resize_views(rng.normal(3, rh, rw).to(x.dtype), w, h)
    return x + noise * _rgb(args["std"], x)


@_register("fnoise", {"std": ParamSpec(float, 3)}, random=True)
def fnoise(x, args, rng):
    """Add gaussian noise (std x 15) to the Fourier transform of each channel's pixels."""
    m, c, h, w = x.shape
    # One 1-D transform of the flattened pixels per channel, as the reference did.
    space = torch.fft.rfft(x.reshape(m, c, h * w).float())
    k = space.shape[-1]
    std = _rgb(args["std"], x)
    std = 15.0 * (std.view(1, c, 1).float() if isinstance(std, torch.Tensor) else std)
    real = space.real + rng.normal(c, k) * std
    imag = space.imag + rng.normal(c, k) * std
    # n given, so an odd pixel count (where the reference failed) keeps its size.
    out = torch.fft.irfft(torch.complex(real, imag), n=h * w)
    return out.view(m, c, h, w).to(x.dtype)
