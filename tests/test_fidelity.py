"""Small numeric details that must match the 2021 renderer's arithmetic."""

from __future__ import annotations

import pytest
import torch

from clipig_gallery.renderer.engine.rng import ImageStreams
from clipig_gallery.renderer.language.config import ConfigError, is_active, parse_config
from clipig_gallery.renderer.language.expr import time_variables
from clipig_gallery.renderer.language.ops.transforms import TRANSFORMS, _centre_pixels

CONFIG = """
epochs: {epochs}
targets:
  - batch_size: 1
    start: {start}
    features:
      - text: a cat
"""

# Percentages where int(n) * 0.01 (the reference) is one ulp above n / 100.
ULP_PERCENTAGES = (35, 41, 47, 57, 69, 70, 82, 83, 94, 95)


def first_active_epoch(start: str, epochs: int) -> int:
    config = parse_config(CONFIG.format(epochs=epochs, start=start))
    (target,) = config.targets
    return next(
        e for e in range(epochs)
        if is_active(target.start, target.end, e, time_variables(e, epochs)["t"])
    )


def reference_first_epoch(percent: int, epochs: int) -> int:
    """The 2021 renderer: start = int(n) * 0.01, active unless start > epoch / (epochs - 1)."""
    start = int(percent) * 0.01
    return next(e for e in range(epochs) if not start > e / max(1, epochs - 1))


def test_seventy_percent_of_eleven_epochs_starts_at_epoch_eight():
    # t = 7 / 10 == 0.7 exactly at epoch 7; 70 * 0.01 is 0.7000000000000001.
    assert 7 / 10 == 70 / 100 and 70 * 0.01 > 7 / 10
    assert reference_first_epoch(70, 11) == 8
    assert first_active_epoch("70%", 11) == 8


def boundary_cases():
    """(percent, epochs) where some epoch's t equals n / 100 exactly but not int(n) * 0.01."""
    cases = []
    for n in ULP_PERCENTAGES:
        for epochs in range(2, 120):
            if any(e / (epochs - 1) == n / 100 != n * 0.01 for e in range(epochs)):
                cases.append((n, epochs))
                break
    return cases


@pytest.mark.parametrize(("percent", "epochs"), boundary_cases())
def test_percent_start_matches_the_reference_on_exact_boundaries(percent, epochs):
    assert first_active_epoch(f"{percent}%", epochs) == reference_first_epoch(percent, epochs)


def test_every_ulp_percentage_has_a_boundary_case():
    assert [n for n, _ in boundary_cases()] == list(ULP_PERCENTAGES)


@pytest.mark.parametrize("percent", range(0, 101))
def test_integer_percentages_are_int_times_a_hundredth(percent):
    config = parse_config(CONFIG.format(epochs=300, start=f"'{percent}%'"))
    assert config.targets[0].start.value == percent * 0.01


def test_a_fractional_percentage_is_float_times_a_hundredth():
    config = parse_config(CONFIG.format(epochs=300, start="12.5%"))
    assert config.targets[0].start.value == 12.5 * 0.01
    assert not config.targets[0].start.is_epoch


@pytest.mark.parametrize("start", ["-5%", "nan%", "inf%", "x%"])
def test_a_bad_percentage_is_refused(start):
    with pytest.raises(ConfigError, match="start"):
        parse_config(CONFIG.format(epochs=300, start=f"'{start}'"))


# --- rotation centre ---------------------------------------------------------------


def test_centre_pixel_is_truncated_in_double_precision():
    # 0.29 * 100: 29.0 in float32, 28.999999999999996 in double -> int() gives 28.
    assert int(0.29 * 100) == 28
    assert torch.floor(torch.tensor(0.29) * 100).item() == 29  # the float32 trap
    assert _centre_pixels(torch.tensor([0.29], dtype=torch.float64), 100).item() == 28
    assert _centre_pixels(torch.tensor([0.29]), 100).item() == 28
    assert _centre_pixels(torch.tensor([0.57], dtype=torch.float64), 100).item() == int(0.57 * 100)


def _half_turn_fixed_point(out: torch.Tensor, image: torch.Tensor) -> tuple[float, float]:
    """(y, x) of the fixed point p of a half turn: out[y, x] = image[2p - y, 2p - x]."""
    y, x = 10, 20
    (sy,), (sx,) = torch.nonzero(image[0, 0] == out[0, 0, y, x], as_tuple=True)
    return (sy.item() + y) / 2, (sx.item() + x) / 2


def test_rotate_about_0_29_of_100_pixels_turns_about_pixel_28():
    image = torch.arange(100 * 100, dtype=torch.float32).view(1, 1, 100, 100)
    out = TRANSFORMS["rotate"].fn(image, {"degree": (180.0,), "center": (0.29, 0.29)}, None)
    # Centre pixel 28; the fixed point of the rotation lies at index 28 - 0.5.
    assert _half_turn_fixed_point(out, image) == (27.5, 27.5)
    assert out[0, 0, 10, 20] == image[0, 0, 45, 35]


def test_random_rotate_about_0_29_of_100_pixels_turns_about_pixel_28():
    image = torch.arange(100 * 100, dtype=torch.float32).view(1, 1, 100, 100)
    rng = ImageStreams([1], torch.device("cpu"))
    out = TRANSFORMS["random_rotate"].fn(
        image, {"degree": (180.0, 180.0), "center": (0.29, 0.29)}, rng
    )
    assert out[0, 0, 10, 20] == image[0, 0, 45, 35]
