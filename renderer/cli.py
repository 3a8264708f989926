"""The ``clipig-gallery`` command: a thin layer over the library.

Each command parses its options, calls one library function and reports.
User mistakes (bad config, missing weights, bad device) exit non-zero with a
message and write nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .clipmodel import DEFAULT_MODEL, MODEL_ENV, ModelUnavailable, default_model_name


def resolve_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter("CUDA is not available on this machine", param_hint="--device")
    return device


def model_option(fn):
    return click.option(
        "--model",
        default=None,
        metavar="NAME|PATH",
        help=f"CLIP model name or checkpoint path (default ${MODEL_ENV} or {DEFAULT_MODEL}).",
    )(fn)


def device_option(fn):
    return click.option(
        "--device", default="auto", show_default=True, help="cpu, cuda, cuda:1, ... or auto."
    )(fn)


def precision_option(fn):
    return click.option(
        "--precision",
        type=click.Choice(["fp32", "bf16"]),
        default=None,
        help="Compute precision of CLIP (default: bf16 on CUDA, fp32 elsewhere).",
    )(fn)


def load_model(name: str | None, device):
    from .clipmodel import load_clip

    try:
        return load_clip(name or default_model_name(), device)
    except ModelUnavailable as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
@click.version_option(package_name="clipig-gallery")
def main():
    """Render CLIP-guided images and build the gallery around them."""


@main.command("render-config")
@click.argument("config_path", metavar="CONFIG.yaml", type=click.Path(dir_okay=False))
@click.option("--text", default=None, help="Prompt that replaces the config's text feature.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="PNG to write; its record goes beside it as .json.")
@model_option
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed of the image.")
@click.option("--epochs", default=None, type=click.IntRange(min=1),
              help="Override the config's epochs.")
@device_option
@precision_option
def render_config(config_path, text, output, model, seed, epochs, device, precision):
    """Render one image from any CLIPig CONFIG.yaml."""
    from .config import ConfigError, load_config
    from .output import ImageJob, render_files

    try:
        config = load_config(config_path)
        if epochs is not None:
            config = config.with_epochs(epochs)
        prompt = text if text is not None else config.text
        if text is not None:
            config = config.with_text(text)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    output = Path(output)
    if output.suffix.lower() != ".png":
        raise click.BadParameter("the output must be a .png file", param_hint="--output")
    # The config may name a model and device; the command line wins.
    device = resolve_device(config.device if device == "auto" and config.device else device)
    clip_model = load_model(model or config.model, device)
    with _bar(config.epochs, "render") as bar:
        (record,) = render_files(
            config, clip_model, [ImageJob(prompt, seed, output)], precision,
            progress=lambda p: bar.update(p.epoch - bar.n),
        )
    click.echo(
        f"{output}: sim {record.sim:.2f}, {record.seconds:.1f} s on {record.device} "
        f"({record.precision}, {record.model})"
    )


@main.command()
@click.option("--out", default="build/demo", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the demo images.")
@model_option
@click.option("--epochs", default=None, type=click.IntRange(min=1),
              help="Override the methods' epochs (shorter demo).")
@device_option
@precision_option
def demo(out, model, epochs, device, precision):
    """Render a few prompts with both of the article's methods."""
    from .demo import run_demo

    try:
        run_demo(Path(out), model, epochs, resolve_device(device), precision, echo=click.echo)
    except ModelUnavailable as exc:
        raise click.ClickException(str(exc)) from None


def _bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="epoch", file=sys.stderr, leave=False,
                disable=None)


if __name__ == "__main__":
    main()
