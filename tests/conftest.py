"""Shared fixtures: a tiny CLIP built from the clip package's own model class.

The real ViT-B/32 weights cannot be downloaded where the tests run, so the
tests build a small CLIP with seeded random weights, save it as a checkpoint
and load it through ``renderer.clipmodel.load_clip`` by path -- the same code
a user's local checkpoint goes through.
"""

from __future__ import annotations

import signal
import subprocess
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from gallery.paths import METHODS_DIR

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import clip  # noqa: F401  (the package must import for every test here)

TINY = dict(
    embed_dim=32,
    image_resolution=64,
    vision_layers=1,
    vision_width=64,
    vision_patch_size=16,
    context_length=77,
    vocab_size=49408,  # the tokenizer's; the loader reads it from the weights
    transformer_width=64,
    transformer_heads=1,  # width // 64, as the loader infers it
    transformer_layers=1,
)


def build_tiny_clip(seed: int = 0) -> torch.nn.Module:
    from clip.model import CLIP

    torch.manual_seed(seed)
    model = CLIP(**TINY)
    with torch.no_grad():
        # A random ViT's output is dominated by its class and position
        # embeddings, so pixels barely move it. Without them, and with patch
        # filters that ignore a patch's mean colour, the features follow the
        # image content, and brightness shifts (the methods' `mean` transform)
        # do not change them: closer to how the real model behaves.
        weight = model.visual.conv1.weight
        weight.sub_(weight.mean(dim=(2, 3), keepdim=True)).mul_(5)
        model.visual.class_embedding.zero_()
        model.visual.positional_embedding.zero_()
    return model


@pytest.fixture(scope="session")
def tiny_clip_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "tiny-clip.pt"
    torch.save(build_tiny_clip().state_dict(), path)
    return path


@pytest.fixture(scope="session")
def tiny_clip(tiny_clip_path):
    from renderer.clipmodel import load_clip

    return load_clip(str(tiny_clip_path), "cpu")


@pytest.fixture(scope="session")
def method_configs():
    from renderer.config import load_config

    return {m: load_config(METHODS_DIR / f"method-{m}.yaml") for m in (1, 2)}


def kill_when(args: list, ready: Callable[[], bool], timeout: float, env=None) -> str:
    """Start ``args``, SIGKILL it once ``ready()`` holds, return what it printed.

    Fails the test if the process exits first or ``ready`` never holds.
    """
    proc = subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if proc.poll() is not None:
                pytest.fail(f"exited ({proc.returncode}) before it was killed:\n"
                            + proc.stdout.read())
            if time.monotonic() > deadline:
                pytest.fail(f"not ready within {timeout} s")
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        return proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def built_site(cache: Path, out: Path, post: str = "2021/clipig-animal-transfer/index.html"):
    """Build the site of ``cache`` into ``out`` and read its post: the report, the
    HTML, the parsed page and the selector's embedded data (for the site tests)."""
    import json
    from types import SimpleNamespace

    from bs4 import BeautifulSoup

    from generator.site import build_site

    report = build_site(cache, out)
    html = (out / post).read_text(encoding="utf-8")
    soup = BeautifulSoup(html, "html.parser")
    data = json.loads(soup.find("script", id="clipig-selector-data").string)
    return SimpleNamespace(cache=cache, out=out, report=report, html=html, soup=soup, data=data)
