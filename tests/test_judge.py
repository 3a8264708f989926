"""`judge`: a second tiny CLIP rates every image; `--select-by judge` in best-of."""

from __future__ import annotations

import shutil

import pytest
import small
import torch
from click.testing import CliRunner
from conftest import build_tiny_clip

from clipig_gallery.app.cli import main
from clipig_gallery.core.layout import best_of_root, judge_csv_path, judge_path, short_sims_path
from clipig_gallery.core.prompts import load_prompts
from clipig_gallery.core.schema import Judgement, RenderRecord, ShortRuns, read_json
from clipig_gallery.renderer.engine.clipmodel import load_clip
from clipig_gallery.renderer.engine.rate import rate_pairs
from clipig_gallery.renderer.execution.cache import read_record
from clipig_gallery.renderer.runs.bestof import BestOfSpec, plan_best_of, render_best_of, winner
from clipig_gallery.renderer.runs.configs import method_config
from clipig_gallery.renderer.runs.first import plan, render_gallery
from clipig_gallery.renderer.runs.judge import SameModel, judge_cache
from clipig_gallery.renderer.runs.ranking import Experiment, RankingSpec, run_experiment
from clipig_gallery.renderer.runs.spec import Selection, select

STEMS = [p.stem for p in load_prompts()]


@pytest.fixture(scope="module", autouse=True)
def _small_configs():
    """What the judge rates is any rendered image: the small copies of the configs do."""
    with pytest.MonkeyPatch.context() as patch:
        small.install(patch)
        yield


@pytest.fixture(scope="module")
def judge_path_pt(tmp_path_factory):
    path = tmp_path_factory.mktemp("judge") / "judge-clip.pt"
    torch.save(build_tiny_clip(seed=1).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def judge(judge_path_pt):
    return load_clip(str(judge_path_pt), "cpu")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, tiny_clip):
    """Two gallery images per method, a best-of pair and a small ranking column."""
    tmp_path = tmp_path_factory.mktemp("rendered")
    prompts = select(load_prompts(), things=["harp"])[:2]
    configs = {m: method_config(m, 2) for m in (1, 2)}
    items = plan(tmp_path, prompts, (1, 2), configs, tiny_clip.identity)
    render_gallery(small.spec(tmp_path, tiny_clip, batch=2),
                   small.gallery(tmp_path, items, configs, STEMS))
    best = plan_best_of(tmp_path, tiny_clip.identity, BestOfSpec(2, 1, 2, 2),
                        Selection((1,), ("cat",), ("harp",)))
    render_best_of(small.spec(tmp_path, tiny_clip), best, {(1, "short"): 2, (1, "detail"): 1})
    snail = next(p for p in load_prompts() if p.stem == "snail-of-harp")
    run_experiment(small.spec(tmp_path, tiny_clip, batch=2),
                   Experiment(snail.text, snail.stem, 1, "snail", "harp"),
                   RankingSpec(2, 1, 0, 2, 2))
    return tmp_path


@pytest.fixture()
def cache(rendered, tmp_path):
    """A copy of the rendered cache for one test to judge and change."""
    return shutil.copytree(rendered, tmp_path / "cache")


def read(cache) -> Judgement:
    return Judgement.from_json(read_json(judge_path(cache)), judge_path(cache))


def test_the_judge_rates_every_image_differently_from_the_optimised_model(cache, judge):
    report = judge_cache(cache, judge, STEMS)
    judgement = read(cache)
    pngs = sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*.png"))
    # 4 gallery, 1 best-of + its kept short run, 2 ranking runs + 1 continued
    assert len(pngs) == 9 and sorted(judgement.ratings) == pngs
    assert (report.images, report.judged) == (9, 9)
    assert judgement.model_id == judge.identity
    differ = 0
    for key, rating in judgement.ratings.items():
        record = read_record(cache / key)
        expected = rate_pairs(judge, [(cache / key).read_bytes()], [record.prompt])[0]
        assert rating.sim == pytest.approx(expected, abs=1e-3)
        differ += abs(rating.sim - record.sim) > 0.01
    assert differ == 9  # another model, other ratings
    # per method beside sims.csv, naming the judge, gallery and best-of
    text = judge_csv_path(cache, 1).read_text().splitlines()
    assert text[0] == ",prompt,sim judge-clip.pt"  # a file's name, not its whole path
    assert [line.split(",")[0] for line in text[1:]] == ["method-1/cat-of-harp.png",
                                                         "method-1/hedgehog-of-harp.png"]
    best = judge_csv_path(best_of_root(cache), 1).read_text().splitlines()
    assert best[1].startswith("method-1/cat-of-harp.png,")


