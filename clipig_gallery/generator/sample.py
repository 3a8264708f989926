"""A synthetic render cache in the renderer's layout: no torch, no GPU.

For the site tests, for timing the site build, and for previewing the page
before anything is rendered:

    python -m clipig_gallery.generator.sample /tmp/sample-cache [--noisy] [--things 5]

The images are coloured squares (or, with ``--noisy``, noise textures whose
PNGs are as large as real renders, ~110 KB); the sims are made up.

A best-of gallery (``CACHE/best-of``) covers part of the prompts, every
animal of a few things with both methods, so a page shows the best-of view
and also cells without it (``--no-best-of`` leaves it out).

A judge (``CACHE/judge.json`` and a ``judge.csv`` per method) rates every
gallery and best-of image: made up as the sim less a method's drop, plus
noise (``--no-judge`` leaves it out).

Gallery and best-of images have an optimisation history beside them, a short
animated WebP from coarse noise to the image (``--no-history`` leaves them
out). One animal per method has none (:data:`NO_HISTORY`), as a cache of
older renders would, so every selection shows cells with and without one.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import random
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw

from clipig_gallery.core.atomic import atomic_path, write_text
from clipig_gallery.core.layout import (
    FINAL_CSV,
    INITIAL_CSV,
    SUMMARY,
    best_of_root,
    continued_name,
    history_path,
    judge_csv_path,
    judge_path,
    method_dir,
    png_path,
    ranking_dir,
    record_path,
    run_name,
    short_run_name,
    short_sims_csv_path,
    sims_csv_image,
    sims_csv_path,
    summary_path,
)
from clipig_gallery.core.paths import METHODS
from clipig_gallery.core.prompts import Prompt, load_prompts
from clipig_gallery.core.ratings import format_ratings, ratings_for_runs, sorted_runs
from clipig_gallery.core.schema import (
    BestOf,
    CacheSummary,
    Judgement,
    JudgeRating,
    MethodSummary,
    RankingRow,
    RankingSummary,
    RenderRecord,
    format_sims_csv,
)

SIZE = 224
# The article's ranking columns: (stem, animal, thing, method, runs)
RANKING_COLUMNS = (("snail-of-harp", "snail", "harp", 1, 512),
                   ("penguin-of-piano", "penguin", "piano", 1, 512),
                   ("penguin-of-piano", "penguin", "piano", 2, 149))
# The things the sample's best-of gallery covers, where the prompts have them.
BEST_OF_THINGS = ("harp", "piano")
BEST_OF_RUNS = 64
BEST_OF_DEVICE = "NVIDIA H200"
SHORT_SECONDS = 0.05  # per short run and method number: method 2's runs take twice as long
JUDGE_MODEL = "ViT-B/16"
# How much lower the sample's judge rates a method's images than their sim, before
# noise: method 1's adversarial detail fools the judge less than it fooled the sim.
JUDGE_DROP = {1: 9.0, 2: 4.0}
# The sample's histories: few frames (cheap to write for 1620 images) and a short
# play (the browser tests wait for it to end): the first and last held longer.
HISTORY_FRAMES = 5
HISTORY_MS = (200, 60, 300)  # first frame, each middle one, last frame
# The animal whose images have no history, per method.
NO_HISTORY = {1: "cat", 2: "snail"}


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


def history_frames(final: Image.Image, seed: int,
                   frames: int = HISTORY_FRAMES) -> list[Image.Image]:
    """From 8x8 random colours to ``final``, through ever finer versions of it.

    Like a method 2 render's history: the start is noise, detail arrives at
    growing resolutions (enlarged with its pixels showing), the last frame is
    the image. Flat blocks keep a history cheap to encode.
    """
    noise = Image.frombytes("RGB", (8, 8), random.Random(seed).randbytes(8 * 8 * 3))
    out = [noise.resize(final.size, Image.Resampling.NEAREST)]
    for k in range(1, frames - 1):
        side = round(8 * (SIZE / 8) ** (k / (frames - 1)))
        out.append(final.resize((side, side), Image.Resampling.BOX).resize(
            final.size, Image.Resampling.NEAREST))
    return [*out, final]


def write_history(png: Path, seed: int, noisy: bool = False) -> Path:
    """The history beside ``png``, as the renderer leaves one: plays once, ends on the image.

    Lossy for noise images, whose size is the point of them; lossless for the
    flat ones, which it encodes in half the time (the full sample has 1476).
    """
    first, middle, last = HISTORY_MS
    with Image.open(png) as image:
        frames = history_frames(image.convert("RGB"), seed)
    path = history_path(png)
    encoding = {"quality": 60, "method": 0} if noisy else {"lossless": True, "quality": 0,
                                                           "method": 0}
    with atomic_path(path) as tmp:
        frames[0].save(tmp, "WEBP", save_all=True, append_images=frames[1:], loop=1,
                       duration=[first, *[middle] * (len(frames) - 2), last],
                       allow_mixed=False, **encoding)
    return path


def keeps_history(method: int, animal: str) -> bool:
    """Whether the sample gives this image a history (see :data:`NO_HISTORY`)."""
    return NO_HISTORY.get(method) != animal


HistoryJob = tuple[Path, int, bool]  # (PNG, seed, wanted)


def _write_histories(jobs: Sequence[HistoryJob], noisy: bool) -> None:
    """Write each wanted history; remove, as the renderer does, an older unwanted one.

    In threads: Pillow encodes without the GIL, and histories are most of the
    sample's time.
    """
    for png, _, wanted in jobs:
        if not wanted:
            history_path(png).unlink(missing_ok=True)
    wanted = [(png, seed) for png, seed, keep in jobs if keep]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for _ in pool.map(lambda job: write_history(*job, noisy=noisy), wanted):
            pass


def _csv(rows: Sequence[Sequence[object]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def sample_sim(stem: str, method: int) -> float:
    """The made-up sim of a first attempt, 30.00 to 49.99."""
    return round(30 + zlib.crc32(f"{stem}/{method}".encode()) % 2000 / 100, 2)


def sample_gain(stem: str, method: int) -> float:
    """What the sample's best of N adds to the first attempt: -1.50 to +5.99."""
    return round(-1.5 + zlib.crc32(f"best/{stem}/{method}".encode()) % 750 / 100, 2)


