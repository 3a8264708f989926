"""The benchmark's plumbing and the GPU-readiness facts it reports.

Speed itself is never asserted here: it is measured by `clipig-gallery
bench`, which prints numbers with the device and a same-run baseline.
"""

from __future__ import annotations

import contextlib

import pytest
import torch

from renderer.bench import count_ops, run_bench
from renderer.engine import BatchRender, plan_epoch
from renderer.gallery import method_config


@pytest.mark.parametrize("method", [1, 2])
def test_operator_count_does_not_grow_with_images(method, tiny_clip):
    config = method_config(method)
    two, many = count_ops(config, tiny_clip, 2), count_ops(config, tiny_clip, 16)
    assert two["host_syncs"] == many["host_syncs"] == 0
    # Random draws are one call per image and random transform...
    assert many["draw_calls"] == 8 * two["draw_calls"]
    # ...everything else is batched: no Python loop over images or views.
    # (A few ops vary with tensor sizes inside torch, never by 14 images.)
    assert abs(many["other_ops"] - two["other_ops"]) < 14


@contextlib.contextmanager
def no_reads_from_the_device():
    """Make every way of reading a tensor's value back to Python fail."""
    names = ("item", "tolist", "numpy", "cpu", "__float__", "__int__", "__bool__", "__repr__")
    saved = {name: getattr(torch.Tensor, name) for name in names}

    def refuse(name):
        def method(self, *args, **kwargs):
            raise AssertionError(f"Tensor.{name} called inside the step loop")

        return method

    for name in names:
        setattr(torch.Tensor, name, refuse(name))
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(torch.Tensor, name, fn)


@pytest.mark.parametrize("method", [1, 2])
def test_step_never_reads_values_back(method, tiny_clip):
    """On a GPU any such read would make the host wait for the device every step."""
    config = method_config(method).with_epochs(40)
    job = BatchRender(config, tiny_clip, [1, 2], ["a", "b"])
    state = job.start()
    with no_reads_from_the_device():
        # Epochs around the resolution changes and constraint starts.
        for epoch in (0, 5, 14, 15, 20, 39):
            job.step(state, plan_epoch(config, epoch))


def test_run_bench_reports_every_number(tiny_clip_path):
    result = run_bench(torch.device("cpu"), str(tiny_clip_path), steps=1, methods=(1,),
                       ops=False, echo=lambda _: None)
    assert result["device"].startswith("CPU") and result["torch"] == torch.__version__
    (method,) = result["methods"]
    keys = set(method["seconds_per_step"])
    assert {"reference", "fp32 N=1", "bf16 N=1", "bf16 N=4"} <= keys
    for key in keys:
        assert method["seconds_per_step"][key] > 0
        assert method["images_per_hour"][key] > 0
    assert method["speedup"]["reference"] == 1.0
    assert set(method["clip_floor"]) == {"fp32", "bf16"}
    assert result["peak_memory_mb"] > 0
    (ranking,) = result["ranking"]
    assert set(ranking["runs_per_hour"]) == {"N=1", "N=4"} and ranking["hours_for_512"] > 0
