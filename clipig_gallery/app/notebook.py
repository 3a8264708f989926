"""What the notebook (``notebooks/clipig-gallery.ipynb``) calls: the library's runs,
shown in Jupyter or Colab.

Each notebook cell is a line or two over this module: ``start`` resolves the
device, precision and model once (and says them), ``Notebook.plan`` says what
a selection needs and how long it takes here, ``Notebook.render`` renders it
with a progress bar and a grid of the finished images, ``Notebook.best_of``
runs best of N for one prompt, ``Notebook.site`` builds the post, and
``download`` or ``Notebook.publish`` hands it over. The cache can live on
storage that outlives the notebook (Google Drive on Colab, via ``storage``):
a rerun of the cells renders only what is missing.

A condition a user can cause (no GPU, missing weights, an unknown thing, a
full disk, an interrupted cell) stops the cell with one message instead of a
traceback (``Stop``); what was finished stays in the cache.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from html import escape
from pathlib import Path

from clipig_gallery.core.atomic import unwritable_message
from clipig_gallery.core.layout import best_of_root, png_path, record_path
from clipig_gallery.core.paths import METHODS
from clipig_gallery.core.settings import DEFAULT_HISTORY_FRAMES
from clipig_gallery.renderer.execution.report import BarReporter

COLAB_DRIVE = Path("/content/drive")
COLAB_CACHE = Path("MyDrive", "clipig-gallery", "cache")  # inside the mounted Drive
TOKEN_SECRET = "GITHUB_TOKEN"  # the Colab secret (or environment variable) publish reads
GRID_THINGS = 4  # things the grid shows at most (the site shows every one)
THUMB = 112  # pixels of a grid thumbnail
ARTICLE_IMAGES = 1620  # 810 prompts x 2 methods
NOTEBOOK_HINTS = {
    "DeviceError": "In the notebook: on Colab choose Runtime > Change runtime type > a GPU, "
                   "or set DEVICE = \"cpu\" in the parameters cell.",
    "PrecisionError": "In the notebook: set PRECISION = None (the device's own) in the "
                      "parameters cell.",
}


class Stop(Exception):
    """Stops a cell with its message only: IPython shows ``_render_traceback_``'s
    lines instead of a traceback."""

    def _render_traceback_(self) -> list[str]:
        return [f"stopped: {self}"]


@contextmanager
def friendly(cache: Path | None = None, what: str = "images") -> Iterator[None]:
    """What the command line turns into a message (``renderer.terminal.reported``:
    an unusable device, missing weights, a bad plan, running out of memory or disk,
    an interruption, with the finished ``what`` kept in ``cache``), and a failed
    site build or publish, as ``Stop`` with that message."""
    import click

    from clipig_gallery.core.schema import CacheFormatError
    from clipig_gallery.generator.article import ArticleError
    from clipig_gallery.generator.publish import PublishError
    from clipig_gallery.generator.site import BuildError
    from clipig_gallery.generator.sitepaths import BaseUrlError
    from clipig_gallery.renderer.terminal import reported

    try:
        with reported(what, cache):
            yield
    except click.ClickException as exc:
        hint = NOTEBOOK_HINTS.get(type(exc.__context__).__name__)
        raise Stop("\n".join(filter(None, (exc.format_message(), hint)))) from None
    except (PublishError, BuildError, ArticleError, CacheFormatError, SettingsError,
            BaseUrlError) as exc:
        raise Stop(str(exc)) from None


class SettingsError(ValueError):
    """clipig_gallery/core/data/site.yaml cannot be used; the message names the key."""


def _settings():
    from clipig_gallery.generator.settings import load_settings

    try:
        return load_settings()
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


def in_colab() -> bool:
    return "google.colab" in sys.modules


def storage(cache: str | os.PathLike = "") -> Path:
    """The cache folder: ``cache``, or by default Google Drive on Colab (mounted
    here, so the cache outlives the session) and ./cache elsewhere."""
    path = (Path(cache) if str(cache) else COLAB_DRIVE / COLAB_CACHE if in_colab()
            else Path("cache"))
    path = path.expanduser().absolute()
    if in_colab() and path.is_relative_to(COLAB_DRIVE) and not (COLAB_DRIVE / "MyDrive").is_dir():
        from google.colab import drive

        drive.mount(str(COLAB_DRIVE))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file there, no permission, a read-only or missing mount
        raise Stop(unwritable_message(exc)) from None
    return path


def _display(obj, handle=None):
    """Show ``obj`` (or update the output ``handle`` showed before); print its text
    outside IPython. The handle for the next update."""
    try:
        from IPython.display import display
    except ImportError:
        print(getattr(obj, "data", obj))
        return None
    if handle is not None:
        handle.update(obj)
        return handle
    return display(obj, display_id=True)


def _html(markup: str):
    try:
        from IPython.display import HTML
    except ImportError:
        return markup
    return HTML(markup)


class NotebookReporter(BarReporter):
    """Lines as printed output, progress as a notebook bar (tqdm's), and a callback
    after every batch written (the grid refreshes there)."""

    def __init__(self):
        super().__init__(print)
        self.on_advance = None

    def advance(self, images: int) -> None:
        super().advance(images)
        if self.on_advance is not None:
            self.on_advance()

    def new_bar(self, total: int, label: str, unit: str):
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=label, unit=unit)


def _thumb(png: Path, cache: dict) -> str | None:
    """A small PNG of ``png`` as a data URL (kept per file and modification time)."""
    try:
        stamp = png.stat().st_mtime_ns
    except FileNotFoundError:
        return None
    key = (png, stamp)
    if key not in cache:
        from PIL import Image

        with Image.open(png) as image:
            image.thumbnail((THUMB, THUMB))
            data = io.BytesIO()
            image.save(data, format="PNG")
        cache[key] = "data:image/png;base64," + base64.b64encode(data.getvalue()).decode()
    return cache[key]


def _cell(png: Path, thumbs: dict, label: str = "") -> str:
    from clipig_gallery.renderer.execution.cache import read_record

    url = _thumb(png, thumbs) if record_path(png).is_file() else None
    if url is None:
        box = f"width:{THUMB}px;height:{THUMB}px;background:#eee"
        return f'<td><div style="{box}"></div><small>{escape(label)}</small></td>'
    record = read_record(png)
    sim = f"sim {record.sim:.1f}" if record and record.sim is not None else ""
    return (f'<td><img src="{url}" width="{THUMB}" height="{THUMB}" '
            f'title="{escape(record.prompt if record else "")}"><br>'
            f'<small>{escape(" ".join(filter(None, (label, sim))))}</small></td>')


@dataclass(frozen=True)
class Selected:
    """What the plan cell chose: the prompts x methods and the epochs."""

    selection: object  # renderer.runs.spec.Selection
    epochs: int | None = None

    def plan(self, run: Notebook):
        """The gallery plan as the cache stands now."""
        from clipig_gallery.renderer.runs.first import plan_gallery

        return plan_gallery(run.cache, run.spec.model.identity, self.selection, self.epochs,
                            run.spec.seed)


@dataclass
class Notebook:
    """One notebook's run: the spec (device, precision, model resolved once)."""

    spec: object  # renderer.runs.spec.RunSpec
    reporter: NotebookReporter
    thumbs: dict = field(default_factory=dict)

    @property
    def cache(self) -> Path:
        return Path(self.spec.cache)

    def plan(self, things: Sequence[str] = (), animals: Sequence[str] = (),
             methods: Sequence[int] = METHODS, epochs: int | None = None) -> Selected:
        """The selection (empty ``things`` and ``animals``: all of them); says how many
        images it has, how many are done, and the time the rest takes here."""
        from clipig_gallery.renderer.runs.first import estimate_line
        from clipig_gallery.renderer.runs.spec import Selection

        selected = Selected(Selection(tuple(int(m) for m in methods), tuple(animals),
                                      tuple(things)), epochs)
        with friendly(self.cache):
            planned = selected.plan(self)
            done = len(planned.items) - len(planned.todo)
            print(f"{len(planned.items)} images selected ({len(planned.items)} of "
                  f"{ARTICLE_IMAGES} in the article), {done} already in {self.cache}/")
            if planned.todo:
                print(estimate_line(self.spec, planned))
        return selected

    def grid(self, planned, handle=None):
        """Show (or update) animals x methods for the plan's first things."""
        things = list(dict.fromkeys(item.prompt.thing for item in planned.items))
        shown = things[:GRID_THINGS]
        animals = list(dict.fromkeys(item.prompt.animal for item in planned.items))
        methods = sorted({item.method for item in planned.items})
        stems = {(i.prompt.animal, i.prompt.thing): i.prompt.stem for i in planned.items}
        head = "".join(f"<th>{escape(thing)}, method {m}</th>" for thing in shown for m in methods)
        rows = []
        for animal in animals:
            cells = "".join(_cell(png_path(self.cache, m, stems[animal, thing]), self.thumbs)
                            for thing in shown for m in methods)
            rows.append(f"<tr><th>{escape(animal)}</th>{cells}</tr>")
        more = (f"<p>the first {GRID_THINGS} of {len(things)} things; the site shows them "
                f"all</p>" if len(things) > GRID_THINGS else "")
        return _display(_html(f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>{more}"),
                        handle)

    def render(self, selected: Selected):
        """Render the selection's images still to do (as the cache says now: a cell run
        again after an interruption goes on), with a progress bar; the grid fills in
        as batches finish. The report (None when nothing was left to do)."""
        from clipig_gallery.renderer.engine.history import sizes_line
        from clipig_gallery.renderer.runs.first import render_gallery

        with friendly(self.cache):
            planned = selected.plan(self)
        handle = self.grid(planned)
        if not planned.todo:
            print(f"nothing to render: {len(planned.items)} images complete in {self.cache}/")
            return None
        self.reporter.on_advance = lambda: self.grid(planned, handle)
        try:
            with friendly(self.cache):
                report = render_gallery(self.spec, planned)
        finally:
            self.reporter.on_advance = None
        self.grid(planned, handle)
        print(report.text(self.cache))
        line = sizes_line([i.png for i in planned.items], self.spec.frames)
        if line:
            print(line)
        return report

    def best_of(self, animal: str, thing: str, runs: int, methods: Sequence[int] = METHODS,
                epochs: tuple[int | None, int | None] = (None, None)):
        """Best of ``runs`` short runs for one prompt (each method): the estimate, the
        runs with a progress bar, then the winner beside the first attempt."""
        from clipig_gallery.renderer.runs.bestof import BestOfSpec, run_best_of
        from clipig_gallery.renderer.runs.spec import Selection

        selection = Selection(tuple(int(m) for m in methods), (animal,), (thing,))
        spec = replace(self.spec, selection=selection, device_line="")  # said at the start
        with friendly(self.cache):
            prompt = selection.prompts()[0]
            report = run_best_of(spec, BestOfSpec(runs, 1, *epochs))
        stem = prompt.stem
        cells = "".join(_cell(png_path(self.cache, m, stem), self.thumbs, f"method {m}")
                        + _cell(png_path(best_of_root(self.cache), m, stem), self.thumbs,
                                f"best of {runs}")
                        for m in selection.methods)
        _display(_html(f"<p>{escape(prompt.text)} first attempt and best of {runs}</p>"
                       f"<table><tr>{cells}</tr></table>"))
        return report

    def site(self, out: str | os.PathLike = "site", base_url: str | None = None) -> Path:
        """Build the post from the cache into ``out`` (incrementally); its folder."""
        from clipig_gallery.generator.site import build_site

        with friendly(self.cache):
            report = build_site(self.cache, Path(out), base_url or _settings().base_url)
        for line in report.lines():
            print(line)
        return Path(out)

    def publish(self, site: Path, to: str, token: str | None = None):
        """Build the post for the GitHub Pages address of ``to`` (a repository URL,
        or any git remote) and push it to its gh-pages branch (that of
        clipig_gallery/core/data/site.yaml).

        The token (``token``, else the Colab secret or environment variable
        GITHUB_TOKEN, else asked for without echo) reaches git through the
        environment of this call only: it is never printed, and written to no
        file, the remote's URL included.
        """
        from clipig_gallery.generator.publish import publish_gallery

        with friendly(self.cache):
            settings = _settings()
        base_url = pages_base_url(to) or settings.base_url
        repo = Path(site).absolute().parent / ".clipig-publish"
        with friendly(self.cache):
            _publishing_repo(repo, settings.remote, to)
            secret = token if token is not None else github_token() if _is_https(to) else None
            with git_credentials(secret):
                result, lines = publish_gallery(
                    self.cache, Path(site), remote=settings.remote, branch=settings.branch,
                    cname=settings.cname, base_url=base_url, allow_missing=True, repo=repo)
        for line in lines:
            print(line)
        page = pages_url(to)
        if page and result.pushed:
            print(f"on GitHub: Settings > Pages > deploy from the {settings.branch} branch; "
                  f"then the post is at {page}")
        return result


def _is_https(url: str) -> bool:
    return url.startswith("https://")


_GITHUB = re.compile(r"^https://github\.com/([^/\s]+)/([^/\s]+?)(?:\.git)?/?$")


def pages_base_url(url: str) -> str | None:
    """The path GitHub Pages serves repository ``url`` under (None: not GitHub)."""
    match = _GITHUB.match(url)
    if not match:
        return None
    owner, name = match.groups()
    return "/" if name.lower() == f"{owner.lower()}.github.io" else f"/{name}/"


def pages_url(url: str) -> str | None:
    match = _GITHUB.match(url)
    if not match:
        return None
    return f"https://{match.group(1).lower()}.github.io{pages_base_url(url)}"


def _publishing_repo(repo: Path, remote: str, url: str) -> None:
    """A git repository of its own to publish from, with ``remote`` at ``url``."""
    from clipig_gallery.generator.publish import PublishError

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)

    if shutil.which("git") is None:
        raise PublishError("publishing needs git, which this machine lacks: install it "
                           "(on Debian and Ubuntu: apt-get install git), or download the zip")
    if not url or url.startswith("-") or any(c.isspace() for c in url):
        raise PublishError(f"repository {url!r}: give its address, such as "
                           "https://github.com/you/gallery.git")
    repo.mkdir(parents=True, exist_ok=True)
    if not (repo / ".git").exists():
        git("init", "--quiet")
    exists = git("remote", "get-url", "--", remote).returncode == 0
    done = git("remote", "set-url" if exists else "add", "--", remote, url)
    if done.returncode != 0:
        raise PublishError(f"git remote {'set-url' if exists else 'add'} {remote} {url} "
                           f"failed: {done.stderr.strip()}")


def github_token() -> str:
    """The GitHub token: Colab's secret GITHUB_TOKEN (granted to this notebook), the
    environment variable of that name, or typed in without echo."""
    if in_colab():
        try:
            from google.colab import userdata

            value = userdata.get(TOKEN_SECRET)
            if value:
                return value
        except Exception:  # not set, or not granted to this notebook
            pass
    value = os.environ.get(TOKEN_SECRET)
    if value:
        return value
    import getpass

    return getpass.getpass("GitHub token (contents: read and write; not shown, not saved): ")


_HELPER = ('!f() { test "$1" = get || exit 0; echo username=x-access-token; '
           'echo "password=$CLIPIG_GIT_TOKEN"; }; f')


@contextmanager
def git_credentials(token: str | None) -> Iterator[None]:
    """For the git commands run inside: ``token`` as the password of every HTTPS
    remote (through git's configuration from the environment, not a file), no
    other credential helper, and no prompt. Nothing without a token."""
    if not token:
        yield
        return
    names = ("GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0", "GIT_CONFIG_VALUE_0", "GIT_CONFIG_KEY_1",
             "GIT_CONFIG_VALUE_1", "CLIPIG_GIT_TOKEN", "GIT_TERMINAL_PROMPT")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({
        "GIT_CONFIG_COUNT": "2",
        "GIT_CONFIG_KEY_0": "credential.helper", "GIT_CONFIG_VALUE_0": "",
        "GIT_CONFIG_KEY_1": "credential.helper", "GIT_CONFIG_VALUE_1": _HELPER,
        "CLIPIG_GIT_TOKEN": token, "GIT_TERMINAL_PROMPT": "0",
    })
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def download(site: Path) -> Path:
    """The site as one zip beside it; offered for download (Colab) or as a link."""
    site = Path(site)
    if not (site / "index.html").is_file():
        raise Stop(f"no site in {site}/: build it first")
    archive = Path(shutil.make_archive(str(site.absolute()), "zip", root_dir=site))
    print(f"{archive} ({archive.stat().st_size / 2**20:.1f} MB)")
    if in_colab():
        from google.colab import files

        files.download(str(archive))
    else:
        try:
            from IPython.display import FileLink

            _display(FileLink(os.path.relpath(archive)))
        except (ImportError, ValueError):
            pass
    return archive


def start(cache: str | os.PathLike = "", device: str = "auto", precision: str | None = None,
          model: str | None = None, frames: int = DEFAULT_HISTORY_FRAMES) -> Notebook:
    """The notebook's run: the cache (see ``storage``), the device, precision and model
    resolved once and said, histories of ``frames`` frames (0: none)."""
    from clipig_gallery.renderer.runs.session import Machine, Settings, open_run

    reporter = NotebookReporter()
    path = storage(cache)
    asked = Machine(device, precision, model)
    with friendly(path):
        with open_run(asked, Settings(path, frames=frames), reporter, "render") as spec:
            pass  # a local run holds nothing open: the spec stays usable
    print(spec.device_line)
    print(f"cache: {path}/")
    return Notebook(spec, reporter)
