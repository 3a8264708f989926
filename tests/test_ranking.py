"""The ranking experiment: selection on the article's own CSVs, and end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import small
import torch
from click.testing import CliRunner

from clipig_gallery.app.cli import main
from clipig_gallery.core.ratings import (
    parse_ratings,
    read_ratings,
    run_number,
    select_runs,
)
from clipig_gallery.renderer.engine.imageio import load_rgb
from clipig_gallery.renderer.engine.optimise import render
from clipig_gallery.renderer.engine.rate import rate_images
from clipig_gallery.renderer.runs.configs import ranking_config
from clipig_gallery.renderer.runs.ranking import Experiment, RankingSpec, run_experiment

ORIGINAL = Path(__file__).parent / "fixtures" / "original-csv"

# The article's table: (csv, stem, best runs, worst runs lowest first).
ARTICLE = {
    "snail-of-harp.csv": ("snail-of-harp", [487, 134, 326, 268, 471, 38], [214, 171]),
    "penguin-of-piano.csv": ("penguin-of-piano", [344, 43, 260, 40, 221, 244], [57, 390]),
    "penguin-of-piano-reso.csv": ("penguin-of-piano", [108, 80, 137, 42, 21, 24], [6, 106]),
}
# Left and right numbers of the first best and first worst cell of each column.
ARTICLE_SIMS = {
    "snail-of-harp.csv": {487: (36.81, 45.49), 214: (28.86, 45.38)},
    "penguin-of-piano.csv": {344: (35.30, 48.65), 244: (31.69, 38.75), 57: (20.22, 46.67)},
    "penguin-of-piano-reso.csv": {108: (21.86, 46.65), 6: (17.80, 48.58)},
}


def initial_sims(name: str) -> dict[int, float]:
    ratings = read_ratings(ORIGINAL / name)
    (prompt,) = ratings.prompts
    return {run_number(path): sim for path, sim in ratings.column(prompt).items()}


@pytest.mark.parametrize("name", list(ARTICLE))
def test_selection_reproduces_the_article_table(name):
    stem, best, worst = ARTICLE[name]
    sims = initial_sims(name)
    kept = select_runs(sims, best=6, worst=2)
    assert [k.run for k in kept if k.group == "best"] == best
    assert [k.run for k in kept if k.group == "worst"] == worst
    # The right-hand numbers: the continued images rated against their own
    # animal's prompt (one file holds all 24, rated against both prompts).
    finals_table = read_ratings(ORIGINAL / "final-snail-and-penguin.csv")
    prompt = next(p for p in finals_table.prompts if p.startswith(f"a {stem.split('-')[0]} "))
    finals = {run_number(path): sim for path, sim in finals_table.column(prompt).items()
              if f"/{stem}-from-" in f"/{path}"}
    joined = {k.run: (k.initial_sim, finals.get(k.run)) for k in kept}
    assert all(final is not None for _, final in joined.values())
    for run, (left, right) in ARTICLE_SIMS[name].items():
        assert round(joined[run][0], 2) == left
        assert round(joined[run][1], 2) == right


def test_select_runs_edge_cases():
    assert [k.run for k in select_runs({0: 1.0, 1: 3.0, 2: 2.0}, 1, 1)] == [1, 0]
    # Fewer runs than best + worst: no run is kept twice.
    assert [k.run for k in select_runs({0: 1.0, 1: 3.0}, 6, 2)] == [1, 0]
    # Equal sims: the lower run number ranks first.
    assert [k.run for k in select_runs({5: 1.0, 2: 1.0, 9: 0.5}, 1, 1)] == [2, 9]
    with pytest.raises(ValueError, match="best and worst must not be negative"):
        select_runs({0: 1.0}, -1, 0)


def test_csv_parsing_errors_name_the_file():
    with pytest.raises(ValueError, match="x.csv"):
        parse_ratings("a,b\n1,2\n", "x.csv")
    with pytest.raises(ValueError, match="line 2"):
        parse_ratings(",p\nimg.png,abc\n", "y.csv")
    with pytest.raises(ValueError, match="no run number in image name 'no-number.png'"):
        run_number("no-number.png")


EXPERIMENT = Experiment(
    "a snail made of harp. a snail with the texture of a harp.",
    "snail-of-harp",
    1,
    "snail",
    "harp",
)


def _experiment(cache, tiny_clip, runs, **fields):
    return run_experiment(small.spec(cache, tiny_clip, batch=6, **fields), EXPERIMENT,
                          RankingSpec(runs, best=2, worst=1, epochs_short=3, epochs_detail=4))


@pytest.fixture(scope="module", autouse=True)
def _small_configs():
    """The experiment's bookkeeping, on the small copies of the configs."""
    with pytest.MonkeyPatch.context() as patch:
        small.install(patch)
        yield


@pytest.fixture(scope="module")
def twelve(tmp_path_factory, tiny_clip):
    cache = tmp_path_factory.mktemp("rank")
    report = _experiment(cache, tiny_clip, 12)
    return cache, report


