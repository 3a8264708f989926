"""`--ray`: a real local Ray cluster with CPU workers and the tiny model.

One Ray head serves the module, started once as `ray start --head` would by a
user, in a process of its own (so a driver that disconnects or is killed
leaves it running); every driver joins it by address: this process, and the
command line in child processes. Starting a cluster costs seconds, joining
one about one. Its 4 logical CPUs let the module's pair of workers and a
child's own worker exist side by side on the 2 cores.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

# Ray is an optional extra ('.[ray]'); make test installs it, and without it
# these tests fail rather than skip.
import ray
import small
import torch
from click.testing import CliRunner
from conftest import kill_when

from clipig_gallery.app.cli import main
from clipig_gallery.core.prompts import load_prompts
from clipig_gallery.renderer.execution import cluster
from clipig_gallery.renderer.execution.cache import png_is_whole, read_record
from clipig_gallery.renderer.execution.executor import Task
from clipig_gallery.renderer.execution.jobs import ImageJob, render_results
from clipig_gallery.renderer.execution.report import QUIET
from clipig_gallery.renderer.runs.bestof import BestOfSpec, plan_best_of, render_best_of
from clipig_gallery.renderer.runs.configs import method_config
from clipig_gallery.renderer.runs.first import plan, render_gallery
from clipig_gallery.renderer.runs.ranking import RankingSpec, run_experiment
from clipig_gallery.renderer.runs.spec import Selection, select

EPOCHS = 2
STEMS = [p.stem for p in load_prompts()]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def head():
    """The address of a Ray head for this module; stopped after it."""
    port = _free_port()
    # A short path: Ray's sockets live under it, and a unix socket path is short.
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.Popen([Path(sys.executable).parent / "ray", "start", "--head",
                             f"--port={port}", "--num-cpus=4", "--num-gpus=0",
                             "--include-dashboard=false", "--disable-usage-stats",
                             f"--temp-dir={temp}", "--block"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:  # ready once the head's GCS port answers
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"ray start --head did not come up:\n{proc.communicate()[0]}")
            time.sleep(0.1)
    # Drivers send the head's token (RAY_AUTH_MODE=token, set in conftest).
    assert os.environ.get("RAY_AUTH_MODE") == "token"
    try:
        yield address
    finally:
        # The head and every process it started share its session: all go at once
        # (a graceful stop takes half a minute, and nothing of it is kept).
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        shutil.rmtree(temp, ignore_errors=True)


def _whole(cache):
    return {p: p.read_bytes() for p in sorted(cache.glob("method-*/*.png"))
            if read_record(p) is not None}


def test_a_killed_driver_leaves_only_finished_images_and_a_rerun_completes(
        head, small_configs, tmp_path, tiny_clip_path):
    # The command line in a child process on the small configs, joining the head,
    # killed after two images; then the same command again, here.
    cache = tmp_path / "cache"
    args = ["render", "--device", "cpu", "--cache", cache, "--model", tiny_clip_path,
            "--thing", "harp", *[a for p in harp(5) for a in ("--animal", p.animal)],
            "--method", "1", "--epochs", 40, "--batch", "1"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    kill_when(small.cli(*args, "--ray", head, "--ray-workers", 1),
              lambda: len(_whole(cache)) >= 2, timeout=180, env=env)
    for png in cache.glob("method-*/*.png"):
        assert png_is_whole(png, small.SIZE), png
    before = _whole(cache)
    assert 2 <= len(before) < 5
    mtimes = {p: p.stat().st_mtime_ns for p in before}
    # The cache is the driver's: rendering again resumes it, here in this process
    # without the cluster (the cluster runs of the tests below cover rendering there).
    rerun = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert rerun.exit_code == 0, rerun.output
    assert f"{5 - len(before)} images in" in rerun.output
    after = _whole(cache)
    assert len(after) == 5
    for path, data in before.items():  # nothing finished was rendered again
        assert after[path] == data and path.stat().st_mtime_ns == mtimes[path]
    assert not list(cache.rglob("*.tmp"))


def test_bench_ray_times_this_process_and_one_and_two_workers(head, small_configs, tmp_path,
                                                             tiny_clip_path):
    # Before the module's own workers exist; the bench leaves the cluster as it found it.
    out = tmp_path / "ray-bench.json"
    result = CliRunner().invoke(main, ["bench", "--ray", head, "--model", str(tiny_clip_path),
                                       "--device", "cpu", "--steps", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    import json

    data = json.loads(out.read_text())
    assert data["images"] == 4 and data["local"]["images_per_hour"] > 0
    assert [w["workers"] for w in data["workers"]] == [1, 2]
    for entry in data["workers"]:
        assert entry["batches"] == 4  # the timed run's, not the warm-up's
        assert entry["images_per_hour"] > 0 and entry["overhead_per_batch_s"] >= 0
    from clipig_gallery.renderer.engine.precision import cpu_name

    assert f"2 worker(s) (2 x {cpu_name()}, 1 threads (Ray))" in result.output


@pytest.fixture(scope="module")
def executor(head, tiny_clip):
    """This process joined to the head, with two workers of one CPU each."""
    cluster.connect(head, echo=lambda _: None)
    try:
        yield cluster.RayExecutor(tiny_clip, "cpu", workers=2, echo=lambda _: None)
    finally:
        cluster.shutdown()


def harp(n):
    return select(load_prompts(), things=["harp"])[:n]


def test_an_image_rendered_on_a_worker_equals_the_local_one(executor, small_configs, tiny_clip):
    config = method_config(2, EPOCHS)
    jobs = [ImageJob(p.for_method(2), 1000 + i, Path(f"/nowhere/{p.stem}.png"))
            for i, p in enumerate(harp(2))]
    written = {}
    sizes = executor.run(Task(config, jobs, 1, "fp32", write=lambda js, rs: written.update(
        {j.seed: r for j, r in zip(js, rs, strict=True)})), QUIET)
    assert sorted(sizes) == [1, 1]
    # The workers run torch on one thread each; so does the local render here.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for job in jobs:
            (local,) = render_results(config, tiny_clip, [job])
            remote = written[job.seed]
            assert remote.png == local.png
            assert remote.record.sim == local.record.sim
            assert remote.record.config_hash == local.record.config_hash
            assert remote.record.model_id == tiny_clip.identity
    finally:
        torch.set_num_threads(threads)


def test_a_continued_image_gets_its_start_image_and_history_through_ray(
        executor, small_configs, tiny_clip, tmp_path):
    from clipig_gallery.renderer.runs.configs import ranking_config

    start = tmp_path / "runs" / "cat-of-harp-0.png"
    start.parent.mkdir()
    short = ranking_config(1, "short", "x", EPOCHS)
    (first,) = render_results(short, tiny_clip, [ImageJob("a cat made of harp.", 7, start)])
    start.write_bytes(first.png)
    detail = ranking_config(1, "detail", "x", EPOCHS)
    job = ImageJob("a cat made of harp.", 8, tmp_path / "continued.png", frames=4)
    got = []
    executor.run(Task(detail, [job], 1, "fp32", [start], lambda js, rs: got.extend(rs)), QUIET)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        (local,) = render_results(detail, tiny_clip, [job], init_images=[start])
    finally:
        torch.set_num_threads(threads)
    assert got[0].png == local.png
    assert got[0].record.config_hash == local.record.config_hash  # counts the start's bytes
    # Its history comes back from the worker with it, the same bytes.
    assert got[0].history_webp is not None and got[0].history_webp == local.history_webp


def test_a_killed_worker_costs_its_batch_and_the_run_completes(executor, small_configs,
                                                                tiny_clip, tmp_path):
    prompts = harp(6)
    configs = {m: method_config(m, EPOCHS) for m in (1, 2)}
    items = plan(tmp_path, prompts, (1,), configs, tiny_clip.identity)
    pids = executor.pids()
    lines, killed = [], []

    def after_batch(count):
        # One batch is written; the other worker is still rendering its own.
        if not killed:
            (busy,) = executor.busy()
            os.kill(pids[busy], signal.SIGKILL)
            killed.append(pids[busy])

    spec = small.spec(tmp_path, tiny_clip, executor=executor, batch=1,
                      reporter=small.Lines(lines.append, after_batch))
    report = render_gallery(spec, small.gallery(tmp_path, items, configs, STEMS))
    assert len(killed) == 1
    assert report.rendered == 6
    assert any("lost mid-batch" in line and "go to another worker" in line for line in lines)
    for item in items:
        assert png_is_whole(item.png, small.SIZE) and read_record(item.png).stem
    assert killed[0] not in executor.pids()  # Ray started it again


def test_gpus_asked_of_a_cluster_without_any_are_refused(executor, tiny_clip):
    with pytest.raises(cluster.ClusterError, match="the cluster has no GPU"):
        cluster.RayExecutor(tiny_clip, "cuda")


def test_a_version_mismatch_is_refused_before_any_work(executor, tiny_clip, monkeypatch):
    real = cluster.versions()
    monkeypatch.setattr(cluster, "versions", lambda: {**real, "code": "0" * 16})
    with pytest.raises(cluster.ClusterError,
                       match=f"driver and cluster differ: code 0{{16}} here, {real['code']}"):
        executor._check_workers()


def test_a_wrong_address_fails_within_seconds(tmp_path, tiny_clip_path):
    started = time.monotonic()
    result = CliRunner().invoke(main, [
        "render", "--ray", "127.0.0.1:9", "--device", "cpu", "--thing", "harp",
        "--cache", str(tmp_path / "cache"), "--model", str(tiny_clip_path)])
    assert result.exit_code == 1, result.output
    assert "cannot reach the Ray cluster at 127.0.0.1:9" in result.output
    assert time.monotonic() - started < 15
    assert not (tmp_path / "cache").exists()
    result = CliRunner().invoke(main, [
        "rank", "--ray", "ray://127.0.0.1:9", "--device", "cpu", "--animal", "cat",
        "--thing", "harp", "--runs", "2", "--cache", str(tmp_path / "cache"),
        "--model", str(tiny_clip_path)])
    assert result.exit_code == 1, result.output
    assert "cannot reach the Ray cluster at ray://127.0.0.1:9" in result.output
    assert time.monotonic() - started < 30
    result = CliRunner().invoke(main, ["render", "--ray-workers", "2", "--device", "cpu",
                                       "--cache", str(tmp_path / "cache"),
                                       "--model", str(tiny_clip_path), "--thing", "harp"])
    assert result.exit_code == 2 and "--ray-workers applies to --ray only" in result.output


def test_best_of_and_rank_run_on_the_cluster(executor, small_configs, tiny_clip, tmp_path):
    from clipig_gallery.core.layout import best_of_root
    from clipig_gallery.renderer.runs.bestof import winner
    from clipig_gallery.renderer.runs.ranking import Experiment

    plan = plan_best_of(tmp_path, tiny_clip.identity, BestOfSpec(4, 1, EPOCHS, EPOCHS),
                        Selection((1,), ("cat", "pig"), ("harp",)))
    sizes = {(1, "short"): 2, (1, "detail"): 1}
    report = render_best_of(small.spec(tmp_path, tiny_clip, executor=executor), plan, sizes)
    assert (report.short_rendered, report.continued) == (8, 2)
    for entry in plan.entries:
        assert sorted(entry.state.sims()) == [0, 1, 2, 3]
        record = read_record(best_of_root(tmp_path) / "method-1" / f"{entry.stem}.png")
        assert record.best_of.run == winner(entry.state, 4)
    prompt = harp(1)[0]
    experiment = Experiment(prompt.text, prompt.stem, 2, prompt.animal, prompt.thing)
    ranked = run_experiment(small.spec(tmp_path, tiny_clip, executor=executor, batch=1),
                            experiment, RankingSpec(3, 1, 1, EPOCHS, EPOCHS))
    assert (ranked.short_rendered, ranked.detail_rendered) == (3, 2)
    assert (experiment.folder(tmp_path) / "summary.json").is_file()


def test_a_cluster_that_wants_a_token_says_how_to_give_it(monkeypatch):
    def refused(**kwargs):
        try:
            raise RuntimeError("RPC error: InvalidAuthToken: Authentication token is missing")
        except RuntimeError as cause:
            raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379") from cause

    monkeypatch.setattr(cluster, "_reachable", lambda address: None)
    monkeypatch.setattr(ray, "init", refused)
    with pytest.raises(cluster.ClusterError, match="set RAY_AUTH_MODE=token .* RAY_AUTH_TOKEN"):
        cluster.connect("10.0.0.1:6379", echo=lambda _: None)
