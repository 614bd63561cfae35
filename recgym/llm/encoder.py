"""Sentence encoders: texts to unit vectors, with the embedded all-MiniLM-L6-v2 by default.

``load_encoder()`` fetches the registered artifact ``all-minilm-l6-v2`` (its files pinned by
sha256), lays its files out once as a sentence-transformers folder under
``cache_dir("models", "all-minilm-l6-v2")`` and loads it offline. A manifest written last
tells a complete folder from a half-written one and is checked on every load, as for the
embedded LLMs: a damaged folder is reported and laid out again.

torch and sentence-transformers are imported inside functions, so ``import recgym.llm`` (which
exports :class:`TextEncoder` and :func:`load_encoder`) stays free of them.

Example:
    >>> from recgym.llm import load_encoder
    >>> encoder = load_encoder(progress=False)  # doctest: +SKIP
    >>> encoder.encode(["a warm wool scarf", "a cosy winter scarf"]).shape  # doctest: +SKIP
    (2, 384)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recgym.error import ModelLoadError
from recgym.llm.embedded import _is_complete, _swap_into_place
from recgym.utils.files import write_manifest

__all__ = ["ENCODERS", "TextEncoder", "encoder_dir", "load_encoder"]

ENCODERS: dict[str, str] = {"all-minilm-l6-v2": "all-minilm-l6-v2"}
"""Embedded encoder name -> the artifact holding its sentence-transformers files, named by
their place in the folder (``1_Pooling/config.json``)."""

DEFAULT_CACHE_SIZE = 65_536
"""Texts whose vectors a :class:`TextEncoder` keeps (384 float32 each: ~100 MB when full)."""

_LOADED: dict[tuple[str, str | None], TextEncoder] = {}


class TextEncoder:
    """A sentence-transformers model that maps texts to L2-normalised float32 vectors.

    Vectors of texts seen before come from an in-memory LRU cache; a call encodes only its
    unique uncached texts, in one batched call to the model. A text's row is computed once and
    then returned unchanged; the first computation depends on the batch it came in only up to
    float rounding (~1e-7), since padding changes the shapes of the matrix products. Not
    thread-safe.

    Args:
        model: a loaded ``sentence_transformers.SentenceTransformer``.
        name: what the encoder is called in listings and errors.
        cache_size: the most texts whose vectors are kept; 0 disables the cache.

    Attributes:
        model: the underlying ``SentenceTransformer`` (in eval mode).
        name: the embedded name, or the folder the model was loaded from.
        dim: the length of every vector.
    """

    def __init__(self, model: Any, name: str, *, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        model.eval()
        self.model = model
        self.name = name
        dim = getattr(model, "get_embedding_dimension", None) or (
            model.get_sentence_embedding_dimension  # sentence-transformers < 6
        )
        self.dim: int = int(dim())
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def __repr__(self) -> str:
        return f"TextEncoder({self.name!r}, dim={self.dim}, cached={len(self._cache)})"

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Encode ``texts`` into a float32 array of shape ``(len(texts), dim)``, rows of norm 1.

        Args:
            texts: the texts; duplicates and cached texts are not encoded again. The empty
                string is a valid text.
            batch_size: texts per forward pass of the model.

        Raises:
            TypeError: ``texts`` is a single string rather than a sequence of strings.
        """
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts; wrap a single text: [text]")
        rows: dict[str, np.ndarray] = {}
        missing: list[str] = []
        for text in dict.fromkeys(texts):  # unique, in first-seen order
            hit = self._cache.get(text)
            if hit is None:
                missing.append(text)
            else:
                self._cache.move_to_end(text)
                rows[text] = hit
        if missing:
            vectors = self._encode_uncached(missing, batch_size)
            for text, row in zip(missing, vectors, strict=True):
                # Own copy: a row kept as a view would keep its whole batch alive.
                vector = row.copy()
                vector.setflags(write=False)  # cached rows are shared; outputs are copies
                rows[text] = vector
                self._remember(text, vector)
        if not rows:
            return np.empty((0, self.dim), dtype=np.float32)
        return np.stack([rows[text] for text in texts])

    def clear_cache(self) -> None:
        """Forget every cached vector."""
        self._cache.clear()

    def _encode_uncached(self, texts: list[str], batch_size: int) -> np.ndarray:
        # SentenceTransformer.encode puts the model in eval mode and runs without gradients.
        vectors = self.model.encode(
            texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False
        )
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)
        # all-MiniLM already ends in a Normalize module (then this changes at most the last
        # bit); a local folder may not. The floor keeps an all-zero vector zero, as torch's
        # normalize does.
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    def _remember(self, text: str, vector: np.ndarray) -> None:
        if self.cache_size <= 0:
            return
        self._cache[text] = vector
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)


