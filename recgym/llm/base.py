"""What every LLM backend shares: the :class:`LLM` protocol, :class:`Generation`, prompt helpers.

Nothing here imports torch or transformers, so the fake backend and the envs that only type
against :class:`LLM` stay light.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "CHATML_TEMPLATE",
    "LLM",
    "FinishReason",
    "Generation",
    "Message",
    "Prompt",
    "as_messages",
    "batch_rows",
    "check_prompts",
    "check_sampling",
    "cut_at_stop",
    "derive_seed",
    "ends_with_prefill",
    "ids_to_generation",
    "render_chatml",
    "row_seeds",
    "template_prompt",
]

FinishReason = Literal["stop", "length"]
Message = Mapping[str, str]
"""One chat turn: ``{"role": "system" | "user" | "assistant", "content": "..."}``."""
Prompt = str | Sequence[Message]
"""A prompt: plain text, or a conversation as a list of messages."""

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""ChatML as a Jinja chat template (the format SmolLM2-Instruct was trained on)."""

_SEED_BITS = 63  # torch.Generator.manual_seed takes any int64; stay clear of the sign bit


@dataclass
class Generation:
    """One generated completion.

    Attributes:
        text: the completion, without the prompt, special tokens, or the stop string that ended it.
        token_ids: the generated token ids, without padding; they include the end-of-sequence
            token or the tokens that completed a stop string, when generation ended on one.
        prompt: the prompt as the model saw it (after the chat template, when one was applied).
        finish_reason: ``"stop"`` when an end-of-sequence token or a stop string ended the
            completion, ``"length"`` when ``max_new_tokens`` did.
    """

    text: str
    token_ids: list[int] = field(default_factory=list)
    prompt: str = ""
    finish_reason: FinishReason = "length"


@runtime_checkable
class LLM(Protocol):
    """A text generator that recgym environments use as policy, simulated user or judge.

    A conversation that ends with an assistant message is continued from that message's text
    (a prefill), like transformers' ``continue_final_message``; the completion does not repeat
    it.

    Implemented by :class:`recgym.llm.hf.HFLLM` (a transformers model) and
    :class:`recgym.llm.fake.FakeLLM` (a deterministic test double).
    """

    name: str
    """The name or path the model was loaded from."""
    tokenizer: Any
    """The tokenizer (a transformers tokenizer, or the fake's byte stand-in)."""
    model: Any
    """The torch module (for LoRA training), or ``None`` for the fake."""

    def generate(
        self,
        prompts: Sequence[Prompt],
        *,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | Sequence[int] | None = None,
        chat: bool = True,
        stop: Sequence[str] | None = None,
        batch_size: int | None = None,
    ) -> list[Generation]:
        """Complete each prompt; one :class:`Generation` per prompt, in order.

        Args:
            prompts: plain strings (one user message each when ``chat``) or conversations.
            max_new_tokens: most tokens to generate per prompt.
            temperature: 0 for greedy decoding, else the sampling temperature.
            top_p: nucleus sampling mass (1.0 keeps the whole distribution).
            seed: one seed for the whole call, or one seed per prompt (then a row's sample
                depends on its own seed and prompt only, not on the rest of the batch).
            chat: render prompts with the model's chat template.
            stop: strings that end a completion; the text is cut before them.
            batch_size: prompts per forward batch (``None``: the backend's default).
        """
        ...

    def chat_prompt(self, messages: Prompt) -> str:
        """Render a conversation (or one user message) as the model's chat prompt text."""
        ...


