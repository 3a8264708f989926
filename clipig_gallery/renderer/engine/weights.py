"""Where CLIP weights come from, and checking that they are the right bytes.

A model name is looked up in SOURCES. Its file is taken from the first place
that has it, in this order:

1. ``~/.cache/clip/{file}``, the ``clip`` package's own download folder;
2. the local Hugging Face cache, if a hub copy is known;
3. OpenAI's URL (the download the ``clip`` package always used);
4. the hub copy: the same OpenAI weights that open_clip publishes in
   safetensors format, fetched with ``huggingface_hub`` (its cache, resume and
   ``HF_HUB_OFFLINE``).

Every file is checked against a pinned SHA256 before it is used; a file with
other bytes is refused. Nothing from the network is unpickled: OpenAI's ``.pt``
files are TorchScript archives, the hub copies safetensors. No torch here.

Both downloads use one HTTP client, ``huggingface_hub.get_session()``, so a
test can replace the transport of both with ``set_client_factory``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from clipig_gallery.core.settings import MODEL_ENV, ModelUnavailable

OPENAI_URL = "https://openaipublic.azureedge.net/clip/models/{sha256}/{file}"
HUB_URL = "{endpoint}/{repo}/resolve/{revision}/{file}"
HUB_ENDPOINT = "https://huggingface.co"
WEIGHT_SUFFIXES = (".pt", ".safetensors")
# Seconds without a byte before a download counts as failed.
DOWNLOAD_TIMEOUT_S = 60
CHUNK = 1 << 20


@dataclass(frozen=True)
class HubCopy:
    """OpenAI's weights as open_clip republished them on the Hugging Face hub."""

    repo: str
    sha256: str
    revision: str = "main"
    file: str = "open_clip_model.safetensors"

    def url(self, endpoint: str = HUB_ENDPOINT) -> str:
        return HUB_URL.format(endpoint=endpoint.rstrip("/"), repo=self.repo,
                              revision=self.revision, file=self.file)


@dataclass(frozen=True)
class Source:
    """One CLIP model: OpenAI's file (its SHA256 is part of the URL) and a hub copy."""

    name: str
    file: str  # OpenAI's file name, e.g. ViT-B-32.pt
    sha256: str  # of OpenAI's file
    hub: HubCopy | None = None

    @property
    def url(self) -> str:
        return OPENAI_URL.format(sha256=self.sha256, file=self.file)


def _timm(name: str) -> str:
    return f"timm/{name}.openai"


# The OpenAI models the clip package knows. The hub copies' hashes are those of
# the files at the given revision (where a full commit id is known it is
# pinned; the SHA256 is checked either way).
SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source("RN50", "RN50.pt",
               "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762",
               HubCopy(_timm("resnet50_clip"),
                       "da0baa37fb2211eee5729ab69ed587eb10d48f5b7076ceeed01552fc3d4cb4ee")),
        Source("RN101", "RN101.pt",
               "8fa8567bab74a42d41c5915025a8e4538c3bdbe8804a470a72f30b0d94fab599"),
        Source("RN50x4", "RN50x4.pt",
               "7e526bd135e493cef0776de27d5f42653e6b4c8bf9e0f653bb11773263205fdd"),
        Source("RN50x16", "RN50x16.pt",
               "52378b407f34354e150460fe41077663dd5b39c54cd0bfd2b27167a4a06ec9aa"),
        Source("RN50x64", "RN50x64.pt",
               "be1cfb55d75a9666199fb2206c106743da0f6468c9d327f3e0d0a543a9919d9c"),
        Source("ViT-B/32", "ViT-B-32.pt",
               "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
               HubCopy(_timm("vit_base_patch32_clip_224"),
                       "e6d1bd7789aa45192b3bf90570a789b478bae1b74ebcce7eddd908e83a2b7c31",
                       "a6f597a30f7b82c51704746581f9a4e41421e878")),
        Source("ViT-B/16", "ViT-B-16.pt",
               "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f",
               HubCopy(_timm("vit_base_patch16_clip_224"),
                       "4b8699299b1e8997753c64b052ba32031449d5d853f55a039148560ee02b820f",
                       "977e3dd0ec55ab8da155f2fbeb6b5f54948b6e3d")),
        Source("ViT-L/14", "ViT-L-14.pt",
               "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
               HubCopy(_timm("vit_large_patch14_clip_224"),
                       "9ce2e8a8ebfff3793d7d375ad6d3c35cb9aebf3de7ace0fc7308accab7cd207e")),
        Source("ViT-L/14@336px", "ViT-L-14-336px.pt",
               "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02"),
    )
}


