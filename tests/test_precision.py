"""fp16 beside fp32 and bf16, and per-step allocations that are made only once."""

from __future__ import annotations

import pytest
import torch

import clipig_gallery.renderer.language.ops.constraints as C
from clipig_gallery.renderer.engine.optimise import BatchRender, render
from clipig_gallery.renderer.engine.precision import PRECISIONS, autocast_for
from clipig_gallery.renderer.language.config import plan_epoch
from clipig_gallery.renderer.runs.configs import method_config


def test_precisions_are_listed_for_the_cli():
    assert PRECISIONS == ("fp32", "bf16", "fp16")


def test_an_unknown_precision_is_refused_naming_the_choices(tiny_clip):
    with pytest.raises(ValueError, match="fp32, bf16, fp16.*'fp8'"):
        BatchRender(method_config(1, epochs=2), tiny_clip, [1], ["a cat"], precision="fp8")


def test_fp16_autocasts_clip_on_the_cpu(tiny_clip):
    x = torch.rand(2, 3, 64, 64)
    with autocast_for(torch.device("cpu"), "fp16"):
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.float16
        hidden = tiny_clip.model.visual.conv1(x)
    assert hidden.dtype == torch.float16
    with autocast_for(torch.device("cpu"), "fp32"):
        assert not torch.is_autocast_enabled("cpu")


@pytest.mark.parametrize("method", [1, 2])
def test_fp16_renders_finite_pixels(method, tiny_clip):
    config = method_config(method, epochs=6)
    result = render(config, tiny_clip, [5, 6], ["a cat", "a dog"], precision="fp16")
    assert result.precision == "fp16"
    assert torch.isfinite(result.pixels).all() and torch.isfinite(result.similarity).all()
    start = BatchRender(config, tiny_clip, [5, 6], ["a cat", "a dog"]).start().pixels
    assert not torch.equal(result.pixels, start.detach())


def test_fp16_gradients_follow_fp32(tiny_clip):
    """No loss scaling: the pixels' gradient under fp16 is fp32's, no underflow to zero."""
    config = method_config(2, epochs=300)
    plan = plan_epoch(config, 299)
    grads = {}
    for precision in ("fp32", "fp16"):
        job = BatchRender(config, tiny_clip, [3], ["a cat"], precision=precision)
        pixels = job._initial_pixels(plan.width, plan.height).requires_grad_(True)
        _, _, parts = job._loss(pixels, plan)
        parts["feature"].sum().backward()
        grads[precision] = pixels.grad.flatten()
    g16, g32 = grads["fp16"], grads["fp32"]
    assert torch.isfinite(g16).all()
    assert (g16 == 0).sum() <= (g32 == 0).sum() + g32.numel() // 1000
    assert torch.nn.functional.cosine_similarity(g16, g32, dim=0) > 0.99


# --- per-channel thresholds ---------------------------------------------------------


def test_differing_thresholds_are_built_once(monkeypatch):
    made = []
    real = torch.tensor

    def counting(*args, **kwargs):
        made.append(args)
        return real(*args, **kwargs)

    C._threshold_tensor.cache_clear()
    views = torch.rand(4, 3, 8, 8)
    args = {"above": (0.1, 0.2, 0.3), "below": None, "loss": "l2"}
    monkeypatch.setattr(C.torch, "tensor", counting)
    first = C.CONSTRAINTS["mean"].fn(views, args)
    second = C.CONSTRAINTS["mean"].fn(views, args)
    assert len(made) == 1 and torch.equal(first, second)
    a = C.threshold_of((0.1, 0.2, 0.3), views.device, views.dtype)
    b = C.threshold_of((0.1, 0.2, 0.3), views.device, views.dtype)
    assert a is b
    assert C.threshold_of((0.2, 0.2, 0.2), views.device, views.dtype) == 0.2


def test_cached_thresholds_give_the_same_loss_as_fresh_ones():
    views = torch.rand(4, 3, 8, 8)
    args = {"above": None, "below": (0.1, 0.2, 0.3), "loss": "l2"}
    expected = 100 * ((views.mean(dim=(2, 3)) - torch.tensor([0.1, 0.2, 0.3])) ** 2).mean(1)
    assert torch.allclose(C.CONSTRAINTS["mean"].fn(views, args), expected)
