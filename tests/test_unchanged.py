"""Behaviour that refactors must keep: the same seeds give the same bytes.

The digests below were taken from tiny-model renders before the code was
moved into its current layout (issue 10). A refactor that changes a PNG, a
record (timing and machine fields aside), a CSV or a summary fails here. If a
change of behaviour is meant, say so in the README and take new digests with
``python tests/test_unchanged.py`` (it prints them).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from gallery.layout import HISTORY_SUFFIX
from gallery.prompts import load_prompts
from renderer.gallery import method_config, plan, render_gallery, select
from renderer.ranking import Experiment, run_experiment

# Fields that depend on the machine, the clock or the checkout, not on what
# was rendered.
VOLATILE = {"seconds", "created", "device_name", "torch", "model", "total_seconds",
            "seconds_per_image", "short_per_run", "detail_per_run", "device"}

GOLDEN: dict[str, str] = {
    'method-1/cat-of-harp.json': '28b87e2a1d02e697',
    'method-1/cat-of-harp.png': '4c077c3cf3edf1ef',
    'method-1/hedgehog-of-harp.json': 'fbe841e69d468cc6',
    'method-1/hedgehog-of-harp.png': '5a8d893f79dc1fd4',
    'method-1/sims.csv': '13b63969d35323f7',
    'method-2/cat-of-harp.json': '2cfd7853644ba7a7',
    'method-2/cat-of-harp.png': '1b4147310cfa471b',
    'method-2/hedgehog-of-harp.json': '645f5c59a95b9d05',
    'method-2/hedgehog-of-harp.png': '4bb17388ee8345d8',
    'method-2/sims.csv': 'f1379ef8c23ba283',
    'ranking/snail-of-harp/method-2/continued/snail-of-harp-from-0.json': 'b8a58faedc08738e',
    'ranking/snail-of-harp/method-2/continued/snail-of-harp-from-0.png': 'b8fdf1ab386d94b5',
    'ranking/snail-of-harp/method-2/continued/snail-of-harp-from-1.json': 'a26424a14406f8ab',
    'ranking/snail-of-harp/method-2/continued/snail-of-harp-from-1.png': '274f4a47ed52a724',
    'ranking/snail-of-harp/method-2/final.csv': 'b3b9d6e611a75b56',
    'ranking/snail-of-harp/method-2/initial.csv': '7fbd48ccd677d9db',
    'ranking/snail-of-harp/method-2/runs/snail-of-harp-0.json': '02042a727bf852df',
    'ranking/snail-of-harp/method-2/runs/snail-of-harp-0.png': '400651064fd4aa8a',
    'ranking/snail-of-harp/method-2/runs/snail-of-harp-1.json': '456901f3ee0528ae',
    'ranking/snail-of-harp/method-2/runs/snail-of-harp-1.png': '9d0fd2ae8ab8e52c',
    'ranking/snail-of-harp/method-2/runs/snail-of-harp-2.json': 'b3ab7a691a137903',
    'ranking/snail-of-harp/method-2/runs/snail-of-harp-2.png': 'a7cd230129467596',
    'ranking/snail-of-harp/method-2/summary.json': 'b246e0b63de4bc66',
    'summary.json': '7b4e837b8ea7ac4d',
}


def _strip(data):
    if isinstance(data, dict):
        return {k: _strip(v) for k, v in data.items() if k not in VOLATILE}
    if isinstance(data, list):
        return [_strip(v) for v in data]
    return data


def digest(path: Path) -> str:
    if path.suffix == ".json":
        text = json.dumps(_strip(json.loads(path.read_text())), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def render_sample(cache: Path, model, history: int = 0) -> dict[str, str]:
    """Two prompts x two methods and a small ranking column, with their digests.

    With ``history`` frames the images also get their histories (issue 14),
    which are left out of the digests: keeping them changes no other byte.
    """
    prompts = load_prompts()
    chosen = select(prompts, things=["harp"])[:2]
    configs = {m: method_config(m, 3) for m in (1, 2)}
    items = plan(cache, chosen, (1, 2), configs, model.identity)
    render_gallery(cache, items, configs, model, [p.stem for p in prompts], batch=2,
                   echo=lambda _: None, history=history)
    snail = next(p for p in prompts if p.stem == "snail-of-harp")
    run_experiment(cache, Experiment(snail.text, snail.stem, 2, "snail", "harp"), model,
                   runs=3, best=1, worst=1, batch=3, epochs_short=2, epochs_detail=2,
                   echo=lambda _: None, history=history)
    return {str(p.relative_to(cache)): digest(p)
            for p in sorted(cache.rglob("*"))
            if p.is_file() and not p.name.endswith(HISTORY_SUFFIX)}


def test_same_seeds_give_the_same_bytes(tmp_path, tiny_clip):
    assert render_sample(tmp_path, tiny_clip) == GOLDEN
    assert not list(tmp_path.rglob("*" + HISTORY_SUFFIX))


def test_keeping_histories_changes_no_other_byte(tmp_path, tiny_clip):
    assert render_sample(tmp_path, tiny_clip, history=24) == GOLDEN
    histories = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*" + HISTORY_SUFFIX))
    # Every gallery image and every continued run has one; short runs none.
    assert histories == sorted(str(Path(name).with_suffix("")) + HISTORY_SUFFIX
                               for name in GOLDEN
                               if name.endswith(".png") and "/runs/" not in name)


if __name__ == "__main__":
    import sys
    import tempfile

    import torch

    from renderer.clipmodel import load_clip

    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import build_tiny_clip

    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "tiny-clip.pt"
        torch.save(build_tiny_clip().state_dict(), weights)
        found = render_sample(Path(folder) / "cache", load_clip(str(weights), "cpu"))
    print("GOLDEN: dict[str, str] = {")
    for name, value in found.items():
        print(f"    {name!r}: {value!r},")
    print("}")
