"""`render-config`: images from any CLIPig config, as `clipig.py` made them.

Config files are merged in order (``-`` is standard input); ``repeat`` images
of the merged config render with consecutive seeds in one batch (or batches
of ``batch``; a batch that runs out of memory is halved), each batch written
as soon as it ends; no output is overwritten (``out.png`` taken: ``out-1.png``,
``out-2.png``, ...). Beside each PNG go its record (.json), its history where
the config asks for snapshots (``snapshot_interval`` in epochs) and the
sidecar YAML: the config with every default filled in, the runtime and the
saved image's similarity to each feature as comments.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, replace
from pathlib import Path

from clipig_gallery.core.atomic import atomic_path, ensure_writable
from clipig_gallery.core.layout import history_path, record_path
from clipig_gallery.core.schema import RenderRecord

from ..engine.device import describe, device_name
from ..execution.report import Reporter
from ..language.config import ConfigError, lies_inside, load_configs
from ..language.export import sidecar_text
from .session import Machine, load_model, local_device


class Interrupted(Exception):
    """`render-config` was stopped (Ctrl-C) after some of its images were written."""


@dataclass(frozen=True)
class ConfigRun:
    """What `render-config` was asked for."""

    sources: tuple[str, ...]  # config files, "-" for standard input
    output: Path | None = None  # None: the config's `output`, else <first config>.png
    text: str | None = None  # replaces the config's one text feature
    seed: int = 0
    epochs: int | None = None
    repeat: int = 1
    image_dirs: tuple[Path, ...] = ()  # more folders pictures may come from
    batch: int | None = None  # images per batch; None: all in one


def sidecar_path(png: Path) -> Path:
    return Path(png).with_suffix(".yaml")


def _taken(png: Path) -> bool:
    return any(p.exists() for p in (png, record_path(png), sidecar_path(png),
                                    history_path(png)))


def free_outputs(wanted: Path, count: int) -> list[Path]:
    """``count`` PNG names from ``wanted`` on, none of whose files exist yet:
    ``wanted``, then ``stem-1``, ``stem-2``, ... as CLIPig numbered them."""
    found, number = [], 0
    while len(found) < count:
        candidate = wanted if number == 0 else wanted.with_name(
            f"{wanted.stem}-{number}{wanted.suffix}")
        if not _taken(candidate) and candidate not in found:
            found.append(candidate)
        number += 1
    return found


def default_output(sources: tuple[str, ...], output_key: object) -> Path:
    """Where CLIPig put the image: the config's ``output`` (a folder if it ends with
    a slash, ``.png`` added to a name without one), else ``<config name>.png``."""
    first = sources[0]
    stem = "stdin" if first == "-" else Path(first).stem
    if isinstance(output_key, str) and output_key.strip():
        if output_key.endswith(("/", "\\")):
            return Path(output_key) / f"{stem}.png"
        path = Path(output_key)
        return path if path.suffix else path.with_suffix(".png")
    return Path(f"{stem}.png")


def history_frames(snapshot_interval: object, epochs: int) -> int:
    """Frames of the history for CLIPig's ``snapshot_interval``: a whole number N
    means a frame about every N epochs; seconds (a float), 0 or none mean none."""
    if isinstance(snapshot_interval, bool) or not isinstance(snapshot_interval, int):
        return 0
    if snapshot_interval <= 0:
        return 0
    return max(2, epochs // snapshot_interval + 1)


def confined(output: Path, sources: tuple[str, ...], source: str) -> Path:
    """``output`` as a config named it, if it lies (after symbolic links are
    resolved) in the working folder or a config file's folder; else a ConfigError.

    A config is data, maybe from someone else: it says where its image goes as
    a name, not as a place anywhere on the disk. ``-o`` goes anywhere.
    """
    roots = [Path.cwd(), *(Path(s).resolve().parent for s in sources if s != "-")]
    if not lies_inside(output, roots):
        raise ConfigError(source, "output", f"{str(output)!r} lies outside the working folder "
                          "and the config's folder: a config names its image inside them; "
                          "pass -o to write elsewhere")
    return output


def render_configs(run: ConfigRun, machine: Machine, reporter: Reporter, stdin=None
                   ) -> list[tuple[Path, RenderRecord]]:
    """Render ``run.repeat`` images of the merged configs; each PNG with its record.

    Raises ConfigError naming the file and key; nothing is written before the
    config is checked, and nothing existing is overwritten. Raises OutOfMemory
    when not even one image fits on the device, and Interrupted for Ctrl-C once
    an image is written, each saying which images were written and how to
    render the rest.
    """
    from ..engine.precision import choose
    from ..execution.batching import OutOfMemory, run_batches

    config, data = load_configs(run.sources, run.image_dirs, stdin=stdin)
    if run.epochs is not None:
        config = config.with_epochs(run.epochs)
        if config.start_epoch >= config.epochs:
            raise ConfigError(config.source, "start_epoch",
                              f"must be below epochs ({config.epochs}), got {config.start_epoch}")
    if run.text is not None:
        config = config.with_text(run.text)
    if machine.device == "auto" and config.device:
        machine = replace(machine, device=config.device)
    wanted = run.output or confined(default_output(run.sources, data.get("output")),
                                    run.sources, config.source)
    outputs = free_outputs(wanted, run.repeat)
    ensure_writable(outputs[0].parent)  # before rendering, not after it
    device = local_device(machine, "any", reporter.note)
    choice = choose(device, machine.precision)
    model = load_model(machine.model or config.model, device)
    reporter.say(describe(device, choice, model.name, model.identity))
    seeds = [run.seed + i for i in range(run.repeat)]
    frames = history_frames(data.get("snapshot_interval"), config.epochs)
    # All N in one batch unless --batch says fewer; one the device cannot hold is halved.
    size = min(run.repeat, run.batch or run.repeat)
    if run.repeat > 1:
        reporter.say(f"{run.repeat} images, batch {size} "
                     f"({'--batch' if run.batch else 'all at once'}; halved if the device "
                     f"runs out of memory)")
    records: list[tuple[Path, RenderRecord]] = []

    def render_batch(start: int, stop: int) -> None:
        label = "render" if run.repeat == 1 else f"images {start + 1}-{stop} of {run.repeat}"
        result = _render(config, model, seeds[start:stop], choice.precision, frames,
                         reporter, label)
        records.extend(_write(run, config, model, result, outputs[start:stop],
                              seeds[start:stop]))

    try:
        run_batches(run.repeat, size, render_batch, model.device, reporter.say)
    except OutOfMemory as exc:
        raise OutOfMemory(f"{exc}; {_written(records, run)}") from None
    except KeyboardInterrupt:
        if not records:
            raise
        raise Interrupted(f"interrupted: {_written(records, run)}") from None
    return records


def _written(records: list, run: ConfigRun) -> str:
    """What an interrupted `render-config` wrote, and the command line for the rest."""
    if not records:
        return "no image was written"
    names = ", ".join(str(png) for png, _ in records)
    rest = run.repeat - len(records)
    return (f"{len(records)} of {run.repeat} images were written ({names}); render the "
            f"other {rest} with --seed {run.seed + len(records)} --repeat {rest}")


def _render(config, model, seeds: list[int], precision: str, frames: int,
            reporter: Reporter, label: str):
    """One batch of ``seeds``, its epochs on the reporter's progress bar."""
    from ..engine.optimise import render

    done = [config.start_epoch]

    def advance(progress) -> None:
        reporter.advance(progress.epoch - done[0])
        done[0] = progress.epoch

    with reporter.progress(config.epochs - config.start_epoch, label, unit="epoch"):
        return render(config, model, seeds, precision=precision, progress=advance,
                      history=frames)


