"""`render --best-of N`: N short runs per prompt, the best continued, resumable.

Bookkeeping, so on the small copies of the configs (tests/small.py).
"""

from __future__ import annotations

import json

import pytest
import small
from click.testing import CliRunner
from conftest import kill_when

from clipig_gallery.app.cli import main
from clipig_gallery.core.layout import best_of_root, short_sims_csv_path, short_sims_path
from clipig_gallery.core.prompts import load_prompts
from clipig_gallery.core.ratings import read_ratings
from clipig_gallery.core.schema import RenderRecord, ShortRuns, read_json
from clipig_gallery.renderer.execution.cache import png_is_whole
from clipig_gallery.renderer.runs.bestof import BestOfSpec, plan_best_of, render_best_of, winner
from clipig_gallery.renderer.runs.ranking import Experiment, RankingSpec, run_experiment
from clipig_gallery.renderer.runs.spec import Selection

SHORT, DETAIL = 2, 3  # epochs: enough to tell runs apart, cheap on the tiny model
ANIMALS = ("cat", "snail")


def best_of(cache, model, runs, *, methods=(1,), animals=ANIMALS, keep=1, batch=3,
            epochs_short=SHORT, epochs_detail=DETAIL):
    selection = Selection(methods, animals, ("harp",))
    plan = plan_best_of(cache, model.identity, BestOfSpec(runs, keep, epochs_short,
                                                          epochs_detail), selection)
    sizes = {(m, kind): batch for m in methods for kind in ("short", "detail")}
    return plan, render_best_of(small.spec(cache, model), plan, sizes)


def state(cache, method, stem) -> ShortRuns:
    path = short_sims_path(best_of_root(cache), method, stem)
    return ShortRuns.from_json(read_json(path), path)


def final_record(cache, method, stem) -> RenderRecord:
    path = best_of_root(cache) / f"method-{method}" / f"{stem}.json"
    return RenderRecord.from_json(read_json(path), path)


@pytest.fixture(scope="module", autouse=True)
def _small_configs():
    with pytest.MonkeyPatch.context() as patch:
        small.install(patch)
        yield


@pytest.fixture(scope="module")
def five(tmp_path_factory, tiny_clip):
    """Best of 5 for two prompts, both methods, keeping the best 2 short images."""
    cache = tmp_path_factory.mktemp("best-of")
    plan, report = best_of(cache, tiny_clip, 5, methods=(1, 2), keep=2)
    return cache, plan, report


def test_the_winner_is_the_argmax_of_the_recorded_sims(five):
    cache, plan, report = five
    assert (report.short_rendered, report.continued) == (2 * 2 * 5, 2 * 2)
    for method in (1, 2):
        for animal in ANIMALS:
            stem = f"{animal}-of-harp"
            runs = state(cache, method, stem)
            sims = runs.sims()
            assert sorted(sims) == [0, 1, 2, 3, 4]
            best = max(sims, key=lambda r: (sims[r], -r))
            record = final_record(cache, method, stem)
            assert record.best_of.run == best == record.run
            assert record.best_of.short_sim == sims[best]
            assert record.best_of.runs == 5
            assert record.best_of.short_image == f"runs/{stem}-{best}.png"
            # the CSV holds the same sims, best first, in the article's format
            csv = read_ratings(short_sims_csv_path(best_of_root(cache), method, stem))
            assert csv.prompts == (runs.prompt,)
            assert [row[1][0] for row in csv.rows] == sorted(sims.values(), reverse=True)
            assert csv.rows[0][0] == f"runs/{stem}-{best}.png"
            # the best two short images are kept, no other
            kept = sorted(p.name for p in (best_of_root(cache) / f"method-{method}" / "runs")
                          .glob(f"{stem}-*.png"))
            top2 = sorted(sims, key=lambda r: (-sims[r], r))[:2]
            assert kept == sorted(f"{stem}-{r}.png" for r in top2)


