"""Parts of CLIPig's config language (June 2021) that this renderer does not support.

The one table the parser consults: a name listed here exists in CLIPig, so a
config that uses it is refused as "not supported", naming it, while a name
CLIPig never had is "unknown". Everything CLIPig had and is not listed here
is implemented (see ``renderer.language.ops.transforms``, ``renderer.language.ops.constraints``
and the keys in ``renderer.language.config``).
"""

from __future__ import annotations

import ast
from collections.abc import Collection

_FOURIER = "noise in Fourier space; the article's methods use noise and bwnoise"
_AFFINE = "a random affine move; the article's methods use random_rotate and random_crop"

NOT_SUPPORTED: dict[str, dict[str, str]] = {
    "transform": {
        "border": "draws a border; the article's methods do not use it",
        "crop": "a fixed crop by fractions or pixels; center_crop and random_crop are supported",
        "edge": "edge detection; the article's methods do not use it",
        "fnoise": _FOURIER,
        "rnoise": "resolution-dependent noise; the article's methods do not use it",
        "random_scale": _AFFINE,
        "random_shift": _AFFINE,
        "random_translate": _AFFINE,
        "repeat": "tiling the image; the article's methods do not use it",
        "shift": "a wrap-around translation; the article's methods do not use it",
    },
    "constraint": {
        "border": "the article's methods use blur and saturation only",
        "contrast": "the article's methods use blur and saturation only",
        "edge_mean": "the article's methods use blur and saturation only",
        "normalize": "the article's methods use blur and saturation only",
    },
    "key": {
        "start_epoch": "continuing a run is done with init.image",
        "image_tensor": "start from a PNG with init.image",
        "select": "every feature's loss is added (CLIPig's select: all)",
        "block_size": "CLIPig pixel models are not supported; the image is plain pixels",
        "pixel_size": "CLIPig pixel models are not supported; the image is plain pixels",
        "feature_scale": "features are compared as CLIP gives them",
        "tile": "CLIPig pixel models are not supported; the image is plain pixels",
    },
    "variable": {
        **{name: f"write {alias} instead" for name, alias in (
            ("time", "t"), ("time_inverse", "ti"),
            *((f"time{p}", f"t{p}") for p in range(2, 6)),
            *((f"time_inverse{p}", f"ti{p}") for p in range(2, 6)),
        )},
        "similarity": "expressions cannot read the similarity during training",
        "sim": "expressions cannot read the similarity during training",
    },
}


def not_supported(kind: str, name: object) -> str | None:
    """The refusal message for a CLIPig ``kind`` name this renderer lacks, else None."""
    reason = NOT_SUPPORTED[kind].get(name) if isinstance(name, str) else None
    if reason is None:
        return None
    return f"{kind} {name!r} from CLIPig is not supported here: {reason}"


# Every variable CLIPig's expressions had (some only in some values).
CLIPIG_VARIABLES = frozenset(
    ("epoch", "t", "ti", "resolution", "res", "width", "height", "learnrate", "lr",
     "learnrate_scale", "lrs", "similarity", "sim", "time", "time_inverse")
    + tuple(f"{v}{p}" for v in ("t", "ti", "time", "time_inverse") for p in range(2, 6))
)


def unsupported_variable(text: str, allowed: Collection[str] = ()) -> str | None:
    """Why an expression's CLIPig variable is refused here, if it uses one.

    A variable in the table is not supported anywhere; another CLIPig
    variable outside ``allowed`` is not supported in this value (CLIPig let
    transforms see the resolution, for instance). None for anything else.
    """
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    names = [node.id for node in ast.walk(tree) if isinstance(node, ast.Name)]
    for name in names:
        if message := not_supported("variable", name):
            return message
    for name in names:
        if name in CLIPIG_VARIABLES and name not in allowed:
            here = ", ".join(sorted(allowed)) or "none"
            return (f"variable {name!r} from CLIPig is not supported in this value "
                    f"(variables here: {here})")
    return None
