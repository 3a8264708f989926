"""The article's computation-time figures, computed from the cache's summary.

The 2021 page typed its figures by hand; here every one is derived from
``summary.json`` (what the renderer measured) and the prompt count.
"""

from __future__ import annotations

# DALL-E drew 512 samples per prompt and let CLIP rank them; the article
# extrapolates CLIPig's cost to the same number of runs.
DALLE_SAMPLES = 512

NOT_MEASURED = "(not measured yet)"

_UNITS = (  # (name, seconds in it, use it below this many seconds)
    ("seconds", 1.0, 300.0),
    ("minutes", 60.0, 2 * 3600.0),
    ("hours", 3600.0, 72 * 3600.0),
    ("days", 86400.0, 730 * 86400.0),
    ("years", 365.25 * 86400.0, float("inf")),
)


def _number(value: float) -> str:
    # Two significant digits below 1, one decimal below 10, whole numbers above:
    # precise enough for a measured mean, no false precision in large ones. The
    # bounds are where the rounding reaches the next form (0.997 is "1.0", not "1").
    if value < 0.995:
        return f"{value:.2g}"
    if value < 9.95:
        return f"{value:.1f}"
    return f"{value:.0f}"


def format_duration(seconds: float) -> str:
    """A duration in the largest unit that keeps it readable: ``31 hours``."""
    if seconds < 0:
        raise ValueError(f"negative duration: {seconds}")
    for name, size, below in _UNITS:
        if seconds < below:
            return f"{_number(seconds / size)} {name}"
    raise AssertionError("unreachable: the last unit has no upper bound")


def cost_figures(entry: dict | None, prompt_count: int) -> dict[str, str]:
    """Text for each figure the article quotes about one method's renders.

    ``entry`` is the method's object in ``summary.json`` (None when nothing
    of the method is rendered yet: then every figure says so).
    """
    keys = ("per_image", "all_prompts", "x512", "device", "batch", "precision", "model",
            "images", "epochs")
    if not entry or not isinstance(entry.get("seconds_per_image"), (int, float)):
        return dict.fromkeys(keys, NOT_MEASURED)
    per_image = float(entry["seconds_per_image"])
    return {
        "per_image": format_duration(per_image),
        "all_prompts": format_duration(per_image * prompt_count),
        "x512": format_duration(per_image * prompt_count * DALLE_SAMPLES),
        "device": str(entry.get("device") or "an unnamed device"),
        "batch": str(entry.get("batch", "?")),
        "precision": str(entry.get("precision", "?")),
        "model": str(entry.get("model", "?")),
        "images": str(entry.get("images", "?")),
        "epochs": str(entry.get("epochs", "?")),
    }
