"""The transforms CLIPig had beside the article's: values worked out by hand.

Each case below is computed on paper (or by torchvision / numpy, never by the
code under test) for a small image whose pixel values are their flat index,
so a wrong axis, a wrong sign or an off-by-one shows as a wrong number.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF

from clipig_gallery.renderer.engine.rng import ImageStreams
from clipig_gallery.renderer.language.ops.transforms import TRANSFORMS


def grid(h: int, w: int, channels: int = 1) -> torch.Tensor:
    """(1, channels, h, w), each channel's pixels numbered 0 .. h*w-1 row by row."""
    return torch.arange(h * w, dtype=torch.float32).view(1, 1, h, w).repeat(1, channels, 1, 1)


def run(name: str, x: torch.Tensor, rng: ImageStreams | None = None, **args) -> torch.Tensor:
    rng = rng if rng is not None else ImageStreams(list(range(x.shape[0])), "cpu")
    return TRANSFORMS[name].fn(x, args, rng)


class Fixed(ImageStreams):
    """Streams that hand out given uniform values, one row per view."""

    def __init__(self, rows):
        super().__init__([0], "cpu", views=len(rows))
        self.rows = torch.tensor(rows, dtype=torch.float32)

    def uniform(self, *shape):
        assert self.rows.shape[1:] == shape
        return self.rows


# --- crop --------------------------------------------------------------------------------


def test_crop_in_pixels():
    out = run("crop", grid(4, 5), xywh=(1.0, 2.0, 3.0, 2.0))
    assert out[0, 0].tolist() == [[11, 12, 13], [16, 17, 18]]


def test_crop_in_fractions_of_the_size():
    # x 0.2 of 5 = 1, y 0.5 of 4 = 2, width 0.6 of 5 = 3.0000000000000004 -> 3, height 2
    out = run("crop", grid(4, 5), xywh=(0.2, 0.5, 0.6, 0.5))
    assert out[0, 0].tolist() == [[11, 12, 13], [16, 17, 18]]


def test_crop_one_means_one_pixel_not_the_whole_size():
    out = run("crop", grid(4, 5), xywh=(1.0, 1.0, 1.0, 1.0))
    assert out[0, 0].tolist() == [[6]]


def test_crop_truncates_the_double_product():
    # 0.29 * 100 is 28.999999999999996 in double: pixel 28 (float32 would round to 29)
    out = run("crop", grid(1, 100), xywh=(0.29, 0.0, 2.0, 1.0))
    assert out[0, 0].tolist() == [[28, 29]]


def test_crop_outside_the_image_is_zero():
    out = run("crop", grid(2, 5) + 1, xywh=(3.0, 1.0, 4.0, 2.0))
    assert out[0, 0].tolist() == [[9, 10, 0, 0], [0, 0, 0, 0]]


def test_crop_without_pixels_is_refused():
    # 0.1 of 4 pixels truncates to none (a config names the op in its key, see test_config)
    with pytest.raises(ValueError, match="the window 0x2 has no pixels"):
        run("crop", grid(4, 4), xywh=(0.0, 0.0, 0.1, 2.0))


# --- repeat ------------------------------------------------------------------------------


def test_repeat_tiles_right_and_down():
    out = run("repeat", grid(2, 3), count=(2, 3))
    assert out.shape[-2:] == (6, 6)
    assert out[0, 0].tolist() == [[r % 2 * 3 + c % 3 for c in range(6)] for r in range(6)]


# --- shift and random_shift --------------------------------------------------------------


def test_shift_moves_right_and_down_and_wraps():
    out = run("shift", grid(3, 4), offset=(1.0, 2.0))
    expected = [[((r - 2) % 3) * 4 + (c - 1) % 4 for c in range(4)] for r in range(3)]
    assert out[0, 0].tolist() == expected


def test_shift_fractions_truncate_towards_zero_then_wrap():
    # x: 0.5 * 4 = 2; y: -0.5 * 3 = -1.5 -> -1 -> 2 (mod 3)
    out = run("shift", grid(3, 4), offset=(0.5, -0.5))
    assert torch.equal(out, run("shift", grid(3, 4), offset=(2.0, 2.0)))


def test_random_shift_fixed_range_equals_shift():
    x = torch.rand(2, 3, 5, 6)
    rng = ImageStreams([4, 5], "cpu")
    assert torch.equal(run("random_shift", x, rng, offset=(1.0, 1.0, 3.0, 3.0)),
                       run("shift", x, offset=(1.0, 3.0)))


