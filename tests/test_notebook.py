"""The notebook, executed as a user's Jupyter would: a real kernel (nbclient and
ipykernel), every cell in order, on the CPU with the tiny model and tiny epochs
passed as parameters the way papermill passes them (a cell after the one
tagged ``parameters``).

One execution renders a small selection, best of 2 for one prompt, builds the
post and publishes it to a local bare repository with real git; a second
execution of the same notebook renders nothing and changes no cache file.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import small

from clipig_gallery.core.layout import best_of_root, history_path, png_path, record_path

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "clipig-gallery.ipynb"
STRIPPER = REPO / "scripts" / "strip_notebook.py"
ANIMALS, THINGS, EPOCHS = ["penguin", "snail"], ["piano"], 3
BEST_OF, BEST_OF_EPOCHS = ("penguin", "piano", 2), (2, 2)
TOKEN = "ghp_notebook-test-token-0123456789"  # must appear nowhere in what it wrote


def committed():
    import nbformat

    return nbformat.read(NOTEBOOK, as_version=4)


def test_the_committed_notebook_has_no_outputs_and_no_execution_counts():
    raw = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    code = [cell for cell in raw["cells"] if cell["cell_type"] == "code"]
    assert code, "the notebook has code cells"
    stale = [cell["id"] for cell in code if cell["outputs"] or cell["execution_count"]]
    assert not stale, f"cells with outputs or execution counts: {stale} (make notebook-strip)"
    assert "widgets" not in raw["metadata"], "saved widget state in the notebook's metadata"
    assert all("execution" not in cell["metadata"] for cell in code)


def test_the_notebook_is_valid_and_has_one_parameters_cell():
    import nbformat

    notebook = committed()
    nbformat.validate(notebook)
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code"


def with_parameters(**values):
    """The notebook with a cell setting ``values`` after its parameters cell."""
    from nbformat.v4 import new_code_cell

    notebook = committed()
    at = next(i for i, c in enumerate(notebook.cells)
              if "parameters" in c.metadata.get("tags", []))
    source = "\n".join(f"{name} = {value!r}" for name, value in values.items())
    cell = new_code_cell(source, id="injected-parameters")
    cell.metadata["tags"] = ["injected-parameters"]
    notebook.cells.insert(at + 1, cell)
    return notebook


KERNEL = "clipig-gallery-test"
MISTAKE = 'nb.start(CACHE_DIR, "cuda:99", PRECISION, MODEL, HISTORY_FRAMES)'


@pytest.fixture(scope="module", autouse=True)
def _kernel(tmp_path_factory):
    """A kernel spec of this interpreter, first on Jupyter's path: whatever kernels a
    user's Jupyter has, the notebook runs in the environment under test."""
    import sys

    folder = tmp_path_factory.mktemp("jupyter")
    spec = folder / "kernels" / KERNEL
    spec.mkdir(parents=True)
    spec.joinpath("kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "clipig-gallery (tests)", "language": "python"}))
    saved = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = str(folder)
    yield
    if saved is None:
        os.environ.pop("JUPYTER_PATH", None)
    else:
        os.environ["JUPYTER_PATH"] = saved


def execute(notebook, cwd: Path, allow_errors: bool = False):
    from nbclient import NotebookClient

    NotebookClient(notebook, timeout=300, kernel_name=KERNEL, allow_errors=allow_errors,
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return notebook


def text_of(notebook) -> dict[str, str]:
    """Each code cell's printed text (streams and plain-text results), by id."""
    out = {}
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        parts = []
        for output in cell.outputs:
            if output.output_type == "stream":
                parts.append(output.text)
            elif output.output_type in ("execute_result", "display_data"):
                parts.append(output.data.get("text/plain", ""))
            elif output.output_type == "error":
                parts.append("\n".join(output.traceback))
        out[cell.id] = "".join(parts)
    return out


def files_of(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns
            for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_clip_path):
    """The notebook executed twice over one cache, with a bare repository to publish
    to: (folder, cache, first execution, cache files after it, second execution)."""
    from nbformat.v4 import new_code_cell

    folder = tmp_path_factory.mktemp("notebook")
    remote = folder / "pages.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(remote)], check=True)
    params = dict(CACHE_DIR=str(folder / "cache"), THINGS=THINGS, ANIMALS=ANIMALS,
                  EPOCHS=EPOCHS, DEVICE="cpu", MODEL=str(tiny_clip_path), HISTORY_FRAMES=4,
                  BEST_OF=BEST_OF, BEST_OF_EPOCHS=BEST_OF_EPOCHS,
                  SITE_DIR=str(folder / "site"), PUBLISH_TO=str(remote))
    env = {"GITHUB_TOKEN": TOKEN}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits it, as a user's environment would pass it
    try:
        first = execute(with_parameters(**params), folder)
        cache = folder / "cache"
        after_first = files_of(cache)
        # The second execution ends with one more cell, a user's mistake (a GPU
        # this machine does not have: none here, and no machine has a hundred), so
        # that its message is seen as a real kernel shows it, without a third kernel.
        second = with_parameters(**params)
        second.cells.append(new_code_cell(MISTAKE, id="mistake"))
        second = execute(second, folder, allow_errors=True)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return folder, cache, first, after_first, second


def test_the_notebook_renders_the_selection_into_a_complete_cache(runs, tiny_clip):
    from clipig_gallery.renderer.runs.first import plan_gallery
    from clipig_gallery.renderer.runs.spec import Selection

    _, cache, first, _, _ = runs
    planned = plan_gallery(cache, tiny_clip.identity, Selection(animals=tuple(ANIMALS),
                                                                things=tuple(THINGS)), EPOCHS)
    assert len(planned.items) == len(ANIMALS) * len(THINGS) * 2
    assert not planned.todo, [str(i.png) for i in planned.todo]  # the library's own rule
    for item in planned.items:
        assert history_path(item.png).is_file()
    said = text_of(first)
    assert "4 images selected" in said["plan"] and "estimated" in said["plan"]
    assert "4 images in" in said["render"]


def test_the_device_line_and_the_estimate_come_before_any_rendering(runs):
    said = text_of(runs[2])
    assert said["start"].startswith("device cpu (") and "precision fp32" in said["start"]
    assert "model " in said["start"] and "cache: " in said["start"]
    # Nothing rendered before the render cell: the plan cell only measured a step.
    assert "images, batch" not in said["start"] + said["plan"]
    assert "images, batch" in said["render"]


def test_the_notebook_shows_a_progress_bar_and_a_grid_of_the_images(runs):
    render = next(c for c in runs[2].cells if c.id == "render")
    kinds = [o.output_type for o in render.outputs]
    html = [o.data["text/html"] for o in render.outputs
            if o.output_type in ("display_data", "update_display_data") and "text/html" in o.data]
    widgets = [o for o in render.outputs if o.output_type == "display_data"
               and "application/vnd.jupyter.widget-view+json" in o.data]
    assert widgets, f"no progress widget among {kinds}"
    assert html and all("<table>" in h for h in html)
    # The grid's last state shows every image of the selection (2 animals x 2 methods).
    assert html[-1].count("<img ") == len(ANIMALS) * len(THINGS) * 2


def test_best_of_n_for_the_chosen_prompt(runs):
    from clipig_gallery.core.prompts import load_prompts

    _, cache, first, _, _ = runs
    animal, thing, n = BEST_OF
    stem = next(p.stem for p in load_prompts() if (p.animal, p.thing) == (animal, thing))
    for method in (1, 2):
        png = png_path(best_of_root(cache), method, stem)
        record = json.loads(record_path(png).read_text())
        assert record["best_of"]["runs"] == n
    said = text_of(first)["best-of"]
    assert f"best of {n}" in said and "estimated" in said


def test_the_post_is_built_and_published_with_real_git(runs):
    folder, _, first, _, second = runs
    site = folder / "site"
    post = site / "2021" / "clipig-animal-transfer" / "index.html"
    assert post.is_file() and "penguin" in post.read_text(encoding="utf-8")
    assert "renders: 4; best-of images: 2;" in text_of(first)["site"]  # all of them
    listing = subprocess.run(["git", "ls-tree", "-r", "--name-only", "gh-pages"],
                             cwd=folder / "pages.git", capture_output=True, text=True,
                             check=True).stdout.split()
    assert "index.html" in listing and "2021/clipig-animal-transfer/index.html" in listing
    assert "published" in text_of(first)["publish"]
    assert "nothing to publish" in text_of(second)["publish"]


def test_a_second_execution_renders_nothing(runs):
    _, cache, _, after_first, second = runs
    said = text_of(second)
    assert "nothing to render: 4 images complete" in said["render"]
    assert "nothing to render: best of 2 complete" in said["best-of"]
    assert "0 already" not in said["plan"] and "estimated" not in said["plan"]
    assert files_of(cache) == after_first  # not a file written, added or removed


def test_the_token_is_nowhere_in_what_the_notebook_wrote(runs):
    import nbformat

    folder, _, first, _, second = runs
    for notebook in (first, second):
        assert TOKEN not in nbformat.writes(notebook)
    for path in folder.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def test_a_users_mistake_stops_the_cell_with_a_message_and_no_traceback(runs):
    cells = {c.id: c for c in runs[4].cells}
    errors = {id: [o for o in c.outputs if o.output_type == "error"]
              for id, c in cells.items() if c.cell_type == "code"}
    assert not [id for id, e in errors.items() if e and id != "mistake"]  # only there
    (error,) = errors["mistake"]
    assert error.ename == "Stop"
    assert len(error.traceback) == 1  # the message, no frames
    assert error.traceback[0].startswith("stopped: ")
    assert 'DEVICE = "cpu"' in error.traceback[0]


def test_the_stripper_turns_an_executed_notebook_back_into_the_committed_one(runs, tmp_path):
    import importlib.util

    import nbformat

    found = importlib.util.spec_from_file_location("strip_notebook", STRIPPER)
    stripper = importlib.util.module_from_spec(found)
    found.loader.exec_module(stripper)
    strip = stripper.strip
    executed = nbformat.from_dict(json.loads(nbformat.writes(runs[2])))
    executed.cells = [c for c in executed.cells if c.id != "injected-parameters"]
    path = tmp_path / "executed.ipynb"
    nbformat.write(executed, path)
    assert any(c.get("outputs") for c in executed.cells)  # there was something to strip
    assert strip(path)
    assert path.read_text(encoding="utf-8") == NOTEBOOK.read_text(encoding="utf-8")
    assert not strip(path)  # stripping a clean notebook changes nothing


def test_git_gets_the_token_from_the_environment_of_the_publish_only(tmp_path):
    from clipig_gallery.app.notebook import git_credentials

    def fill():
        return subprocess.run(["git", "credential", "fill"], cwd=tmp_path, text=True,
                              input="protocol=https\nhost=github.com\npath=you/pages.git\n\n",
                              capture_output=True, env={**os.environ, "GIT_TERMINAL_PROMPT": "0",
                                                        "GIT_ASKPASS": "", "SSH_ASKPASS": ""})

    before = dict(os.environ)
    with git_credentials(TOKEN):
        got = fill()
        assert got.returncode == 0, got.stderr
        assert f"password={TOKEN}" in got.stdout.splitlines()
        assert "username=x-access-token" in got.stdout.splitlines()
    assert dict(os.environ) == before  # nothing of it stays behind
    after = fill()
    assert after.returncode != 0 or TOKEN not in after.stdout


@pytest.mark.parametrize("url, base, page", [
    ("https://github.com/you/pages", "/pages/", "https://you.github.io/pages/"),
    ("https://github.com/You/pages.git", "/pages/", "https://you.github.io/pages/"),
    ("https://github.com/you/you.github.io", "/", "https://you.github.io/"),
    ("/srv/git/pages.git", None, None),
])
def test_the_pages_address_of_a_repository(url, base, page):
    from clipig_gallery.app.notebook import pages_base_url, pages_url

    assert pages_base_url(url) == base
    assert pages_url(url) == page


def test_the_token_comes_from_the_environment_before_asking(monkeypatch):
    from clipig_gallery.app import notebook

    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setattr("getpass.getpass", lambda prompt: pytest.fail("asked for the token"))
    assert notebook.github_token() == TOKEN
    monkeypatch.delenv("GITHUB_TOKEN")
    monkeypatch.setattr("getpass.getpass", lambda prompt: "typed")
    assert notebook.github_token() == "typed"


def test_a_users_mistake_is_one_line_without_a_traceback(tmp_path, tiny_clip):
    from clipig_gallery.app.notebook import Notebook, NotebookReporter, Stop, download

    reporter = NotebookReporter()
    run = Notebook(small.spec(tmp_path, tiny_clip, reporter=reporter), reporter)
    with pytest.raises(Stop) as stopped:
        run.plan(things=["theremin"])
    assert stopped.value._render_traceback_() == ["stopped: unknown thing(s): theremin"]
    with pytest.raises(Stop, match="no site in"):
        download(tmp_path / "site")


def test_a_cache_path_that_cannot_be_a_folder_stops_the_cell(tmp_path):
    from clipig_gallery.app.notebook import Stop, start, storage

    (tmp_path / "a-file").write_text("not a folder")
    for path, why in ((tmp_path / "a-file", "File exists"),
                      (tmp_path / "a-file" / "cache", "Not a directory")):
        with pytest.raises(Stop) as stopped:
            storage(path)
        assert str(stopped.value) == (f"cannot write {path}: {why}; check the path (a folder "
                                      "that can be created, not a file) and that it may be "
                                      "written")
    with pytest.raises(Stop, match="cannot write .*a-file: File exists"):
        start(cache=tmp_path / "a-file", device="cpu")
    assert (tmp_path / "a-file").read_text() == "not a folder"


def test_a_malformed_cache_file_or_site_yaml_stops_the_site_cell(tmp_path, tiny_clip,
                                                                monkeypatch):
    from clipig_gallery.app.notebook import Notebook, NotebookReporter, Stop
    from clipig_gallery.core.prompts import load_prompts
    from clipig_gallery.generator import settings
    from clipig_gallery.generator.sample import write_sample_cache

    cache = write_sample_cache(tmp_path / "cache", load_prompts()[:9], rankings=False)
    reporter = NotebookReporter()
    run = Notebook(small.spec(cache, tiny_clip, reporter=reporter), reporter)
    (cache / "summary.json").write_text('{"methods": {"1": {"seconds_per_image": "x"}}}')
    with pytest.raises(Stop, match=r"summary.json: methods\['1'\].seconds_per_image must be"):
        run.site(tmp_path / "site")
    (cache / "summary.json").unlink()
    bad = tmp_path / "site.yaml"
    bad.write_text("branch: [gh-pages]\n")
    monkeypatch.setattr(settings.load_settings, "__defaults__", (bad,))
    with pytest.raises(Stop, match=f"{bad}: branch: expected a string"):
        run.site(tmp_path / "site")
    with pytest.raises(Stop, match=f"{bad}: branch: expected a string"):
        run.publish(tmp_path / "site", "https://github.com/someone/blog")


def test_an_interrupted_or_full_cell_says_what_it_kept(tmp_path):
    import errno

    from clipig_gallery.app.notebook import Stop, friendly

    with pytest.raises(Stop, match=f"interrupted: finished images are kept in {tmp_path}/; "
                                   "run again to resume"):
        with friendly(tmp_path):
            raise KeyboardInterrupt
    with pytest.raises(Stop, match="no space left on the device") as full:
        with friendly(tmp_path):
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.png"))
    assert "kept" in str(full.value)
    with pytest.raises(ValueError):  # not a user's condition: the traceback stays
        with friendly(tmp_path):
            raise ValueError("a bug")


def test_the_render_cell_run_again_goes_on_from_the_cache(monkeypatch, tmp_path, tiny_clip,
                                                          small_configs):
    """Within one kernel too: the render cell asks the cache, not the plan cell's
    snapshot, so running it again after it finished (or was interrupted) renders only
    what is missing."""
    from clipig_gallery.app import notebook
    from clipig_gallery.app.notebook import Notebook, NotebookReporter

    shown = []  # the grid's states as displayed, in order
    real = notebook._display
    monkeypatch.setattr(notebook, "_display", lambda obj, handle=None: shown.append(
        (str(getattr(obj, "data", obj)), handle)) or real(obj, handle))
    reporter = NotebookReporter()
    run = Notebook(small.spec(tmp_path, tiny_clip, reporter=reporter, batch=1), reporter)
    selected = run.plan(things=["harp"], animals=["penguin"], epochs=2)
    first = run.render(selected)
    assert first.rendered == 2
    # The grid filled in image by image as the batches finished, not only at the end.
    assert [html.count("<img ") for html, _ in shown] == [0, 1, 2, 2]
    shown.clear()
    method_2 = files_of(tmp_path / "method-2")
    png = png_path(tmp_path, 1, selected.plan(run).items[0].prompt.stem)
    png.unlink()  # as if that one had been in flight when the kernel died
    again = run.render(selected)
    assert again.rendered == 1 and png.is_file()
    assert run.render(selected) is None
    assert files_of(tmp_path / "method-2") == method_2  # the other image left alone


@pytest.fixture
def fake_colab(monkeypatch, tmp_path):
    """``google.colab`` as Colab has it (drive, userdata, files), recording its calls;
    Drive's mount point in ``tmp_path``."""
    import sys
    import types

    from clipig_gallery.app import notebook

    calls = []
    drive_root = tmp_path / "drive"

    def mount(point):
        calls.append(("mount", point))
        (Path(point) / "MyDrive").mkdir(parents=True)

    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=mount)
    colab.userdata = types.SimpleNamespace(get=lambda name: calls.append(("secret", name))
                                           or "from-the-secrets-panel")
    colab.files = types.SimpleNamespace(download=lambda path: calls.append(("download", path)))
    google = types.ModuleType("google")
    google.colab = colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setattr(notebook, "COLAB_DRIVE", drive_root)
    return calls, drive_root


def test_on_colab_the_cache_defaults_to_drive_mounted_once(fake_colab, monkeypatch):
    from clipig_gallery.app.notebook import COLAB_CACHE, storage

    calls, drive_root = fake_colab
    assert storage("") == drive_root / COLAB_CACHE and (drive_root / COLAB_CACHE).is_dir()
    assert storage("") == drive_root / COLAB_CACHE
    assert calls == [("mount", str(drive_root))]  # mounted once, not on every rerun
    elsewhere = drive_root.parent / "elsewhere"
    assert storage(elsewhere) == elsewhere and calls == [("mount", str(drive_root))]


def test_on_colab_the_token_comes_from_its_secrets(fake_colab, monkeypatch):
    from clipig_gallery.app.notebook import github_token

    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    assert github_token() == "from-the-secrets-panel"
    assert fake_colab[0] == [("secret", "GITHUB_TOKEN")]


def test_the_site_as_one_zip(runs, fake_colab):
    import zipfile

    from clipig_gallery.app.notebook import download

    folder = runs[0]
    archive = download(folder / "site")
    names = set(zipfile.ZipFile(archive).namelist())
    assert {"index.html", "2021/clipig-animal-transfer/index.html"} <= names
    expected = {str(p.relative_to(folder / "site")) for p in (folder / "site").rglob("*")
                if p.is_file()}
    assert expected <= names
    assert fake_colab[0] == [("download", str(archive))]  # Colab's download offered


@pytest.mark.parametrize("source, target", [
    ("git+https://github.com/you/clipig-gallery",
     "clipig-gallery[notebook] @ git+https://github.com/you/clipig-gallery"),
    ("", f"{REPO}[notebook]"),  # the checkout the notebook is in
])
def test_the_install_cell_installs_with_pip_when_the_package_is_missing(monkeypatch, source,
                                                                         target):
    """The install cell's other branch (the kernel under test has the package), with
    the package reported missing and pip's call recorded instead of made."""
    import importlib.metadata
    import sys

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    calls = []
    monkeypatch.setattr(importlib.metadata, "version", missing)
    monkeypatch.setattr(subprocess, "run", lambda args, check: calls.append(args))
    monkeypatch.chdir(NOTEBOOK.parent)
    cell = next(c for c in committed().cells if c.id == "install")
    exec(cell.source, {"SOURCE": source})
    assert calls == [[sys.executable, "-m", "pip", "install", "--quiet", target]]


def test_the_install_cell_asks_for_a_source_where_it_has_none(monkeypatch, tmp_path):
    import importlib.metadata

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    monkeypatch.chdir(tmp_path)  # as on Colab: no checkout around
    cell = next(c for c in committed().cells if c.id == "install")
    with pytest.raises(SystemExit, match="set SOURCE"):
        exec(cell.source, {"SOURCE": ""})


def test_publishing_without_git_says_so(monkeypatch, tmp_path, tiny_clip):
    import shutil

    from clipig_gallery.app.notebook import Notebook, NotebookReporter, Stop

    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "git" else real_which(name))
    reporter = NotebookReporter()
    run = Notebook(small.spec(tmp_path / "cache", tiny_clip, reporter=reporter), reporter)
    with pytest.raises(Stop, match="publishing needs git"):
        run.publish(tmp_path / "site", "https://github.com/you/pages", token="unused")


@pytest.mark.parametrize("to", ["--upload-pack=touch PWNED", "-x", "my repo", ""])
def test_publishing_to_something_that_is_not_an_address_says_so(tmp_path, tiny_clip, to,
                                                                monkeypatch):
    from clipig_gallery.app.notebook import Notebook, NotebookReporter, Stop

    monkeypatch.chdir(tmp_path)
    reporter = NotebookReporter()
    run = Notebook(small.spec(tmp_path / "cache", tiny_clip, reporter=reporter), reporter)
    with pytest.raises(Stop, match=f"^repository {re.escape(repr(to))}: give its address"):
        run.publish(tmp_path / "site", to, token="unused")
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / ".clipig-publish").exists()
