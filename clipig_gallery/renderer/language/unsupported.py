"""Parts of CLIPig's config language (June 2021) that this renderer refuses, and why.

The one table the parser consults: a name listed here exists in CLIPig, so a
config that uses it is refused as "not supported", naming it and the reason,
while a name CLIPig never had is "unknown". Everything CLIPig had and is not
listed here is implemented (see ``renderer.language.ops.transforms``,
``renderer.language.ops.constraints`` and the keys in
``renderer.language.config``); docs/config-language.md lists it all.
"""

from __future__ import annotations

import ast
from collections.abc import Collection

NOT_SUPPORTED: dict[str, dict[str, str]] = {
    "transform": {},
    "constraint": {
        "noise": "CLIPig's June 2021 docs name it ('the difference between the image and a "
                 "noisy image') but not what it computes, and its code of that time is not "
                 "public in a form this project could read; an undetached noisy copy would "
                 "give no gradient at all",
    },
    "key": {
        "image_tensor": "continue a run from its saved PNG with init.image and start_epoch "
                        "(the GUI passed raw pixel lists here)",
        "block_size": "pixel models came to CLIPig after June 2021; the image is plain pixels",
        "pixel_size": "pixel models came to CLIPig after June 2021; the image is plain pixels",
        "tile": "pixel models came to CLIPig after June 2021; the image is plain pixels",
    },
    "value": {
        "feature_scale: fair": "its docs say only that the first frame gets the same "
                               "similarity with each feature, not how the factors enter the "
                               "loss, and its code is not public in a form this project could "
                               "read; feature_scale: equal (the default) is supported",
    },
    "variable": {},
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
