"""scripts/gpu_check.py: its parts run on the CPU with the tiny model.

The script is meant for a GPU machine that the test machines are not; this
keeps its batch check and timed render working between GPU sessions.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from clipig_gallery.core.prompts import load_prompts

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_render_and_ranking_config_is_checked():
    gpu_check = load_script()
    assert sorted(gpu_check.configs(2)) == [
        "method-1", "method-2", "ranking-1-detail", "ranking-1-short",
        "ranking-2-detail", "ranking-2-short",
    ]
    assert {c.epochs for c in gpu_check.configs(2).values()} == {2}


def test_batch_check_and_timed_render_on_the_cpu(tiny_clip, tmp_path):
    gpu_check = load_script()
    config = gpu_check.configs(3)["method-2"]
    row = gpu_check.check_batch("method-2", config, tiny_clip, "fp32")
    # Epoch 1 of 3 (t = 0.5): blur (from 45%) active, already at 224 pixels.
    assert row == {**row, "config": "method-2", "precision": "fp32", "batch": 1,
                   "fits": True, "probe_epoch": 1}
    render = gpu_check.timed_render(2, tiny_clip, 2, 1, tmp_path)
    assert render["images"] == 2 and render["batches"] == [1, 1]
    expected = sorted(f"m2-{p.stem}.png" for p in load_prompts()[:2])
    assert sorted(p.name for p in tmp_path.glob("*.png")) == expected
    # Timed as `render` renders: with histories.
    assert len(list(tmp_path.glob("*.history.webp"))) == 2
    assert render["history_bytes_average"] > 0
    assert json.loads(json.dumps(render)) == render  # JSON-ready, as the script writes it


def test_batch_check_reports_running_out_of_memory_wherever_it_happens(tiny_clip, monkeypatch):
    import torch

    from clipig_gallery.renderer.execution.batching import OutOfMemory

    gpu_check = load_script()
    config = gpu_check.configs(2)["method-1"]

    class NoRoom:  # out of memory as the batch is set up, before any step
        def __init__(self, *args, **kwargs):
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    monkeypatch.setattr(gpu_check, "BatchRender", NoRoom)
    row = gpu_check.check_batch("method-1", config, tiny_clip, "fp32")
    assert row["fits"] is False and row["batch"] == 1

    def no_room_at_all(*args, **kwargs):
        raise OutOfMemory("out of memory measuring one image (injected)")

    monkeypatch.setattr(gpu_check, "auto_batch", no_room_at_all)
    row = gpu_check.check_batch("method-1", config, tiny_clip, "fp32")
    assert row["fits"] is False and row["batch"] == 0
    text = gpu_check.table({"environment": {"name": "x", "device": "cpu", "torch": "t",
                                            "cuda_build": None},
                            "bench": {"methods": [], "ranking": [],
                                      "precision_check": {"timed": ["fp32"], "matmul_ms": {},
                                                          "skipped": {"bf16": "emulated"}}},
                            "batches": [row], "renders": [], "projected_gallery_seconds": 60,
                            "seconds": 1})
    assert "| method-1 | fp32 | 0 | NO: out of memory |" in text
    assert "skipped bf16: emulated" in text