def _write(run: ConfigRun, config, model, result, outputs: list[Path], seeds: list[int]
           ) -> list[tuple[Path, RenderRecord]]:
    """Each image of one batch with its record, history and sidecar."""
    from ..engine.history import encode_histories
    from ..engine.imageio import encode_png
    from ..engine.rate import feature_similarities

    pngs = [encode_png(image) for image in result.images]
    histories = encode_histories(result.history, [True] * len(seeds)) \
        if result.history is not None else [None] * len(seeds)
    table = feature_similarities(model, config, pngs)  # (N, features), saved images
    labels = [(t.name, f.text if f.text is not None else f"image {f.image}")
              for t in config.targets for f in t.features]
    prompt = config.text if len(config.text_features) == 1 and len(labels) == 1 \
        else " + ".join(label for _, label in labels)
    records = []
    for i, (png, output) in enumerate(zip(pngs, outputs, strict=True)):
        sims = [round(float(v), 4) for v in table[i]]
        record = RenderRecord(
            prompt=prompt, config=" + ".join("<stdin>" if n == "-" else Path(n).name
                                             for n in run.sources),
            config_hash=config.hash, seed=seeds[i],
            model=model.name, model_id=model.identity, device=result.device,
            precision=result.precision, epochs=config.epochs,
            seconds=round(result.seconds / len(seeds), 3), batch=len(seeds),
            sim=round(sum(sims) / len(sims), 4), device_name=device_name(result.device),
            torch=_torch_version())
        statistics = {
            "seconds": record.seconds,
            "batch": len(seeds),
            "device": f"{record.device_name} ({result.precision})",
            "similarity of the saved image to each feature (100 x cosine)": [
                {"target": name, "feature": label, "similarity": sim}
                for (name, label), sim in zip(labels, sims, strict=True)],
            "losses of the last step": {k: round(float(v[i]), 4)
                                        for k, v in result.losses.items()},
        }
        notes = [f"rendered by clipig-gallery render-config at "
                 f"{_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}",
                 f"from {config.source}, seed {seeds[i]}, model {model.name}",
                 "every default filled in; renders again with render-config"]
        output.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(output) as tmp:
            tmp.write_bytes(png)
        if histories[i] is not None:
            with atomic_path(history_path(output)) as tmp:
                tmp.write_bytes(histories[i])
        with atomic_path(sidecar_path(output)) as tmp:
            tmp.write_text(sidecar_text(config, notes, statistics), encoding="utf-8")
        record.write(record_path(output))
        records.append((output, record))
    return records


def _torch_version() -> str:
    import torch

    return torch.__version__
