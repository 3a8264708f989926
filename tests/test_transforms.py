"""Tests for renderer.language.ops.transforms: the batched image transforms.

Each transform is checked against a small tensor worked out by hand or
against the torch / torchvision function the reference tool called, and the
random ones are checked for per-image stream independence, which is what lets
the renderer batch many images without changing any of them.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torchvision.transforms import InterpolationMode

from clipig_gallery.renderer.engine.rng import ImageStreams
from clipig_gallery.renderer.language.ops.transforms import (
    TRANSFORMS,
    default_sigma,
    gaussian_blur,
    odd_kernel,
    resize_views,
    rotate_views,
)
from clipig_gallery.renderer.language.params import REQUIRED, ParamSpec

VIEWS = 3


def streams(*seeds: int, views: int = 1) -> ImageStreams:
    return ImageStreams(list(seeds), "cpu", views=views)


def apply(name: str, x: torch.Tensor, rng: ImageStreams | None = None, **args) -> torch.Tensor:
    if rng is None:
        rng = streams(*range(x.shape[0]))
    return TRANSFORMS[name].fn(x, args, rng)


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def grid(h: int, w: int) -> torch.Tensor:
    """A (1, 1, h, w) image whose value is the flat pixel index: easy to locate."""
    return torch.arange(h * w, dtype=torch.float32).view(1, 1, h, w)


def rotation(x: torch.Tensor, degrees: float, cx: float, cy: float) -> torch.Tensor:
    m = x.shape[0]
    full = torch.ones(m)
    return rotate_views(x, full * degrees, full * cx, full * cy)


# --- pad -----------------------------------------------------------------------


TWO_BY_TWO = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])


def test_pad_edge_repeats_border_pixels() -> None:
    out = apply("pad", TWO_BY_TWO, size=(1, 1), color=(0.0, 0.0, 0.0), mode="edge")
    expected = torch.tensor(
        [[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0], [3.0, 3.0, 4.0, 4.0], [3.0, 3.0, 4.0, 4.0]]
    )
    assert torch.equal(out[0, 0], expected)


def test_pad_edge_grows_224_to_288() -> None:
    x = rand(2, 3, 224, 224)
    out = apply("pad", x, size=(32, 32), color=(0.0, 0.0, 0.0), mode="edge")
    assert out.shape == (2, 3, 288, 288)
    assert torch.equal(out[:, :, 32:256, 32:256], x)
    # Every padded pixel is a copy of the nearest border pixel.
    assert torch.equal(out[:, :, :32, 32:256], x[:, :, :1, :].expand(-1, -1, 32, -1))
    assert torch.equal(out[:, :, 40, :32], x[:, :, 8, :1].expand(-1, -1, 32))
    assert torch.equal(out[:, :, :32, :32], x[:, :, :1, :1].expand(-1, -1, 32, 32))


def test_pad_fill_uses_the_colour_per_channel() -> None:
    x = rand(2, 3, 4, 5)
    out = apply("pad", x, size=(2, 1), color=(0.1, 0.5, 0.9), mode="fill")
    # size is (x, y): the width grows by 2 * 2, the height by 2 * 1.
    assert out.shape == (2, 3, 6, 9)
    assert torch.equal(out[:, :, 1:5, 2:7], x)
    border = torch.ones(2, 6, 9, dtype=torch.bool)
    border[:, 1:5, 2:7] = False
    for c, value in enumerate((0.1, 0.5, 0.9)):
        assert torch.all(out[:, c][border] == torch.tensor(value))


def test_pad_wrap_is_circular() -> None:
    out = apply("pad", TWO_BY_TWO, size=(1, 1), color=(0.0, 0.0, 0.0), mode="wrap")
    # Row -1 is the last row and column -1 the last column.
    expected = torch.tensor(
        [[4.0, 3.0, 4.0, 3.0], [2.0, 1.0, 2.0, 1.0], [4.0, 3.0, 4.0, 3.0], [2.0, 1.0, 2.0, 1.0]]
    )
    assert torch.equal(out[0, 0], expected)


def test_pad_zero_size_is_identity() -> None:
    x = rand(1, 3, 5, 6)
    for mode in ("fill", "edge", "wrap"):
        out = apply("pad", x, size=(0, 0), color=(1.0, 1.0, 1.0), mode=mode)
        assert torch.equal(out, x), mode


# --- colour ------------------------------------------------------------------------


def test_mean_shifts_each_channel_without_rescaling() -> None:
    x = torch.tensor(
        [[[[0.0, 1.0], [2.0, 3.0]], [[1.0, 1.0], [1.0, 1.0]], [[-1.0, 0.0], [0.0, 5.0]]]]
    )
    out = apply("mean", x, rgb=(0.5, 0.0, 2.0))
    # Channel means are 1.5, 1.0 and 1.0: each channel moves by (m - mean).
    expected = torch.stack((x[0, 0] - 1.0, x[0, 1] - 1.0, x[0, 2] + 1.0)).unsqueeze(0)
    assert torch.allclose(out, expected)
    assert torch.allclose(out.mean(dim=(2, 3)), torch.tensor([[0.5, 0.0, 2.0]]))
    # No rescale: the spread of each channel is untouched.
    assert torch.allclose(out.std(dim=(2, 3)), x.std(dim=(2, 3)))


def test_mean_gradient_loses_its_channel_average() -> None:
    # The channel mean is part of the graph (not detached), so the gradient of
    # sum(w * out) is w minus w's own per-channel average.
    x = rand(2, 3, 4, 5, seed=1).requires_grad_()
    w = rand(2, 3, 4, 5, seed=2)
    (apply("mean", x, rgb=(0.2, 0.4, 0.6)) * w).sum().backward()
    expected = w - w.mean(dim=(2, 3), keepdim=True)
    assert torch.allclose(x.grad, expected, atol=1e-6)
    assert torch.allclose(x.grad.sum(dim=(2, 3)), torch.zeros(2, 3), atol=1e-5)


def test_mul_and_add_per_channel() -> None:
    x = rand(2, 3, 4, 4)
    out = apply("mul", x, rgb=(2.0, 0.0, -1.0))
    assert torch.allclose(out, torch.stack((2 * x[:, 0], 0 * x[:, 1], -x[:, 2]), dim=1))
    out = apply("add", x, rgb=(0.5, 0.0, -0.25))
    assert torch.allclose(out, torch.stack((x[:, 0] + 0.5, x[:, 1], x[:, 2] - 0.25), dim=1))


def test_clamp() -> None:
    x = torch.tensor([-1.0, 0.1, 0.5, 0.9, 2.0]).view(1, 1, 1, 5)
    out = apply("clamp", x, range=(0.1, 0.8))
    assert torch.allclose(out.flatten(), torch.tensor([0.1, 0.1, 0.5, 0.8, 0.8]))


# --- noise -------------------------------------------------------------------------


def test_noise_is_scaled_randn_per_channel() -> None:
    x = rand(2 * VIEWS, 3, 6, 7)
    out = apply("noise", x, streams(5, 6, views=VIEWS), std=(0.2, 0.0, 0.5))
    # The same seeds replay the same draw: one (C, H, W) normal map per view.
    draw = streams(5, 6, views=VIEWS).normal(3, 6, 7)
    std = torch.tensor([0.2, 0.0, 0.5]).view(1, 3, 1, 1)
    assert torch.allclose(out, x + draw * std)
    assert torch.equal(out[:, 1], x[:, 1])  # std 0 leaves a channel alone


def test_noise_channels_are_independent() -> None:
    x = torch.zeros(2, 3, 16, 16)
    inc = apply("noise", x, streams(1, 2), std=(1.0, 1.0, 1.0))
    assert not torch.allclose(inc[:, 0], inc[:, 1])
    assert not torch.allclose(inc[:, 1], inc[:, 2])
    # Loosely standard normal: catches a wrong scale or a uniform draw.
    assert abs(inc.mean().item()) < 0.15
    assert 0.85 < inc.std().item() < 1.15


def test_bwnoise_adds_one_map_to_all_channels() -> None:
    x = rand(2 * VIEWS, 3, 6, 7)
    out = apply("bwnoise", x, streams(5, 6, views=VIEWS), std=(0.3,))
    inc = out - x
    assert inc.abs().max() > 0
    # Compare increments exactly: the same map is added to each channel.
    same = (out[:, 0] - x[:, 0], out[:, 1] - x[:, 1], out[:, 2] - x[:, 2])
    draw = streams(5, 6, views=VIEWS).normal(1, 6, 7)[:, 0] * 0.3
    for channel in same:
        assert torch.allclose(channel, draw, atol=1e-6)
    # Computed on a zero image the increments are bitwise equal across channels.
    z = apply("bwnoise", torch.zeros(2, 3, 5, 5), streams(1, 2), std=(1.0,))
    assert torch.equal(z[:, 0], z[:, 1]) and torch.equal(z[:, 1], z[:, 2])


# --- resize ------------------------------------------------------------------------------


def test_resize_bilinear_by_hand() -> None:
    # f(x, y) = x + 2y on a 2x2 grid. Without align_corners, output pixel j of
    # 4 samples source (j + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25, clamped
    # to the edge: weights 0, 0.25, 0.75, 1 along each axis.
    x = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    out = apply("resize", x, size=(4, 4))
    along = torch.tensor([0.0, 0.25, 0.75, 1.0])
    expected = along.view(1, 4) + 2 * along.view(4, 1)
    assert torch.allclose(out[0, 0], expected)


def test_resize_matches_interpolate_without_antialias() -> None:
    x = rand(2, 3, 40, 30)
    for w, h in ((17, 9), (64, 50), (30, 20)):
        out = apply("resize", x, size=(w, h))
        # size is (width, height).
        assert out.shape == (2, 3, h, w)
        expected = F.interpolate(
            x, size=(h, w), mode="bilinear", align_corners=False, antialias=False
        )
        assert torch.equal(out, expected)


def test_resize_same_size_is_a_no_op() -> None:
    x = rand(1, 3, 12, 10)
    assert torch.equal(apply("resize", x, size=(10, 12)), x)
    assert torch.equal(resize_views(x, 10, 12), x)


# --- crops -------------------------------------------------------------------------------


def test_random_crop_windows_are_slices_and_every_offset_is_reached() -> None:
    x = grid(8, 8).expand(40, 3, 8, 8)
    out = apply("random_crop", x, streams(*range(40), views=1), size=(6, 6))
    assert out.shape == (40, 3, 6, 6)
    seen = set()
    for view in out:
        top, left = divmod(int(view[0, 0, 0]), 8)
        assert 0 <= top <= 2 and 0 <= left <= 2
        assert torch.equal(view, x[0, :, top : top + 6, left : left + 6])
        seen.add((top, left))
    # 40 views over 9 offsets: with these seeds all are hit, which would fail
    # if the last offset were unreachable (an off-by-one in the range).
    assert seen == {(t, lft) for t in range(3) for lft in range(3)}


def test_random_crop_size_is_width_height() -> None:
    x = grid(6, 9).expand(8, 3, 6, 9)
    out = apply("random_crop", x, streams(1, 2, views=4), size=(5, 3))
    assert out.shape == (8, 3, 3, 5)
    for view in out:
        top, left = divmod(int(view[0, 0, 0]), 9)
        assert 0 <= top <= 3 and 0 <= left <= 4
        assert torch.equal(view, x[0, :, top : top + 3, left : left + 5])


def test_random_crop_full_size_is_identity() -> None:
    x = rand(4, 3, 7, 5)
    assert torch.equal(apply("random_crop", x, streams(1, 2, views=2), size=(5, 7)), x)


@pytest.mark.parametrize("name", ["random_crop", "center_crop"])
def test_crop_larger_than_image_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="larger than the image"):
        apply(name, rand(1, 3, 8, 8), size=(9, 4))


@pytest.mark.parametrize(
    ("h", "w", "ch", "cw"), [(40, 40, 20, 20), (40, 37, 15, 20), (9, 8, 4, 3), (5, 5, 5, 5)]
)
def test_center_crop_matches_torchvision(h: int, w: int, ch: int, cw: int) -> None:
    x = rand(2, 3, h, w)
    out = apply("center_crop", x, size=(cw, ch))
    assert torch.equal(out, TF.center_crop(x, [ch, cw]))


# --- rotation ------------------------------------------------------------------------------


def test_rotation_by_90_about_the_centre_is_rot90() -> None:
    x = rand(2, 3, 4, 4)
    out = rotation(x, 90.0, 2.0, 2.0)
    # Counter-clockwise on screen (y down): the top row becomes the left
    # column, read bottom to top -- torch.rot90 with k=1 over (H, W).
    assert torch.equal(out[0, 0, :, 0], x[0, 0, 0, :].flip(0))
    assert torch.equal(out, torch.rot90(x, k=1, dims=(2, 3)))
    assert torch.equal(rotation(x, -90.0, 2.0, 2.0), torch.rot90(x, k=-1, dims=(2, 3)))
    assert torch.equal(rotation(x, 180.0, 2.0, 2.0), torch.rot90(x, k=2, dims=(2, 3)))


def test_rotation_by_90_on_larger_even_and_odd_images() -> None:
    x = rand(1, 3, 10, 10)
    assert torch.equal(rotation(x, 90.0, 5.0, 5.0), torch.rot90(x, k=1, dims=(2, 3)))
    # With an odd size the centre pixel index is 2, i.e. centre 2.5 in the
    # (index + 0.5) convention; rotate_views takes fractional centres.
    y = rand(1, 3, 5, 5)
    assert torch.equal(rotation(y, 90.0, 2.5, 2.5), torch.rot90(y, k=1, dims=(2, 3)))


def test_rotation_by_zero_is_identity() -> None:
    x = rand(3, 3, 7, 9)
    assert torch.equal(rotation(x, 0.0, 4.0, 3.0), x)
    assert torch.equal(rotation(x, 360.0, 1.0, 6.0), x)


def test_rotation_fills_outside_with_zeros() -> None:
    x = torch.ones(1, 1, 6, 6)
    # Pivot on pixel (0, 0): a quarter turn counter-clockwise swings the column
    # below the pivot into the top row and everything else out of frame.
    out = rotation(x, 90.0, 0.5, 0.5)
    expected = torch.zeros(6, 6)
    expected[0] = 1.0
    assert torch.equal(out[0, 0], expected)


def test_rotation_per_view_parameters() -> None:
    x = rand(2, 3, 6, 6)
    centre = torch.tensor([3.0, 3.0])
    out = rotate_views(x, torch.tensor([90.0, 0.0]), centre, centre)
    assert torch.equal(out[0], torch.rot90(x[0], k=1, dims=(1, 2)))
    assert torch.equal(out[1], x[1])


def _on_tie(h: int, w: int, degrees: float, cx: float, cy: float) -> torch.Tensor:
    """Pixels whose exact source coordinate sits (nearly) on a rounding tie."""
    t = math.radians(degrees)
    fx, fy = cx - 0.5, cy - 0.5
    py = torch.arange(h, dtype=torch.float64).view(h, 1)
    px = torch.arange(w, dtype=torch.float64).view(1, w)
    dx, dy = px - fx, py - fy
    sx = math.cos(t) * dx - math.sin(t) * dy + fx
    sy = math.sin(t) * dx + math.cos(t) * dy + fy

    def tie(s: torch.Tensor) -> torch.Tensor:
        return ((s - 0.5) - torch.round(s - 0.5)).abs() < 1e-3

    return tie(sx) | tie(sy)


def test_rotation_matches_torchvision_nearest() -> None:
    # torchvision and rotate_views compute the same source coordinates in a
    # different float order, so on exact .5 ties nearest-neighbour rounding can
    # go either way. Every differing pixel must be such a tie, and they must be
    # rare: measured 0.033% (64 of 192,448 pixels) over the cases below, all
    # at 45 degrees on the two odd/non-square sizes, where a line of source
    # coordinates lands exactly on a half pixel (worst single case 1.5%).
    differing = total = 0
    for seed, (h, w) in enumerate(((32, 32), (24, 40), (33, 31))):
        for degrees in (10.0, 30.0, 45.0, 90.0, -60.0, 137.5, 180.0, 275.0):
            for cx, cy in ((w // 2, h // 2), (0, 0), (5, 7), (w - 3, h // 3)):
                x = rand(2, 3, h, w, seed=seed)
                ours = rotation(x, degrees, float(cx), float(cy))
                theirs = TF.rotate(
                    x, degrees, interpolation=InterpolationMode.NEAREST, center=[cx, cy]
                )
                diff = (ours != theirs).any(dim=1)  # (2, h, w)
                assert not (diff & ~_on_tie(h, w, degrees, cx, cy)).any(), (h, w, degrees, cx, cy)
                differing += int(diff.sum())
                total += diff.numel()
    assert differing / total < 0.005


def test_rotate_transform_uses_truncated_centre_pixel() -> None:
    x = rand(2, 3, 8, 12)
    out = apply("rotate", x, degree=(33.0,), center=(0.37, 0.62))
    # int(0.37 * 12) = 4, int(0.62 * 8) = 4.
    assert torch.equal(out, rotation(x, 33.0, 4.0, 4.0))
    out = apply("rotate", x, degree=(90.0,), center=(0.5, 0.5))
    assert torch.equal(out, rotation(x, 90.0, 6.0, 4.0))


def test_random_rotate_fixed_range_equals_the_deterministic_rotation() -> None:
    x = rand(2 * VIEWS, 3, 8, 8)
    rng = streams(3, 4, views=VIEWS)
    out = apply("random_rotate", x, rng, degree=(90.0, 90.0), center=(0.5, 0.5))
    assert torch.equal(out, torch.rot90(x, k=1, dims=(2, 3)))
    assert torch.equal(out, apply("rotate", x, degree=(90.0,), center=(0.5, 0.5)))
    # A fixed off-centre fraction: int(0.3 * 10) = 3 and int(0.3 * 7) = 2.
    y = rand(2, 3, 7, 10)
    out = apply("random_rotate", y, streams(3, 4), degree=(20.0, 20.0), center=(0.3, 0.3))
    assert torch.equal(out, rotation(y, 20.0, 3.0, 2.0))


def test_random_rotate_draws_a_different_angle_per_view() -> None:
    x = rand(1, 3, 16, 16).expand(VIEWS, -1, -1, -1)
    rng = streams(7, views=VIEWS)
    out = apply("random_rotate", x, rng, degree=(-30.0, 30.0), center=(0.5, 0.5))
    assert not torch.equal(out[0], out[1])
    assert not torch.equal(out[1], out[2])


# --- blur ------------------------------------------------------------------------------------


def test_default_sigma_and_odd_kernel() -> None:
    assert default_sigma(11) == pytest.approx(2.0)
    assert default_sigma(3) == pytest.approx(0.8)
    assert odd_kernel(4) == 5
    assert odd_kernel(3) == 3
    assert odd_kernel(1) == 1


@pytest.mark.parametrize("k", [3, 11])
def test_gaussian_blur_matches_torchvision(k: int) -> None:
    x = rand(2, 3, 40, 37)
    out = gaussian_blur(x, (k, k), None)
    assert torch.allclose(out, TF.gaussian_blur(x, [k, k]), rtol=0, atol=1e-6)


def test_gaussian_blur_kernel_and_sigma_are_x_then_y() -> None:
    x = rand(2, 3, 20, 25)
    assert torch.allclose(gaussian_blur(x, (3, 7), None), TF.gaussian_blur(x, [3, 7]), atol=1e-6)
    assert torch.allclose(
        gaussian_blur(x, (3, 7), (1.5, 0.7)), TF.gaussian_blur(x, [3, 7], [1.5, 0.7]), atol=1e-6
    )


def test_gaussian_blur_even_kernel_is_raised_by_one() -> None:
    x = rand(1, 3, 12, 12)
    assert torch.equal(gaussian_blur(x, (4, 4), None), gaussian_blur(x, (5, 5), None))


def test_gaussian_blur_of_an_impulse_by_hand() -> None:
    # A one-row image: the y kernel has size 1, so only the x kernel acts.
    x = torch.zeros(1, 1, 1, 7)
    x[0, 0, 0, 3] = 1.0
    out = gaussian_blur(x, (3, 1), (0.8, 1.0))[0, 0, 0]
    weights = torch.tensor([math.exp(-0.5 * (d / 0.8) ** 2) for d in (-1, 0, 1)])
    weights = weights / weights.sum()
    assert torch.allclose(out[2:5], weights, atol=1e-7)
    assert torch.equal(out[:2], torch.zeros(2)) and torch.equal(out[5:], torch.zeros(2))


def test_blur_transform_uses_gaussian_blur() -> None:
    x = rand(2, 3, 16, 16)
    out = apply("blur", x, kernel_size=(5, 5), sigma=None)
    assert torch.allclose(out, TF.gaussian_blur(x, [5, 5]), atol=1e-6)


# --- registry --------------------------------------------------------------------------------


# Required arguments per transform, as the config would evaluate them. Every
# size stays below the 40x40 test image so crops fit and resizing ones change
# the shape; optional ones come from the ParamSpec defaults.
REQUIRED_ARGS: dict[str, dict[str, object]] = {
    "pad": {"size": (4, 2)},
    "rotate": {"degree": (25.0,)},
    "random_rotate": {"degree": (-20.0, 20.0)},
    "resize": {"size": (32, 24)},
    "random_crop": {"size": (30, 20)},
    "center_crop": {"size": (30, 20)},
    "mul": {"rgb": (1.5, 0.5, 2.0)},
    "add": {"rgb": (0.1, -0.2, 0.3)},
    "mean": {"rgb": (0.5, 0.4, 0.6)},
    "noise": {"std": (0.1, 0.2, 0.3)},
    "bwnoise": {"std": (0.2,)},
    "clamp": {"range": (0.0, 1.0)},
    "blur": {},
    "crop": {"xywh": (2.0, 3.0, 30.0, 20.0)},
    "repeat": {"count": (2, 1)},
    "shift": {"offset": (3.0, 0.25)},
    "random_shift": {"offset": (0.0, 1.0, 0.0, 1.0)},
    "random_scale": {"scale": (0.8, 1.2)},
    "random_translate": {"offset": (0.1, 0.2)},
    "border": {},
    "edge": {},
    "rnoise": {"std": (0.1, 0.2, 0.3), "resolution": (8, 6)},
    "fnoise": {"std": (0.01, 0.02, 0.03)},
}


def default_args(name: str) -> dict[str, object]:
    """ParamSpec defaults expanded as the config does, plus REQUIRED_ARGS."""
    args: dict[str, object] = {}
    for pname, spec in TRANSFORMS[name].params.items():
        if spec.required:
            continue
        value = spec.default
        if value is not None and spec.kind is not str:
            value = (spec.kind(value),) * spec.length
        args[pname] = value
    args.update(REQUIRED_ARGS[name])
    missing = [p for p, s in TRANSFORMS[name].params.items() if s.required and p not in args]
    assert not missing, f"{name}: no test value for required {missing}"
    return args


class NoDraws(ImageStreams):
    """Streams that fail on any draw: proves a transform is really not random."""

    def _draw(self, fn, shape):
        raise AssertionError("a transform not marked random drew from the streams")


def test_every_transform_has_test_arguments() -> None:
    # A new transform must be added to REQUIRED_ARGS so the checks below run on it.
    assert set(REQUIRED_ARGS) == set(TRANSFORMS)
    # The names a config may use, written out (not read from the registry):
    # a transform dropped or renamed fails here, and the list must be sorted.
    assert TRANSFORMS.names() == [
        "add", "blur", "border", "bwnoise", "center_crop", "clamp", "crop", "edge", "fnoise",
        "mean", "mul", "noise", "pad", "random_crop", "random_rotate", "random_scale",
        "random_shift", "random_translate", "repeat", "resize", "rnoise", "rotate", "shift",
    ]


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_transform_declaration(name: str) -> None:
    tdef = TRANSFORMS[name]
    assert tdef.name == name
    assert tdef.doc, f"{name} has no docstring"
    assert "\n" not in tdef.doc
    assert all(isinstance(spec, ParamSpec) for spec in tdef.params.values())
    for spec in tdef.params.values():
        assert spec.kind in (int, float, str)
        assert (
            spec.default is REQUIRED
            or spec.default is None
            or spec.kind is str
            or isinstance(spec.default, (int, float))
        )


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_transform_runs_on_a_batch_and_passes_gradients(name: str) -> None:
    tdef = TRANSFORMS[name]
    x = rand(2 * VIEWS, 3, 40, 40).requires_grad_()
    rng = streams(11, 12, views=VIEWS) if tdef.random else NoDraws([11, 12], "cpu", views=VIEWS)
    out = tdef.fn(x, default_args(name), rng)
    assert out.dim() == 4 and out.shape[:2] == (2 * VIEWS, 3)
    assert torch.isfinite(out).all()
    # The resizes flag must say whether the size can change (all test sizes differ from 40).
    assert (out.shape[-2:] != (40, 40)) == tdef.resizes
    # A random weight: a plain sum would give a zero gradient through "mean".
    (out * rand(*out.shape, seed=3)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(n for n, t in TRANSFORMS.items() if t.random))
def test_random_transforms_depend_on_the_seed(name: str) -> None:
    x = rand(VIEWS, 3, 40, 40)
    args = default_args(name)
    a = TRANSFORMS[name].fn(x, args, streams(1, views=VIEWS))
    b = TRANSFORMS[name].fn(x, args, streams(2, views=VIEWS))
    assert not torch.equal(a, b)
    assert torch.equal(a, TRANSFORMS[name].fn(x, args, streams(1, views=VIEWS)))


# --- per-image streams -----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(n for n, t in TRANSFORMS.items() if t.random))
def test_random_transform_views_do_not_depend_on_the_batch(name: str) -> None:
    # Image 2's views must come out the same whether image 1 shares the batch
    # or not: that is what makes a batched render equal to single renders.
    x = rand(2 * VIEWS, 3, 40, 40)
    args = default_args(name)
    together = TRANSFORMS[name].fn(x, args, streams(1, 2, views=VIEWS))
    alone = TRANSFORMS[name].fn(x[VIEWS:], args, streams(2, views=VIEWS))
    assert torch.equal(together[VIEWS:], alone)
    first = TRANSFORMS[name].fn(x[:VIEWS], args, streams(1, views=VIEWS))
    assert torch.equal(together[:VIEWS], first)


def test_a_chain_of_random_transforms_keeps_the_draw_order() -> None:
    # Several draws in a row from the same streams: each image's sequence of
    # draws must not interleave with the other image's.
    chain = ("random_rotate", "noise", "random_crop", "bwnoise")

    def run(x: torch.Tensor, rng: ImageStreams) -> torch.Tensor:
        for name in chain:
            x = TRANSFORMS[name].fn(x, default_args(name), rng)
        return x

    x = rand(2 * VIEWS, 3, 40, 40)
    together = run(x, streams(1, 2, views=VIEWS))
    alone = run(x[VIEWS:], streams(2, views=VIEWS))
    assert torch.equal(together[VIEWS:], alone)


def test_a_crops_gradient_lands_on_its_window_only() -> None:
    from clipig_gallery.renderer.language.ops.transforms import crop_views

    x = torch.rand(3, 2, 9, 8, requires_grad=True)
    left, top = torch.tensor([0, 3, 5]), torch.tensor([4, 0, 2])
    upstream = torch.rand(3, 2, 5, 3)
    (crop_views(x, left, top, 3, 5) * upstream).sum().backward()
    expected = torch.zeros_like(x)
    for i, (x0, y0) in enumerate(zip(left.tolist(), top.tolist(), strict=True)):
        expected[i, :, y0:y0 + 5, x0:x0 + 3] = upstream[i]
    assert torch.equal(x.grad, expected)