def as_messages(prompt: Prompt) -> list[dict[str, str]]:
    """A prompt as a conversation: a string becomes a single user message."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    messages = [dict(m) for m in prompt]
    for m in messages:
        if "role" not in m or "content" not in m:
            raise ValueError(f"each chat message needs 'role' and 'content' keys; got {m!r}")
    return messages


def render_chatml(messages: Prompt, add_generation_prompt: bool = True) -> str:
    """Render a conversation as ChatML text (what :data:`CHATML_TEMPLATE` produces).

    A conversation that ends with an assistant turn is a prefill: that turn is left open, so the
    model continues it (see :func:`ends_with_prefill`).
    """
    turns = as_messages(messages)
    if ends_with_prefill(turns):
        *head, last = turns
        return render_chatml(head, False) + f"<|im_start|>assistant\n{last['content']}"
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in turns)
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def ends_with_prefill(messages: Sequence[Message]) -> bool:
    """Whether a conversation ends with an assistant turn: the start of the reply (a prefill)
    that the model continues, instead of a new reply after it."""
    return bool(messages) and messages[-1].get("role") == "assistant"


def check_prompts(prompts: Sequence[Prompt], chat: bool) -> None:
    """Reject the argument mistakes that would otherwise fail deep inside a backend."""
    if isinstance(prompts, str):
        # A bare string is a Sequence[str]: it would be generated for character by character.
        raise TypeError("generate() takes a list of prompts; wrap a single prompt as [prompt]")
    if not chat and any(not isinstance(p, str) for p in prompts):
        raise TypeError("chat=False needs plain-text prompts; pass conversations with chat=True")


def check_sampling(max_new_tokens: int, temperature: float, top_p: float) -> None:
    """Validate the sampling arguments shared by every backend."""
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")


def batch_rows(batch_size: int | None, default: int | None, n: int) -> int:
    """Prompts per forward batch: ``batch_size``, else the backend's ``default``, else all
    ``n`` (at least 1).

    Raises:
        ValueError: the chosen size is < 1.
    """
    size = batch_size if batch_size is not None else default
    if size is not None and size < 1:
        raise ValueError(f"batch_size must be >= 1 (or None for one batch), got {size}")
    return size or max(n, 1)


def row_seeds(seed: int | Sequence[int] | None, n: int) -> list[int]:
    """One seed per row.

    A sequence is used as given (it must have one seed per prompt). A single int is spread into
    ``n`` distinct row seeds by hashing ``(seed, row)``: the call is reproducible, and repeated
    copies of one prompt in a batch still get different samples. ``None`` draws fresh seeds.
    """
    if seed is None:
        return [secrets.randbits(_SEED_BITS) for _ in range(n)]
    if isinstance(seed, int):
        return [derive_seed(seed, i) for i in range(n)]
    seeds = [int(s) for s in seed]
    if len(seeds) != n:
        raise ValueError(f"got {len(seeds)} seeds for {n} prompts; pass one seed per prompt")
    return seeds


def derive_seed(seed: int, row: int) -> int:
    """The seed of row ``row`` of a call seeded with ``seed`` (a hash: stable across machines)."""
    digest = hashlib.sha256(f"recgym-row-seed:{seed}:{row}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> (64 - _SEED_BITS)


def cut_at_stop(text: str, stop: Sequence[str] | None) -> tuple[str, bool]:
    """Cut ``text`` before the earliest stop string; also say whether one was found."""
    hits = [i for s in stop or () if s and (i := text.find(s)) >= 0]
    if not hits:
        return text, False
    return text[: min(hits)], True


def template_prompt(tokenizer: Any, name: str, messages: Prompt) -> str:
    """Render ``messages`` with a transformers tokenizer's chat template, ready for the reply
    (or continuing a final assistant message: a prefill).

    Raises:
        ValueError: the tokenizer has no chat template.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"model {name!r} has no chat template; pass chat=False with plain-text "
            "prompts, or set tokenizer.chat_template"
        )
    turns = as_messages(messages)
    prefill = ends_with_prefill(turns)
    return str(
        tokenizer.apply_chat_template(
            turns,
            tokenize=False,
            add_generation_prompt=not prefill,
            continue_final_message=prefill,
        )
    )


def ids_to_generation(
    tokenizer: Any,
    ids: Sequence[int],
    prompt: str,
    stop: Sequence[str] | None,
    end_ids: Collection[int],
) -> Generation:
    """A :class:`Generation` from one row of generated ids (possibly padded after its end):
    the text up to the first of ``end_ids`` or the first stop string, and the tokens kept
    (the end token, or the tokens that completed the stop string, included)."""

    def decode(part: Sequence[int]) -> str:
        return str(tokenizer.decode(list(part), skip_special_tokens=True))

    ids = list(ids)
    end = next((i for i, t in enumerate(ids) if t in end_ids), None)
    body = ids if end is None else ids[:end]
    text = decode(body)
    cut, hit = cut_at_stop(text, stop)
    if hit:
        # Keep the tokens up to the one that completed the stop string.
        k = next(k for k in range(1, len(body) + 1) if cut_at_stop(decode(body[:k]), stop)[1])
        return Generation(cut, body[:k], prompt, "stop")
    if end is None:
        return Generation(text, body, prompt, "length")
    return Generation(text, ids[: end + 1], prompt, "stop")