def sample_judge(key: str, sim: float, method: int) -> float:
    """The sample judge's sim of the image at ``key``: its sim less the method's
    drop (:data:`JUDGE_DROP`), plus noise of -3.00 to +2.99."""
    noise = zlib.crc32(f"judge/{key}".encode()) % 600 / 100 - 3
    return round(sim - JUDGE_DROP.get(method, 6.0) + noise, 2)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def write_judge(cache: Path, prompts: Sequence[Prompt], methods: Sequence[int] = METHODS,
                best: Sequence[Prompt] = (), model: str = JUDGE_MODEL) -> Path:
    """A judge's ratings of the gallery's and the best-of gallery's images, as the
    renderer's ``judge`` leaves them: ``judge.json`` and a ``judge.csv`` per method."""
    cache = Path(cache)
    ratings = {}
    for root, chosen in ((cache, prompts), (best_of_root(cache), best)):
        for method in methods:
            rows = []
            for prompt in chosen:
                png = png_path(root, method, prompt.stem)
                if not png.is_file():
                    continue
                record = json.loads(record_path(png).read_text(encoding="utf-8"))
                key = png.relative_to(cache).as_posix()
                sim = sample_judge(key, record["sim"], method)
                ratings[key] = JudgeRating(sim=sim, png=_digest(png),
                                           record=_digest(record_path(png)))
                rows.append((sims_csv_image(method, prompt.stem), record["prompt"], sim))
            if rows:
                write_text(format_sims_csv(sorted(rows), column=f"sim {model}"),
                           judge_csv_path(root, method))
    return Judgement(model, "sample-judge", ratings).write(judge_path(cache))


