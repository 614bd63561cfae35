"""Language models for recgym: the :class:`LLM` interface, :func:`load`, and its engines.

``load("smollm2-135m")`` (the default) gives the embedded SmolLM2-135M-Instruct on CPU or GPU
through transformers; ``load("smollm2-135m", backend="ct2")`` the same model on the
CTranslate2 engine (:class:`CT2LLM`, fast on CPU); ``load("openai:<base_url>#<model>")`` a
model on an OpenAI-compatible server (:class:`RemoteLLM`); ``load("fake")`` gives
:class:`FakeLLM`, a deterministic test double that needs no torch. ``load_encoder()`` gives a
:class:`TextEncoder`, the embedded all-MiniLM-L6-v2 sentence encoder. Importing this package
imports neither torch, transformers, ctranslate2 nor openai.

Example:
    >>> import recgym.llm
    >>> llm = recgym.llm.load("fake", mode="wellformed")
    >>> llm.generate(["Recommend a rainy-day movie"])[0].text.startswith("<think>")
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from recgym.llm.base import CHATML_TEMPLATE, LLM, FinishReason, Generation, Message, Prompt
from recgym.llm.embedded import EMBEDDED, EmbeddedModel, embedded_model_dir
from recgym.llm.encoder import TextEncoder, load_encoder
from recgym.llm.fake import FakeLLM
from recgym.llm.loading import MODELS, load

if TYPE_CHECKING:
    from recgym.llm.ct2 import CT2LLM
    from recgym.llm.hf import HFLLM
    from recgym.llm.remote import RemoteLLM

__all__ = [
    "CHATML_TEMPLATE",
    "CT2LLM",
    "EMBEDDED",
    "HFLLM",
    "LLM",
    "MODELS",
    "EmbeddedModel",
    "FakeLLM",
    "FinishReason",
    "Generation",
    "Message",
    "Prompt",
    "RemoteLLM",
    "TextEncoder",
    "embedded_model_dir",
    "load",
    "load_encoder",
]


_LAZY = {"HFLLM": "recgym.llm.hf", "CT2LLM": "recgym.llm.ct2", "RemoteLLM": "recgym.llm.remote"}


def __getattr__(name: str) -> Any:
    # These engines live in modules that import torch, ctranslate2 or openai: load on demand.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'recgym.llm' has no attribute {name!r}")
