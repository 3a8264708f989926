"""What the commands show on a terminal: lines above a progress bar, and a message
instead of a traceback for what a user can cause."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import click

from .execution.report import BarReporter


class ClickReporter(BarReporter):
    """Lines on stdout, above a progress bar on stderr while one is open."""

    def __init__(self):
        super().__init__(click.echo)

    def say(self, line: str) -> None:
        if self.bar is None:
            click.echo(line)
            return
        self.bar.clear()
        click.echo(line)
        self.bar.refresh()

    def note(self, line: str) -> None:
        click.echo(line, err=True)  # on stderr: `rate` may be writing its CSV to stdout

    def new_bar(self, total: int, label: str, unit: str):
        from tqdm import tqdm

        return tqdm(total=total, desc=label, unit=unit, file=sys.stderr, leave=False,
                    disable=None)


@contextmanager
def reported(what: str = "images", cache: Path | None = None):
    """A user's mistake or a condition a user can cause ends with a message, not a
    traceback: an unusable device or precision (usage error), missing weights, a
    cluster that cannot be used, a bad plan or config; and, for a run over
    ``cache``, an interruption, running out of memory or disk (finished work kept);
    and a path that cannot be written."""
    from clipig_gallery.core.atomic import (
        disk_full_message,
        is_disk_full,
        is_unwritable,
        unwritable_message,
    )
    from clipig_gallery.core.settings import ModelUnavailable

    from .engine.device import DeviceError
    from .engine.precision import PrecisionError
    from .execution.batching import OutOfMemory
    from .execution.cluster import ClusterError
    from .language.config import ConfigError
    from .runs.judge import SameModel
    from .runs.single import Interrupted
    from .runs.spec import PlanError

    kept = f"finished {what} are kept in {cache}/"
    try:
        yield
    except (DeviceError, PrecisionError) as exc:
        raise click.UsageError(str(exc)) from None
    except (ModelUnavailable, ClusterError, ConfigError, PlanError, SameModel,
            Interrupted) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        if cache is None:
            raise
        raise click.ClickException(f"interrupted: {kept}; run again to resume") from None
    except OutOfMemory as exc:
        raise click.ClickException(f"{exc}; {kept}" if cache is not None else str(exc)) from None
    except OSError as exc:
        if is_unwritable(exc):
            said = unwritable_message(exc)
            raise click.ClickException(f"{said}; {kept}" if cache is not None else said) from None
        if cache is None or not is_disk_full(exc):
            raise
        complete = sum(p.with_suffix(".json").exists() for p in Path(cache).rglob("*.png"))
        raise click.ClickException(disk_full_message(
            exc, cache, f"the {what} finished before it are kept in {cache}/ "
                        f"({complete} complete images there)")) from None
