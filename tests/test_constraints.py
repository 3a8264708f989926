"""Tests for renderer.language.ops.constraints: per-view losses beside CLIP's feature loss.

The expected values are worked out by hand from the reference tool's
definitions, including its habit of charging the distance to a threshold
whichever side of it the value lies.
"""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms.functional as TF

from clipig_gallery.renderer.language.ops.constraints import (
    COMMON_PARAMS,
    CONSTRAINTS,
    saturation_of,
)
from clipig_gallery.renderer.language.params import ParamSpec


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def loss(name: str, views: torch.Tensor, **args) -> torch.Tensor:
    full = {"loss": "l2"}
    for pname, spec in CONSTRAINTS[name].params.items():
        if not spec.required:
            # As the config parser gives a default: one number copied to every entry.
            default = spec.default
            if default is not None and spec.kind is not str:
                default = (spec.kind(default),) * spec.length
            full[pname] = default
    full.update(args)
    return CONSTRAINTS[name].fn(views, full)


def constant(value: float, m: int = 1, h: int = 4, w: int = 4) -> torch.Tensor:
    return torch.full((m, 3, h, w), value)


# --- saturation ----------------------------------------------------------------------


# One view of two pixels: (0.0, 0.3, 0.6) and a grey (0.5, 0.5, 0.5).
TINY = torch.tensor([[0.0, 0.5], [0.3, 0.5], [0.6, 0.5]]).view(1, 3, 1, 2)


def test_saturation_value_by_hand() -> None:
    # Pixel 1's grey is 0.3, so its distances are 0.3, 0, 0.3; pixel 2 is grey.
    # Averaged over the two pixels: 0.15, 0, 0.15.
    assert torch.allclose(saturation_of(TINY), torch.tensor([[0.15, 0.0, 0.15]]))


def test_saturation_below_by_hand() -> None:
    out = loss("saturation", TINY, below=(0.005,) * 3)
    expected = 100 * (0.145**2 + 0.005**2 + 0.145**2) / 3  # = 1.4025
    assert out.shape == (1,)
    assert out.item() == pytest.approx(expected, rel=1e-5)


def test_saturation_below_also_pulls_up_a_grey_view() -> None:
    # The reference charges the squared distance to the threshold on both
    # sides, so a fully grey view still pays 100 * 0.005^2.
    out = loss("saturation", constant(0.4), below=(0.005,) * 3)
    assert out.item() == pytest.approx(100 * 0.005**2, rel=1e-5)


def test_saturation_above() -> None:
    out = loss("saturation", TINY, above=(0.1, 0.1, 0.1))
    expected = 100 * (0.05**2 + 0.1**2 + 0.05**2) / 3
    assert out.item() == pytest.approx(expected, rel=1e-5)


# --- mean and std ------------------------------------------------------------------


def test_band_costs_both_thresholds() -> None:
    # 0.5 sits 0.1 from each edge of [0.4, 0.6]; both are charged: 1 + 1.
    out = loss("mean", constant(0.5), above=(0.4,) * 3, below=(0.6,) * 3)
    assert out.item() == pytest.approx(2.0, rel=1e-5)


def test_no_thresholds_cost_nothing() -> None:
    for name in ("mean", "std", "saturation"):
        out = loss(name, rand(2, 3, 5, 5))
        assert torch.equal(out, torch.zeros(2)), name


def test_mean_per_channel() -> None:
    views = torch.stack((torch.full((3, 2), 0.2), torch.full((3, 2), 0.5), torch.full((3, 2), 0.9)))
    out = loss("mean", views.unsqueeze(0), above=(0.5, 0.5, 0.5))
    assert out.item() == pytest.approx(100 * (0.3**2 + 0 + 0.4**2) / 3, rel=1e-5)


def test_std_is_unbiased() -> None:
    # Each channel holds 0 and 1: unbiased std sqrt(1/2), biased 1/2.
    views = torch.tensor([0.0, 1.0]).view(1, 1, 1, 2).expand(1, 3, 1, 2)
    out = loss("std", views, above=(0.0, 0.0, 0.0))
    assert out.item() == pytest.approx(100 * 0.5, rel=1e-5)  # not 25, the biased value
    out = loss("std", views, below=(0.5**0.5,) * 3)
    assert out.item() == pytest.approx(0.0, abs=1e-8)


