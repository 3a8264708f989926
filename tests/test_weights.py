"""Getting CLIP weights: local copies, OpenAI's URL, the hub copy, and every failure.

No network: the hub copy is laid out in a local Hugging Face cache, or served
by a mocked transport that replaces the HTTP client of both downloads.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import huggingface_hub
import pytest
import torch
from conftest import build_tiny_clip
from safetensors.torch import save_file

from clipig_gallery.renderer.engine import weights
from clipig_gallery.renderer.engine.clipmodel import clip_state_dict, load_clip
from clipig_gallery.renderer.engine.weights import (
    HashMismatch,
    HTTPFailure,
    HubCopy,
    NoNetwork,
    NotCached,
    Source,
    UnknownModel,
    WeightsUnavailable,
)

httpx = weights.http_module()  # httpx or httpx2, as huggingface_hub uses
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    """The tiny model's weights as a .pt state dict and as open_clip's safetensors file."""
    folder = tmp_path_factory.mktemp("weights")
    state = build_tiny_clip(seed=3).state_dict()
    pt = folder / "tiny.pt"
    torch.save(state, pt)
    st = folder / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(st))
    return pt, st


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh home (~/.cache/clip) and hub cache; HF_HUB_OFFLINE unset."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    return tmp_path


@pytest.fixture
def tiny_source(tiny_files, monkeypatch):
    """A registry entry for the tiny model, like ViT-B/32's, with its real hashes."""
    pt, st = tiny_files
    source = Source("tiny-test", "tiny.pt", sha256(pt.read_bytes()),
                    HubCopy("test/tiny-clip", sha256(st.read_bytes()), COMMIT))
    monkeypatch.setitem(weights.SOURCES, source.name, source)
    return source


@pytest.fixture
def transport(monkeypatch):
    """Route every request of both downloads to ``transport.handler``; records URLs."""
    class Transport:
        handler = staticmethod(lambda request: httpx.Response(404, request=request))
        seen: list[str] = []

    def handle(request):
        Transport.seen.append(f"{request.method} {request.url}")
        return Transport.handler(request)

    huggingface_hub.set_client_factory(
        lambda: httpx.Client(transport=httpx.MockTransport(handle)))
    yield Transport
    huggingface_hub.set_client_factory(httpx.Client)  # the library's plain client again


