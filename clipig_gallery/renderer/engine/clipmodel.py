"""Loading CLIP and encoding with it.

Weights come from ``renderer.engine.weights`` (a model name, fetched and checked, or
a ``.pt`` / ``.safetensors`` file); the model is always the ``clip`` package's
own class, built by its ``build_model``, whatever the file's format. A model
is identified by a hash of its weights, so one model under two names (a name,
a path, a symlink, another file format) is one model to the cache.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from clipig_gallery.core.settings import ModelUnavailable, default_model_name

from .weights import weights_file

# CLIP's input normalisation (per RGB channel).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def import_clip():
    """Import the ``clip`` package, quieting its pkg_resources deprecation warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
        import clip
    return clip


class PatchEmbedding(torch.nn.Conv2d):
    """CLIP's patch embedding as one matrix product: the same convolution, faster.

    ViT's first layer is a convolution whose stride equals its kernel, so
    every output is one patch times the kernel. On the CPU torch's
    convolution backward pass for it took 90 ms of a 0.9 s bf16 step (10
    views at 224 px, 2 cores), the patches' matrix product forward and
    backward 15 ms. The weights, their names and the result are the
    convolution's (up to the order of the float sums); any other convolution
    runs as a convolution.
    """

    @classmethod
    def of(cls, conv: torch.nn.Conv2d) -> torch.nn.Conv2d:
        """``conv`` as a PatchEmbedding sharing its parameters; others as they are."""
        if type(conv) is not torch.nn.Conv2d or not _is_patchwise(conv):
            return conv
        patch = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                    bias=conv.bias is not None, device="meta")
        patch.weight = conv.weight
        patch.bias = conv.bias
        return patch.train(conv.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (n, c, h, w) = self.kernel_size, x.shape
        gh, gw = h // kh, w // kw  # as the convolution, a remainder is dropped
        x = x[..., : gh * kh, : gw * kw]
        patches = x.reshape(n, c, gh, kh, gw, kw).permute(0, 2, 4, 1, 3, 5)
        out = F.linear(patches.reshape(n * gh * gw, c * kh * kw),
                       self.weight.reshape(self.out_channels, -1), self.bias)
        # In the convolution's memory layout, so what follows runs as it did
        # (with the permuted view, the attention's backward pass took other
        # paths at other batch sizes).
        return out.view(n, gh, gw, self.out_channels).permute(0, 3, 1, 2).contiguous()


def _is_patchwise(conv: torch.nn.Conv2d) -> bool:
    return (tuple(conv.stride) == tuple(conv.kernel_size) and conv.groups == 1
            and tuple(conv.dilation) == (1, 1) and conv.padding in ((0, 0), "valid")
            and conv.padding_mode == "zeros")


def as_convolution(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with its patch embedding a plain convolution again, as the
    ``clip`` package builds it (for the bench's 2021-style reference)."""
    patch = model.visual.conv1
    if isinstance(patch, PatchEmbedding):
        conv = torch.nn.Conv2d(patch.in_channels, patch.out_channels, patch.kernel_size,
                               patch.stride, bias=patch.bias is not None, device="meta")
        conv.weight, conv.bias = patch.weight, patch.bias
        model.visual.conv1 = conv.train(patch.training)
    return model


@dataclass
class ClipModel:
    """A frozen CLIP in eval mode, with the helpers the renderer needs."""

    model: torch.nn.Module
    preprocess: object  # the package's PIL -> tensor transform for rating
    name: str  # as the user gave it: a model name or a file path
    device: torch.device
    identity: str = ""  # "sha256:..." of the weights (see weights_identity)
    source: Path | None = None  # the weights file it was built from

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
        visual = getattr(self.model, "visual", None)
        if hasattr(visual, "conv1"):  # a ViT's patch embedding (a ResNet's is not patchwise)
            visual.conv1 = PatchEmbedding.of(visual.conv1)
        # Made once: a tensor built from Python numbers inside the step loop
        # would be a host-to-device copy every step.
        self._mean = torch.tensor(CLIP_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(CLIP_STD, device=self.device).view(1, 3, 1, 1)

    @torch.no_grad()
    def encode_pictures(self, pictures: list) -> torch.Tensor:
        """L2-normalised fp32 features of image files (or their bytes), (len, D).

        Each goes through the ``clip`` package's own preprocessing (short side
        scaled, centre crop, normalisation), as CLIPig prepared image features.
        """
        from .imageio import open_rgb

        pixels = torch.stack([self.preprocess(open_rgb(p)) for p in pictures]).to(self.device)
        return F.normalize(self.model.encode_image(pixels).float(), dim=-1)

    def encode_views(self, views: torch.Tensor) -> torch.Tensor:
        """L2-normalised features of views in [0, 1], (M, 3, R, R) at the model's resolution."""
        features = self.model.encode_image((views - self._mean) / self._std)
        return F.normalize(features.float(), dim=-1)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, without unpickling anything foreign.

    A ``.pt`` is an OpenAI TorchScript archive or a plain state dict (read with
    ``weights_only``); a ``.safetensors`` file is read by its own library.
    """
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", message=".*torch.jit.load.*")
            try:
                return torch.jit.load(str(path), map_location="cpu").state_dict()
            except RuntimeError:
                pass  # not TorchScript: a state dict
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- any failure means "not readable weights"
        raise ModelUnavailable(f"{path}: cannot read CLIP weights ({exc})") from exc
    if not isinstance(state, dict):
        raise ModelUnavailable(f"{path}: holds a {type(state).__name__}, not a state dict")
    return state


# Keys other CLIP implementations save that the clip package's class lacks.
# open_clip's copies of OpenAI's models use OpenAI's names for everything
# else; a DataParallel save prefixes "module.".
_FOREIGN_KEYS = ("logit_bias", "attn_mask")
_PREFIXES = ("module.",)


def clip_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with the key names of ``clip.model.CLIP``."""
    out = {}
    for key, value in state.items():
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
        if key.rsplit(".", 1)[-1] in _FOREIGN_KEYS:
            continue
        out[key] = value
    return out


def build_clip_model(state: dict[str, torch.Tensor], source: Path) -> torch.nn.Module:
    """The clip package's model with these weights (its own ``build_model``)."""
    clip = import_clip()
    try:
        return clip.model.build_model(clip_state_dict(state))
    except (KeyError, RuntimeError, AssertionError) as exc:
        raise ModelUnavailable(f"{source}: not a CLIP state dict the clip package can "
                               f"build ({type(exc).__name__}: {exc})") from exc


def weights_identity(model: torch.nn.Module) -> str:
    """A hash of every tensor of the built model: names, shapes, dtypes and bytes.

    Taken after ``build_model`` (which stores the weights as the package does),
    so the same weights give the same identity from a ``.pt`` or a
    ``.safetensors`` file, under any name or path.
    """
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{key}:{tuple(tensor.shape)}:{tensor.dtype}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return "sha256:" + digest.hexdigest()[:20]


def load_clip(name: str | None = None, device: str | torch.device = "cpu") -> ClipModel:
    """Load CLIP by model name or weights file, frozen and in fp32.

    Raises ModelUnavailable (or a subclass from ``renderer.engine.weights``) with
    instructions when the weights can't be had.
    """
    name = name or default_model_name()
    device = torch.device(device)
    path = weights_file(name)
    model = build_clip_model(read_state_dict(path), path)
    identity = weights_identity(model)
    # The checkpoints hold fp16 weights; keep fp32 and let autocast pick the
    # compute precision, so losses never accumulate in fp16.
    model = model.float().to(device).eval().requires_grad_(False)
    preprocess = import_clip().clip._transform(model.visual.input_resolution)
    return ClipModel(model=model, preprocess=preprocess, name=name, device=device,
                     identity=identity, source=Path(path))