def test_random_shift_draws_below_one_are_fractions():
    # Range -3 .. 3 pixels on a 10 x 10 image: u = 0.55 gives 0.3 (less than 1,
    # so 3 pixels as a fraction), u = 0.9 gives 2.4, so 2 pixels.
    x = grid(10, 10)
    out = run("random_shift", x.expand(2, 1, 10, 10), Fixed([[0.55, 0.9], [0.9, 0.55]]),
              offset=(-3.0, 3.0, -3.0, 3.0))
    assert torch.equal(out[0:1], run("shift", x, offset=(3.0, 2.0)))
    assert torch.equal(out[1:2], run("shift", x, offset=(2.0, 3.0)))


def test_random_shift_two_numbers_are_the_range_of_both_axes():
    x = grid(10, 10)
    rows = [[0.25, 0.75]]
    two = run("random_shift", x, Fixed(rows), offset=(0.0, 8.0, 0.0, 8.0))
    assert torch.equal(two, run("shift", x, offset=(2.0, 6.0)))


# --- random_translate and random_scale ---------------------------------------------------


def test_random_translate_moves_by_whole_pixels_with_zeros():
    # offset 0.5 of width 8: tx uniform in [-4, 4]; u = 0.75 gives 2
    x = grid(2, 8) + 1
    out = run("random_translate", x, Fixed([[0.75, 0.5]]), offset=(0.5, 0.5))
    assert out[0, 0].tolist() == [[0, 0, 1, 2, 3, 4, 5, 6], [0, 0, 9, 10, 11, 12, 13, 14]]


def test_random_translate_rounds_half_to_even():
    x = grid(4, 8) + 1
    half = run("random_translate", x, Fixed([[0.5625, 0.5]]), offset=(0.5, 0.0))  # 0.5 -> 0
    assert torch.equal(half, x)
    one_half = run("random_translate", x, Fixed([[0.6875, 0.5]]), offset=(0.5, 0.0))  # 1.5 -> 2
    assert torch.equal(one_half, TF.affine(x, 0.0, [2, 0], 1.0, [0.0]))


@pytest.mark.parametrize("tx, ty", [(3, -1), (-2, 2), (0, 1)])
def test_translate_matches_torchvision_affine(tx, ty):
    from clipig_gallery.renderer.language.ops.transforms import affine_views

    x = torch.rand(1, 3, 7, 9)
    ours = affine_views(x, torch.ones(1), torch.tensor([float(tx)]), torch.tensor([float(ty)]))
    assert torch.equal(ours, TF.affine(x, 0.0, [tx, ty], 1.0, [0.0]))


def test_scale_two_by_hand():
    # 4 pixels, centre 1.5: output j reads (j - 1.5) / 2 + 1.5 = 0.75 1.25 1.75 2.25
    out = run("random_scale", grid(4, 4), Fixed([[0.0]]), scale=(2.0, 2.0))
    rows = [1, 1, 2, 2]
    assert out[0, 0].tolist() == [[r * 4 + c for c in rows] for r in rows]


def test_scale_half_by_hand():
    # output j reads (j - 1.5) * 2 + 1.5 = -1.5 0.5 2.5 4.5: outside, 0 (half to even), 2, outside
    out = run("random_scale", grid(1, 4) + 1, Fixed([[0.0]]), scale=(0.5, 0.5))
    assert out[0, 0, 0].tolist() == [0, 1, 3, 0]


@pytest.mark.parametrize("scale", [0.7, 1.0, 1.3, 2.5])
def test_scale_matches_torchvision_affine(scale):
    from clipig_gallery.renderer.language.ops.transforms import affine_views

    x = torch.rand(1, 3, 9, 9)
    ours = affine_views(x, torch.tensor([scale]), torch.zeros(1), torch.zeros(1))
    assert torch.equal(ours, TF.affine(x, 0.0, [0, 0], scale, [0.0]))


def test_random_scale_draws_uniformly_between_min_and_max():
    x = torch.rand(1, 3, 9, 9)
    out = run("random_scale", x, Fixed([[0.25]]), scale=(1.0, 3.0))  # 1 + 2 * 0.25
    assert torch.equal(out, TF.affine(x, 0.0, [0, 0], 1.5, [0.0]))


# --- border ------------------------------------------------------------------------------


def test_border_paints_columns_and_rows():
    out = run("border", grid(4, 5), size=(2, 1), color=(-1.0, -1.0, -1.0))
    expected = [[-1.0] * 5, [-1, -1, 7, -1, -1], [-1, -1, 12, -1, -1], [-1.0] * 5]
    assert out[0, 0].tolist() == expected


