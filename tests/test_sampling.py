"""Rotations and crops as samplings (renderer.language.ops.transforms.Sampling).

The engine gathers a target's views straight from the image they share when
its first random transforms only move pixels (both methods' rotation, method
2's crop). These tests hold that path to the one it replaced, bit for bit on
the same machine: ``grid_sample``'s nearest mode for a rotation, a copy of the
image per view followed by each transform in turn for a run of them, and the
same gradients.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from clipig_gallery.renderer.engine.optimise import BatchRender
from clipig_gallery.renderer.engine.rng import ImageStreams
from clipig_gallery.renderer.language.config import parse_config, plan_epoch
from clipig_gallery.renderer.language.ops.transforms import (
    TRANSFORMS,
    Sampling,
    rotate_views,
    rotation,
    window,
)


def grid_sample_rotation(x, degrees, centre_x, centre_y):
    """The rotation as it was computed before samplings: a grid for ``grid_sample``."""
    m, _, h, w = x.shape
    theta = degrees.to(torch.float32) * (math.pi / 180.0)
    cos, sin = torch.cos(theta).view(m, 1, 1), torch.sin(theta).view(m, 1, 1)
    fx = (centre_x.to(torch.float32) - 0.5).view(m, 1, 1)
    fy = (centre_y.to(torch.float32) - 0.5).view(m, 1, 1)
    py = torch.arange(h, dtype=torch.float32).view(1, h, 1)
    px = torch.arange(w, dtype=torch.float32).view(1, 1, w)
    dx, dy = px - fx, py - fy
    sx = cos * dx - sin * dy + fx
    sy = sin * dx + cos * dy + fy
    grid = torch.stack(((2 * sx + 1) / w - 1, (2 * sy + 1) / h - 1), dim=-1)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(("h", "w"), [(32, 32), (48, 40), (96, 96), (288, 288), (17, 53)])
def test_rotation_is_grid_samples_nearest_bit_for_bit(h, w):
    m = 40 if h < 200 else 6
    x = torch.rand(m, 3, h, w, generator=gen(h))
    degrees = torch.rand(m, generator=gen(1)) * 360 - 180
    centre = torch.trunc(torch.rand(m, 2, generator=gen(2)).double() * torch.tensor([w, h]))
    ours = rotate_views(x, degrees, centre[:, 0], centre[:, 1])
    assert torch.equal(ours, grid_sample_rotation(x, degrees, centre[:, 0], centre[:, 1]))


def test_rotation_gradient_is_grid_samples():
    x = torch.rand(5, 3, 40, 40, generator=gen(3))
    degrees, centre = torch.tensor([-20.0, 0.0, 13.0, 90.0, 33.3]), torch.full((5,), 17.0)
    upstream = torch.randn(5, 3, 40, 40, generator=gen(4))
    grads = []
    for fn in (rotate_views, grid_sample_rotation):
        xi = x.clone().requires_grad_(True)
        (fn(xi, degrees, centre, centre) * upstream).sum().backward()
        grads.append(xi.grad)
    assert torch.equal(grads[0], grads[1])


def test_a_point_outside_reads_zero():
    x = torch.ones(1, 1, 4, 4)
    out = rotate_views(x, torch.tensor([45.0]), torch.tensor([0.0]), torch.tensor([0.0]))
    assert out.min() == 0 and out.max() == 1
    far = Sampling(torch.full((1, 2, 2), 16), 16)  # every point outside
    assert torch.equal(far.apply(x), torch.zeros(1, 1, 2, 2))


def test_then_is_one_after_the_other():
    x = torch.rand(6, 3, 30, 30, generator=gen(5))
    turn = rotation(30, 30, torch.linspace(-40, 40, 6), torch.full((6,), 11.0),
                    torch.full((6,), 19.0))
    cut = window(30, 30, torch.arange(6), torch.arange(6).flip(0), 20, 22)
    both = turn.then(cut)
    assert both.size == (22, 20)
    assert torch.equal(both.apply(x), cut.apply(turn.apply(x)))


def test_views_gathered_from_a_shared_source_are_copies_of_it_transformed():
    """B sources, K views each: the same as K copies of each source, each sampled."""
    sources = torch.rand(2, 3, 24, 24, generator=gen(6), requires_grad=True)
    k = 4
    turn = rotation(24, 24, torch.linspace(-30, 30, 2 * k), torch.full((2 * k,), 12.0),
                    torch.full((2 * k,), 5.0))
    upstream = torch.randn(2 * k, 3, 24, 24, generator=gen(7))
    shared = turn.apply(sources)
    (shared * upstream).sum().backward()
    grad_shared, sources.grad = sources.grad, None
    copies = turn.apply(sources.repeat_interleave(k, dim=0))
    (copies * upstream).sum().backward()
    assert torch.equal(shared, copies)
    assert torch.allclose(grad_shared, sources.grad, rtol=0, atol=1e-6)


METHOD_2_LIKE = """
epochs: 10
resolution: 40
targets:
  - batch_size: 5
    features: [{text: a cat}]
    transforms:
      - pad: {size: 6, mode: edge}
      - random_rotate: {degree: -20 20, center: 0 1}
      - random_crop: 36
      - rotate: {degree: 10}
      - center_crop: 30
      - noise: 0.1
      - random_crop: 24
"""


def test_the_engine_views_are_the_transforms_one_by_one(tiny_clip):
    """Rotation, random crop and rotation composed and gathered once equal the
    transforms applied in turn to a copy of the image per view, with the same
    random draws; the crop after the noise runs as a transform of its own."""
    config = parse_config(METHOD_2_LIKE)
    target = config.targets[0]
    job = BatchRender(config, tiny_clip, [3, 4], ["a", "b"])
    plan = plan_epoch(config, 9)
    pixels = torch.rand(2, 3, 40, 40, generator=gen(8))
    res = tiny_clip.input_resolution
    views = job._views(pixels, target, plan, res)

    streams = ImageStreams([3, 4], "cpu")  # fresh streams: the same draws again
    x = TRANSFORMS["pad"].fn(pixels, target.transforms[0](plan.env), streams)
    x = x.repeat_interleave(5, dim=0)
    per_view = streams.with_views(5)
    for step in target.transforms[1:]:
        x = TRANSFORMS[step.name].fn(x, step(plan.env), per_view)
    expected = F.interpolate(x, size=(res, res), mode="bilinear", align_corners=False).clamp(0, 1)
    assert views.shape == (10, 3, res, res)
    assert torch.equal(views, expected)
