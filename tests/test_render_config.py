"""`render-config` as a successor of CLIPig's clipig.py: merged files, standard
input, --repeat in one batch, numbered outputs, the sidecar YAML, snapshots."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from clipig_gallery.app.cli import main
from clipig_gallery.renderer.language.config import load_config, merge_data, parse_config

BASE = """epochs: 3
resolution: 32
targets:
  - name: first
    features: [{text: a red square}]
    transforms: [{random_shift: 0 1}]
    batch_size: 2
"""
MORE = """epochs: 2
snapshot_interval: 1
targets:
  - name: second
    features: [{text: a blue circle, loss: l2}]
    constraints: [{contrast: {above: 0.3}}]
"""


@pytest.fixture
def run(tiny_clip_path):
    runner = CliRunner()

    def invoke(*args, input=None):
        return runner.invoke(main, ["render-config", *map(str, args), "--model",
                                    str(tiny_clip_path)], input=input, catch_exceptions=False)

    return invoke


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_merging_appends_lists_merges_mappings_and_replaces_the_rest():
    first = {"epochs": 3, "init": {"mean": 0.5, "std": 0.1}, "targets": [{"a": 1}],
             "resolution": [32, 32]}
    second = {"epochs": 2, "init": {"std": 0.2}, "targets": [{"b": 2}], "resolution": [8, 8]}
    assert merge_data(first, second) == {
        "epochs": 2, "init": {"mean": 0.5, "std": 0.2}, "targets": [{"a": 1}, {"b": 2}],
        # CLIPig appended every list, a resolution too (which then fails its check)
        "resolution": [32, 32, 8, 8]}
    assert first["targets"] == [{"a": 1}]  # the inputs are left alone


def test_two_files_merge_in_order_and_the_sidecar_says_it_all(run, tmp_path):
    (tmp_path / "a.yaml").write_text(BASE)
    (tmp_path / "b.yaml").write_text(MORE)
    out = tmp_path / "out" / "both.png"
    result = run(tmp_path / "a.yaml", tmp_path / "b.yaml", "-o", out, "--seed", 4)
    assert result.exit_code == 0, result.output
    assert files(out.parent) == ["both.history.webp", "both.json", "both.png", "both.yaml"]
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["epochs"] == 2 and record["seed"] == 4  # the later file's epochs
    assert record["prompt"] == "a red square + a blue circle"
    assert record["config"] == "a.yaml + b.yaml"
    sidecar = out.with_suffix(".yaml").read_text()
    again = parse_config(sidecar, base=tmp_path)
    assert [t.name for t in again.targets] == ["first", "second"]
    assert again.targets[1].features[0].loss == "l2"
    assert "feature_scale: equal" in sidecar and "select: all" in sidecar  # defaults filled
    assert "# seconds:" in sidecar and "a blue circle" in sidecar.split("# seconds:")[1]
    merged = load_config(out.with_suffix(".yaml"))
    original = parse_config(BASE.replace("epochs: 3", "epochs: 2") + MORE.split("targets:\n")[1])
    assert replace(merged, source="", template="") == replace(original, source="", template="")


def test_the_sidecar_renders_the_same_image_again(run, tmp_path):
    (tmp_path / "a.yaml").write_text(BASE)
    first = tmp_path / "first.png"
    assert run(tmp_path / "a.yaml", "-o", first, "--seed", 9).exit_code == 0
    second = tmp_path / "second.png"
    result = run(first.with_suffix(".yaml"), "-o", second, "--seed", 9)
    assert result.exit_code == 0, result.output
    assert first.read_bytes() == second.read_bytes()  # same machine, same process


def test_standard_input_and_the_default_output(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("-", input=BASE)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "stdin.png").is_file()
    (tmp_path / "cat.yaml").write_text(BASE + "output: renders/\n")
    assert run("cat.yaml").exit_code == 0
    assert (tmp_path / "renders" / "cat.png").is_file()


def test_a_configs_output_stays_in_the_working_folder_or_its_own(run, tmp_path, monkeypatch):
    work, configs, elsewhere = tmp_path / "work", tmp_path / "configs", tmp_path / "elsewhere"
    for folder in (work, configs, elsewhere):
        folder.mkdir()
    (work / "away").symlink_to(elsewhere)
    monkeypatch.chdir(work)
    config = configs / "cat.yaml"
    for output in (f"{elsewhere}/", "../elsewhere/x.png", "away/x.png", "/x.png"):
        config.write_text(BASE + f"output: {output}\n")
        result = run(config)
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert f"{config}: output: " in result.output and "pass -o to write elsewhere" in \
            result.output
    assert list(elsewhere.iterdir()) == [] and not Path("/x.png").exists()
    for output, made in (("renders/x.png", work / "renders" / "x.png"),
                         (f"{configs}/x.png", configs / "x.png"),
                         (f"{work}/y", work / "y.png")):
        config.write_text(BASE + f"output: {output}\n")
        assert run(config).exit_code == 0 and made.is_file()
    config.write_text(BASE + "output: /x.png\n")  # -o is the user's own choice: anywhere
    assert run(config, "-o", elsewhere / "z.png").exit_code == 0
    assert (elsewhere / "z.png").is_file()


def test_repeat_renders_one_batch_and_nothing_is_overwritten(run, tmp_path):
    (tmp_path / "a.yaml").write_text(BASE)
    out = tmp_path / "x.png"
    result = run(tmp_path / "a.yaml", "-o", out, "--repeat", 3, "--seed", 10)
    assert result.exit_code == 0, result.output
    assert "3 images, batch 3 (all at once;" in result.output
    names = ["x.png", "x-1.png", "x-2.png"]
    records = [json.loads((tmp_path / n).with_suffix(".json").read_text()) for n in names]
    assert [r["seed"] for r in records] == [10, 11, 12]
    assert {r["batch"] for r in records} == {3}
    before = {n: (tmp_path / n).read_bytes() for n in names}
    assert run(tmp_path / "a.yaml", "-o", out).exit_code == 0
    assert (tmp_path / "x-3.png").is_file()
    assert {n: (tmp_path / n).read_bytes() for n in names} == before
    # The images differ from each other: each has its own seed.
    assert len(set(before.values())) == 3
    # One at a time, the same images: each has its own random streams (within
    # one 8-bit level: CLIP's products round differently for another row count).
    alone = run(tmp_path / "a.yaml", "-o", tmp_path / "one" / "x.png", "--repeat", 3,
                "--seed", 10, "--batch", 1)
    assert alone.exit_code == 0, alone.output
    for name in names:
        record = json.loads((tmp_path / "one" / name).with_suffix(".json").read_text())
        assert record["batch"] == 1
        assert _levels(tmp_path / "one" / name, tmp_path / name) <= 1


def _levels(a: Path, b: Path) -> int:
    """The largest difference of two 8-bit images, in levels."""
    import numpy as np

    x, y = (np.asarray(Image.open(p), dtype=np.int16) for p in (a, b))
    assert x.shape == y.shape
    return int(np.abs(x - y).max())


def _cuda_out_of_memory():
    import torch

    return torch.OutOfMemoryError("CUDA out of memory (injected)")


def _cpu_out_of_memory():
    # what torch 2.14 raised here for a refused allocation (a process memory limit)
    return RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: "
                        "can't allocate memory: you tried to allocate 5529600000 bytes. "
                        "Error code 12 (Cannot allocate memory)")


@pytest.mark.parametrize("error", [_cuda_out_of_memory, _cpu_out_of_memory])
def test_a_batch_out_of_memory_is_halved_and_one_image_that_does_not_fit_is_a_message(
        run, tmp_path, monkeypatch, error):
    from clipig_gallery.renderer.engine import optimise

    real, sizes = optimise.render, []

    def tight(config, model, seeds, *args, **kwargs):
        sizes.append(len(seeds))
        if len(seeds) > 1 or seeds[0] == failing[0]:
            raise error()
        return real(config, model, seeds, *args, **kwargs)

    monkeypatch.setattr(optimise, "render", tight)
    (tmp_path / "a.yaml").write_text(BASE)
    failing = [None]
    result = run(tmp_path / "a.yaml", "-o", tmp_path / "x.png", "--repeat", 3, "--batch", 2)
    assert result.exit_code == 0, result.output
    assert sizes == [2, 1, 1, 1]
    assert "retrying this batch with 1" in result.output
    assert files(tmp_path) == sorted(["a.yaml", *(f"{n}.{e}" for n in ("x", "x-1", "x-2")
                                                  for e in ("json", "png", "yaml"))])
    # Not even one image fits: a message that says what was written and how to
    # render the rest; the images before it stay.
    failing[0] = 2
    result = run(tmp_path / "a.yaml", "-o", tmp_path / "y" / "y.png", "--repeat", 3,
                 "--batch", 1)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    assert "Error: out of memory on cpu with one image per batch" in result.output
    assert (f"2 of 3 images were written ({tmp_path / 'y' / 'y.png'}, "
            f"{tmp_path / 'y' / 'y-1.png'}); render the other 1 with --seed 2 --repeat 1"
            in result.output)
    assert files(tmp_path / "y") == ["y-1.json", "y-1.png", "y-1.yaml", "y.json", "y.png",
                                     "y.yaml"]


def test_ctrl_c_after_an_image_says_what_was_written_and_how_to_go_on(run, tmp_path,
                                                                       monkeypatch):
    from clipig_gallery.renderer.runs import single

    real, calls = single._render, []

    def stopped(config, model, seeds, *args):
        calls.append(seeds)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(config, model, seeds, *args)

    monkeypatch.setattr(single, "_render", stopped)
    (tmp_path / "a.yaml").write_text(BASE)
    result = run(tmp_path / "a.yaml", "-o", tmp_path / "x.png", "--repeat", 3, "--batch", 1,
                 "--seed", 5)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert (f"Error: interrupted: 1 of 3 images were written ({tmp_path / 'x.png'}); render "
            f"the other 2 with --seed 6 --repeat 2" in result.output)
    assert files(tmp_path) == ["a.yaml", "x.json", "x.png", "x.yaml"]


def test_a_picture_outside_the_config_folder_needs_image_dir(run, tmp_path):
    pictures, configs = tmp_path / "pictures", tmp_path / "configs"
    pictures.mkdir()
    configs.mkdir()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(pictures / "red.png")
    config = configs / "image.yaml"
    config.write_text("epochs: 2\nresolution: 32\ntargets:\n"
                      "  - features: [{image: ../pictures/red.png}]\n")
    out = tmp_path / "out.png"
    refused = run(config, "-o", out)
    assert refused.exit_code == 1
    assert "targets[0].features[0].image" in refused.output and "--image-dir" in refused.output
    assert not out.exists()
    result = run(config, "-o", out, "--image-dir", pictures)
    assert result.exit_code == 0, result.output
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["prompt"].startswith("image ") and record["prompt"].endswith("red.png")


def test_a_bad_second_file_is_named(run, tmp_path):
    (tmp_path / "a.yaml").write_text(BASE)
    (tmp_path / "b.yaml").write_text("targets: [\n")
    result = run(tmp_path / "a.yaml", tmp_path / "b.yaml", "-o", tmp_path / "x.png")
    assert result.exit_code == 1 and str(tmp_path / "b.yaml") in result.output
    assert files(tmp_path) == ["a.yaml", "b.yaml"]


def _paths(node, prefix=()):
    """Every key path into ``node`` (mappings by key, lists by index)."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(
        node, list) else ()
    for key, value in items:
        yield (*prefix, key)
        yield from _paths(value, (*prefix, key))


