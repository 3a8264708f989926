"""A second CLIP model rates every image of the cache against its own prompt.

The sims on the page are ratings by the model the pixels were optimised
against; a judge that never saw the optimisation tells how much of a sim is
the picture and how much is detail only that model likes. Its ratings live
in ``judge.json`` (``core.schema.Judgement``), keyed by each image's path
in the cache with digests of the PNG and record it rated, so a rerun rates
only new or changed images; the file is rewritten after every batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from clipig_gallery.core.atomic import write_text
from clipig_gallery.core.layout import (
    best_of_root,
    judge_csv_path,
    judge_path,
    png_path,
    record_path,
    sims_csv_image,
)
from clipig_gallery.core.paths import METHODS
from clipig_gallery.core.schema import (
    CacheFormatError,
    Judgement,
    JudgeRating,
    format_sims_csv,
    read_json,
)

from ..engine.clipmodel import ClipModel
from ..engine.rate import rate_pairs
from ..execution.cache import png_decodes, read_record
from ..execution.report import QUIET, Reporter

DEFAULT_JUDGE = "ViT-B/16"  # an OpenAI CLIP the gallery is not optimised against


class SameModel(ValueError):
    """The judge has the weights the images were optimised against."""


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


@dataclass(frozen=True)
class Image:
    """One image of the cache as the judge sees it."""

    key: str  # its path relative to the cache, with "/"
    png: Path
    prompt: str
    model_id: str  # what it was optimised against
    png_digest: str
    record_digest: str


def cache_images(cache: Path) -> list[Image]:
    """Every PNG of the cache with a readable record: gallery, best-of, ranking runs."""
    cache = Path(cache)
    found = []
    for png in sorted(cache.rglob("*.png")):
        record = read_record(png)
        if record is None or not isinstance(record.prompt, str):
            continue
        found.append(Image(
            key=png.relative_to(cache).as_posix(), png=png, prompt=record.prompt,
            model_id=str(record.model_id), png_digest=_digest(png.read_bytes()),
            record_digest=_digest(record_path(png).read_bytes()),
        ))
    return found


def judge_name(judge: ClipModel) -> str:
    """How the page and CSVs name the judge: its model name, or its file's name."""
    return Path(judge.name).name if judge.source and judge.name.endswith(
        (".pt", ".safetensors")) else judge.name


def read_judgement(cache: Path, judge: ClipModel) -> Judgement:
    """The ratings made by this judge's weights so far; empty for another judge."""
    path = judge_path(cache)
    fresh = Judgement(judge_name(judge), judge.identity)
    if not path.exists():
        return fresh
    try:
        found = Judgement.from_json(read_json(path), path)
    except CacheFormatError:
        return fresh  # unreadable: everything is judged again
    return found if found.model_id == judge.identity else fresh


def refuse_same_model(judge: ClipModel, optimised: Iterable[str]) -> None:
    """A judge with the optimised model's weights (by content, whatever its name) is no judge."""
    if judge.identity in set(optimised):
        raise SameModel(
            f"the judge {judge.name} ({judge.identity}) has the weights the images were "
            f"optimised against; choose another model with --model (default {DEFAULT_JUDGE})")


def seconds_per_image(judge: ClipModel, count: int = 8) -> float:
    """What rating one image costs ``judge`` where it is: ``count`` noise PNGs of
    224 pixels rated as short runs are (from their bytes), per image, after a warm-up."""
    import time

    import torch

    from ..engine.imageio import encode_png

    generator = torch.Generator().manual_seed(0)
    pngs = [encode_png(torch.randint(0, 256, (3, 224, 224), dtype=torch.uint8,
                                     generator=generator)) for _ in range(count)]
    rate_pairs(judge, pngs[:1], ["a warm-up"])
    started = time.perf_counter()
    rate_pairs(judge, pngs, ["a penguin made of piano."] * count)
    return (time.perf_counter() - started) / count


@dataclass
class JudgeReport:
    images: int = 0
    judged: int = 0
    removed: int = 0  # ratings of images no longer in the cache
    damaged: tuple[str, ...] = ()  # images whose PNG does not decode: not judged


def judge_cache(cache: Path, judge: ClipModel, stems_in_order: list[str], batch: int = 32,
                reporter: Reporter = QUIET) -> JudgeReport:
    """Rate what is new or changed since its last rating; write judge.json and the CSVs.

    ``reporter`` shows the progress over the images to rate. Raises SameModel
    when the judge has weights an image was optimised against.
    """
    cache = Path(cache)
    images = cache_images(cache)
    refuse_same_model(judge, (i.model_id for i in images))
    judgement = read_judgement(cache, judge)
    ratings = dict(judgement.ratings)
    keys = {i.key for i in images}
    report = JudgeReport(images=len(images), removed=len(set(ratings) - keys))
    ratings = {k: v for k, v in ratings.items() if k in keys}
    pending = [i for i in images
               if (r := ratings.get(i.key)) is None
               or (r.png, r.record) != (i.png_digest, i.record_digest)]
    # A PNG that does not decode (damaged on disk) is not rated, and loses an older
    # rating: the renderer renders it again, and the judge rates it then.
    damaged = [i for i in pending if not png_decodes(i.png)]
    report.damaged = tuple(i.key for i in damaged)
    pending = [i for i in pending if i.key not in report.damaged]
    for image in damaged:
        report.removed += ratings.pop(image.key, None) is not None
    path = judge_path(cache)
    if report.removed or not path.exists():
        Judgement(judge_name(judge), judge.identity, ratings).write(path)
    with reporter.progress(len(pending), "judge"):
        for start in range(0, len(pending), batch):
            chunk = pending[start:start + batch]
            sims = rate_pairs(judge, [i.png.read_bytes() for i in chunk],
                              [i.prompt for i in chunk])
            for image, sim in zip(chunk, sims, strict=True):
                ratings[image.key] = JudgeRating(round(float(sim), 4), image.png_digest,
                                                 image.record_digest)
            Judgement(judge_name(judge), judge.identity, ratings).write(path)
            report.judged += len(chunk)
            reporter.advance(len(chunk))
    write_judge_csvs(cache, Judgement(judge_name(judge), judge.identity, ratings), stems_in_order,
                     images)
    return report


def write_judge_csvs(cache: Path, judgement: Judgement, stems_in_order: list[str],
                     images: list[Image]) -> None:
    """Per method, beside sims.csv (gallery and best-of): the judge's rating of each image."""
    by_key = {i.key: i for i in images}
    for root in (Path(cache), best_of_root(cache)):
        for method in METHODS:
            rows = []
            for stem in stems_in_order:
                key = png_path(root, method, stem).relative_to(cache).as_posix()
                if key in judgement.ratings and key in by_key:
                    rows.append((sims_csv_image(method, stem), by_key[key].prompt,
                                 judgement.ratings[key].sim))
            if rows:
                write_text(format_sims_csv(rows, f"sim {judgement.model}"),
                           judge_csv_path(root, method))
