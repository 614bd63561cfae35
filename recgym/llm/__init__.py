"""Language models for recgym: the :class:`LLM` interface, :func:`load`, and two backends.

``load("smollm2-135m")`` (the default) gives the embedded SmolLM2-135M-Instruct on CPU or GPU
through transformers; ``load("fake")`` gives :class:`FakeLLM`, a deterministic test double
that needs no torch. ``load_encoder()`` gives a :class:`TextEncoder`, the embedded
all-MiniLM-L6-v2 sentence encoder. Importing this package imports neither torch nor
transformers.

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
    from recgym.llm.hf import HFLLM

__all__ = [
    "CHATML_TEMPLATE",
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
    "TextEncoder",
    "embedded_model_dir",
    "load",
    "load_encoder",
]


def __getattr__(name: str) -> Any:
    # HFLLM lives in a module that imports torch; load it only when asked for.
    if name == "HFLLM":
        from recgym.llm.hf import HFLLM

        return HFLLM
    raise AttributeError(f"module 'recgym.llm' has no attribute {name!r}")