@pytest.mark.parametrize("name", ["method-2.yaml", "showcase.yaml"])
def test_any_value_of_the_wrong_shape_is_a_config_error(name):
    # Each key of a real config in turn given a value of another shape: the files
    # load or are refused with a ConfigError naming the input, never another error.
    import copy
    import io
    import json

    import yaml

    from clipig_gallery.core.paths import METHODS_DIR
    from clipig_gallery.renderer.language.config import ConfigError, load_configs

    folder = METHODS_DIR if name.startswith("method") else METHODS_DIR.parent / "clipig"
    data = yaml.safe_load((folder / name).read_text())
    paths = list(_paths(data))
    assert len(paths) > 20
    refused = 0
    for path in paths:
        for value in (5, "x", [], {}, None):
            changed = copy.deepcopy(data)
            holder = changed
            for key in path[:-1]:
                holder = holder[key]
            holder[path[-1]] = value
            try:
                # as JSON, which is YAML too (and quick to write)
                load_configs(["-"], stdin=io.StringIO(json.dumps(changed)))
            except ConfigError as error:
                assert str(error).startswith("<stdin>: "), (path, value, error)
                refused += 1
    assert refused > len(paths)  # most changes are refused


def test_a_crop_larger_than_the_image_is_a_message_before_any_image(run, tmp_path):
    config = tmp_path / "crop.yaml"
    config.write_text(BASE.replace("random_shift: 0 1", "random_crop: 48"))
    result = run(config, "-o", tmp_path / "out.png", "--device", "cpu")
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        f"Error: {config}: targets[0].transforms[0].random_crop: "
        "crop 48x48 is larger than the image 32x32")
    assert files(tmp_path) == ["crop.yaml"]
