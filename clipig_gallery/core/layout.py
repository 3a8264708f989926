"""Every path of the render cache, defined once.

The renderer writes these files, the generator reads them, the sample cache
imitates them; all three ask here where a file lives::

    CACHE/summary.json                              cost per method (CacheSummary)
    CACHE/method-{m}/{stem}.png                     the image, 224x224 RGB
    CACHE/method-{m}/{stem}.json                    its record (RenderRecord)
    CACHE/method-{m}/{stem}.history.webp            its optimisation history (optional)
    CACHE/method-{m}/sims.csv                       ",prompt,sim", one row per image
    CACHE/ranking/{stem}/method-{m}/runs/{stem}-{i}.png (+ .json)     short runs
    CACHE/ranking/{stem}/method-{m}/continued/{stem}-from-{i}.png (+ .json)
    CACHE/ranking/{stem}/method-{m}/initial.csv     every short run, best first
    CACHE/ranking/{stem}/method-{m}/final.csv       the continued runs
    CACHE/ranking/{stem}/method-{m}/summary.json    what the site reads (RankingSummary)
    CACHE/best-of/                                  the best-of-N gallery: a cache root of its own
    CACHE/best-of/summary.json                      its cost per method (CacheSummary)
    CACHE/best-of/method-{m}/{stem}.png (+ .json)   the winning short run, continued
    CACHE/best-of/method-{m}/sims.csv               the winners' sims, as method-{m}/sims.csv
    CACHE/best-of/method-{m}/runs/{stem}-{i}.png (+ .json)  kept short runs (winner, --keep)
    CACHE/best-of/method-{m}/short-sims/{stem}.json every finished short run (ShortRuns)
    CACHE/best-of/method-{m}/short-sims/{stem}.csv  the same as an article CSV, best first
    CACHE/judge.json                                a second model's rating of each image
    CACHE/method-{m}/judge.csv                      the same per method (also under best-of/)

The best-of root has the gallery's shape, so every function below that
takes ``cache`` also takes ``best_of_root(cache)``.

Names inside a ranking folder (``runs/...``, ``continued/...``) are relative,
as its CSVs and summary give them.
"""

from __future__ import annotations

from pathlib import Path

SUMMARY = "summary.json"
SIMS_CSV = "sims.csv"
RANKING = "ranking"
INITIAL_CSV = "initial.csv"
FINAL_CSV = "final.csv"
BEST_OF = "best-of"
SHORT_SIMS = "short-sims"
JUDGE = "judge.json"
JUDGE_CSV = "judge.csv"


def method_dir(cache: Path, method: int) -> Path:
    return Path(cache) / f"method-{method}"


def png_path(cache: Path, method: int, stem: str) -> Path:
    return method_dir(cache, method) / f"{stem}.png"


def record_path(png: Path) -> Path:
    """The record beside an image."""
    return Path(png).with_suffix(".json")


HISTORY_SUFFIX = ".history.webp"


def history_path(png: Path) -> Path:
    """The optimisation history beside an image: an animated WebP, play once.

    Optional: an image without one is complete. Every rendered image may
    have one (gallery, best-of winners, ranking runs continued).
    """
    png = Path(png)
    return png.with_name(png.stem + HISTORY_SUFFIX)


def png_of_record(record: Path) -> Path:
    return Path(record).with_suffix(".png")


def record_paths(cache: Path, method: int) -> list[Path]:
    """The method's records, in file-name order."""
    return sorted(method_dir(cache, method).glob("*.json"))


def sims_csv_path(cache: Path, method: int) -> Path:
    return method_dir(cache, method) / SIMS_CSV


def sims_csv_image(method: int, stem: str) -> str:
    """How sims.csv names an image: relative to the cache."""
    return f"method-{method}/{stem}.png"


def summary_path(cache: Path) -> Path:
    return Path(cache) / SUMMARY


def ranking_dir(cache: Path, stem: str, method: int) -> Path:
    return Path(cache) / RANKING / stem / f"method-{method}"


def ranking_summaries(cache: Path) -> list[Path]:
    """Every ranking column's summary, in path order."""
    return sorted((Path(cache) / RANKING).glob(f"*/method-*/{SUMMARY}"))


def run_name(stem: str, run: int) -> str:
    """A short run's image, relative to its ranking folder."""
    return f"runs/{stem}-{run}.png"


def continued_name(stem: str, run: int) -> str:
    """A continued run's image, relative to its ranking folder."""
    return f"continued/{stem}-from-{run}.png"


def best_of_root(cache: Path) -> Path:
    """The best-of gallery's own cache root, inside ``cache``."""
    return Path(cache) / BEST_OF


def short_run_name(stem: str, run: int) -> str:
    """A kept short run of the best-of gallery, relative to its method folder."""
    return f"runs/{stem}-{run}.png"


def short_sims_path(cache: Path, method: int, stem: str) -> Path:
    """Every finished short run of one prompt (``cache`` is the best-of root)."""
    return method_dir(cache, method) / SHORT_SIMS / f"{stem}.json"


def short_sims_csv_path(cache: Path, method: int, stem: str) -> Path:
    return method_dir(cache, method) / SHORT_SIMS / f"{stem}.csv"


def judge_path(cache: Path) -> Path:
    """The judge's ratings of every image in the cache, keyed by path relative to it."""
    return Path(cache) / JUDGE


def judge_csv_path(cache: Path, method: int) -> Path:
    """A method's judge ratings beside its sims.csv (``cache`` may be the best-of root)."""
    return method_dir(cache, method) / JUDGE_CSV
