"""Embedded models: the registry of GGUF files recgym ships, and their safetensors cache.

An embedded model is a GGUF artifact fetched by :mod:`recgym.data.artifacts`. The first load
dequantises it once with transformers and saves it with ``save_pretrained`` (safetensors, plus
the tokenizer) under ``cache_dir("models", name)``; later loads read that folder and take about
a second. A manifest written last (:data:`MARKER`: the GGUF's sha256 and the sha256 of every
file, :mod:`recgym.utils.files`) tells a complete folder from a half-written one and is checked
on every load: a folder with a missing, truncated or corrupted file is reported (a
:class:`~recgym.error.CacheWarning` naming the file) and converted again.

torch, transformers and recgym.data (pandas) are imported inside functions.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recgym.error import ModelLoadError
from recgym.llm.base import CHATML_TEMPLATE
from recgym.utils.files import MANIFEST, read_manifest, verify_dir, write_manifest

__all__ = ["EMBEDDED", "MARKER", "EmbeddedModel", "embedded_model_dir"]

logger = logging.getLogger(__name__)

MARKER = MANIFEST
"""The manifest written last into a converted model folder: its presence means the folder is
complete, and it lists the sha256 of every file (:func:`recgym.utils.files.write_manifest`)."""


@dataclass(frozen=True)
class EmbeddedModel:
    """A model recgym ships as a registered GGUF artifact.

    Attributes:
        artifact: name of the artifact in :data:`recgym.data.artifacts.ARTIFACTS`.
        member: the GGUF file among the artifact's files.
        description: one line for listings.
    """

    artifact: str
    member: str
    description: str


EMBEDDED: dict[str, EmbeddedModel] = {
    "smollm2-135m": EmbeddedModel(
        artifact="smollm2-135m-gguf",
        member="model.gguf",
        description="SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised once to float32 safetensors)",
    ),
}


def embedded_model_dir(name: str, *, progress: bool = True) -> Path:
    """The safetensors folder of an embedded model, converted from its GGUF on first use.

    A folder without a valid :data:`MARKER` (a killed conversion, another source file) or with
    a file that does not match it (truncated, corrupted: reported with a
    :class:`~recgym.error.CacheWarning`) is rebuilt. The conversion writes to a temporary
    sibling folder and renames it into place, so readers never see a half-written model.
    """
    spec = EMBEDDED[name]
    target = _models_root() / name
    sha = _pinned_sha256(spec)
    if _is_complete(target, sha, remedy="converting it again from the GGUF"):
        return target
    from recgym.data.artifacts import fetch
    from recgym.llm.hf import progress_bars

    gguf = fetch(spec.artifact, progress=progress).files[spec.member]
    logger.warning("recgym: converting %s to safetensors in %s (once)", gguf.name, target)
    with progress_bars(progress):
        _convert_gguf(Path(gguf), target, sha)
    return target


def _models_root() -> Path:
    from recgym.data.cache import cache_dir

    return cache_dir("models")


def _pinned_sha256(spec: EmbeddedModel) -> str:
    from recgym.data.artifacts import get_artifact

    sources = get_artifact(spec.artifact).sources
    digests = {d for s in sources if (d := s.members[spec.member].sha256) is not None}
    if len(digests) != 1:
        raise ModelLoadError(
            f"artifact {spec.artifact!r} must pin exactly one sha256 for {spec.member!r}, "
            f"found {sorted(digests)}; fix its entry in recgym/data/artifacts.py"
        )
    return str(digests.pop())


def _is_complete(folder: Path, sha256: str, remedy: str | None = None) -> bool:
    """True when ``folder`` was built from the file of digest ``sha256`` and passes its
    manifest (a failure is reported with ``remedy``, see :func:`recgym.utils.files.verify_dir`;
    a folder built from another source file is out of date, not damaged: no warning)."""
    manifest = read_manifest(folder)
    if manifest is not None and manifest.get("source_sha256") != sha256:
        return False
    return verify_dir(folder, remedy=remedy)


def _convert_gguf(gguf: Path, target: Path, sha256: str) -> None:
    """Dequantise ``gguf`` with transformers and save it as safetensors into ``target``."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        quant: dict[str, Any] = {}
        if hasattr(transformers, "GgufConfig"):
            # transformers >= 5 may keep GGUF blocks packed (when the `kernels` package is
            # present); ask for plain dense tensors, which is what we want to save and train.
            quant["quantization_config"] = transformers.GgufConfig(dequantize=True)
        tokenizer = AutoTokenizer.from_pretrained(
            gguf.parent, gguf_file=gguf.name, local_files_only=True
        )
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, local_files_only=True, dtype=torch.float32, **quant
        )
        quantizer: Any = getattr(model, "hf_quantizer", None)
        if quantizer is not None:
            # The weights are already dense; the leftover GGUF quantizer would block saving.
            quantizer.remove_quantization_config(model)
        if not getattr(tokenizer, "chat_template", None):
            # SmolLM2's GGUF carries its ChatML template in `tokenizer.chat_template`; a file
            # converted without it would silently fall back to no template at all.
            tokenizer.chat_template = CHATML_TEMPLATE
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        # mkdtemp and the safetensors writer make owner-only files; a cache is meant to be shared.
        tmp.chmod(0o755)
        for p in tmp.iterdir():
            p.chmod(0o644)
        write_manifest(tmp, source_sha256=sha256, transformers=transformers.__version__)
        _swap_into_place(tmp, target, sha256)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _swap_into_place(tmp: Path, target: Path, sha256: str) -> None:
    if _is_complete(target, sha256):
        return  # another process finished the same conversion meanwhile; keep its folder
    if target.exists():
        # A stale or half-written folder: move it aside first (rename is atomic, rmtree is not).
        stale = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.replace(target, stale / "old")
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.rename(tmp, target)
    except OSError:
        # Another process finished the same conversion first; its folder is as good as ours.
        if not _is_complete(target, sha256):
            raise