def put_in_hub_cache(cache: Path, repo: str, commit: str, file: Path) -> Path:
    """Lay ``file`` out as huggingface_hub's cache holds a download of ``repo``."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    snapshot = folder / "snapshots" / commit / file.name
    snapshot.parent.mkdir(parents=True)
    snapshot.write_bytes(file.read_bytes())
    return snapshot


def features(model):
    torch.manual_seed(0)
    views = torch.rand(3, 3, model.input_resolution, model.input_resolution)
    return model.encode_views(views), model.encode_texts(["a snail made of harp.", "x"])


def test_hub_copy_from_the_local_cache_equals_the_pt(home, tiny_files, tiny_source,
                                                     monkeypatch):
    pt, st = tiny_files
    put_in_hub_cache(home / "hub", "test/tiny-clip", COMMIT, st)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from_hub = load_clip("tiny-test")
    from_pt = load_clip(str(pt))
    for a, b in zip(features(from_hub), features(from_pt), strict=True):
        assert torch.equal(a, b)
    # One model under two names: the same identity, so the cache never redoes it.
    assert from_hub.identity == from_pt.identity
    assert from_hub.name == "tiny-test"


def test_a_safetensors_path_loads_like_the_pt(tiny_files):
    pt, st = tiny_files
    a, b = load_clip(str(st)), load_clip(str(pt))
    assert torch.equal(features(a)[0], features(b)[0])
    assert a.identity == b.identity


def test_identity_follows_the_weights_not_the_name(tmp_path, tiny_files):
    pt, _ = tiny_files
    link = tmp_path / "renamed.pt"
    link.symlink_to(pt)
    other = tmp_path / "other.pt"
    torch.save(build_tiny_clip(seed=4).state_dict(), other)
    assert load_clip(str(link)).identity == load_clip(str(pt)).identity
    assert load_clip(str(other)).identity != load_clip(str(pt)).identity


def test_state_dict_mapping_drops_foreign_keys_and_prefixes():
    state = {"module.visual.proj": 1, "logit_bias": 2, "transformer.attn_mask": 3,
             "ln_final.weight": 4}
    assert clip_state_dict(state) == {"visual.proj": 1, "ln_final.weight": 4}


def test_official_url_is_tried_first_then_the_hub(home, tiny_files, tiny_source, transport):
    pt, st = tiny_files
    data = st.read_bytes()

    def handler(request):
        if request.url.host == "openaipublic.azureedge.net":
            return httpx.Response(404, request=request)
        headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{sha256(data)}"',
                   "Content-Length": str(len(data))}
        body = b"" if request.method == "HEAD" else data
        return httpx.Response(200, headers=headers, content=body, request=request)

    transport.handler = staticmethod(handler)
    model = load_clip("tiny-test")
    assert transport.seen[0].startswith(f"GET {tiny_source.url}")
    assert any("test/tiny-clip/resolve/" + COMMIT in s for s in transport.seen)
    assert torch.equal(features(model)[0], features(load_clip(str(pt)))[0])
    # Now cached: no request at all the second time.
    transport.seen.clear()
    load_clip("tiny-test")
    assert transport.seen == []


def test_official_download_is_kept_in_the_clip_folder(home, tiny_files, tiny_source, transport):
    pt, _ = tiny_files
    data = pt.read_bytes()
    transport.handler = staticmethod(lambda r: httpx.Response(200, content=data, request=r))
    model = load_clip("tiny-test")
    assert (home / "home/.cache/clip/tiny.pt").read_bytes() == data
    assert model.identity == load_clip(str(pt)).identity
    assert not list((home / "home/.cache/clip").glob(".*.tmp"))


def test_404_everywhere_names_both_urls_and_the_manual_way(home, tiny_source, transport):
    with pytest.raises(WeightsUnavailable) as caught:
        load_clip("tiny-test")
    error = caught.value
    assert [type(a) for a in error.attempts] == [HTTPFailure, HTTPFailure]
    assert [a.status for a in error.attempts] == [404, 404]
    message = str(error)
    assert f"HTTP 404 from {tiny_source.url}" in message
    assert f"HTTP 404 from {tiny_source.hub.url()}" in message
    # Where to put a file by hand, with its name and SHA256.
    assert "tiny.pt" in message and tiny_source.sha256 in message
    assert tiny_source.hub.sha256 in message and "--model PATH" in message


def test_wrong_bytes_are_refused_with_both_hashes(home, tiny_source, transport):
    bad = b"not the weights"

    def handler(request):
        headers = {"X-Repo-Commit": COMMIT, "ETag": '"bad"', "Content-Length": str(len(bad))}
        return httpx.Response(200, headers=headers,
                              content=b"" if request.method == "HEAD" else bad, request=request)

    transport.handler = staticmethod(handler)
    with pytest.raises(WeightsUnavailable) as caught:
        load_clip("tiny-test")
    attempts = caught.value.attempts
    assert [type(a) for a in attempts] == [HashMismatch, HashMismatch]
    assert attempts[0].expected == tiny_source.sha256 and attempts[0].found == sha256(bad)
    assert attempts[1].expected == tiny_source.hub.sha256
    assert "expected " + tiny_source.sha256 in str(caught.value)
    # Nothing with the wrong bytes stays behind to be used later.
    assert not (home / "home/.cache/clip/tiny.pt").exists()
    assert not [p for p in (home / "hub").rglob("*") if p.is_file() and p.read_bytes() == bad]


def test_no_network_is_told_apart(home, tiny_source, transport):
    def handler(request):
        raise httpx.ConnectError("Name or service not known", request=request)

    transport.handler = staticmethod(handler)
    with pytest.raises(WeightsUnavailable) as caught:
        load_clip("tiny-test")
    assert [type(a) for a in caught.value.attempts] == [NoNetwork, NoNetwork]
    assert "no network: cannot reach" in str(caught.value)


def test_offline_mode_makes_no_request(home, tiny_source, transport, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailable) as caught:
        load_clip("tiny-test")
    assert [type(a) for a in caught.value.attempts] == [NotCached]
    assert transport.seen == []


def test_unknown_name_lists_the_known_ones(home):
    with pytest.raises(UnknownModel) as caught:
        load_clip("ViT-Z/99")
    assert "ViT-B/32" in str(caught.value) and "ViT-B/16" in str(caught.value)


def test_missing_or_foreign_files(tmp_path):
    with pytest.raises(weights.ModelUnavailable, match="not found"):
        load_clip(str(tmp_path / "missing.pt"))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(weights.ModelUnavailable, match="garbage.pt: cannot read"):
        load_clip(str(garbage))
    not_clip = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(2)}, str(not_clip))
    with pytest.raises(weights.ModelUnavailable, match="other.safetensors: not a CLIP"):
        load_clip(str(not_clip))


def test_every_hub_copy_is_pinned():
    for source in weights.SOURCES.values():
        assert len(source.sha256) == 64
        if source.hub is not None:
            assert len(source.hub.sha256) == 64 and source.hub.file.endswith(".safetensors")
    vit = weights.SOURCES["ViT-B/32"]
    assert vit.url.endswith(f"/{vit.sha256}/ViT-B-32.pt")
    assert vit.hub.repo == "timm/vit_base_patch32_clip_224.openai"