def load_encoder(
    name: str = "all-minilm-l6-v2", *, device: str | None = None, progress: bool = True
) -> TextEncoder:
    """Load a sentence encoder, once per ``(name, device)`` in a process.

    Args:
        name: an embedded encoder (a key of :data:`ENCODERS`), or the path of a local folder
            holding any sentence-transformers model (with its ``modules.json``).
        device: a torch device (``"cpu"``, ``"cuda"``); ``None`` lets sentence-transformers
            pick (CUDA when available).
        progress: show download and loading progress bars.

    Raises:
        ModelLoadError: ``name`` is neither an embedded encoder nor an existing folder, or the
            folder does not hold a loadable model.
        FetchError: the embedded encoder's files could not be fetched.
    """
    if name in ENCODERS:
        folder, label = encoder_dir(name, progress=progress), name
    else:
        folder = Path(name).expanduser().resolve()
        label = str(folder)
        if not folder.is_dir():
            raise ModelLoadError(
                f"no encoder {name!r}: expected an embedded encoder "
                f"({', '.join(sorted(ENCODERS))}) or a folder holding a sentence-transformers "
                f"model, but {folder} is not a folder"
            )
    key = (label, device)
    if key not in _LOADED:
        _LOADED[key] = TextEncoder(_load_sentence_transformer(folder, device, progress), label)
    return _LOADED[key]


def encoder_dir(name: str, *, progress: bool = True) -> Path:
    """The sentence-transformers folder of an embedded encoder, laid out on first use.

    The artifact's verified files are hard-linked (or copied, across file systems) into a
    temporary sibling folder, which is renamed into place after its marker is written.
    """
    from recgym.data.artifacts import fetch, get_artifact
    from recgym.data.cache import cache_dir

    artifact = ENCODERS[name]
    target = cache_dir("models") / name
    fingerprint = _fingerprint(get_artifact(artifact).sources)
    if _is_complete(target, fingerprint, remedy="laying it out again from the fetched files"):
        return target
    fetched = fetch(artifact, progress=progress)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        for rel, src in fetched.files.items():
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dest)
            except OSError:
                shutil.copyfile(src, dest)
        # mkdtemp makes an owner-only folder; a cache is meant to be shared.
        for folder in (tmp, *(p for p in tmp.rglob("*") if p.is_dir())):
            folder.chmod(0o755)
        write_manifest(tmp, source_sha256=fingerprint, source=fetched.source.key)
        _swap_into_place(tmp, target, fingerprint)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _fingerprint(sources: Sequence[Any]) -> str:
    """One digest over the pinned digests of an artifact's files, the same for every source."""
    pins = [{n: m.sha256 for n, m in s.members.items()} for s in sources]
    if any(p != pins[0] or None in p.values() for p in pins):
        raise ModelLoadError(
            "an embedded encoder's sources must pin the same sha256 for every file; fix its "
            "entry in recgym/data/artifacts.py"
        )
    return hashlib.sha256(json.dumps(pins[0], sort_keys=True).encode()).hexdigest()


def _load_sentence_transformer(folder: Path, device: str | None, progress: bool) -> Any:
    if not (folder / "modules.json").is_file():
        raise ModelLoadError(
            f"{folder} holds no modules.json; expected a sentence-transformers model folder "
            "(as saved by SentenceTransformer.save())"
        )
    from sentence_transformers import SentenceTransformer

    from recgym.llm.hf import progress_bars

    try:
        with progress_bars(progress):
            return SentenceTransformer(str(folder), device=device, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"could not load a sentence-transformers model from {folder}: {exc}"
        ) from exc
