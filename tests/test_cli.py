"""The command line: exit codes, messages, and nothing written on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from clipig_gallery.app.cli import main
from clipig_gallery.core.paths import METHODS_DIR

METHOD_1 = str(METHODS_DIR / "method-1.yaml")


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args, env=None):
        return runner.invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)

    return invoke


def test_every_command_is_documented(run):
    result = run("--help")
    assert result.exit_code == 0
    for name, command in main.commands.items():
        assert command.help, f"{name} has no help text"
        assert name in result.output
        assert run(name, "--help").exit_code == 0


def test_render_config_writes_png_and_record(run, tiny_clip_path, tmp_path):
    out = tmp_path / "out" / "penguin.png"
    result = run(
        "render-config",
        METHOD_1,
        "--text",
        "a penguin made of piano.",
        "-o",
        out,
        "--model",
        tiny_clip_path,
        "--epochs",
        3,
        "--seed",
        7,
    )
    assert result.exit_code == 0, result.output
    assert out.is_file()
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["prompt"] == "a penguin made of piano."
    assert record["seed"] == 7 and record["epochs"] == 3
    assert f"sim {record['sim']:.2f}" in result.output


def test_model_from_environment(run, tiny_clip_path, tmp_path):
    out = tmp_path / "x.png"
    result = run(
        "render-config",
        METHOD_1,
        "-o",
        out,
        "--epochs",
        1,
        env={"CLIPIG_MODEL": str(tiny_clip_path)},
    )
    assert result.exit_code == 0, result.output
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["model"] == str(tiny_clip_path)
    # Without --text the config's own prompt is rendered.
    assert record["prompt"].startswith("a cat made of salami.")


BAD_CONFIGS = {
    "malformed YAML": ("epochs: 200\ntargets: [\n", ["line", "malformed YAML"]),
    # PyYAML's own date reader raises a ValueError for a day that does not exist
    "impossible date": ("epochs: 200\ntargets:\n  - features: [{text: 2021-02-30}]\n",
                        ["malformed YAML at line 3, column 23", "'2021-02-30'",
                         "day is out of range for month"]),
    "unknown transform": (
        "targets:\n  - features: [{text: x}]\n    transforms: [{sparkle: 1}]\n",
        ["targets[0].transforms[0].sparkle", "unknown transform", "random_rotate"],
    ),
    "code in an expression": (
        "targets:\n  - features: [{text: x}]\n    transforms:\n"
        "      - mul: [\"__import__('os').system('touch PWNED')\"]\n",
        ["targets[0].transforms[0].mul", "__import__"],
    ),
    "negative epochs": ("epochs: -5\ntargets:\n  - features: [{text: x}]\n", ["epochs", "-5"]),
    "missing init image": (
        "init: {image: nowhere.png}\ntargets:\n  - features: [{text: x}]\n",
        ["init.image", "nowhere.png"],
    ),
}


@pytest.mark.parametrize("name", list(BAD_CONFIGS))
def test_bad_config_fails_and_writes_nothing(name, run, tmp_path, tiny_clip_path, monkeypatch):
    text, expected = BAD_CONFIGS[name]
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out.png"
    result = run("render-config", config, "-o", out, "--model", tiny_clip_path)
    assert result.exit_code == 1, result.output  # a reported error, not a usage error
    assert str(config) in result.output
    for part in expected:
        assert part in result.output, (part, result.output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_missing_config_file(run, tmp_path):
    result = run("render-config", tmp_path / "none.yaml", "-o", tmp_path / "x.png")
    assert result.exit_code == 1 and str(tmp_path / "none.yaml") in result.output


def test_unavailable_model_is_reported_before_work(run, tmp_path):
    out = tmp_path / "x.png"
    result = run("render-config", METHOD_1, "-o", out, "--model", tmp_path / "nope.pt")
    assert result.exit_code == 1
    assert f"not found: {tmp_path / 'nope.pt'}" in result.output
    assert not out.exists()


def test_bad_device_and_output(run, tmp_path, tiny_clip_path):
    result = run("render-config", METHOD_1, "-o", tmp_path / "x.png", "--device", "warp9")
    assert result.exit_code == 2 and "--device 'warp9'" in result.output
    result = run("render-config", METHOD_1, "-o", tmp_path / "x.jpg", "--model", tiny_clip_path)
    assert result.exit_code == 2 and "must be a .png file" in result.output
    assert not (tmp_path / "x.jpg").exists()


def test_demo_falls_back_loudly_to_the_standin(run, tmp_path, monkeypatch, small_configs):
    from clipig_gallery.app import demo
    from clipig_gallery.renderer.engine.clipmodel import ModelUnavailable

    real = demo.load_clip

    def offline(name, device="cpu"):
        if not Path(name).is_file():
            raise ModelUnavailable(f"cannot load CLIP {name!r}: offline")
        return real(name, device)

    def tiny_standin(folder, seed=0):
        # The stand-in's loading path with the tests' tiny CLIP: the demo's
        # plumbing, not CLIP's shapes, is what this test is about.
        import torch
        from conftest import build_tiny_clip

        path = Path(folder) / f"tiny-standin-{seed}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(build_tiny_clip(seed).state_dict(), path)
        return path

    monkeypatch.setattr(demo, "load_clip", offline)
    monkeypatch.setattr(demo, "standin_checkpoint", tiny_standin)
    monkeypatch.delenv("CLIPIG_MODEL", raising=False)
    monkeypatch.setattr(demo, "DEMO_THINGS", ("harp",))
    monkeypatch.setattr(demo, "DEMO_BEST_OF", 2)
    result = run("demo", "--out", tmp_path / "demo", "--epochs", 1)
    assert result.exit_code == 0, result.output
    assert "STAND-IN" in result.output
    for method in (1, 2):
        assert len(list((tmp_path / "demo/cache" / f"method-{method}").glob("*.png"))) == 9
    record = json.loads((tmp_path / "demo/cache/method-2/snail-of-harp.json").read_text())
    assert record["prompt"] == "a snail made of harp."  # method 2: first sentence only
    summary = tmp_path / "demo/cache/ranking/penguin-of-piano/method-2/summary.json"
    assert len(json.loads(summary.read_text())["rows"]) == 3
    for method in (1, 2):  # best of 2 for harp
        best = tmp_path / "demo/cache/best-of" / f"method-{method}"
        assert len(list(best.glob("*.png"))) == 9
        assert json.loads((best / "snail-of-harp.json").read_text())["best_of"]["runs"] == 2
    assert "best of 2: 36 short and 18 continued runs" in result.output
    # ViT-B/16 cannot be had either: a second stand-in judges, and says so
    assert "USING A SECOND STAND-IN MODEL as the judge" in result.output
    judged = json.loads((tmp_path / "demo/cache/judge.json").read_text())
    assert len(judged["ratings"]) == len(list((tmp_path / "demo/cache").rglob("*.png")))
    assert judged["model_id"] != record["model_id"]
    assert (tmp_path / "demo/site/index.html").is_file()
    assert "clipig-gallery serve --out" in result.output
    # A second run finds everything complete.
    again = run("demo", "--out", tmp_path / "demo", "--epochs", 1)
    assert "0 to render" in again.output
    assert "best of 2: 0 short and 0 continued runs" in again.output
    assert "0 of " in again.output and "images rated" in again.output
    assert "0 short and 0 continued" in again.output


def test_demo_with_a_named_model_does_not_fall_back(run, tmp_path):
    result = run("demo", "--out", tmp_path / "demo", "--model", tmp_path / "nope.pt")
    # The named model's own error, not some other failure, and nothing rendered.
    assert result.exit_code == 1, result.output
    assert f"not found: {tmp_path / 'nope.pt'}" in result.output
    assert "STAND-IN" not in result.output
    assert not list(tmp_path.rglob("*.png"))


def test_python_dash_m_runs_the_command_line():
    # Where the clipig-gallery script is not on the PATH (a kernel, a venv not activated).
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "clipig_gallery", "render", "--help"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Usage: clipig-gallery render [OPTIONS]")
