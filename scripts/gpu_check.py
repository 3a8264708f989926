#!/usr/bin/env python3
"""One GPU check, ready to run: speed, memory and a timed render on this device.

    python scripts/gpu_check.py [--out FILE.json] [--images 64]    (make gpu-check)
    python scripts/gpu_check.py --quick --device cpu               (a smoke run, for tests)

Made for a machine with one CUDA GPU and no network: the model is ViT-B/32's
architecture with random weights (the same speed and memory as the real one,
no meaning), saved and loaded through the project's own loader. In order:

1. the device and the torch build;
2. ``bench`` (both methods; every precision the device computes natively,
   the others skipped with the reason; the reference-style loop);
3. the automatic batch of every method and ranking config in each of those
   precisions, each then run at that batch for two steps at its heaviest
   epoch, with the peak memory against the card's (a batch that does not fit
   is a row saying so, not an error);
4. a timed render of ``--images`` images per method at the full epochs;
5. the projected time of the whole 1620-image gallery.

It prints one table at the end and writes everything as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # usable from a checkout without installing

import torch  # noqa: E402

from clipig_gallery.core.layout import history_path  # noqa: E402
from clipig_gallery.core.paths import METHODS  # noqa: E402
from clipig_gallery.core.prompts import load_prompts  # noqa: E402
from clipig_gallery.renderer.engine.clipmodel import load_clip  # noqa: E402
from clipig_gallery.renderer.engine.history import DEFAULT_FRAMES  # noqa: E402
from clipig_gallery.renderer.engine.optimise import BatchRender  # noqa: E402
from clipig_gallery.renderer.engine.precision import support  # noqa: E402
from clipig_gallery.renderer.engine.standin import SMALL, VIT_B_32, standin_checkpoint  # noqa: E402
from clipig_gallery.renderer.execution.batching import (  # noqa: E402
    OutOfMemory,
    auto_batch,
    cuda_memory,
    is_out_of_memory,
    probe_epoch,
    release,
)
from clipig_gallery.renderer.execution.executor import LocalExecutor, Task  # noqa: E402
from clipig_gallery.renderer.execution.jobs import ImageJob  # noqa: E402
from clipig_gallery.renderer.execution.report import QUIET  # noqa: E402
from clipig_gallery.renderer.language.config import plan_epoch  # noqa: E402
from clipig_gallery.renderer.runs.bench import run_bench  # noqa: E402
from clipig_gallery.renderer.runs.configs import method_config, ranking_config  # noqa: E402

GALLERY = 810  # prompts per method
GIB = 2**30


def environment(device: torch.device) -> dict:
    info = {"torch": torch.__version__, "cuda_build": torch.version.cuda,
            "python": platform.python_version(), "device": str(device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(name=props.name, memory_gib=round(props.total_memory / GIB, 1),
                    capability=f"{props.major}.{props.minor}",
                    cudnn=torch.backends.cudnn.version())
        try:
            info["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            info["driver"] = "unknown (no nvidia-smi)"
    else:
        info.update(name=platform.processor() or platform.machine(),
                    threads=torch.get_num_threads())
    return info


def configs(epochs: int | None) -> dict:
    """Every config a render or ranking run uses, by name."""
    found = {f"method-{m}": method_config(m, epochs) for m in METHODS}
    for m in METHODS:
        for kind in ("short", "detail"):
            found[f"ranking-{m}-{kind}"] = ranking_config(m, kind, "probe", epochs)
    return found


def _two_steps(config, model, n: int, precision: str, epoch: int) -> None:
    job = BatchRender(config, model, list(range(n)), ["probe"] * n, precision=precision)
    state = job.start()
    plan = plan_epoch(config, epoch)
    for _ in range(2):
        job.step(state, plan)


def check_batch(name, config, model, precision: str, history: int = DEFAULT_FRAMES) -> dict:
    """The automatic batch (each image keeping ``history`` frames), then two steps at
    that batch at the heaviest epoch; an out-of-memory anywhere is a row that says so."""
    started = time.perf_counter()
    row = {"config": name, "precision": precision, "probe_epoch": probe_epoch(config)}
    try:
        row["batch"] = auto_batch(config, model, precision, history)
    except OutOfMemory:
        row.update(batch=0, fits=False, seconds=round(time.perf_counter() - started, 1))
        return row
    cuda = model.device.type == "cuda"
    memory = cuda_memory(model.device) if cuda else None
    if memory is not None:
        memory.empty_cache()
        memory.mark()
    try:
        _two_steps(config, model, row["batch"], precision, row["probe_epoch"])
        row["fits"] = True
    except Exception as exc:  # noqa: BLE001 -- only running out of memory is a result
        if not is_out_of_memory(exc):
            raise
        row["fits"] = False
    if memory is not None:
        total = torch.cuda.get_device_properties(model.device).total_memory
        peak = memory.window_peak()
        row["peak_gib"] = round(peak / GIB, 2)
        row["share_of_card"] = round(peak / total, 3)
        release(model.device)
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def timed_render(method: int, model, images: int, epochs: int | None, out: Path) -> dict:
    """Render ``images`` prompts of one method at the config's epochs, as `render` does
    (histories included)."""
    config = method_config(method, epochs)
    prompts = load_prompts()[:images]
    jobs = [ImageJob(p.for_method(method), i, out / f"m{method}-{p.stem}.png",
                     frames=DEFAULT_FRAMES) for i, p in enumerate(prompts)]
    batch = min(images, auto_batch(config, model, None, DEFAULT_FRAMES))
    if model.device.type == "cuda":
        torch.cuda.synchronize(model.device)
    started = time.perf_counter()
    executor = LocalExecutor(model)
    task = Task(config, jobs, batch, executor.precision(None).precision)
    sizes = executor.run(task, QUIET)
    if model.device.type == "cuda":
        torch.cuda.synchronize(model.device)
    seconds = time.perf_counter() - started
    histories = [history_path(j.png).stat().st_size for j in jobs]
    return {"method": method, "images": images, "epochs": config.epochs, "batches": sizes,
            "seconds": round(seconds, 1), "images_per_hour": round(3600 * images / seconds, 1),
            "gallery_seconds": round(GALLERY * seconds / images, 1),
            "history_bytes_average": round(sum(histories) / len(histories))}


def table(result: dict) -> str:
    env = result["environment"]
    lines = [f"== gpu-check on {env['name']} ({env['device']}), torch {env['torch']} "
             f"(CUDA build {env['cuda_build']}), driver {env.get('driver', '-')}",
             ""]
    check = result["bench"]["precision_check"]
    lines.append(f"precisions timed: {', '.join(check['timed'])}; matrix product ms: "
                 + ", ".join(f"{p} {ms}" for p, ms in check["matmul_ms"].items()))
    lines += [f"skipped {p}: {why}" for p, why in check["skipped"].items()]
    lines += ["", "| setting | s/step | images/hour | vs reference |", "|---|---:|---:|---:|"]
    for m in result["bench"]["methods"]:
        for key, seconds in m["seconds_per_step"].items():
            if seconds is None:
                lines.append(f"| method {m['method']}, {key} | out of memory | - | - |")
                continue
            lines.append(f"| method {m['method']}, {key} | {seconds:.3f} | "
                         f"{m['images_per_hour'][key]:.1f} | {m['speedup'][key]:.2f}x |")
        for precision, ratio in m.get("floor_ratio", {}).items():
            lines.append(f"| method {m['method']}, {precision} step / CLIP alone | "
                         f"{ratio:.3f}x | | |")
    lines += ["", "| config | precision | auto batch | fits | peak GiB | of card |",
              "|---|---|---:|---|---:|---:|"]
    for row in result["batches"]:
        lines.append(f"| {row['config']} | {row['precision']} | {row['batch']} | "
                     f"{'yes' if row['fits'] else 'NO: out of memory'} | "
                     f"{row.get('peak_gib', '-')} | {row.get('share_of_card', '-')} |")
    lines += ["", "| timed render (with histories) | images | epochs | batches | seconds | "
                  "images/hour | history KB |", "|---|---:|---:|---|---:|---:|---:|"]
    for r in result["renders"]:
        lines.append(f"| method {r['method']} | {r['images']} | {r['epochs']} | "
                     f"{sorted(set(r['batches']))} | {r['seconds']} | {r['images_per_hour']} | "
                     f"{r['history_bytes_average'] / 1000:.1f} |")
    lines += ["", "| history | batch | one frame | of a step | of the render | WebP s/image "
                  "| of an image's render |", "|---|---:|---:|---:|---:|---:|---:|"]
    for m in result["bench"]["methods"]:
        h = m["history"]
        if not h:
            lines.append(f"| method {m['method']} | out of memory | | | | | |")
            continue
        lines.append(f"| method {m['method']} ({h['precision']}) | {h['batch']} | "
                     f"{1000 * h['capture_seconds']:.2f} ms | "
                     f"{100 * h['capture_share_of_step']:.2g}% | "
                     f"{100 * h['share_of_render']:.2g}% | {h['encode_seconds_per_image']:.3f} | "
                     f"{100 * h['encode_share_of_render']:.2g}% |")
    lines += ["", "| best of N | short runs/hour | continued/hour | best of 512, per prompt |",
              "|---|---:|---:|---:|"]
    for r in result["bench"]["ranking"]:
        lines.append(f"| method {r['method']} ({r['precision']}) | "
                     f"{max(r['runs_per_hour'].values()):.0f} | "
                     f"{max(r['continued_per_hour'].values()):.0f} | "
                     f"{r['best_of_512_hours_per_prompt'] * 60:.1f} min |")
    best_of = result["bench"].get("best_of")
    if best_of:
        lines.append(f"best of 512 for the whole gallery: {best_of['hours_one_device']:.1f} h "
                     f"on this device, {best_of['hours_eight_devices']:.1f} h on eight")
    lines += ["", f"projected gallery (2 x {GALLERY} images) on this device: "
                  f"{result['projected_gallery_seconds'] / 60:.1f} minutes",
              f"peak memory over the bench: {result['bench'].get('peak_memory_mb')} MiB; "
              f"gpu-check took {result['seconds']:.0f} s"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "gpu-check.json")
    parser.add_argument("--images", type=int, default=64, help="images per method, timed")
    parser.add_argument("--steps", type=int, default=3, help="bench steps per setting")
    parser.add_argument("--quick", action="store_true",
                        help="a small model and 2 epochs: checks the script, measures nothing")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("CUDA is not available here; --device cpu --quick runs a smoke check")
    epochs = 2 if args.quick else None
    # Only what the device computes natively: an emulated precision would take
    # the check's whole time budget and measure nothing a run would use.
    precisions = support(device).native
    result = {"environment": environment(device), "quick": args.quick}
    print(json.dumps(result["environment"]), flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        weights = standin_checkpoint(Path(scratch), SMALL if args.quick else VIT_B_32)
        model = load_clip(str(weights), device)
        print("== bench", flush=True)
        result["bench"] = run_bench(device, str(weights), 1 if args.quick else args.steps,
                                    methods=METHODS, ops=False, precisions=precisions)
        print("== automatic batches", flush=True)
        result["batches"] = []
        for name, config in configs(epochs).items():
            for precision in precisions:
                result["batches"].append(check_batch(name, config, model, precision))
                print(json.dumps(result["batches"][-1]), flush=True)
        print("== timed renders", flush=True)
        result["renders"] = [timed_render(m, model, args.images, epochs, Path(scratch))
                             for m in METHODS]
    result["projected_gallery_seconds"] = sum(r["gallery_seconds"] for r in result["renders"])
    result["seconds"] = time.perf_counter() - started
    print(table(result), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")
    return result


if __name__ == "__main__":
    main()