def test_end_to_end_files_and_csvs(twelve, tiny_clip):
    cache, report = twelve
    folder = EXPERIMENT.folder(cache)
    assert report.short_rendered == 12 and report.detail_rendered == 3
    assert len(list((folder / "runs").glob("*.png"))) == 12
    assert len(list((folder / "continued").glob("*.png"))) == 3
    initial = read_ratings(folder / "initial.csv")
    assert initial.prompts == (EXPERIMENT.text,)
    sims = [s for _, (s,) in initial.rows]
    assert sims == sorted(sims, reverse=True) and len(sims) == 12
    assert (folder / "initial.csv").read_text().startswith(",a snail made of harp.")
    summary = json.loads((folder / "summary.json").read_text())
    assert (summary["runs"], summary["best"], summary["worst"]) == (12, 2, 1)
    assert summary["epochs"] == {"short": 3, "detail": 4}
    assert [r["group"] for r in summary["rows"]] == ["best", "best", "worst"]
    best = summary["rows"][0]
    assert best["initial_sim"] == pytest.approx(sims[0], abs=1e-3)
    assert summary["rows"][2]["initial_sim"] == pytest.approx(sims[-1], abs=1e-3)
    final = read_ratings(folder / "final.csv").column(EXPERIMENT.text)
    for row in summary["rows"]:
        image = folder / row["image"]
        assert final[row["image"]] == pytest.approx(row["final_sim"], abs=1e-3)
        record = json.loads(image.with_suffix(".json").read_text())
        assert record["run"] == row["run"]
        assert record["init_image"] == f"snail-of-harp-{row['run']}.png"
        # The recorded sim is the rating of the saved file.
        rated = rate_images(tiny_clip, [image], [EXPERIMENT.text])[0, 0]
        assert float(rated) == pytest.approx(row["final_sim"], abs=1e-3)


def test_run_in_a_batch_equals_run_alone(twelve, tiny_clip):
    cache, _ = twelve
    short = ranking_config(1, "short", EXPERIMENT.text, epochs=3)
    run = 7
    alone = render(short, tiny_clip, [EXPERIMENT.seed("short", run)], [EXPERIMENT.text])
    batched = load_rgb(EXPERIMENT.run_png(cache, run), *small.SIZE)
    batched = (batched * 255).round().to(torch.uint8)
    assert (alone.images[0].int() - batched.int()).abs().max() <= 1


def test_more_runs_render_only_the_new_ones(tmp_path, tiny_clip):
    first = _experiment(tmp_path, tiny_clip, 6)
    assert first.short_rendered == 6
    before = {p: p.read_bytes() for p in (EXPERIMENT.folder(tmp_path) / "runs").glob("*.png")}
    second = _experiment(tmp_path, tiny_clip, 12)
    assert second.short_rendered == 6
    for path, data in before.items():
        assert path.read_bytes() == data
    kept_before = {k.run for k in first.kept}
    new_kept = {k.run for k in second.kept} - kept_before
    assert second.detail_rendered == len(new_kept)
    again = _experiment(tmp_path, tiny_clip, 12)
    assert (again.short_rendered, again.detail_rendered) == (0, 0)


def test_rate_command_writes_an_article_csv(twelve, tiny_clip_path, tmp_path):
    cache, _ = twelve
    images = sorted((EXPERIMENT.folder(cache) / "runs").glob("*.png"))[:3]
    out = tmp_path / "rating.csv"
    result = CliRunner().invoke(
        main,
        [
            "rate",
            *map(str, images),
            "--text",
            "a snail",
            "--text",
            "a penguin",
            "-o",
            str(out),
            "--model",
            str(tiny_clip_path),
        ],
    )
    assert result.exit_code == 0, result.output
    table = read_ratings(out)
    assert table.prompts == ("a snail", "a penguin")
    assert [p for p, _ in table.rows] == [str(p) for p in images]
    from clipig_gallery.renderer.engine.clipmodel import load_clip

    expected = rate_images(load_clip(str(tiny_clip_path)), images, ["a snail", "a penguin"])
    for (_, sims), row in zip(table.rows, expected.tolist(), strict=True):
        assert sims == pytest.approx(row, abs=1e-4)


def test_rank_command(tmp_path, tiny_clip_path):
    result = CliRunner().invoke(
        main,
        [
            "rank",
            "--animal",
            "penguin",
            "--thing",
            "piano",
            "--method",
            "2",
            "--runs",
            "4",
            "--best",
            "1",
            "--worst",
            "1",
            "--epochs-short",
            "2",
            "--epochs-detail",
            "2",
            "--cache",
            str(tmp_path),
            "--model",
            str(tiny_clip_path),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "ranking/penguin-of-piano/method-2/summary.json").read_text())
    assert summary["method"] == 2 and len(summary["rows"]) == 2
    bad = CliRunner().invoke(
        main, ["rank", "--animal", "unicorn", "--thing", "piano", "--model", str(tiny_clip_path)]
    )
    assert bad.exit_code != 0 and "unicorn" in bad.output


def test_rate_command_refuses_an_output_it_cannot_write_before_loading_a_model(tmp_path):
    (tmp_path / "a-file").write_text("x")
    out = tmp_path / "a-file" / "rating.csv"
    # the model does not exist: the output is checked first
    result = CliRunner().invoke(main, ["rate", str(tmp_path / "a-file"), "--text", "a",
                                       "-o", str(out), "--model", str(tmp_path / "none.pt")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert f"cannot write {tmp_path / 'a-file'}: File exists; check the path" in result.output
    assert (tmp_path / "a-file").read_text() == "x"