def available_models() -> list[str]:
    return list(SOURCES)


# -- errors: each names what failed and how to put the file in place by hand


class WeightsError(ModelUnavailable):
    """One way of getting a model's weights failed."""


class UnknownModel(WeightsError):
    pass


class NoNetwork(WeightsError):
    pass


class HTTPFailure(WeightsError):
    def __init__(self, url: str, status: int):
        super().__init__(f"HTTP {status} from {url}")
        self.url, self.status = url, status


class HashMismatch(WeightsError):
    def __init__(self, what: str, expected: str, found: str):
        super().__init__(f"{what} has SHA256 {found}, expected {expected}; the file was "
                         f"not kept, so the next run fetches it again")
        self.what, self.expected, self.found = what, expected, found


class NotCached(WeightsError):
    pass


class WeightsUnavailable(ModelUnavailable):
    """Every way failed; ``attempts`` holds each failure."""

    def __init__(self, source: Source, attempts: list[WeightsError]):
        lines = [f"cannot get the weights of CLIP {source.name}:"]
        lines += [f"  - {kind_of(a)}: {a}" for a in attempts]
        lines.append(manual_install(source))
        super().__init__("\n".join(lines))
        self.source, self.attempts = source, attempts


def kind_of(error: WeightsError) -> str:
    return {NoNetwork: "no network", HTTPFailure: "HTTP error", HashMismatch: "hash mismatch",
            NotCached: "offline"}.get(type(error), "error")


def manual_install(source: Source) -> str:
    """How to put the file in place by hand, with its name and SHA256."""
    text = (f"To install it by hand, put {source.file} (SHA256 {source.sha256}) into "
            f"{clip_dir()}/")
    if source.hub:
        text += (f", or download {source.hub.file} (SHA256 {source.hub.sha256}) from "
                 f"{source.hub.url()} and pass its path with --model PATH (or {MODEL_ENV}=PATH)")
    return text + "."


# -- places


def clip_dir() -> Path:
    """The clip package's download folder."""
    return Path("~/.cache/clip").expanduser()


def offline() -> bool:
    """HF_HUB_OFFLINE, read now: no request leaves the machine when it is set."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def hub_cache_dir() -> str | None:
    """HF_HUB_CACHE or HF_HOME/hub, read now (the library reads them once at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]) / "hub")
    return None


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or HUB_ENDPOINT


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def is_weights_path(name: str) -> bool:
    """A --model value that names a file rather than a model."""
    # "ViT-Z/99" looks like a path but is a mistyped model name.
    looks_like_name = name.startswith(("RN", "ViT"))
    return name.endswith(WEIGHT_SUFFIXES) or (os.sep in name and not looks_like_name)


# -- the lookup


def weights_file(name: str) -> Path:
    """The verified local file of ``name`` (a model name or a file path), fetched if needed."""
    if name in SOURCES:
        return fetch(SOURCES[name])
    path = Path(name).expanduser()
    if path.is_file():
        if path.suffix not in WEIGHT_SUFFIXES:
            raise ModelUnavailable(f"{path}: not a CLIP weights file (expected "
                                   f"{' or '.join(WEIGHT_SUFFIXES)})")
        return path
    if is_weights_path(name):
        raise ModelUnavailable(f"CLIP checkpoint not found: {path}")
    raise UnknownModel(f"unknown CLIP model {name!r}; known models: "
                       f"{', '.join(available_models())}; or pass the path of a .pt or "
                       f".safetensors file")


