"""First attempts: every prompt x method into the cache, batched, resumable.

Prompts of one method share a batch (one config, one CLIP call per step).
After every batch the finished images, their records, the method's CSV and
the summary are on disk, each written atomically; an interrupted run loses
at most the batch in flight, and the next run renders only what is missing,
changed or corrupt.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clipig_gallery.core.layout import png_path
from clipig_gallery.core.paths import METHODS
from clipig_gallery.core.prompts import Prompt, load_prompts

from ..execution.cache import expected, read_record, refresh, remove_stale_temp_files, status
from ..execution.jobs import ImageJob, Tags, derive_seed, write_results
from ..execution.timing import Piece, duration
from ..language.config import Config
from .configs import method_config
from .spec import EVERYTHING, RunSpec, Selection


def image_seed(prompt: Prompt, method: int, base_seed: int) -> int:
    return derive_seed(prompt.stem, method, base_seed)


@dataclass(frozen=True)
class Item:
    """One image of the gallery and whether it needs rendering."""

    prompt: Prompt
    method: int
    seed: int
    png: Path
    status: str

    @property
    def pending(self) -> bool:
        return self.status != "complete"

    def job(self, frames: int = 0) -> ImageJob:
        """Its render job, keeping ``frames`` frames of the optimisation (0: none)."""
        tags = Tags(animal=self.prompt.animal, thing=self.prompt.thing,
                    stem=self.prompt.stem, method=self.method)
        return ImageJob(self.prompt.for_method(self.method), self.seed, self.png, tags, frames)


def plan(cache: Path, prompts: Sequence[Prompt], methods: Sequence[int], configs: dict,
         model_id: str, base_seed: int = 0) -> list[Item]:
    """Every selected prompt x method with its status; method-major order."""
    items = []
    for method in methods:
        config = configs[method]
        for prompt in prompts:
            seed = image_seed(prompt, method, base_seed)
            png = png_path(cache, method, prompt.stem)
            items.append(Item(prompt, method, seed, png,
                              status(png, expected(config, model_id, seed))))
    return items


@dataclass(frozen=True)
class GalleryPlan:
    """What a gallery run will do: every selected image's status, and the ones to do."""

    cache: Path
    configs: dict[int, Config]  # every method's, as rendered now
    items: list[Item]  # the selected prompt x method, with status
    todo: list[Item]  # to render in this run (after the selection's limit)
    stems: list[str]  # every prompt's stem in list order (the CSVs' row order)

    def counts(self) -> dict[int, int]:
        """Images to render per method (methods with none left out)."""
        return dict(sorted(Counter(item.method for item in self.todo).items()))

    def pieces(self, sizes: dict[int, int]) -> list[Piece]:
        """The work for an estimate: each method's images to render, at its batch."""
        return [Piece(self.configs[m], n, sizes[m]) for m, n in self.counts().items()]

    def dry_run_lines(self) -> list[str]:
        """Each image's verdict, and how the complete ones were made (device, precision):
        what `render --dry-run` prints."""
        made_with = Counter()
        lines = []
        for item in self.items:
            verdict = ("render" if item in self.todo
                       else "skip" if not item.pending else "later")
            status = item.status
            if not item.pending:
                record = read_record(item.png)
                how = (f"{(record.device if record else '?').split(':')[0]} "
                       f"{record.precision if record else '?'}")
                made_with[how] += 1
                status = f"{status} ({how})"
            lines.append(f"{verdict:6}  method {item.method}  {item.prompt.stem:32} {status}")
        complete = sum(not i.pending for i in self.items)
        lines.append(f"{len(self.todo)} to render, {len(self.items) - len(self.todo)} not in "
                     f"this run ({complete} complete) in {self.cache}/")
        if made_with:
            kinds = ", ".join(f"{n} on {how}" for how, n in made_with.most_common())
            mixed = " -- a mixed cache" if len(made_with) > 1 else ""
            lines.append(f"complete images were rendered: {kinds}{mixed}")
        return lines


