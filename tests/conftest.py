"""Shared fixtures: a tiny CLIP built from the clip package's own model class.

The real ViT-B/32 weights cannot be downloaded where the tests run, so the
tests build a small CLIP with seeded random weights, save it as a checkpoint
and load it through ``renderer.engine.clipmodel.load_clip`` by path -- the same code
a user's local checkpoint goes through.
"""

from __future__ import annotations

import os

# Set before torch (and its OpenMP) start, and inherited by every child
# process a test starts: the thread count of the suite ($CLIPIG_TEST_THREADS,
# default 1; `make test THREADS=2`), and fp32 as the precision a render takes
# when none is asked for. Results then compare across machines within the
# tests' tolerances: a CPU with native bf16 would otherwise default to it.
THREADS = int(os.environ.get("CLIPIG_TEST_THREADS") or 1)
for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = str(THREADS)
os.environ["CLIPIG_PRECISION"] = "fp32"
# With several threads per process and a process per core, the cores are
# shared by more OpenMP threads than they have; a thread that waits then
# sleeps instead of spinning (measured on 2 cores with THREADS=2: 252 s of
# pytest time spinning, 163 s sleeping, 199 s in one process).
if THREADS > 1:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# The cluster tests' Ray head asks drivers for its token; Ray reads these once,
# when a process first talks to a cluster. The token is made here for the
# suite and inherited by the head, its workers and the drivers (Ray 2.60's
# `ray start` no longer writes one to ~/.ray/auth_token by itself, and the
# tests write nothing to the home directory).
os.environ.setdefault("RAY_AUTH_MODE", "token")
if not (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")):
    import secrets

    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)

import signal  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

# torch and clip are imported by the fixtures and test modules that use them,
# not here: pytest-xdist's controller process loads this file too, and
# importing them costs it seconds before any worker starts.

TINY = dict(
    embed_dim=32,
    image_resolution=64,
    vision_layers=1,
    vision_width=64,
    vision_patch_size=16,
    context_length=77,
    vocab_size=49408,  # the tokenizer's; the loader reads it from the weights
    transformer_width=64,
    transformer_heads=1,  # width // 64, as the loader infers it
    transformer_layers=1,
)


def build_tiny_clip(seed: int = 0):
    """The tests' CLIP: the clip package's own class, tiny, with seeded weights."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # clip's pkg_resources deprecation
        from clip.model import CLIP

    torch.manual_seed(seed)
    model = CLIP(**TINY)
    with torch.no_grad():
        # A random ViT's output is dominated by its class and position
        # embeddings, so pixels barely move it. Without them, and with patch
        # filters that ignore a patch's mean colour, the features follow the
        # image content, and brightness shifts (the methods' `mean` transform)
        # do not change them: closer to how the real model behaves.
        weight = model.visual.conv1.weight
        weight.sub_(weight.mean(dim=(2, 3), keepdim=True)).mul_(5)
        model.visual.class_embedding.zero_()
        model.visual.positional_embedding.zero_()
    return model


@pytest.fixture(scope="session", autouse=True)
def _torch_threads():
    """torch on the suite's thread count ($OMP_NUM_THREADS already says it; this
    makes sure, whatever imported torch first)."""
    import torch

    torch.set_num_threads(THREADS)


@pytest.fixture(scope="session")
def tiny_clip_path(tmp_path_factory) -> Path:
    import torch

    path = tmp_path_factory.mktemp("clip") / "tiny-clip.pt"
    torch.save(build_tiny_clip().state_dict(), path)
    return path


@pytest.fixture(scope="session")
def tiny_clip(tiny_clip_path):
    from clipig_gallery.renderer.engine.clipmodel import load_clip

    return load_clip(str(tiny_clip_path), "cpu")


@pytest.fixture(scope="session")
def method_configs():
    from clipig_gallery.core.paths import METHODS_DIR
    from clipig_gallery.renderer.language.config import load_config

    return {m: load_config(METHODS_DIR / f"method-{m}.yaml") for m in (1, 2)}


def kill_when(args: list, ready: Callable[[], bool], timeout: float, env=None) -> str:
    """Start ``args``, SIGKILL it once ``ready()`` holds, return what it printed.

    Fails the test if the process exits first or ``ready`` never holds.
    """
    proc = subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if proc.poll() is not None:
                pytest.fail(f"exited ({proc.returncode}) before it was killed:\n"
                            + proc.stdout.read())
            if time.monotonic() > deadline:
                pytest.fail(f"not ready within {timeout} s")
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        return proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def built_site(cache: Path, out: Path, post: str = "2021/clipig-animal-transfer/index.html"):
    """Build the site of ``cache`` into ``out`` and read its post: the report, the
    HTML, the parsed page and the selector's embedded data (for the site tests)."""
    import json
    from types import SimpleNamespace

    from bs4 import BeautifulSoup

    from clipig_gallery.generator.site import build_site

    report = build_site(cache, out)
    html = (out / post).read_text(encoding="utf-8")
    soup = BeautifulSoup(html, "html.parser")
    data = json.loads(soup.find("script", id="clipig-selector-data").string)
    return SimpleNamespace(cache=cache, out=out, report=report, html=html, soup=soup, data=data)


