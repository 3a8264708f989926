"""The forms of the gaussian blur agree: banded matrix products (the CPU's),
depthwise convolutions (a GPU's) and the sum of shifted slices (the first form).

All run here on the CPU, forward and backward, so the form a GPU picks is
checked against the one the CPU tests exercise everywhere else.
"""

from __future__ import annotations

import pytest
import torch

from clipig_gallery.renderer.language.ops.constraints import CONSTRAINTS
from clipig_gallery.renderer.language.ops.transforms import BLUR_FORMS, blur_form, gaussian_blur

FORMS = tuple(BLUR_FORMS)  # slices, conv, matmul

CASES = [
    ((3, 3), None),
    ((11, 11), None),
    ((4, 4), None),  # even: raised to 5
    ((3, 7), None),  # non-square
    ((11, 5), (1.5, 0.7)),  # non-square with sigma given
    ((5, 5), (2.5, 2.5)),
    ((1, 9), None),
]


def _views(seed: int, shape=(6, 3, 23, 19)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("kernel_size", "sigma"), CASES)
def test_forms_agree_forward_and_backward(kernel_size, sigma):
    x = _views(1)
    upstream = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    outs, grads = {}, {}
    for form in FORMS:
        xi = x.clone().requires_grad_(True)
        out = gaussian_blur(xi, kernel_size, sigma, form=form)
        (out * upstream).sum().backward()
        outs[form], grads[form] = out.detach(), xi.grad
    for form in FORMS:
        assert outs[form].shape == x.shape
        assert (outs["slices"] - outs[form]).abs().max() <= 1e-6, form
        assert (grads["slices"] - grads[form]).abs().max() <= 1e-6, form


def test_a_kernel_wider_than_the_image_is_the_slices_rule():
    """Reflect padding needs the image wider than half the kernel: the matrix form
    hands such a view to the slices, which refuse it exactly as before."""
    x = _views(6, (2, 3, 4, 4))
    with pytest.raises(RuntimeError, match="[Pp]adding size"):
        gaussian_blur(x, (11, 11), form="slices")
    with pytest.raises(RuntimeError, match="[Pp]adding size"):
        gaussian_blur(x, (11, 11), form="matmul")
    wide = _views(7, (2, 3, 6, 40))  # 5 < 6: fine along both axes
    assert (gaussian_blur(wide, (11, 11), form="matmul")
            - gaussian_blur(wide, (11, 11), form="slices")).abs().max() <= 1e-6


def test_forms_agree_on_one_channel_and_many_views():
    x = _views(3, (40, 1, 16, 16))
    a = gaussian_blur(x, (11, 11), None, form="slices")
    for form in FORMS:
        assert (a - gaussian_blur(x, (11, 11), None, form=form)).abs().max() <= 1e-6


def test_blur_constraint_agrees_in_both_forms(monkeypatch):
    """The constraint's loss and its gradient, as the engine uses them."""
    import clipig_gallery.renderer.language.ops.transforms as T

    x = _views(4, (4, 3, 32, 32))
    args = {"kernel_size": (11, 11), "sigma": None, "loss": "l2"}
    results = {}
    for form in FORMS:
        monkeypatch.setattr(T, "blur_form", lambda device, form=form: form)
        xi = x.clone().requires_grad_(True)
        loss = CONSTRAINTS["blur"].fn(xi, args)
        loss.sum().backward()
        results[form] = loss.detach(), xi.grad
    la, ga = results["slices"]
    for form in FORMS:
        lb, gb = results[form]
        assert (la - lb).abs().max() <= 1e-6 * max(1.0, la.abs().max().item()), form
        assert (ga - gb).abs().max() <= 1e-6, form


def test_form_follows_the_device():
    assert blur_form(torch.device("cpu")) == "matmul"
    assert blur_form(torch.device("cuda")) == "conv"
    assert blur_form(torch.device("mps")) == "conv"


def test_unknown_form_is_refused():
    with pytest.raises(KeyError):
        gaussian_blur(_views(5), (3, 3), form="fft")


@pytest.mark.parametrize(("shape", "kernel_size"), [((2, 3, 100, 70), (11, 11)),
                                                     ((3, 3, 224, 224), (11, 11)),
                                                     ((2, 1, 64, 97), (7, 3))])
def test_the_blocked_products_on_images_of_several_blocks(shape, kernel_size):
    """Images of 64 pixels and more are cut into blocks of rows (2 to 7 here):
    forward and backward as the slices compute them."""
    x = _views(8, shape)
    upstream = torch.randn(x.shape, generator=torch.Generator().manual_seed(9))
    results = []
    for form in ("slices", "matmul"):
        xi = x.clone().requires_grad_(True)
        out = gaussian_blur(xi, kernel_size, form=form)
        (out * upstream).sum().backward()
        results.append((out.detach(), xi.grad))
    (a, ga), (b, gb) = results
    assert (a - b).abs().max() <= 1e-6
    assert (ga - gb).abs().max() <= 1e-5


def test_a_band_reads_every_column_its_rows_touch():
    from clipig_gallery.renderer.language.ops.transforms import Band

    matrix = torch.zeros(100, 100)
    reads = []
    for i in range(100):  # a band of 7, reflected at both ends
        row = []
        for k in range(-3, 4):
            j = abs(i + k)
            j = j if j < 100 else 198 - j
            matrix[i, j] += 1.0 + k
            row.append(j)
        reads.append(row)
    band = Band.of(matrix, reads)
    assert len(band.blocks) == 3
    assert [b[:2] for b in band.blocks] == [(0, 33), (33, 67), (67, 100)]
    assert all(c1 - c0 < 50 for _, _, c0, c1 in band.blocks)  # most zeros skipped
    for r0, r1, c0, c1 in band.blocks:  # and none that is not
        assert not matrix[r0:r1, :c0].any() and not matrix[r0:r1, c1:].any()
    x = torch.rand(5, 4, 100, 100, generator=torch.Generator().manual_seed(10))
    assert torch.allclose(band.along(x, -1), x @ matrix.T, atol=1e-5)
    assert torch.allclose(band.along(x, -2), matrix @ x, atol=1e-5)


def test_cutting_a_blur_into_blocks_reads_nothing_from_the_device(monkeypatch):
    """The blocks come from plain numbers: a first blur inside the step loop (where
    the bench's guard refuses every read of a tensor's value) needs none."""
    from clipig_gallery.renderer.language.ops import transforms as T

    T._blur_bands.cache_clear()
    for name in ("item", "tolist", "cpu", "__int__", "__bool__"):
        monkeypatch.setattr(torch.Tensor, name, lambda *a, _n=name, **k: pytest.fail(_n))
    x = _views(11, (2, 3, 96, 80))
    T.gaussian_blur(x, (9, 9), form="matmul")