def plan_gallery(cache: Path, model_id: str, selection: Selection = EVERYTHING,
                 epochs: int | None = None, seed: int = 0) -> GalleryPlan:
    """The plan of a gallery run, for `render` and `demo` alike.

    Raises ValueError naming an unknown animal or thing.
    """
    every = load_prompts()
    prompts = selection.prompts(every)
    configs = {m: method_config(m, epochs) for m in METHODS}
    items = plan(cache, prompts, selection.methods, configs, model_id, seed)
    todo = selection.cut([i for i in items if i.pending])
    return GalleryPlan(Path(cache), configs, items, todo, [p.stem for p in every])


@dataclass
class GalleryReport:
    rendered: int = 0
    skipped: int = 0
    seconds: float = 0.0
    device: str = ""
    batches: list[int] = field(default_factory=list)

    @property
    def images_per_hour(self) -> float:
        return 3600.0 * self.rendered / self.seconds if self.seconds else 0.0

    def text(self, cache: Path) -> str:
        return (f"{self.rendered} images in {self.seconds:.1f} s "
                f"({self.images_per_hour:.0f} images/hour) on {self.device}; "
                f"batches {sorted(set(self.batches))}; cache {cache}/")


def render_gallery(spec: RunSpec, planned: GalleryPlan) -> GalleryReport:
    """Render the plan's images to do on the spec's executor, method by method; each
    keeps ``spec.frames`` frames of its optimisation. This process writes them."""
    cache = Path(spec.cache)
    remove_stale_temp_files(cache)
    report = GalleryReport(skipped=sum(not i.pending for i in planned.items),
                           device=spec.executor.device_label)
    started = time.perf_counter()
    with spec.reporter.progress(len(planned.todo), "render"):
        for method in METHODS:
            todo = [i for i in planned.todo if i.method == method]
            jobs = [i.job(spec.frames) for i in todo]

            def write(batch, results, method: int = method) -> None:
                write_results(batch, results)
                # Keep the CSV and summary current, so an interrupted run's work
                # is visible to the site build right away.
                refresh(cache, METHODS, method, planned.stems)
                report.rendered += len(batch)

            report.batches += spec.render(planned.configs[method], jobs, f"method {method}",
                                          write=write)
    report.seconds = time.perf_counter() - started
    return report


def estimate_line(spec: RunSpec, planned: GalleryPlan) -> str:
    """How long the plan's images take on the spec's executor, at the batches the
    render will use (one step of each method measured now)."""
    sizes = {m: spec.size(planned.configs[m], n, spec.frames)
             for m, n in planned.counts().items()}
    seconds = spec.estimate(planned.pieces(sizes))
    batches = ", ".join(f"method {m}: {n} at batch {sizes[m]}"
                        for m, n in planned.counts().items())
    return (f"estimated {duration(seconds)} for {len(planned.todo)} images on "
            f"{spec.executor.device_label}, {spec.precision.precision} ({batches}; one step "
            f"of each measured now)")


def run_gallery(spec: RunSpec, epochs: int | None = None,
                dry_run: bool = False) -> GalleryReport | None:
    """`render`: plan the selection, then list it (``dry_run``) or render what is to do,
    saying each step through the spec's reporter."""
    from ..engine.history import sizes_line

    say = spec.reporter.say
    planned = plan_gallery(spec.cache, spec.model.identity, spec.selection, epochs, spec.seed)
    if dry_run:
        for line in planned.dry_run_lines():
            say(line)
        return None
    if not planned.todo:
        say(f"nothing to render: {len(planned.items)} images complete in {spec.cache}/")
        return None
    spec.announce()
    say(estimate_line(spec, planned))
    report = render_gallery(spec, planned)
    say(report.text(spec.cache))
    line = sizes_line([i.png for i in planned.items], spec.frames)
    if line:
        say(line)
    return report