# The files that take ten seconds or more (Ray clusters, Chromium, Jupyter,
# child processes), longest first, as measured on the 2-core build machine.
# `make test` hands whole files to its processes in collection order
# (--no-loadscope-reorder; pytest-xdist's own order is by number of tests), so
# these start first and the many short files fill in at the end: the processes
# finish together instead of one of them running a long file alone.
# tests/test_suite_order.py checks that each name is a test file and the flag.
LONG_FIRST = (
    "test_cluster.py",
    "test_site_browser.py",
    "test_site_history_browser.py",
    "test_publish.py",
    "test_notebook.py",
    "test_site_history.py",
    "test_gallery.py",
    "test_bench.py",
    "test_engine.py",
    "test_jekyll.py",
    "test_site_build.py",
    "test_best_of.py",
    "test_install.py",
)


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONG_FIRST)}
    # A stable sort: each file's tests stay together and in their own order.
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def pytest_report_header(config):
    from importlib.metadata import version

    return (f"clipig-gallery: torch {version('torch')}, {THREADS} torch thread(s) per test "
            f"process ($CLIPIG_TEST_THREADS), default precision fp32 ($CLIPIG_PRECISION)")


@pytest.fixture
def fake_device(monkeypatch):
    """Fake what a device reports: ``fake(cpu=flags)`` for the CPU's feature flags,
    ``fake(cuda=(major, minor))`` for a CUDA GPU's compute capability; with no
    $CLIPIG_PRECISION, so the device's own default shows."""
    from clipig_gallery.renderer.engine import precision

    monkeypatch.delenv("CLIPIG_PRECISION", raising=False)

    def fake(cpu=(), cuda=None, name="Test CPU"):
        monkeypatch.setattr(precision, "cpu_features", lambda: frozenset(cpu))
        monkeypatch.setattr(precision, "cpu_name", lambda: name)
        if cuda is not None:
            monkeypatch.setattr(precision, "cuda_capability", lambda device: tuple(cuda))
            monkeypatch.setattr(precision, "cuda_name", lambda device: "Test GPU")
        precision._support.cache_clear()

    yield fake
    precision._support.cache_clear()


class FakeCuda:
    """torch.cuda's memory counters for tests without a GPU: a device of ``total``
    bytes whose allocations the test makes through ``alloc``/``free`` (and
    ``transient``, a peak that is given back at once)."""

    def __init__(self, total: int):
        self.total, self.allocated, self.peak = total, 0, 0
        self.emptied = 0

    def alloc(self, size: int) -> None:
        self.allocated += size
        self.peak = max(self.peak, self.allocated)

    def free(self, size: int) -> None:
        self.allocated -= size

    def transient(self, size: int) -> None:
        self.peak = max(self.peak, self.allocated + size)

    def install(self, monkeypatch) -> FakeCuda:
        import torch

        cuda = torch.cuda
        monkeypatch.setattr(cuda, "synchronize", lambda device=None: None)
        monkeypatch.setattr(cuda, "current_device", lambda: 0)
        monkeypatch.setattr(cuda, "memory_allocated", lambda device=None: self.allocated)
        monkeypatch.setattr(cuda, "max_memory_allocated", lambda device=None: self.peak)
        monkeypatch.setattr(cuda, "reset_peak_memory_stats",
                            lambda device=None: setattr(self, "peak", self.allocated))
        monkeypatch.setattr(cuda, "mem_get_info",
                            lambda device=None: (self.total - self.allocated, self.total))
        monkeypatch.setattr(cuda, "empty_cache", lambda: setattr(self, "emptied",
                                                                 self.emptied + 1))
        from clipig_gallery.renderer.execution import batching

        monkeypatch.setattr(batching, "_MEMORY", {})
        return self


@pytest.fixture
def fake_cuda(monkeypatch):
    """A FakeCuda of 80 GiB installed in place of torch.cuda's memory functions."""
    return FakeCuda(80 * 2**30).install(monkeypatch)


@pytest.fixture
def small_configs(monkeypatch):
    """The renderer on the small copies of the article's configs (tests/small.py)."""
    import small

    small.install(monkeypatch)
    return small
