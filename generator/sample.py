"""A synthetic render cache in the renderer's layout: no torch, no GPU.

For the site tests, for timing the site build, and for previewing the page
before anything is rendered:

    python -m generator.sample /tmp/sample-cache [--noisy] [--things 5]

The images are coloured squares (or, with ``--noisy``, noise textures whose
PNGs are as large as real renders, ~110 KB); the sims are made up.
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import zlib
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw

from gallery.atomic import write_text
from gallery.layout import (
    FINAL_CSV,
    INITIAL_CSV,
    SUMMARY,
    continued_name,
    png_path,
    ranking_dir,
    record_path,
    run_name,
    sims_csv_image,
    sims_csv_path,
    summary_path,
)
from gallery.paths import METHODS
from gallery.prompts import Prompt, load_prompts
from gallery.schema import (
    CacheSummary,
    MethodSummary,
    RankingRow,
    RankingSummary,
    RenderRecord,
    format_sims_csv,
)

from .selector import method_prompt

SIZE = 224
# The article's ranking columns: (stem, animal, thing, method, runs)
RANKING_COLUMNS = (("snail-of-harp", "snail", "harp", 1, 512),
                   ("penguin-of-piano", "penguin", "piano", 1, 512),
                   ("penguin-of-piano", "penguin", "piano", 2, 149))


def flat_image(seed: int) -> Image.Image:
    """A square with a few shapes: cheap to encode, tells images apart."""
    rng = random.Random(seed)
    img = Image.new("RGB", (SIZE, SIZE), tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(img)
    for _ in range(3):
        x, y = rng.randrange(SIZE - 40), rng.randrange(SIZE - 40)
        draw.ellipse((x, y, x + 40, y + 40), fill=tuple(rng.randrange(256) for _ in range(3)))
    return img


def noisy_image(seed: int) -> Image.Image:
    """Noise at four scales per channel: PNG size and entropy like a CLIPig render."""
    channels = []  # effect_noise differs on every call; the seed only varies the scales
    for channel in range(3):
        acc = None
        for scale, sigma in ((8, 60), (28, 40), (112, 30), (SIZE, 18)):
            size = scale + (seed + channel) % 3
            layer = Image.effect_noise((size, size), sigma).resize((SIZE, SIZE), Image.BICUBIC)
            acc = layer if acc is None else ImageChops.add(acc, layer, scale=1.6, offset=-60)
        channels.append(acc)
    return Image.merge("RGB", channels)


def _png(path: Path, seed: int, noisy: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    (noisy_image if noisy else flat_image)(seed).save(path, "PNG")


def _csv(rows: Sequence[Sequence[object]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def write_renders(cache: Path, prompts: Sequence[Prompt], method: int, noisy: bool = False,
                  seconds: float = 0.41) -> None:
    rows = []
    for index, prompt in enumerate(prompts):
        sim = round(30 + zlib.crc32(f"{prompt.stem}/{method}".encode()) % 2000 / 100, 2)
        png = png_path(cache, method, prompt.stem)
        _png(png, index * 7 + method, noisy)
        record = RenderRecord(
            prompt=method_prompt(prompt, method), animal=prompt.animal, thing=prompt.thing,
            stem=prompt.stem, method=method, config=f"method-{method}.yaml",
            config_hash=f"sample{method}", seed=index, model="ViT-B/32", model_id="sample",
            device="cpu", precision="fp32", epochs=200, seconds=seconds, batch=64, sim=sim,
            created="2021-06-01T00:00:00+00:00",
        )
        record.write(record_path(png))
        rows.append((prompt.stem, (sims_csv_image(method, prompt.stem), record.prompt, sim)))
    write_text(format_sims_csv([row for _, row in sorted(rows)]), sims_csv_path(cache, method))


def write_summary(cache: Path, counts: dict[int, int], seconds: float = 0.41) -> None:
    CacheSummary({
        m: MethodSummary(config=f"method-{m}.yaml", config_hash=f"sample{m}",
                         epochs=200 if m == 1 else 300, images=n,
                         seconds_per_image=seconds * m, total_seconds=round(seconds * m * n, 2),
                         device="NVIDIA H100 80GB HBM3", model="ViT-B/32", precision="bf16",
                         batch=64)
        for m, n in counts.items() if n
    }).write(summary_path(cache))


def write_ranking(cache: Path, stem: str, animal: str, thing: str, method: int, runs: int,
                  prompt: str, best: int = 6, worst: int = 2, seed: int = 0) -> Path:
    """One ranking column: CSVs of every run, images and summary of the kept ones."""
    rng = random.Random(f"{stem}/{method}/{seed}")
    folder = ranking_dir(cache, stem, method)
    initial = sorted(((r, round(rng.uniform(18, 37), 6)) for r in range(runs)),
                     key=lambda item: -item[1])
    kept = [(r, s, "best") for r, s in initial[:best]]
    kept += [(r, s, "worst") for r, s in reversed(initial[len(initial) - worst:])]
    rows, finals = [], []
    for run, sim, group in kept:
        final = round(rng.uniform(44, 50), 6)
        image, short = continued_name(stem, run), run_name(stem, run)
        _png(folder / image, run + 1000 * method, noisy=False)
        _png(folder / short, run + 2000 * method, noisy=False)
        rows.append(RankingRow(run=run, group=group, initial_sim=sim, final_sim=final,
                               image=image, short_image=short))
        finals.append((image, final))
    write_text(_csv([["", prompt], *[[run_name(stem, r), s] for r, s in initial]]),
               folder / INITIAL_CSV)
    write_text(_csv([["", prompt], *sorted(finals, key=lambda item: -item[1])]),
               folder / FINAL_CSV)
    # The article's epochs: 20 for a short run, 300 for a continued one.
    return RankingSummary(
        prompt=prompt, animal=animal, thing=thing, stem=stem, method=method, runs=runs,
        best=best, worst=worst, rows=tuple(rows),
        csv={"initial": INITIAL_CSV, "final": FINAL_CSV},
        epochs={"short": 20, "detail": 300},
        seconds={"short_per_run": 1.2, "detail_per_run": 15.0},
    ).write(folder / SUMMARY)


def write_sample_cache(cache: Path, prompts: Sequence[Prompt], methods: Sequence[int] = METHODS,
                       noisy: bool = False, rankings: bool = True) -> Path:
    """``prompts`` rendered with each of ``methods``, plus the article's ranking columns."""
    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    for method in methods:
        write_renders(cache, prompts, method, noisy)
    write_summary(cache, {m: len(prompts) for m in methods})
    if rankings:
        texts = {(p.animal, p.thing): p for p in load_prompts()}
        for stem, animal, thing, method, runs in RANKING_COLUMNS:
            prompt = texts.get((animal, thing))
            text = method_prompt(prompt, method) if prompt else f"a {animal} made of {thing}."
            write_ranking(cache, stem, animal, thing, method, runs, text)
    return cache


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m generator.sample", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cache", type=Path, help="folder to write the sample cache into")
    parser.add_argument("--noisy", action="store_true", help="render-sized noise PNGs")
    parser.add_argument("--things", type=int, default=None,
                        help="only the first N things (default: all 90, i.e. 1620 images)")
    args = parser.parse_args(argv)
    prompts = load_prompts()
    if args.things is not None:
        keep = list(dict.fromkeys(p.thing for p in prompts))[: args.things]
        prompts = [p for p in prompts if p.thing in keep]
    write_sample_cache(args.cache, prompts, noisy=args.noisy)
    print(f"wrote {len(prompts)} prompts x 2 methods to {args.cache}")


if __name__ == "__main__":
    main()
