"""Loading CLIP and encoding with it.

Models come from the ``clip`` package only: by name (downloaded once to the
user's cache by ``clip.load``) or from a local checkpoint file, which is how
the tests and the stand-in model are loaded too.
"""

from __future__ import annotations

import os
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .settings import MODEL_ENV, ModelUnavailable, default_model_name

# CLIP's input normalisation (per RGB channel).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# A download that cannot reach the network should fail, not hang.
DOWNLOAD_TIMEOUT_S = 60


def import_clip():
    """Import the ``clip`` package, quieting its pkg_resources deprecation warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
        import clip
    return clip


@dataclass
class ClipModel:
    """A frozen CLIP in eval mode, with the helpers the renderer needs."""

    model: torch.nn.Module
    preprocess: object  # the package's PIL -> tensor transform for rating
    name: str
    device: torch.device

    @property
    def input_resolution(self) -> int:
        return int(self.model.visual.input_resolution)

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """L2-normalised fp32 text features, (len(texts), D); no gradient."""
        clip = import_clip()
        tokens = clip.tokenize(texts, truncate=True).to(self.device)
        return F.normalize(self.model.encode_text(tokens).float(), dim=-1)

    def __post_init__(self):
        # Made once: a tensor built from Python numbers inside the step loop
        # would be a host-to-device copy every step.
        self._mean = torch.tensor(CLIP_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(CLIP_STD, device=self.device).view(1, 3, 1, 1)

    def encode_views(self, views: torch.Tensor) -> torch.Tensor:
        """L2-normalised features of views in [0, 1], (M, 3, R, R) at the model's resolution."""
        features = self.model.encode_image((views - self._mean) / self._std)
        return F.normalize(features.float(), dim=-1)


def load_clip(name: str | None = None, device: str | torch.device = "cpu") -> ClipModel:
    """Load CLIP by model name or checkpoint path, frozen and in fp32.

    Raises ModelUnavailable with instructions when the weights can't be had.
    """
    name = name or default_model_name()
    device = torch.device(device)
    clip = import_clip()
    is_file = Path(name).expanduser().is_file()
    if not is_file and name not in clip.available_models():
        if any(sep in name for sep in ("/", os.sep)) and not name.startswith(("RN", "ViT")):
            raise ModelUnavailable(f"CLIP checkpoint not found: {name}")
        raise ModelUnavailable(
            f"unknown CLIP model {name!r}; use one of {', '.join(clip.available_models())} "
            f"or the path of a checkpoint file"
        )
    path = str(Path(name).expanduser()) if is_file else name
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        with warnings.catch_warnings():
            # clip.load probes every file as TorchScript first; that probe's
            # deprecation notice is noise for a state-dict checkpoint.
            warnings.filterwarnings("ignore", category=FutureWarning, module="torch.jit")
            warnings.filterwarnings("ignore", message=".*torch.jit.load.*")
            model, preprocess = clip.load(path, device="cpu", jit=False)
    except Exception as exc:  # noqa: BLE001 -- any failure here means "no usable weights"
        hint = (
            "" if is_file else
            f" The weights of {name} are downloaded once into ~/.cache/clip; without a "
            f"network, copy the checkpoint file there or pass its path with --model PATH "
            f"(or {MODEL_ENV}=PATH)."
        )
        raise ModelUnavailable(f"cannot load CLIP {name!r}: {exc}.{hint}") from exc
    finally:
        socket.setdefaulttimeout(previous)
    # The checkpoints hold fp16 weights; keep fp32 and let autocast pick the
    # compute precision, so losses never accumulate in fp16.
    model = model.float().to(device).eval().requires_grad_(False)
    return ClipModel(model=model, preprocess=preprocess, name=name, device=device)