def test_l1_uses_absolute_distance() -> None:
    views = constant(0.5)
    assert loss("mean", views, above=(0.4,) * 3, loss="l1").item() == pytest.approx(10.0)
    assert loss("mean", views, above=(0.4,) * 3, loss="mae").item() == pytest.approx(10.0)
    assert loss("mean", views, above=(0.4,) * 3, loss="l2").item() == pytest.approx(1.0)
    assert loss("mean", views, above=(0.4,) * 3, loss="mse").item() == pytest.approx(1.0)
    # Inside a band l1 is flat: the two distances always add up to its width.
    for value in (0.45, 0.5, 0.58):
        band = loss("mean", constant(value), above=(0.4,) * 3, below=(0.6,) * 3, loss="l1")
        assert band.item() == pytest.approx(20.0, rel=1e-5)
    out = loss("saturation", TINY, below=(0.005,) * 3, loss="l1")
    assert out.item() == pytest.approx(100 * (0.145 + 0.005 + 0.145) / 3, rel=1e-5)


# --- blur ---------------------------------------------------------------------------------


def test_blur_is_mse_against_the_blurred_view() -> None:
    views = rand(3, 3, 16, 16)
    out = loss("blur", views, kernel_size=(3, 3), sigma=None)
    blurred = TF.gaussian_blur(views, [3, 3])
    expected = 100 * ((views - blurred) ** 2).mean(dim=(1, 2, 3))
    assert out.shape == (3,)
    assert torch.allclose(out, expected, rtol=1e-4, atol=1e-7)
    l1 = loss("blur", views, kernel_size=(5, 5), sigma=(1.2, 1.2), loss="l1")
    blurred = TF.gaussian_blur(views, [5, 5], [1.2, 1.2])
    assert torch.allclose(l1, 100 * (views - blurred).abs().mean(dim=(1, 2, 3)), rtol=1e-4)


def test_blur_of_a_constant_view_is_zero() -> None:
    out = loss("blur", constant(0.7, m=2), kernel_size=(5, 5), sigma=None)
    assert torch.allclose(out, torch.zeros(2), atol=1e-10)


def test_blur_gradient_flows() -> None:
    views = rand(2, 3, 12, 12).requires_grad_()
    loss("blur", views, kernel_size=(3, 3), sigma=None).sum().backward()
    assert views.grad is not None and views.grad.abs().sum() > 0


# --- CLIPig's other constraints ------------------------------------------------------


def test_border_charges_the_frame_only():
    # 8 of 9 pixels are frame: 0.5 away from black
    views = constant(0.5, h=3, w=3)
    assert loss("border", views, size=(1, 1), color=(0.0,) * 3).item() == \
        pytest.approx(100 * 0.25 * 8 / 9)
    assert loss("border", views, size=(1, 1), color=(0.0,) * 3, loss="l1").item() == \
        pytest.approx(100 * 0.5 * 8 / 9)


# Channel 0: 0 .2 .4 1 (mean .4: above it 1, below it 0 and .2, so 1 - .1 = .9);
# channel 1 flat (0); channel 2: 0 1 0 1 (1 - 0 = 1).
CONTRASTY = torch.tensor([[0.0, 0.2, 0.4, 1.0], [0.3] * 4, [0.0, 1.0, 0.0, 1.0]]).view(1, 3, 1, 4)


def test_contrast_value_by_hand():
    from clipig_gallery.renderer.language.ops.constraints import contrast_of

    assert contrast_of(CONTRASTY)[0].tolist() == pytest.approx([0.9, 0.0, 1.0])


def test_contrast_has_no_factor_of_100():
    # above 1: distances .1, 1, 0 -> (0.01 + 1) / 3, times 1 (not 100)
    assert loss("contrast", CONTRASTY, above=(1.0,) * 3).item() == pytest.approx(1.01 / 3)


def test_edge_mean_of_an_impulse_by_hand():
    import math

    # 3-tap kernel, sigma 0.8: side weight a, centre weight b (2a + b = 1). The
    # blurred impulse is the kernel's outer product: |x - blur| is 1 - b^2 at
    # the centre, ab at 4 neighbours, a^2 at 4 corners; mean over 25 pixels.
    side = math.exp(-0.5 / 0.64)
    a, b = side / (1 + 2 * side), 1 / (1 + 2 * side)
    views = torch.zeros(1, 3, 5, 5)
    views[0, :, 2, 2] = 1
    value = (1 - b * b + 4 * a * b + 4 * a * a) / 25
    out = loss("edge_mean", views, above=(0.0,) * 3, kernel_size=(3, 3), sigma=None)
    assert out.item() == pytest.approx(100 * value ** 2, rel=1e-5)


