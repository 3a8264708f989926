"""CLIP loading: by path, by name, and the errors when weights can't be had."""

from __future__ import annotations

import pytest
import torch

from clipig_gallery.renderer.engine import clipmodel
from clipig_gallery.renderer.engine.clipmodel import ModelUnavailable, load_clip


def test_load_by_path_is_frozen_fp32_eval(tiny_clip_path):
    model = load_clip(str(tiny_clip_path), "cpu")
    assert model.input_resolution == 64
    assert not model.model.training
    assert all(not p.requires_grad for p in model.model.parameters())
    assert all(p.dtype == torch.float32 for p in model.model.parameters())
    features = model.encode_texts(["a cat", "a dog"])
    assert features.shape == (2, 32)
    assert torch.allclose(features.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert not features.requires_grad


def test_missing_checkpoint_file(tmp_path):
    with pytest.raises(ModelUnavailable, match="not found"):
        load_clip(str(tmp_path / "missing.pt"))


def test_unknown_model_name_lists_the_known_ones():
    with pytest.raises(ModelUnavailable) as info:
        load_clip("ViT-Z/99")
    assert "ViT-B/32" in str(info.value)


def test_broken_checkpoint_file(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelUnavailable, match="broken.pt"):
        load_clip(str(path))


def test_offline_download_says_how_to_pass_a_path(monkeypatch):
    # Simulate a machine without network: the clip package's download fails.
    clip = clipmodel.import_clip()

    def offline(name, device="cpu", jit=False, download_root=None):
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(clip, "load", offline)
    with pytest.raises(ModelUnavailable) as info:
        load_clip("ViT-B/32")
    message = str(info.value)
    assert "ViT-B/32" in message and "--model" in message and "CLIPIG_MODEL" in message


def test_environment_sets_the_default(monkeypatch, tiny_clip_path):
    monkeypatch.setenv("CLIPIG_MODEL", str(tiny_clip_path))
    assert clipmodel.default_model_name() == str(tiny_clip_path)
    assert load_clip(None).name == str(tiny_clip_path)
    monkeypatch.delenv("CLIPIG_MODEL")
    assert clipmodel.default_model_name() == "ViT-B/32"


# --- the patch embedding as a matrix product ---------------------------------------


def test_the_patch_embedding_is_the_convolution():
    """Forward and backward, with an image size the patches do not divide (the
    convolution drops the remainder), with and without a bias."""
    for bias, size in ((False, 64), (True, 70)):
        conv = torch.nn.Conv2d(3, 24, 16, stride=16, bias=bias).requires_grad_(False)
        patch = clipmodel.PatchEmbedding.of(conv)
        assert isinstance(patch, clipmodel.PatchEmbedding) and patch.weight is conv.weight
        x = torch.rand(4, 3, size, size, generator=torch.Generator().manual_seed(size),
                       requires_grad=True)
        upstream = torch.randn(4, 24, size // 16, size // 16)
        outs, grads = [], []
        for layer in (conv, patch):
            out = layer(x)
            (grad,) = torch.autograd.grad((out * upstream).sum(), x)
            outs.append(out)
            grads.append(grad)
        assert outs[0].shape == outs[1].shape
        assert torch.allclose(outs[0], outs[1], rtol=0, atol=1e-5)
        assert torch.allclose(grads[0], grads[1], rtol=0, atol=1e-5)


def test_other_convolutions_stay_convolutions():
    overlapping = torch.nn.Conv2d(3, 8, 5, stride=2)
    padded = torch.nn.Conv2d(3, 8, 4, stride=4, padding=1)
    for conv in (overlapping, padded):
        assert clipmodel.PatchEmbedding.of(conv) is conv


def test_a_loaded_model_encodes_as_the_clip_package_builds_it(tiny_clip_path, tiny_clip):
    """The loaded model's patch embedding is a matrix product; its features and
    their gradient match the package's own model (a convolution), its weights'
    names and identity are the package's."""
    package = clipmodel.build_clip_model(clipmodel.read_state_dict(tiny_clip_path),
                                         tiny_clip_path)
    assert tiny_clip.identity == clipmodel.weights_identity(package)
    package = package.float().eval().requires_grad_(False)
    assert type(package.visual.conv1) is torch.nn.Conv2d
    assert isinstance(tiny_clip.model.visual.conv1, clipmodel.PatchEmbedding)
    assert tiny_clip.model.state_dict().keys() == package.state_dict().keys()
    views = torch.rand(6, 3, 64, 64, generator=torch.Generator().manual_seed(1),
                       requires_grad=True)
    ours = tiny_clip.encode_views(views)
    (grad_ours,) = torch.autograd.grad(ours.sum(), views)
    plain = clipmodel.ClipModel.__new__(clipmodel.ClipModel)  # the package's model as it is
    plain.model, plain.device = package, torch.device("cpu")
    plain._mean, plain._std = tiny_clip._mean, tiny_clip._std
    theirs = plain.encode_views(views)
    (grad_theirs,) = torch.autograd.grad(theirs.sum(), views)
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-5)
    assert torch.allclose(grad_ours, grad_theirs, rtol=0, atol=1e-5)


def test_the_benchs_reference_gets_the_convolution_back(tiny_clip):
    import copy

    model = clipmodel.as_convolution(copy.deepcopy(tiny_clip.model))
    conv = model.visual.conv1
    assert type(conv) is torch.nn.Conv2d
    assert torch.equal(conv.weight, tiny_clip.model.visual.conv1.weight)
    assert isinstance(tiny_clip.model.visual.conv1, clipmodel.PatchEmbedding)  # not the original's
