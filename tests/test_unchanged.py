"""Behaviour that refactors must keep, checked in a form that holds on every machine.

A small sample (two prompts x two methods, a ranking column of three runs;
the tiny model, the article's configs at 3 epochs) is rendered and compared
with a reference taken before the code was last reorganised, stored beside
this file in ``fixtures/unchanged/``. Floating point differs between CPUs
(AVX2 and AVX-512 kernels) and between thread counts, so bytes of a float
computation are never compared across machines. Instead:

- **exact** where the result is discrete: the set of files, the seeds, config
  hashes, prompts, devices and precisions of the records, the CSVs' rows and
  their order, which runs the ranking kept as best and worst, every
  non-float field of every JSON file; the records' model id is the loaded
  model's (the tiny model is built on the machine that runs the test);
- **within a tolerance** where it is floating point: every float (sims) to
  within ``SIM_TOLERANCE``; images through a thumbnail of 4x4-pixel block
  means (the images themselves would not be small data), every block within
  ``BLOCK_LEVELS`` 8-bit levels of the reference and on average within
  ``MEAN_LEVELS``; images no larger than 64 pixels pixel by pixel, within
  ``PIXEL_LEVELS`` levels on at most ``PIXEL_SHARE`` of the pixels.

A different seed, transform, schedule or resolution moves the block means by
several levels (the images' pixels have a spread of about 12 levels), far
outside these tolerances; rounding differences between machines move them
by a fraction of one. What must be equal bit for bit is compared within one
process, where both sides run on the same machine: here, keeping histories
against not keeping them.

If a change of behaviour is meant, say so in the README and take a new
reference with ``python tests/test_unchanged.py`` (it rewrites the fixtures).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import small
import torch
from PIL import Image

from clipig_gallery.core.layout import HISTORY_SUFFIX
from clipig_gallery.core.prompts import load_prompts
from clipig_gallery.renderer.runs.configs import method_config
from clipig_gallery.renderer.runs.first import plan, render_gallery
from clipig_gallery.renderer.runs.ranking import Experiment, RankingSpec, run_experiment
from clipig_gallery.renderer.runs.spec import select

REFERENCE = Path(__file__).parent / "fixtures" / "unchanged"

SIM_TOLERANCE = 0.05  # sims are 100 x cosine
BLOCK = 4  # thumbnail block size, pixels
BLOCK_LEVELS = 1.5  # any block mean, against the reference rounded to a level
MEAN_LEVELS = 0.35  # the mean over blocks (the rounding alone averages 0.25)
SMALL = 64  # images up to this size are compared pixel by pixel
PIXEL_LEVELS = 2
PIXEL_SHARE = 0.02

# Fields that depend on the machine, the clock or the checkout, not on what
# was rendered; the model id is checked against the loaded model instead.
VOLATILE = {"seconds", "created", "device_name", "torch", "model", "total_seconds",
            "seconds_per_image", "short_per_run", "detail_per_run", "model_id"}
# In the cache's summary, "device" is the hardware's name (a record's is "cpu").
VOLATILE_IN_SUMMARY = VOLATILE | {"device"}


def render_sample(cache: Path, model, history: int = 0) -> None:
    """Two prompts x two methods and a small ranking column into ``cache``.

    With ``history`` frames the images also get their histories (issue 14).
    """
    prompts = load_prompts()
    chosen = select(prompts, things=["harp"])[:2]
    configs = {m: method_config(m, 3) for m in (1, 2)}
    items = plan(cache, chosen, (1, 2), configs, model.identity)
    render_gallery(small.spec(cache, model, batch=2, frames=history),
                   small.gallery(cache, items, configs, [p.stem for p in prompts]))
    snail = next(p for p in prompts if p.stem == "snail-of-harp")
    run_experiment(small.spec(cache, model, batch=3, frames=history),
                   Experiment(snail.text, snail.stem, 2, "snail", "harp"),
                   RankingSpec(3, 1, 1, 2, 2))


def sample_files(cache: Path) -> list[str]:
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*")
                  if p.is_file() and not p.name.endswith(HISTORY_SUFFIX))


def _strip(data, volatile=VOLATILE):
    if isinstance(data, dict):
        return {k: _strip(v, volatile) for k, v in data.items() if k not in volatile}
    if isinstance(data, list):
        return [_strip(v, volatile) for v in data]
    return data


def _csv(text: str) -> list[list]:
    """Rows with numbers as floats (they are sims), everything else as text."""
    rows = []
    for row in csv.reader(io.StringIO(text)):
        cells = []
        for cell in row:
            try:
                cells.append(float(cell))
            except ValueError:
                cells.append(cell)
        rows.append(cells)
    return rows


def _pixels(path: Path) -> torch.Tensor:
    with Image.open(path) as image:
        data = bytearray(image.convert("RGB").tobytes())
        return torch.frombuffer(data, dtype=torch.uint8).view(image.height, image.width, 3)


def thumbnail(pixels: torch.Tensor) -> torch.Tensor:
    """(H, W, 3) uint8 -> its BLOCK x BLOCK means, float, (H/BLOCK, W/BLOCK, 3)."""
    x = pixels.permute(2, 0, 1).unsqueeze(0).float()
    return torch.nn.functional.avg_pool2d(x, BLOCK)[0].permute(1, 2, 0)


def describe(cache: Path) -> dict:
    """Everything the comparison needs, from the sample in ``cache``."""
    found = {"files": sample_files(cache), "data": {}, "images": {}}
    for name in found["files"]:
        path = cache / name
        if path.suffix == ".json":
            volatile = VOLATILE_IN_SUMMARY if name == "summary.json" else VOLATILE
            found["data"][name] = _strip(json.loads(path.read_text()), volatile)
        elif path.suffix == ".csv":
            found["data"][name] = _csv(path.read_text())
        elif path.suffix == ".png":
            found["images"][name] = _pixels(path)
    return found


def differences(now, then, where: str = "") -> list[str]:
    """Where ``now`` differs from ``then``: floats beyond SIM_TOLERANCE, anything else
    at all."""
    if isinstance(then, float) and isinstance(now, (int, float)) and not isinstance(now, bool):
        return [] if abs(now - then) <= SIM_TOLERANCE else [f"{where}: {now} vs {then}"]
    if isinstance(then, dict) and isinstance(now, dict):
        if set(now) != set(then):
            return [f"{where}: keys {sorted(set(now) ^ set(then))} differ"]
        return [d for k in then for d in differences(now[k], then[k], f"{where}.{k}")]
    if isinstance(then, list) and isinstance(now, list):
        if len(now) != len(then):
            return [f"{where}: {len(now)} items vs {len(then)}"]
        return [d for i, (a, b) in enumerate(zip(now, then, strict=True))
                for d in differences(a, b, f"{where}[{i}]")]
    return [] if now == then and type(now) is type(then) else [f"{where}: {now!r} vs {then!r}"]


def image_differences(name: str, pixels: torch.Tensor, reference: Path) -> list[str]:
    stored = _pixels(reference / name)
    if max(pixels.shape[:2]) <= SMALL:
        if stored.shape != pixels.shape:
            return [f"{name}: {tuple(pixels.shape)} vs {tuple(stored.shape)}"]
        diff = (pixels.int() - stored.int()).abs()
        share = (diff > 0).float().mean().item()
        if diff.max() > PIXEL_LEVELS or share > PIXEL_SHARE:
            return [f"{name}: up to {int(diff.max())} levels on {100 * share:.1f}% of pixels"]
        return []
    mine = thumbnail(pixels)
    if stored.shape != mine.shape:
        return [f"{name}: thumbnail {tuple(mine.shape)} vs {tuple(stored.shape)}"]
    diff = (mine - stored.float()).abs()
    if diff.max() > BLOCK_LEVELS or diff.mean() > MEAN_LEVELS:
        return [f"{name}: block means up to {diff.max():.2f} levels off, "
                f"{diff.mean():.2f} on average"]
    return []


def check_against_reference(cache: Path, model) -> None:
    now = describe(cache)
    then = json.loads((REFERENCE / "reference.json").read_text())
    assert now["files"] == then["files"]
    problems = differences(now["data"], then["data"], "")
    for name, pixels in now["images"].items():
        problems += image_differences(name, pixels, REFERENCE)
    assert not problems, "\n".join(problems)
    records = [name for name in now["files"] if "config_hash" in now["data"].get(name, {})]
    assert len(records) == len(now["images"])  # one per image
    for name in records:  # each made with the loaded model, exactly
        assert json.loads((cache / name).read_text())["model_id"] == model.identity, name


@pytest.fixture(scope="module")
def sample(tmp_path_factory, tiny_clip) -> Path:
    """The sample rendered without histories, once for the module."""
    cache = tmp_path_factory.mktemp("unchanged")
    render_sample(cache, tiny_clip)
    return cache


def test_same_seeds_give_the_same_results(sample, tiny_clip):
    check_against_reference(sample, tiny_clip)
    assert not list(sample.rglob("*" + HISTORY_SUFFIX))


def test_keeping_histories_changes_no_other_byte(sample, tmp_path, tiny_clip):
    render_sample(tmp_path / "with", tiny_clip, history=24)
    # Same process, same machine: bit for bit.
    files = sample_files(sample)
    assert sample_files(tmp_path / "with") == files
    for name in files:
        a, b = sample / name, tmp_path / "with" / name
        if name.endswith(".json"):
            assert _strip(json.loads(a.read_text())) == _strip(json.loads(b.read_text())), name
        else:
            assert a.read_bytes() == b.read_bytes(), name
    histories = sorted(str(p.relative_to(tmp_path / "with"))
                       for p in (tmp_path / "with").rglob("*" + HISTORY_SUFFIX))
    # Every gallery image and every continued run has one; short runs none.
    assert histories == sorted(str(Path(name).with_suffix("")) + HISTORY_SUFFIX
                               for name in files if name.endswith(".png") and "/runs/" not in name)


def test_the_tolerances_still_see_another_seed(tmp_path, tiny_clip):
    """What the block means are for: the same prompt from another seed is far off."""
    from clipig_gallery.renderer.engine.imageio import encode_png
    from clipig_gallery.renderer.engine.optimise import render

    config = method_config(1, 3)
    text = "a cat made of harp. a cat with the texture of a harp."
    reference = json.loads((REFERENCE / "reference.json").read_text())
    seed = reference["data"]["method-1/cat-of-harp.json"]["seed"]
    for other in (seed, seed + 1):
        (image,) = render(config, tiny_clip, [other], [text]).images
        path = tmp_path / f"{other}.png"
        path.write_bytes(encode_png(image))
        found = image_differences("method-1/cat-of-harp.png", _pixels(path), REFERENCE)
        assert bool(found) == (other != seed), found


def write_reference(cache: Path) -> None:
    """Store the sample in ``cache`` as the reference: thumbnails, small images, data."""
    found = describe(cache)
    for name, pixels in found.pop("images").items():
        out = REFERENCE / name
        out.parent.mkdir(parents=True, exist_ok=True)
        small = pixels if max(pixels.shape[:2]) <= SMALL else \
            thumbnail(pixels).round().clamp(0, 255).to(torch.uint8)
        Image.fromarray(small.numpy(), "RGB").save(out, optimize=True)
    (REFERENCE / "reference.json").write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    import shutil
    import sys
    import tempfile

    from clipig_gallery.renderer.engine.clipmodel import load_clip

    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import build_tiny_clip  # noqa: E402  (sets the threads and precision)

    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "tiny-clip.pt"
        torch.save(build_tiny_clip().state_dict(), weights)
        render_sample(Path(folder) / "cache", load_clip(str(weights), "cpu"))
        shutil.rmtree(REFERENCE, ignore_errors=True)
        write_reference(Path(folder) / "cache")
    print(f"reference written to {REFERENCE}")