def test_border_colour_per_channel_and_size_zero_paints_nothing():
    x = torch.zeros(1, 3, 3, 3)
    out = run("border", x, size=(1, 1), color=(0.1, 0.2, 0.3))
    assert out[0, :, 0, 0].tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert out[0, :, 1, 1].tolist() == [0, 0, 0]
    assert torch.equal(run("border", x, size=(0, 0), color=(1.0, 1.0, 1.0)), x)


def test_border_keeps_no_gradient_on_the_frame():
    x = torch.rand(1, 3, 4, 4, requires_grad=True)
    run("border", x, size=(1, 1), color=(0.0, 0.0, 0.0)).sum().backward()
    assert x.grad[0, 0].tolist() == [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]


# --- edge --------------------------------------------------------------------------------


def test_edge_of_an_impulse_by_hand():
    # 3-tap kernel, sigma 0.8: weights e^(-0.78125) : 1 : e^(-0.78125); the centre
    # keeps 1 - (1 / (1 + 2 e^-0.78125))^2 of the impulse, its neighbours go negative -> 0.
    x = torch.zeros(1, 3, 5, 5)
    x[0, :, 2, 2] = 1
    out = run("edge", x, kernel_size=(3, 3), sigma=None, amount=(1.0, 0.5, 3.0))
    centre = 1 - (1 / (1 + 2 * math.exp(-0.78125))) ** 2
    assert out[0, :, 2, 2].tolist() == pytest.approx([centre, 0.5 * centre, 1.0], abs=1e-6)
    out[0, :, 2, 2] = 0
    assert torch.equal(out, torch.zeros_like(out))


def test_edge_of_a_flat_image_is_zero():
    assert torch.equal(run("edge", torch.full((1, 3, 6, 6), 0.7), kernel_size=(3, 3),
                           sigma=None, amount=(1.0, 1.0, 1.0)), torch.zeros(1, 3, 6, 6))


def test_edge_refuses_an_even_kernel():
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        run("edge", torch.rand(1, 3, 6, 6), kernel_size=(4, 3), sigma=None,
            amount=(1.0, 1.0, 1.0))


# --- rnoise and fnoise ---------------------------------------------------------------------


def test_rnoise_at_one_pixel_is_one_value_per_channel():
    x = torch.zeros(1, 3, 4, 6)
    out = run("rnoise", x, ImageStreams([7], "cpu"), std=(1.0, 2.0, 3.0), resolution=(1, 1))
    draws = ImageStreams([7], "cpu").normal(3, 1, 1).view(3)
    for c, std in enumerate((1.0, 2.0, 3.0)):
        assert torch.allclose(out[0, c], torch.full((4, 6), float(draws[c]) * std))


def test_rnoise_resolution_is_width_then_height():
    x = torch.zeros(1, 3, 8, 8)
    out = run("rnoise", x, ImageStreams([7], "cpu"), std=(1.0,) * 3, resolution=(8, 1))
    # one row of noise stretched down: every row the same, columns differ
    assert torch.equal(out[0, :, 0], out[0, :, 5])
    assert not torch.equal(out[0, :, :, 0], out[0, :, :, 5])


def test_fnoise_with_zero_std_is_the_image():
    x = torch.rand(2, 3, 5, 6)
    out = run("fnoise", x, std=(0.0, 0.0, 0.0))
    assert torch.allclose(out, x, atol=1e-6)


@pytest.mark.parametrize("h, w", [(4, 6), (3, 3)])
def test_fnoise_adds_the_inverse_transform_of_its_draws(h, w):
    # An independent computation with numpy's FFT of the flattened channels.
    x = torch.rand(1, 3, h, w)
    std = (0.1, 0.2, 0.3)
    out = run("fnoise", x, ImageStreams([3], "cpu"), std=std)
    rng = ImageStreams([3], "cpu")
    k = h * w // 2 + 1
    real, imag = rng.normal(3, k)[0].double().numpy(), rng.normal(3, k)[0].double().numpy()
    flat = x[0].reshape(3, h * w).double().numpy()
    scale = 15 * np.array(std).reshape(3, 1)
    space = np.fft.rfft(flat) + scale * (real + 1j * imag)
    expected = np.fft.irfft(space, n=h * w).reshape(3, h, w)
    assert out.shape == x.shape
    assert np.allclose(out[0].numpy(), expected, atol=1e-4)