def test_best_of_uses_the_gallerys_prompt_of_each_method(five):
    cache, _, _ = five
    prompt = next(p for p in load_prompts() if p.stem == "cat-of-harp")
    for method in (1, 2):
        assert final_record(cache, method, "cat-of-harp").prompt == prompt.for_method(method)
    assert prompt.for_method(1) != prompt.for_method(2)


def test_the_continued_winner_equals_what_rank_renders(tmp_path, tiny_clip):
    # One image per batch on both sides: a batch's company moves pixels by 1/255.
    plan, _ = best_of(tmp_path / "b", tiny_clip, 4, methods=(2,), animals=("cat",), batch=1)
    prompt = next(p for p in load_prompts() if p.stem == "cat-of-harp")
    experiment = Experiment(prompt.for_method(2), prompt.stem, 2, "cat", "harp")
    ranked = run_experiment(small.spec(tmp_path / "r", tiny_clip, batch=1), experiment,
                            RankingSpec(4, best=1, worst=0, epochs_short=SHORT,
                                        epochs_detail=DETAIL))
    (kept,) = ranked.kept
    record = final_record(tmp_path / "b", 2, "cat-of-harp")
    assert record.best_of.run == kept.run
    assert record.best_of.short_sim == pytest.approx(kept.initial_sim, abs=1e-4)
    ours = (best_of_root(tmp_path / "b") / "method-2" / "cat-of-harp.png").read_bytes()
    theirs = experiment.continued_png(tmp_path / "r", kept.run).read_bytes()
    assert ours == theirs
    # every short run's sim agrees with the ranking's initial CSV
    initial = read_ratings(experiment.folder(tmp_path / "r") / "initial.csv")
    by_run = {int(path.rsplit("-", 1)[1].removesuffix(".png")): sims[0]
              for path, sims in initial.rows}
    assert state(tmp_path / "b", 2, "cat-of-harp").sims() == pytest.approx(by_run, abs=1e-4)


def test_raising_n_renders_only_the_new_runs(tmp_path, tiny_clip):
    cache = tmp_path
    best_of(cache, tiny_clip, 3)
    before = {a: state(cache, 1, f"{a}-of-harp") for a in ANIMALS}
    finals = {a: final_record(cache, 1, f"{a}-of-harp") for a in ANIMALS}
    plan, report = best_of(cache, tiny_clip, 6)
    assert report.short_rendered == 2 * 3  # runs 3, 4, 5 of each prompt
    changed = 0
    for animal in ANIMALS:
        after = state(cache, 1, f"{animal}-of-harp")
        old = {r.run: r for r in before[animal].runs}
        assert {r.run: r for r in after.runs if r.run < 3} == old  # untouched
        record = final_record(cache, 1, f"{animal}-of-harp")
        assert record.best_of.runs == 6
        assert record.best_of.run == winner(after, 6)
        if record.best_of.run != finals[animal].best_of.run:
            changed += 1
            assert record.seed != finals[animal].seed
        else:  # the same winner: the image is kept, only the record learns N = 6
            assert record.created == finals[animal].created
    assert report.continued == changed
    assert report.kept_winners == 2 - changed
    # and a third run has nothing to do
    plan, report = best_of(cache, tiny_clip, 6)
    assert not plan.todo and report.short_rendered == report.continued == 0


def test_other_short_epochs_invalidate_the_recorded_runs(tmp_path, tiny_clip):
    best_of(tmp_path, tiny_clip, 2, animals=("cat",))
    plan, report = best_of(tmp_path, tiny_clip, 2, animals=("cat",), epochs_short=SHORT + 1)
    assert report.short_rendered == 2 and report.continued == 1
    assert state(tmp_path, 1, "cat-of-harp").epochs == SHORT + 1