def write_renders(cache: Path, prompts: Sequence[Prompt], method: int, noisy: bool = False,
                  seconds: float = 0.41, history: bool = True) -> None:
    """The first attempts; with ``history``, each (but :data:`NO_HISTORY`'s) with its history."""
    rows, histories = [], []
    for index, prompt in enumerate(prompts):
        sim = sample_sim(prompt.stem, method)
        png = png_path(cache, method, prompt.stem)
        _png(png, index * 7 + method, noisy)
        histories.append((png, index, history and keeps_history(method, prompt.animal)))
        record = RenderRecord(
            prompt=prompt.for_method(method), animal=prompt.animal, thing=prompt.thing,
            stem=prompt.stem, method=method, config=f"method-{method}.yaml",
            config_hash=f"sample{method}", seed=index, model="ViT-B/32", model_id="sample",
            device="cpu", precision="fp32", epochs=200, seconds=seconds, batch=64, sim=sim,
            created="2021-06-01T00:00:00+00:00",
        )
        record.write(record_path(png))
        rows.append((prompt.stem, (sims_csv_image(method, prompt.stem), record.prompt, sim)))
    _write_histories(histories, noisy)
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


def write_best_of_summary(cache: Path, counts: dict[int, int]) -> None:
    """The best-of gallery's cost: the continued runs, as the renderer sums them."""
    CacheSummary({
        m: MethodSummary(config=f"method-{m}-detail.yaml", config_hash=f"detail{m}",
                         epochs=300, images=n, seconds_per_image=round(0.3 * m, 3),
                         total_seconds=round(0.3 * m * n, 2), device=BEST_OF_DEVICE,
                         model="ViT-B/32", precision="bf16", batch=32)
        for m, n in counts.items() if n
    }).write(summary_path(best_of_root(cache)))


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


def write_best_of(cache: Path, prompts: Sequence[Prompt], method: int, runs: int = BEST_OF_RUNS,
                  noisy: bool = False, history: bool = True) -> None:
    """The best of ``runs`` short runs of each prompt, continued, as the renderer leaves them.

    Per prompt: the winner's image and record (with its ``best_of``), the
    winner's short image, every short run's sim as the article's CSV; per
    method a ``sims.csv`` of the winners. The renderer's state of the short
    runs (``short-sims/{stem}.json``) is left out: the site does not read it,
    and 64 runs of it per prompt would double the time a test cache takes.
    The best-of sim is the first attempt's plus :func:`sample_gain`, so every
    gain is known in advance. With ``history``, winners have a history as the
    first attempts do.
    """
    root = best_of_root(cache)
    folder = method_dir(root, method)
    rows, histories = [], []
    for index, prompt in enumerate(prompts):
        text = prompt.for_method(method)
        rng = random.Random(f"best-of/{prompt.stem}/{method}")
        sims = {run: round(rng.uniform(18, 30), 4) for run in range(runs)}
        winner = sorted_runs(sims)[0][0]
        png = png_path(root, method, prompt.stem)
        _png(png, 5000 + index * 7 + method, noisy)
        histories.append((png, 5000 + index, history and keeps_history(method, prompt.animal)))
        _png(folder / short_run_name(prompt.stem, winner), 9000 + index * 7 + method, False)
        csv_path = short_sims_csv_path(root, method, prompt.stem)
        rated = [(short_run_name(prompt.stem, r), s) for r, s in sims.items()]
        write_text(format_ratings(ratings_for_runs(text, rated)), csv_path)
        sim = round(sample_sim(prompt.stem, method) + sample_gain(prompt.stem, method), 2)
        RenderRecord(
            prompt=text, animal=prompt.animal, thing=prompt.thing, stem=prompt.stem,
            method=method, config=f"method-{method}-detail.yaml", config_hash=f"detail{method}",
            seed=1000 * index + winner, model="ViT-B/32", model_id="sample", device="cpu",
            device_name=BEST_OF_DEVICE, precision="bf16", epochs=300,
            seconds=round(0.3 * method, 3), batch=32, sim=sim, run=winner,
            init_image=short_run_name(prompt.stem, winner),
            created="2026-11-30T00:00:00+00:00",
            best_of=BestOf(
                runs=runs, run=winner, short_sim=sims[winner], short_seed=1000 * index + winner,
                short_config=f"method-{method}-short.yaml", short_config_hash=f"short{method}",
                short_epochs=20, short_image=short_run_name(prompt.stem, winner),
                short_seconds=round(SHORT_SECONDS * method * runs, 3),
                short_sims=csv_path.relative_to(folder).as_posix(),
            ),
        ).write(record_path(png))
        rows.append((prompt.stem, (sims_csv_image(method, prompt.stem), text, sim)))
    _write_histories(histories, noisy)
    write_text(format_sims_csv([row for _, row in sorted(rows)]), sims_csv_path(root, method))