def test_normalize_by_hand():
    # .2 .4 .6 stretched to 0 .5 1: differences .2 -.1 -.4, squared mean .07, x 10
    views = torch.tensor([0.2, 0.4, 0.6]).view(1, 1, 1, 3).repeat(1, 3, 1, 1)
    assert loss("normalize", views).item() == pytest.approx(0.7)
    # a flat view cannot be stretched: it is compared with the desired minimum
    assert loss("normalize", constant(0.5)).item() == pytest.approx(10 * 0.25)


# --- registry and batching -------------------------------------------------------------


# Both thresholds sit below the random views' values (means near 0.5, stds
# near 0.29): with l1, a value inside a band has zero gradient, which would
# hide a broken graph in the gradient check.
TEST_ARGS: dict[str, dict[str, object]] = {
    "saturation": {"below": (0.005,) * 3},
    "mean": {"above": (0.1, 0.2, 0.3), "below": (0.3, 0.35, 0.4)},
    "std": {"above": (0.05, 0.1, 0.15), "below": (0.15, 0.2, 0.25)},
    "blur": {"kernel_size": (3, 3), "sigma": None},
    "border": {"size": (2, 1), "color": (0.1, 0.2, 0.3)},
    "contrast": {"above": (0.7,) * 3},
    "edge_mean": {"above": (0.5,) * 3, "kernel_size": (3, 3), "sigma": None},
    "normalize": {"min": (0.2, 0.1, 0.0), "max": (0.8, 0.9, 1.0)},
}


def test_every_constraint_has_test_arguments() -> None:
    # A new constraint must be added to TEST_ARGS so the checks below cover it.
    assert set(TEST_ARGS) == set(CONSTRAINTS)
    # The names a config may use, written out (not read from the registry):
    # a constraint dropped or renamed fails here, and the list must be sorted.
    assert CONSTRAINTS.names() == [
        "blur", "border", "contrast", "edge_mean", "mean", "normalize", "saturation", "std",
    ]


def test_common_params_are_param_specs() -> None:
    assert all(isinstance(spec, ParamSpec) for spec in COMMON_PARAMS.values())
    assert COMMON_PARAMS["loss"].default == "l2"
    assert set(COMMON_PARAMS["loss"].choices) == {"l2", "mse", "l1", "mae"}


def test_threshold_constraints_declare_their_rule() -> None:
    # The config parser reads "needs above or below" from here.
    rules = {name: c.needs_one_of for name, c in CONSTRAINTS.items()}
    both = ("above", "below")
    assert rules == {"saturation": both, "mean": both, "std": both, "blur": (),
                     "contrast": both, "edge_mean": both, "border": (), "normalize": ()}
    assert CONSTRAINTS["mean"].broken_rule({"above": None, "below": None}) == \
        "needs 'above' or 'below'"
    assert CONSTRAINTS["mean"].broken_rule({"above": (0.1,) * 3, "below": None}) is None
    assert CONSTRAINTS["blur"].broken_rule({}) is None


@pytest.mark.parametrize("name", sorted(CONSTRAINTS))
def test_constraint_declaration(name: str) -> None:
    cdef = CONSTRAINTS[name]
    assert cdef.name == name
    assert cdef.doc, f"{name} has no docstring"
    assert "\n" not in cdef.doc
    assert all(isinstance(spec, ParamSpec) for spec in cdef.params.values())


@pytest.mark.parametrize("name", sorted(CONSTRAINTS))
@pytest.mark.parametrize("kind", ["l2", "l1"])
def test_constraint_is_per_view_and_differentiable(name: str, kind: str) -> None:
    views = rand(5, 3, 20, 20).requires_grad_()
    out = loss(name, views, loss=kind, **TEST_ARGS[name])
    assert out.shape == (5,)
    assert torch.isfinite(out).all() and (out >= 0).all()
    # Each view's loss depends on that view only: the same as computed alone.
    for i in range(5):
        single = loss(name, views[i : i + 1], loss=kind, **TEST_ARGS[name])
        assert torch.allclose(out[i : i + 1], single, rtol=1e-5)
    out.sum().backward()
    assert views.grad is not None and torch.isfinite(views.grad).all()
    assert views.grad.abs().sum() > 0
