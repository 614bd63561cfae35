"""Resolving a model name, path or hub id to a loaded :class:`~recgym.llm.LLM`.

:func:`load` accepts, in this order: a registered name (:data:`MODELS`: the embedded
``"smollm2-135m"``, see :mod:`recgym.llm.embedded`, and the ``"fake"`` test double), a local
Hugging Face model directory, or a Hugging Face hub id (``"org/name"``).

torch and transformers are imported inside functions: ``import recgym.llm`` stays light.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recgym.error import ModelLoadError, UnknownNameError
from recgym.llm.base import LLM
from recgym.llm.embedded import EMBEDDED, embedded_model_dir
from recgym.llm.fake import FakeLLM

__all__ = ["BACKENDS", "MODELS", "load"]

_HF_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
_SHARED_KW = ("local_files_only", "revision", "cache_dir", "token")  # tokenizer and model both
_DTYPES = ("float32", "float16", "bfloat16", "auto")


BACKENDS = ("transformers", "ct2")
"""Engines :func:`load` runs a real model with (``backend=``)."""


def load(
    name_or_path: str = "smollm2-135m",
    *,
    device: str | None = None,
    dtype: Any = None,
    backend: str = "transformers",
    **kw: Any,
) -> LLM:
    """Load a language model by registered name, local directory or Hugging Face id.

    Args:
        name_or_path: a name from :data:`MODELS`, a directory holding a Hugging Face model
            (``config.json``, weights, tokenizer), a hub id such as
            ``"HuggingFaceTB/SmolLM2-360M-Instruct"`` (read from the local HF cache when
            offline), or ``"openai:<base_url>#<model>"`` for a model served by an
            OpenAI-compatible server (:mod:`recgym.llm.remote`; ``**kw`` are
            :class:`~recgym.llm.remote.RemoteLLM` arguments).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default CUDA when available, else CPU.
        dtype: a torch dtype or its name; default float32 on CPU, bfloat16 on CUDA
            (transformers only).
        backend: ``"transformers"`` (the default: a torch module, trainable) or ``"ct2"``
            (CTranslate2, :mod:`recgym.llm.ct2`: converted once, several times faster on CPU,
            generation only; takes ``quantization="int8"`` or ``"float32"`` and ``threads``).
        **kw: for ``"fake"``, :class:`~recgym.llm.fake.FakeLLM` arguments (``mode``, ``kinds``,
            ``responses``, ``seed``); for real models ``batch_size`` (default micro-batch),
            ``progress`` (show download, conversion and loading bars), and ``from_pretrained``
            arguments (``revision``, ``attn_implementation``...). ``trust_remote_code`` is
            always False.

    Raises:
        UnknownNameError: the name is neither registered, a path, nor a hub id.
        ModelLoadError: the path holds no model, or the hub id is not available offline.
    """
    if kw.pop("trust_remote_code", False):
        raise ValueError(
            "recgym loads models with trust_remote_code=False only (no code from model repos "
            "runs); drop the argument or load the model yourself and wrap it in HFLLM"
        )
    if name_or_path.startswith("openai:"):
        return _load_remote(name_or_path, device, dtype, backend, **kw)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "ct2":
        return _load_ct2(name_or_path, device, dtype, **kw)
    if name_or_path in MODELS:
        return MODELS[name_or_path](name_or_path, device=device, dtype=dtype, **kw)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"{path} has no config.json, so it is not a Hugging Face model folder; expected "
                "the output of save_pretrained() (config.json, weights, tokenizer files)"
            )
        return _hf_llm(str(path), name_or_path, device, dtype, local_files_only=True, **kw)
    if _looks_like_path(name_or_path):
        raise ModelLoadError(
            f"no model directory at {path}; pass an existing folder written by save_pretrained(), "
            f"or one of the registered names: {', '.join(MODELS)}"
        )
    if _HF_ID.fullmatch(name_or_path):
        return _load_hub(name_or_path, device, dtype, **kw)
    hint = difflib.get_close_matches(name_or_path, list(MODELS), n=1)
    raise UnknownNameError(
        f"unknown model {name_or_path!r}"
        + (f" (did you mean {hint[0]!r}?)" if hint else "")
        + f"; expected a registered name ({', '.join(MODELS)}), a local model directory, or a "
        "Hugging Face id like 'HuggingFaceTB/SmolLM2-135M-Instruct'"
    )


def _load_remote(spec: str, device: str | None, dtype: Any, backend: str, **kw: Any) -> LLM:
    from recgym.llm.remote import RemoteLLM, parse_spec

    if device is not None or dtype is not None or backend != "transformers":
        raise ValueError(
            "a model on an OpenAI-compatible server takes no device, dtype or backend: the "
            "server chooses them"
        )
    kw.pop("progress", None)  # nothing to download: callers may pass it uniformly
    base_url, model = parse_spec(spec)
    return RemoteLLM(base_url, model, **kw)


def _load_ct2(name_or_path: str, device: str | None, dtype: Any, **kw: Any) -> LLM:
    from recgym.llm.ct2 import load_ct2

    if dtype is not None:
        raise ValueError("the ct2 backend takes quantization='int8' or 'float32', not dtype")
    progress = kw.pop("progress", True)
    if name_or_path == "fake":
        raise ValueError("the fake LLM has no weights to convert; load it without backend='ct2'")
    if name_or_path in EMBEDDED:
        source = embedded_model_dir(name_or_path, progress=progress)
    elif (path := Path(name_or_path).expanduser()).is_dir():
        source = path
    elif _HF_ID.fullmatch(name_or_path) and not _looks_like_path(name_or_path):
        source = _hub_folder(name_or_path, kw.pop("revision", None))
    else:
        raise ModelLoadError(
            f"no model {name_or_path!r} to convert for the ct2 backend; pass a registered name "
            f"({', '.join(EMBEDDED)}), a folder written by save_pretrained(), or a hub id"
        )
    return load_ct2(source, name_or_path, device=device, **kw)


def _hub_folder(model_id: str, revision: str | None) -> Path:
    """The local snapshot of a hub model (downloaded unless offline)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model_id, revision=revision))
    except Exception as exc:  # the hub client raises several unrelated types when offline
        raise ModelLoadError(
            f"could not find Hugging Face model {model_id!r} locally or on the hub "
            f"({type(exc).__name__}: {exc}); pass a local directory instead"
        ) from exc