def best_of_prompts(prompts: Sequence[Prompt],
                    things: Sequence[str] | None = None) -> list[Prompt]:
    """The prompts the sample's best-of gallery covers: every animal of ``things``
    (default: those of BEST_OF_THINGS the prompts have, else their first thing)."""
    present = list(dict.fromkeys(p.thing for p in prompts))
    if things is None:
        things = [t for t in BEST_OF_THINGS if t in present] or present[:1]
    return [p for p in prompts if p.thing in things]


def write_sample_cache(cache: Path, prompts: Sequence[Prompt], methods: Sequence[int] = METHODS,
                       noisy: bool = False, rankings: bool = True, best_of: bool = True,
                       best_of_things: Sequence[str] | None = None,
                       best_of_runs: int = BEST_OF_RUNS, judge: bool = True,
                       history: bool = True) -> Path:
    """``prompts`` rendered with each of ``methods``, plus the article's ranking columns,
    unless ``best_of`` is False a best-of gallery of part of the prompts, unless
    ``judge`` is False a judge's ratings of the gallery's and best-of images, and
    unless ``history`` is False their optimisation histories."""
    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    for method in methods:
        write_renders(cache, prompts, method, noisy, history=history)
    write_summary(cache, {m: len(prompts) for m in methods})
    best = best_of_prompts(prompts, best_of_things) if best_of else []
    if best:
        for method in methods:
            write_best_of(cache, best, method, best_of_runs, noisy, history=history)
        write_best_of_summary(cache, {m: len(best) for m in methods})
    if judge:
        write_judge(cache, prompts, methods, best)
    if rankings:
        texts = {(p.animal, p.thing): p for p in load_prompts()}
        for stem, animal, thing, method, runs in RANKING_COLUMNS:
            prompt = texts.get((animal, thing))
            text = prompt.for_method(method) if prompt else f"a {animal} made of {thing}."
            write_ranking(cache, stem, animal, thing, method, runs, text)
    return cache


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m clipig_gallery.generator.sample",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cache", type=Path, help="folder to write the sample cache into")
    parser.add_argument("--noisy", action="store_true", help="render-sized noise PNGs")
    parser.add_argument("--things", type=int, default=None,
                        help="only the first N things (default: all 90, i.e. 1620 images)")
    parser.add_argument("--no-best-of", dest="best_of", action="store_false",
                        help="no best-of gallery (default: every animal of "
                             f"{' and '.join(BEST_OF_THINGS)}, best of {BEST_OF_RUNS})")
    parser.add_argument("--no-judge", dest="judge", action="store_false",
                        help=f"no judge's ratings (default: {JUDGE_MODEL} rates every image)")
    parser.add_argument("--no-history", dest="history", action="store_false",
                        help="no optimisation histories (default: every image but those "
                             "of one animal per method has one)")
    args = parser.parse_args(argv)
    prompts = load_prompts()
    if args.things is not None:
        keep = list(dict.fromkeys(p.thing for p in prompts))[: args.things]
        prompts = [p for p in prompts if p.thing in keep]
    write_sample_cache(args.cache, prompts, noisy=args.noisy, best_of=args.best_of,
                       judge=args.judge, history=args.history)
    best = len(best_of_prompts(prompts)) if args.best_of else 0
    print(f"wrote {len(prompts)} prompts x 2 methods to {args.cache}"
          + (f", the best of {BEST_OF_RUNS} for {best} of them" if best else "")
          + (f", rated by a {JUDGE_MODEL} judge" if args.judge else "")
          + (", with their histories" if args.history else ""))


if __name__ == "__main__":
    main()