def test_a_rerun_judges_nothing_and_a_changed_image_is_judged_again(cache, judge):
    judge_cache(cache, judge, STEMS)
    before = read(cache)
    report = judge_cache(cache, judge, STEMS)
    assert report.judged == 0 and read(cache) == before
    png = cache / "method-2" / "cat-of-harp.png"
    other = cache / "method-1" / "cat-of-harp.png"
    png.write_bytes(other.read_bytes())  # another picture under the same name
    report = judge_cache(cache, judge, STEMS)
    assert report.judged == 1
    after = read(cache)
    assert after.ratings["method-2/cat-of-harp.png"] != before.ratings["method-2/cat-of-harp.png"]
    assert {k: v for k, v in after.ratings.items() if k != "method-2/cat-of-harp.png"} == \
        {k: v for k, v in before.ratings.items() if k != "method-2/cat-of-harp.png"}
    # A new prompt in the record is a change too.
    record = cache / "method-1" / "hedgehog-of-harp.json"
    record.write_text(record.read_text().replace("hedgehog made of harp",
                                                 "hedgehog made of harps"))
    assert judge_cache(cache, judge, STEMS).judged == 1


def test_a_png_that_does_not_decode_is_not_judged_and_loses_its_rating(cache, judge):
    judge_cache(cache, judge, STEMS)
    before = read(cache)
    png = cache / "method-2" / "cat-of-harp.png"
    whole = png.read_bytes()
    png.write_bytes(whole[: len(whole) // 2])  # damaged on disk: the renderer says corrupt
    report = judge_cache(cache, judge, STEMS)
    assert report.damaged == ("method-2/cat-of-harp.png",) and report.judged == 0
    after = read(cache)
    assert "method-2/cat-of-harp.png" not in after.ratings
    assert after.ratings == {k: v for k, v in before.ratings.items()
                             if k != "method-2/cat-of-harp.png"}
    png.write_bytes(whole)  # rendered again: judged again
    report = judge_cache(cache, judge, STEMS)
    assert report.damaged == () and report.judged == 1 and read(cache) == before


def test_the_judge_command_names_the_images_it_could_not_judge(cache, judge_path_pt):
    png = cache / "method-1" / "cat-of-harp.png"
    png.write_bytes(b"not a png")
    result = CliRunner().invoke(main, ["judge", "--cache", str(cache), "--model",
                                       str(judge_path_pt), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "8 of 9 images judged (0 unchanged since their rating)" in result.output
    assert ("not judged: 1 images whose PNG does not decode (method-1/cat-of-harp.png); "
            "`render`") in result.output


def test_the_optimised_weights_under_another_name_are_refused(cache, tiny_clip_path, tmp_path):
    copy = tmp_path / "renamed.pt"  # beside the cache copy, not in it
    shutil.copy(tiny_clip_path, copy)
    renamed = load_clip(str(copy), "cpu")
    with pytest.raises(SameModel, match="has the weights the images were optimised against"):
        judge_cache(cache, renamed, STEMS)
    assert not judge_path(cache).exists()
    result = CliRunner().invoke(main, ["judge", "--cache", str(cache), "--model", str(copy),
                                       "--device", "cpu"])
    assert result.exit_code == 1 and "optimised against" in result.output


def test_select_by_judge_picks_the_judges_argmax(tmp_path, tiny_clip, judge):
    best = plan_best_of(tmp_path, tiny_clip.identity, BestOfSpec(5, 1, 2, 2, judge),
                        Selection((1,), ("cat", "pig"), ("harp",)))
    render_best_of(small.spec(tmp_path, tiny_clip), best, {(1, "short"): 3, (1, "detail"): 2})
    by_sim_differs = 0
    for stem in ("cat-of-harp", "pig-of-harp"):
        path = short_sims_path(best_of_root(tmp_path), 1, stem)
        state = ShortRuns.from_json(read_json(path), path)
        assert state.judge_id == judge.identity
        ratings = {r.run: r.judge for r in state.runs}
        assert None not in ratings.values() and len(ratings) == 5
        chosen = max(ratings, key=lambda r: (ratings[r], -r))
        record_file = best_of_root(tmp_path) / "method-1" / f"{stem}.json"
        record = RenderRecord.from_json(read_json(record_file), record_file)
        assert record.best_of.select_by == "judge"
        assert record.best_of.run == chosen == winner(state, 5)
        assert record.best_of.short_judge == ratings[chosen]
        sims = state.sims()
        by_sim_differs += chosen != max(sims, key=lambda r: (sims[r], -r))
        # the judge's rating is the kept short image's, as `judge` would rate it
        short = best_of_root(tmp_path) / "method-1" / record.best_of.short_image
        again = rate_pairs(judge, [short.read_bytes()], [record.prompt])[0]
        assert ratings[chosen] == pytest.approx(again, abs=1e-3)
    assert by_sim_differs >= 1  # the two criteria disagree somewhere, so this tested one


def test_select_by_judge_refuses_the_optimised_model_and_checks_options(tmp_path, tiny_clip,
                                                                        tiny_clip_path):
    with pytest.raises(ValueError, match="the judge has the weights the runs are optimised"):
        plan_best_of(tmp_path, tiny_clip.identity, BestOfSpec(2, judge=tiny_clip))
    runner = CliRunner()
    common = ["--cache", str(tmp_path), "--model", str(tiny_clip_path), "--device", "cpu"]
    result = runner.invoke(main, ["render", "--select-by", "judge", *common])
    assert result.exit_code == 2 and "--select-by applies to --best-of only" in result.output
    result = runner.invoke(main, ["render", "--best-of", "2", "--judge-model", "x", *common])
    assert result.exit_code == 2 and "--judge-model goes with --select-by judge" in result.output
    result = runner.invoke(main, ["render", "--best-of", "2", "--select-by", "judge",
                                  "--judge-model", str(tiny_clip_path), "--thing", "harp",
                                  *common])
    assert result.exit_code == 1 and "optimised against" in result.output
    assert not list(tmp_path.iterdir())


def test_with_ray_the_judge_rates_on_this_machines_gpu_where_it_has_one(monkeypatch):
    from types import SimpleNamespace

    import torch

    from clipig_gallery.renderer.engine import device
    from clipig_gallery.renderer.execution.executor import LocalExecutor
    from clipig_gallery.renderer.runs.session import judge_device

    cpu = torch.device("cpu")
    model = SimpleNamespace(device=cpu)
    local = SimpleNamespace(device=cpu, executor=LocalExecutor(model))
    on_ray = SimpleNamespace(device=cpu, executor=object())  # any other executor
    assert judge_device(local, "render") == cpu  # locally: where the runs render
    monkeypatch.setattr(device, "cuda_status", lambda: (True, ""))
    assert judge_device(on_ray, "render") == torch.device("cuda")
    assert judge_device(on_ray, "estimate") == cpu  # a dry run's judge stays with the model
    monkeypatch.setattr(device, "cuda_status", lambda: (False, "no GPU here"))
    monkeypatch.setattr(device, "mps_status", lambda: (False, "no Apple GPU"))
    assert judge_device(on_ray, "render") == cpu


def test_where_the_judge_rates_and_what_it_costs_is_said(tiny_clip):
    from clipig_gallery.renderer.runs.bestof import judge_cost_line

    out = judge_cost_line(tiny_clip, 512, on_ray=True)
    assert out.startswith("the judge rates the 512 short runs in this process on cpu (")
    assert "ms each (measured), about " in out
    assert "this machine has no GPU, so its CPU rates every run the workers render" in out
    assert "workers" not in judge_cost_line(tiny_clip, 3, on_ray=False)
