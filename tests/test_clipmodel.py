"""CLIP loading: by path, by name, and the errors when weights can't be had."""

from __future__ import annotations

import pytest
import torch

from renderer.engine import clipmodel
from renderer.engine.clipmodel import ModelUnavailable, load_clip


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
