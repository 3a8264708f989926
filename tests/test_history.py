"""Optimisation histories (issue 14): frames taken in the step loop, kept as a WebP.

Rendered with the tiny CLIP on the CPU; the site's side is in
test_site_history*.py.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from test_bench import no_reads_from_the_device

from clipig_gallery.app.cli import main
from clipig_gallery.core.layout import history_path, record_path
from clipig_gallery.renderer.engine.history import (
    BUDGET_BYTES,
    DEFAULT_FRAMES,
    capture_steps,
    decode_history,
    display_size,
    encode_history,
    frame_durations,
)
from clipig_gallery.renderer.engine.optimise import BatchRender, render
from clipig_gallery.renderer.execution.jobs import ImageJob, render_files
from clipig_gallery.renderer.language.config import plan_epoch
from clipig_gallery.renderer.runs.configs import method_config
from clipig_gallery.renderer.runs.histories import end_on


def pixels_of(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)


def play_ms(image: Image.Image) -> int:
    """Milliseconds an animated image plays (Pillow gives a frame's duration once loaded)."""
    total = 0
    for index in range(image.n_frames):
        image.seek(index)
        image.load()
        total += image.info["duration"]
    return total


def test_frames_are_evenly_spaced_from_the_start_to_the_last_step():
    steps = capture_steps(300, 24)
    assert len(steps) == 24 and steps[0] == 0 and steps[-1] == 300
    gaps = {b - a for a, b in zip(steps, steps[1:], strict=False)}
    assert gaps <= {13, 14}  # 300 / 23 = 13.04
    assert capture_steps(23, 24) == list(range(24))
    assert capture_steps(5, 24) == [0, 1, 2, 3, 4, 5]  # fewer steps than frames
    with pytest.raises(ValueError, match="at least 2 frames"):
        capture_steps(300, 1)


def test_frames_fit_the_display_and_keep_the_aspect():
    assert display_size(224, 224) == (224, 224)
    assert display_size(448, 224) == (224, 112)
    assert display_size(100, 50) == (100, 50)  # never enlarged as a whole
    assert frame_durations(24)[0] > frame_durations(24)[1] < frame_durations(24)[-1]


@pytest.mark.parametrize("method", [1, 2])
def test_k_frames_and_the_last_is_the_saved_image(method, tiny_clip, small_configs):
    config = method_config(method, DEFAULT_FRAMES - 1)
    result = render(config, tiny_clip, [1, 2], ["a", "b"], history=DEFAULT_FRAMES)
    assert result.history.shape == (2, DEFAULT_FRAMES, 3, *small_configs.SIZE)
    assert result.history.dtype == torch.uint8
    assert torch.equal(result.history[:, -1], result.images)
    # Consecutive frames differ: each is a later state, not a copy of one.
    assert all(not torch.equal(result.history[0, i], result.history[0, i + 1])
               for i in range(DEFAULT_FRAMES - 1))


def test_method_2_starts_tiny_and_is_enlarged_pixel_by_pixel(tiny_clip):
    config = method_config(2, 23)
    assert plan_epoch(config, 0).width == 8
    result = render(config, tiny_clip, [3], ["a"], history=24)
    first = result.history[0, 0]
    # 8x8 -> 224x224: blocks of 28x28 identical pixels.
    blocks = first.view(3, 8, 28, 8, 28)
    assert torch.equal(blocks, blocks[:, :, :1, :, :1].expand_as(blocks))
    assert len(torch.unique(first.reshape(3, -1), dim=1).T) <= 64


def test_keeping_a_history_changes_nothing_rendered(tiny_clip, small_configs):
    config = method_config(1, 6)
    plain = render(config, tiny_clip, [5, 6], ["a", "b"])
    kept = render(config, tiny_clip, [5, 6], ["a", "b"], history=4)
    assert plain.history is None
    assert torch.equal(plain.images, kept.images) and torch.equal(plain.similarity,
                                                                  kept.similarity)


@pytest.mark.parametrize("method", [1, 2])
def test_taking_frames_never_reads_values_back(method, tiny_clip, small_configs):
    """The guard of the step loop, with frames taken at every step."""
    config = method_config(method).with_epochs(40)
    job = BatchRender(config, tiny_clip, [1, 2], ["a", "b"])
    state = job.start()
    frames = job.history_buffer(41)  # a frame after every step
    with no_reads_from_the_device():
        frames.capture(0, state.pixels)
        for epoch in (0, 5, 14, 15, 20, 39):
            job.step(state, plan_epoch(config, epoch))
            frames.capture(epoch + 1, state.pixels)
    assert frames.read().shape == (2, 41, 3, *small_configs.SIZE)


def test_the_webp_plays_once_fits_the_budget_and_ends_on_the_png(tmp_path, tiny_clip):
    # The article's config: the budget is about its 224-pixel frames.
    config = method_config(1, 23)
    png = tmp_path / "cat.png"
    render_files(config, tiny_clip, [ImageJob("a cat", 7, png, frames=24)])
    data = history_path(png).read_bytes()
    assert len(data) <= BUDGET_BYTES
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "WEBP" and image.size == (224, 224)
        assert image.info.get("loop") == 1
        # The encoder merges a frame into the one before when they look the
        # same; the play time stays that of 24 frames.
        assert 2 <= image.n_frames <= 24
        assert play_ms(image) == sum(frame_durations(24))
    saved = pixels_of(Image.open(png)).float()
    errors = [(pixels_of(f).float() - saved).abs().mean() for f in decode_history(data)]
    # Lossy (the tiny model's images are noise, the hardest case), but the
    # last frame is the PNG: the nearest of all.
    assert errors[-1] < 12, errors
    assert all(error > errors[-1] for error in errors[:-1]), errors


def test_noisy_frames_step_down_in_quality_to_fit_the_budget():
    noise = torch.randint(0, 256, (24, 3, 224, 224), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(0))
    first = encode_history(noise, budget=10**9)
    assert len(first.data) > BUDGET_BYTES  # pure noise does not fit at the first quality
    fitted = encode_history(noise)
    assert fitted.quality < first.quality and fitted.frames == 24
    assert len(fitted.data) <= BUDGET_BYTES or fitted.quality == 15


def test_end_on_replaces_only_the_last_frame():
    frames = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    frames[:, 0] = torch.arange(4).view(4, 1, 1) * 60
    data = encode_history(frames).data
    white = io.BytesIO()
    Image.new("RGB", (32, 32), (255, 255, 255)).save(white, "PNG")
    ended = [pixels_of(f).float() for f in decode_history(end_on(data, white.getvalue()))]
    assert len(ended) == 4 and ended[-1].mean() > 250
    assert abs(ended[1][0].mean() - 60) < 8


def test_a_render_without_history_removes_an_old_one(tmp_path, tiny_clip, small_configs):
    config = method_config(1, 3)
    png = tmp_path / "cat.png"
    render_files(config, tiny_clip, [ImageJob("a cat", 7, png, frames=4)])
    assert history_path(png).exists()
    render_files(config, tiny_clip, [ImageJob("a dog", 7, png)])
    assert png.exists() and not history_path(png).exists()


# ---------------------------------------------------------------- the commands


def _render(cache, model, *args):
    return CliRunner().invoke(main, ["render", "--cache", str(cache), "--model", str(model),
                                     "--device", "cpu", "--thing", "harp", "--animal", "cat",
                                     "--animal", "pig", "--epochs", "4", *args])


def test_render_keeps_histories_and_says_their_size(tmp_path, tiny_clip_path, small_configs):
    result = _render(tmp_path, tiny_clip_path)
    assert result.exit_code == 0, result.output
    histories = sorted(tmp_path.glob("method-*/*.history.webp"))
    assert len(histories) == 4
    sizes = [p.stat().st_size for p in histories]
    average = sum(sizes) / len(sizes) / 1000
    assert f"histories: 4 of 4 images, average {average:.1f} KB" in result.output
    with Image.open(histories[0]) as image:
        # 4 epochs: the start and after every step (similar ones may be merged).
        assert 2 <= image.n_frames <= 5
        assert play_ms(image) == sum(frame_durations(5))


def test_no_history_then_history_only_adds_them_and_keeps_the_renders(tmp_path, tiny_clip_path,
                                                                      small_configs):
    assert _render(tmp_path, tiny_clip_path, "--no-history").exit_code == 0
    pngs = sorted(tmp_path.glob("method-*/*.png"))
    assert len(pngs) == 4 and not list(tmp_path.rglob("*.history.webp"))
    before = {p: (p.read_bytes(), record_path(p).read_bytes()) for p in pngs}
    # Without histories the images are complete: a plain render does nothing.
    again = _render(tmp_path, tiny_clip_path)
    assert "nothing to render" in again.output

    dry = _render(tmp_path, tiny_clip_path, "--history-only", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "4 images lack a history of 24 frames; rendering again takes about" in dry.output
    assert not list(tmp_path.rglob("*.history.webp"))

    added = _render(tmp_path, tiny_clip_path, "--history-only", "--limit", "3")
    assert added.exit_code == 0, added.output
    assert "3 histories added" in added.output
    assert "every re-render matched its saved image" in added.output
    assert len(list(tmp_path.rglob("*.history.webp"))) == 3
    rest = _render(tmp_path, tiny_clip_path, "--history-only")
    assert "1 image lacks a history" in rest.output and "1 history added" in rest.output
    assert "no history to add" in _render(tmp_path, tiny_clip_path, "--history-only").output
    assert {p: (p.read_bytes(), record_path(p).read_bytes()) for p in pngs} == before
    for png in pngs:
        last = pixels_of(decode_history(history_path(png).read_bytes())[-1]).float()
        assert (last - pixels_of(Image.open(png)).float()).abs().mean() < 12


def test_history_flags_that_contradict_are_refused(tmp_path, tiny_clip_path):
    result = _render(tmp_path, tiny_clip_path, "--no-history", "--history-only")
    assert result.exit_code == 2 and "contradict" in result.output


def test_best_of_winners_and_continued_runs_keep_histories(tmp_path, tiny_clip_path,
                                                           small_configs):
    common = ["--cache", str(tmp_path), "--model", str(tiny_clip_path), "--device", "cpu"]
    best = CliRunner().invoke(main, ["render", *common, "--best-of", "2", "--thing", "harp",
                                     "--animal", "cat", "--method", "1", "--epochs-short", "2",
                                     "--epochs-detail", "3"])
    assert best.exit_code == 0, best.output
    assert history_path(tmp_path / "best-of/method-1/cat-of-harp.png").exists()
    assert not list((tmp_path / "best-of/method-1/runs").glob("*.history.webp"))
    winner = tmp_path / "best-of/method-1/cat-of-harp.png"
    history_path(winner).unlink()
    before = winner.read_bytes(), record_path(winner).read_bytes()
    added = CliRunner().invoke(main, ["render", *common, "--best-of", "2", "--thing", "harp",
                                      "--animal", "cat", "--method", "1", "--epochs-short", "2",
                                      "--epochs-detail", "3", "--history-only"])
    assert added.exit_code == 0, added.output
    assert "1 image lacks a history" in added.output and "1 history added" in added.output
    assert history_path(winner).exists()
    assert (winner.read_bytes(), record_path(winner).read_bytes()) == before
    ranked = CliRunner().invoke(main, ["rank", *common, "--animal", "cat", "--thing", "harp",
                                       "--runs", "3", "--best", "1", "--worst", "1",
                                       "--epochs-short", "2", "--epochs-detail", "3",
                                       "--no-history"])
    assert ranked.exit_code == 0, ranked.output
    folder = tmp_path / "ranking/cat-of-harp/method-1"
    assert not list(folder.rglob("*.history.webp"))
    summary = json.loads((folder / "summary.json").read_text())
    added = CliRunner().invoke(main, ["rank", *common, "--animal", "cat", "--thing", "harp",
                                      "--epochs-detail", "3", "--history-only"])
    assert added.exit_code == 0, added.output
    assert "2 histories added" in added.output
    assert sorted(p.name for p in folder.glob("continued/*.history.webp")) == sorted(
        history_path(folder / row["image"]).name for row in summary["rows"])
    assert not list(folder.glob("runs/*.history.webp"))