def _load_fake(name: str, *, device: str | None = None, dtype: Any = None, **kw: Any) -> LLM:
    kw.pop("progress", None)  # nothing to download or load: callers may pass it uniformly
    return FakeLLM(**kw)


def _load_embedded(name: str, *, device: str | None, dtype: Any, **kw: Any) -> LLM:
    folder = embedded_model_dir(name, progress=kw.get("progress", True))
    return _hf_llm(str(folder), name, device, dtype, local_files_only=True, **kw)


def _load_hub(model_id: str, device: str | None, dtype: Any, **kw: Any) -> LLM:
    try:
        return _hf_llm(model_id, model_id, device, dtype, **kw)
    except OSError as exc:
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
        why = "HF_HUB_OFFLINE is set and it" if offline else "the hub is unreachable or it"
        raise ModelLoadError(
            f"could not load Hugging Face model {model_id!r}: {why} is not in the local Hugging "
            f"Face cache ({type(exc).__name__}: {exc}). Download it once with internet access, or "
            f"pass a local directory, or use an embedded model ({', '.join(EMBEDDED)})"
        ) from exc


MODELS: dict[str, Callable[..., LLM]] = {
    **{name: _load_embedded for name in EMBEDDED},
    "fake": _load_fake,
}
"""Registered model names and their loaders, called as ``loader(name, device=, dtype=, **kw)``."""


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith(("/", "./", "../", "~", "\\"))
        or name.count("/") > 1
        or "\\" in name
        or name.endswith((".gguf", ".safetensors", ".bin"))
    )


def _hf_llm(source: str, name: str, device: str | None, dtype: Any, **kw: Any) -> LLM:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from recgym.llm.hf import HFLLM, progress_bars

    batch_size = kw.pop("batch_size", None)
    progress = kw.pop("progress", True)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    shared = {k: kw[k] for k in _SHARED_KW if k in kw}
    with progress_bars(progress):
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False, **shared)
        model: Any = AutoModelForCausalLM.from_pretrained(
            source, dtype=_torch_dtype(dtype, dev), trust_remote_code=False, **kw
        )
    path = source if Path(source).is_dir() else None
    return HFLLM(model.to(dev), tokenizer, name=name, path=path, batch_size=batch_size)


def _torch_dtype(dtype: Any, device: Any) -> Any:
    import torch

    if dtype is None:
        # float32 on CPU: bfloat16 matmuls are slower there without AMX, and 135M fits anyway.
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be a torch dtype or one of {_DTYPES}, got {dtype!r}")
        return dtype if dtype == "auto" else getattr(torch, dtype)
    return dtype