def fetch(source: Source) -> Path:
    local = clip_dir() / source.file
    if local.is_file() and sha256_file(local) == source.sha256:
        return local
    attempts: list[WeightsError] = []
    if source.hub is not None:
        try:
            return _hub_file(source.hub, local_only=True)
        except WeightsError:
            pass  # not in the hub cache (or damaged): a download follows
    if offline():
        attempts.append(NotCached(f"HF_HUB_OFFLINE is set and neither {local} nor the hub "
                                  f"cache holds the file"))
        raise WeightsUnavailable(source, attempts)
    try:
        return download(source.url, local, source.sha256)
    except WeightsError as exc:
        attempts.append(exc)
    if source.hub is not None:
        try:
            return _hub_file(source.hub, local_only=False)
        except WeightsError as exc:
            attempts.append(exc)
    raise WeightsUnavailable(source, attempts)


def http_module():
    """The HTTP library behind huggingface_hub's client: httpx (1.x) or httpx2 (2.x)."""
    import importlib

    from huggingface_hub import get_session

    return importlib.import_module(type(get_session()).__module__.split(".")[0])


def download(url: str, target: Path, sha256: str) -> Path:
    """Stream ``url`` into ``target`` through a temp file, checking its SHA256."""
    from huggingface_hub import get_session
    from tqdm import tqdm

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            with get_session().stream("GET", url, follow_redirects=True,
                                      timeout=DOWNLOAD_TIMEOUT_S) as response:
                if response.status_code >= 400:
                    raise HTTPFailure(url, response.status_code)
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=target.name,
                          leave=False, disable=None) as bar:
                    for chunk in response.iter_bytes(CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
        if digest.hexdigest() != sha256:
            raise HashMismatch(url, sha256, digest.hexdigest())
        os.replace(tmp, target)
    except http_module().HTTPError as exc:  # connection refused, DNS, timeout, reset
        raise NoNetwork(f"cannot reach {url} ({type(exc).__name__}: {exc})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _hub_file(hub: HubCopy, local_only: bool) -> Path:
    """The hub copy from the local cache or, unless ``local_only``, the hub."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    url = hub.url(hub_endpoint())
    if not local_only:
        _check_reachable(url)
    try:
        path = Path(hf_hub_download(hub.repo, hub.file, revision=hub.revision,
                                    cache_dir=hub_cache_dir(), endpoint=hub_endpoint(),
                                    local_files_only=local_only))
    except (LocalEntryNotFoundError, HfHubHTTPError) as exc:
        http = _cause(exc, HfHubHTTPError)
        if http is not None and getattr(http, "response", None) is not None:
            raise HTTPFailure(url, http.response.status_code) from None
        if local_only:
            raise NotCached(f"{hub.repo} is not in the hub cache") from None
        raise NoNetwork(f"cannot reach {url}: {exc}") from None
    found = sha256_file(path)
    if found != hub.sha256:
        _discard_hub_file(path)
        raise HashMismatch(str(path), hub.sha256, found)
    return path


def _check_reachable(url: str) -> None:
    """Raise NoNetwork at once when ``url``'s host cannot be reached.

    huggingface_hub retries a failed connection for about half a minute; one
    plain request first tells a machine without a network in seconds.
    """
    from huggingface_hub import get_session

    try:
        get_session().head(url, follow_redirects=False, timeout=DOWNLOAD_TIMEOUT_S)
    except http_module().HTTPError as exc:
        raise NoNetwork(f"cannot reach {url} ({type(exc).__name__}: {exc})") from None


def _cause(exc: BaseException | None, kind: type) -> BaseException | None:
    """The first exception of ``kind`` in ``exc``'s chain of causes."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, kind):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _discard_hub_file(path: Path) -> None:
    """Remove a cached file with the wrong bytes: its blob and its snapshot link."""
    blob = path.resolve()
    for p in {blob, path}:
        try:
            p.unlink()
        except OSError:
            pass
