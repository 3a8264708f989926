"""One time estimate over any executor: whole batches, ``parallel`` at a time, each
``epochs`` steps of one batch's measured step on one worker.

A Ray executor's step is one worker's: dividing it by the workers as well
as counting the workers' parallel rounds made `--history-only` on k workers
estimate k times too little.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import small

from clipig_gallery.core.prompts import load_prompts
from clipig_gallery.renderer.execution import cluster
from clipig_gallery.renderer.execution.timing import Piece, duration, estimate_seconds
from clipig_gallery.renderer.runs.configs import method_config
from clipig_gallery.renderer.runs.first import plan, render_gallery
from clipig_gallery.renderer.runs.histories import add_missing, missing_in_gallery
from clipig_gallery.renderer.runs.spec import Selection, select

STEP = 1.5  # seconds of one batch's step on one worker, as if measured


class _Remote:
    def __init__(self, value):
        self.value = value

    def remote(self, *args):
        return self.value


def ray_executor(monkeypatch, workers: int, measured: list) -> cluster.RayExecutor:
    """A RayExecutor over ``workers`` stand-in actors whose step takes STEP seconds."""
    def step(config, n, precision):
        measured.append(n)
        return STEP

    fake_ray = SimpleNamespace(get=lambda ref: ref(*ref.args) if callable(ref) else ref)
    monkeypatch.setattr(cluster, "_ray", lambda: fake_ray)
    executor = object.__new__(cluster.RayExecutor)

    class Call:  # what .remote(...) hands to ray.get
        def __init__(self, *args):
            self.args = args

        def __call__(self, *args):
            return step(*args)

    actor = SimpleNamespace(step_seconds=SimpleNamespace(remote=Call))
    executor.slots = [cluster._Slot(actor, i) for i in range(workers)]
    executor.infos = [{"device_name": "Test GPU", "native": ["fp32"]} for _ in range(workers)]
    return executor


def test_a_ray_step_is_one_workers_step(monkeypatch):
    measured = []
    executor = ray_executor(monkeypatch, 4, measured)
    assert executor.parallel == 4
    assert executor.step_seconds(method_config(1, 3), 2, "fp32") == STEP
    assert measured == [2]


@pytest.mark.parametrize("workers, rounds", [(1, 5), (2, 3), (3, 2), (5, 1), (8, 1)])
def test_the_estimate_counts_whole_batches_and_parallel_rounds(monkeypatch, workers, rounds):
    config = method_config(1, 10)
    measured = []
    executor = ray_executor(monkeypatch, workers, measured)
    # 10 images at batch 2: 5 batches, `workers` at a time.
    seconds = estimate_seconds(executor, [Piece(config, 10, 2), Piece(config, 0, 2)], "fp32")
    assert seconds == pytest.approx(rounds * 10 * STEP)
    assert measured == [2]  # measured once, and not for the empty piece


def test_a_last_short_batch_is_measured_at_its_size(monkeypatch):
    measured = []
    executor = ray_executor(monkeypatch, 1, measured)
    assert estimate_seconds(executor, [Piece(method_config(2, 4), 3, 8)], "fp32") == \
        pytest.approx(4 * STEP)
    assert measured == [3]


def test_history_only_on_k_workers_estimates_k_parallel_rounds(monkeypatch, tmp_path,
                                                               tiny_clip, small_configs):
    prompts = select(load_prompts(), things=["harp"])[:4]
    configs = {m: method_config(m, 2) for m in (1, 2)}
    items = plan(tmp_path, prompts, (1,), configs, tiny_clip.identity)
    render_gallery(small.spec(tmp_path, tiny_clip), small.gallery(
        tmp_path, items, configs, [p.stem for p in load_prompts()]))  # without histories
    executor = ray_executor(monkeypatch, 2, [])
    reporter = small.Lines()
    spec = small.spec(tmp_path, tiny_clip, executor=executor, precision="fp32", batch=1,
                      frames=4, reporter=reporter,
                      selection=Selection((1,), things=("harp",), animals=tuple(
                          p.animal for p in prompts)))
    groups, pngs = missing_in_gallery(spec, epochs=2)
    assert [len(g.jobs) for g in groups] == [4] and len(pngs) == 4
    assert add_missing(spec, groups, pngs, dry_run=True) is None
    # 4 images at batch 1 on 2 workers: 2 rounds of 2 epochs of STEP seconds each.
    expected = 2 * 2 * STEP
    (said,) = [line for line in reporter.lines if "rendering again takes about" in line]
    assert f"about {duration(expected)} on 2 x Test GPU (Ray)" in said, said
    assert len([line for line in reporter.lines if line.startswith("history  ")]) == 4


def test_the_gallery_estimate_counts_each_methods_batches_on_k_workers(monkeypatch, tmp_path,
                                                                       tiny_clip, small_configs):
    from clipig_gallery.renderer.runs.first import estimate_line, plan_gallery

    measured = []
    executor = ray_executor(monkeypatch, 2, measured)
    spec = small.spec(tmp_path, tiny_clip, executor=executor, precision="fp32", batch=2,
                      selection=Selection(things=("harp",)))
    planned = plan_gallery(tmp_path, tiny_clip.identity, spec.selection, epochs=2)
    assert planned.counts() == {1: 9, 2: 9}
    said = estimate_line(spec, planned)
    # Per method: 9 images at batch 2 are 5 batches, 3 rounds on 2 workers, of 2 epochs.
    expected = 2 * 3 * 2 * STEP
    assert said.startswith(f"estimated {duration(expected)} for 18 images on 2 x Test GPU "
                           f"(Ray), fp32 (method 1: 9 at batch 2, method 2: 9 at batch 2;"), said
    assert measured == [2, 2]  # one step of each method's config