def test_a_lost_winner_image_is_rendered_again(tmp_path, tiny_clip):
    # One image per batch: the rendered-again run is then byte for byte the first.
    best_of(tmp_path, tiny_clip, 3, animals=("cat",), batch=1)
    record = final_record(tmp_path, 1, "cat-of-harp")
    short = best_of_root(tmp_path) / "method-1" / record.best_of.short_image
    final = best_of_root(tmp_path) / "method-1" / "cat-of-harp.png"
    data, final_mtime = short.read_bytes(), final.stat().st_mtime_ns
    short.unlink()
    plan, report = best_of(tmp_path, tiny_clip, 3, animals=("cat",), batch=1)
    assert report.short_rendered == 1  # that run alone
    assert short.read_bytes() == data  # the same seed gives the same image
    # so the continued image still counts: not rendered again
    assert report.continued == 0 and final.stat().st_mtime_ns == final_mtime


def _recorded(cache) -> int:
    total = 0
    for path in best_of_root(cache).glob("method-*/short-sims/*.json"):
        try:
            total += len(json.loads(path.read_text())["runs"])
        except (OSError, ValueError):
            pass
    return total


def test_a_killed_best_of_run_resumes_where_it_stopped(tmp_path, tiny_clip_path):
    cache = tmp_path / "cache"
    # Short runs long enough that the kill lands while some are still to come.
    args = ["render", "--best-of", 6, "--cache", cache, "--model", tiny_clip_path,
            "--thing", "harp", "--animal", "cat", "--animal", "snail", "--method", 1,
            "--epochs-short", 30, "--epochs-detail", DETAIL, "--batch", 1,
            "--device", "cpu"]
    kill_when(small.cli(*args), lambda: _recorded(cache) >= 3, timeout=120)
    recorded = _recorded(cache)
    assert 3 <= recorded < 12
    for png in best_of_root(cache).rglob("*.png"):
        assert png_is_whole(png, small.SIZE), png
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # Exactly the runs that were not recorded: the recorded ones are not redone.
    assert f"{12 - recorded} short runs and " in result.output
    for animal in ANIMALS:
        assert sorted(state(cache, 1, f"{animal}-of-harp").sims()) == list(range(6))
        assert final_record(cache, 1, f"{animal}-of-harp").best_of.runs == 6
    # one short image per prompt (--keep 1), and no temp file left
    assert len(list(best_of_root(cache).glob("method-1/runs/*.png"))) == 2
    assert not list(cache.rglob("*.tmp"))


def test_best_of_options_are_checked(tmp_path, tiny_clip_path):
    runner = CliRunner()
    common = ["--cache", str(tmp_path), "--model", str(tiny_clip_path), "--device", "cpu"]
    result = runner.invoke(main, ["render", "--best-of", "4", "--epochs", "3", *common])
    assert result.exit_code == 2
    assert "with --best-of use --epochs-short and --epochs-detail" in result.output
    result = runner.invoke(main, ["render", "--keep", "3", *common])
    assert result.exit_code == 2 and "--keep applies to --best-of only" in result.output
    result = runner.invoke(main, ["render", "--best-of", "0", *common])
    assert result.exit_code == 2 and "--best-of" in result.output
    assert not list(tmp_path.iterdir())


def test_dry_run_shows_the_work_and_its_estimate_and_writes_nothing(tmp_path, tiny_clip_path):
    result = CliRunner().invoke(main, [
        "render", "--best-of", "4", "--dry-run", "--thing", "harp", "--animal", "cat",
        "--cache", str(tmp_path), "--model", str(tiny_clip_path), "--device", "cpu",
        "--epochs-short", "2", "--epochs-detail", "3", "--batch", "2"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "render  method 1  cat-of-harp" in out and "0 of 4 short runs" in out
    # 2 methods x (4 short runs of 2 epochs + 1 continued of 3 epochs)
    assert "10 images, 22 image-steps" in out
    from clipig_gallery.renderer.engine.device import device_name

    assert "estimated" in out and f"on {device_name('cpu')}" in out
    assert not list(tmp_path.iterdir())
