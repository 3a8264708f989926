"""``clipig-gallery``: the one command group, over the renderer and the generator.

This is the only place that imports both: the renderer's commands (render,
rank, rate, bench, render-config), the generator's (site, serve, publish) and
``demo``, which runs the two in turn.
"""

from __future__ import annotations

from pathlib import Path

import click

from clipig_gallery.core.atomic import (
    disk_full_message,
    is_disk_full,
    is_unwritable,
    unwritable_message,
)
from clipig_gallery.generator.cli import COMMANDS as GENERATOR_COMMANDS
from clipig_gallery.renderer.cli import COMMANDS as RENDERER_COMMANDS
from clipig_gallery.renderer.cli import device_option, machine, model_option, precision_option
from clipig_gallery.renderer.terminal import ClickReporter, reported


class Commands(click.Group):
    """The group: a full disk, or a path that cannot be written, ends any command
    with one message, not a traceback.

    (`render` and `rank` say more about a full disk: how many images they
    finished and kept.)
    """

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except OSError as exc:
            if is_disk_full(exc):
                raise click.ClickException(disk_full_message(
                    exc, Path.cwd(), "what the command finished before is kept")) from None
            if is_unwritable(exc):
                raise click.ClickException(unwritable_message(exc)) from None
            raise


@click.group(cls=Commands)
@click.version_option(package_name="clipig-gallery")
def main():
    """Render CLIP-guided images and build the gallery around them."""


for _command in (*RENDERER_COMMANDS, *GENERATOR_COMMANDS):
    main.add_command(_command)


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

    with reported():
        run_demo(Path(out), machine(model, device, precision), epochs, ClickReporter())


if __name__ == "__main__":
    main()
