"""`render-config`: one image from any CLIPig config, written with its record."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from gallery.schema import RenderRecord

from ..engine.device import describe
from ..execution.jobs import ImageJob, render_files
from ..execution.report import Reporter
from ..language.config import load_config
from .session import Machine, load_model, local_device


def render_one(config_path: Path, output: Path, machine: Machine, text: str | None,
               seed: int, epochs: int | None, reporter: Reporter) -> RenderRecord:
    """Render ``config_path`` (its text replaced by ``text``, its epochs by ``epochs``
    where given) into ``output``. The config may name a model and a device; the
    machine asked for wins. Raises ConfigError naming the file and key."""
    from ..engine.precision import choose

    config = load_config(config_path)
    if epochs is not None:
        config = config.with_epochs(epochs)
    prompt = text if text is not None else config.text
    if text is not None:
        config = config.with_text(text)
    if machine.device == "auto" and config.device:
        machine = replace(machine, device=config.device)
    device = local_device(machine, "any", reporter.note)
    choice = choose(device, machine.precision)
    model = load_model(machine.model or config.model, device)
    reporter.say(describe(device, choice, model.name, model.identity))
    done = [0]

    def advance(progress) -> None:
        reporter.advance(progress.epoch - done[0])
        done[0] = progress.epoch

    with reporter.progress(config.epochs, "render", unit="epoch"):
        (record,) = render_files(config, model, [ImageJob(prompt, seed, output)],
                                 choice.precision, progress=advance)
    return record
