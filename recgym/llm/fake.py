"""A deterministic fake LLM: a test double for envs and trainers, not a language model.

:class:`FakeLLM` answers every prompt with one of a few *kinds* of text: a well-formed Rec-R1
style answer (``<think>...</think>`` then ``<answer>{"query": "..."}</answer>``, the query made
of words from the prompt) or a deliberately malformed one (no answer tag, invalid JSON, no
``"query"`` key, empty, very long, duplicated tags), so that parsers and reward functions meet
every failure they must survive. It imports neither torch nor transformers and answers a batch
in microseconds.

Which kind a prompt gets is a hash of the rendered prompt (and, when sampling, of its seed), so
results are reproducible across runs and machines. Tokens are stood in for by UTF-8 bytes: one
byte, one token, and ``max_new_tokens`` truncates in bytes like a real model does in tokens.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable, Sequence

from recgym.error import UnknownNameError
from recgym.llm.base import (
    Generation,
    Prompt,
    as_messages,
    check_prompts,
    check_sampling,
    render_chatml,
    row_seeds,
)

__all__ = ["KINDS", "MALFORMED_KINDS", "MODES", "ByteTokenizer", "FakeLLM"]

# Words too generic to make a search query of.
_STOPWORD_TEXT = (
    "the and for with that this what which who whom are was were you your yours have has had "
    "not but from they them their there here about into than then when where why how can could "
    "would should will just like some any all most more very also only other such user users "
    "item items answer query think please give find recommend recommendation"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{2,}")


def _json_query(words: list[str]) -> str:
    return json.dumps({"query": " ".join(words)})


# Each kind turns the words picked from the prompt into a completion.
KINDS: dict[str, Callable[[list[str]], str]] = {
    "answer": lambda w: f"<think>The user wants {w[0]}.</think>\n<answer>{_json_query(w)}</answer>",
    "no_answer_tag": lambda w: f"<think>The user wants {w[0]}.</think>\nSearch for {' '.join(w)}.",
    "invalid_json": lambda w: f'<think>Hmm.</think>\n<answer>{{"query": "{" ".join(w)}"</answer>',
    "missing_query": lambda w: f'<think>Hmm.</think>\n<answer>{{"keywords": "{w[0]}"}}</answer>',
    "empty": lambda w: "",
    "long": lambda w: f"<think>I keep thinking about {' '.join(w)}" + ", and more" * 600,
    "duplicated_tags": lambda w: (
        f"<think>a</think><think>b</think>\n<answer>{_json_query(w[:1])}</answer>"
        f"<answer>{_json_query(w)}</answer>"
    ),
}
"""Completion builders by kind; ``"answer"`` is the only well-formed one."""

MALFORMED_KINDS: tuple[str, ...] = tuple(k for k in KINDS if k != "answer")

MODES: dict[str, tuple[str, ...]] = {
    # Half the prompts well-formed, the other half spread over the malformed kinds.
    "mixed": ("answer",) * len(MALFORMED_KINDS) + MALFORMED_KINDS,
    "wellformed": ("answer",),
    "malformed": MALFORMED_KINDS,
}
"""Named kind mixes for ``FakeLLM(mode=...)``."""


class ByteTokenizer:
    """Stand-in tokenizer of the fake: token ids are UTF-8 bytes, and 256 ends a sequence."""

    eos_token_id = 256

    def encode(self, text: str) -> list[int]:
        """The UTF-8 bytes of ``text``."""
        return list(text.encode("utf-8"))

    def decode(self, ids: Sequence[int]) -> str:
        """Text from byte ids; the end id and incomplete characters are dropped."""
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="ignore")


class FakeLLM:
    """Deterministic test double with the :class:`~recgym.llm.base.LLM` interface.

    Args:
        mode: a kind mix from :data:`MODES` (``"mixed"``, ``"wellformed"``, ``"malformed"``).
        kinds: the kinds to choose from, overriding ``mode`` (e.g. ``["invalid_json"]``).
        responses: fixed completions returned in order, cycling, one per prompt across calls;
            overrides ``mode`` and ``kinds``.
        seed: seeds the draws for sampling calls made with ``seed=None``.
        name: the name reported by :attr:`name`.

    With ``temperature=0`` the completion depends on the prompt only (like greedy decoding);
    with ``temperature>0`` it also depends on the row's seed.
    """

    def __init__(
        self,
        mode: str = "mixed",
        *,
        kinds: Sequence[str] | None = None,
        responses: Sequence[str] | None = None,
        seed: int = 0,
        name: str = "fake",
    ) -> None:
        if mode not in MODES:
            raise UnknownNameError(
                f"no fake mode {mode!r}; choose one of {', '.join(MODES)} or pass kinds=[...]"
            )
        chosen = tuple(kinds) if kinds is not None else MODES[mode]
        unknown = [k for k in chosen if k not in KINDS]
        if unknown or not chosen:
            raise UnknownNameError(
                f"unknown fake kinds {unknown or chosen!r}; known kinds: {', '.join(KINDS)}"
            )
        self.kinds = chosen
        self.responses = list(responses) if responses is not None else None
        self.name = name
        self.tokenizer = ByteTokenizer()
        self.model = None
        self._rng = random.Random(seed)
        self._next_response = 0

    def chat_prompt(self, messages: Prompt) -> str:
        """Render ``messages`` as ChatML, as SmolLM2 would see them."""
        return render_chatml(messages)

    def kind_of(self, prompt: str, seed: int | None = None) -> str:
        """The kind of completion a rendered ``prompt`` gets (``seed=None``: greedy)."""
        digest = hashlib.sha256(f"{seed}\x00{prompt}".encode()).digest()
        return self.kinds[int.from_bytes(digest[:8], "little") % len(self.kinds)]

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
        """Answer each prompt deterministically (see :class:`FakeLLM`); ``batch_size`` is unused."""
        check_prompts(prompts, chat)
        check_sampling(max_new_tokens, temperature, top_p)
        if temperature > 0 and seed is None:
            seed = self._rng.getrandbits(62)
        seeds: list[int | None] = (
            list(row_seeds(seed, len(prompts))) if temperature > 0 else [None] * len(prompts)
        )
        results = []
        for prompt, row_seed in zip(prompts, seeds, strict=True):
            rendered = self.chat_prompt(prompt) if chat else str(prompt)
            text = self._completion(prompt, rendered, row_seed)
            results.append(self._finish(text, rendered, max_new_tokens, stop))
        return results

    def _completion(self, prompt: Prompt, rendered: str, seed: int | None) -> str:
        if self.responses is not None:
            text = self.responses[self._next_response % len(self.responses)]
            self._next_response += 1
            return text
        # The request is the last turn that is not a prefill of the reply.
        turns = [m for m in as_messages(prompt) if m["role"] != "assistant"] if prompt else []
        content = turns[-1]["content"] if turns else ""
        words = list(dict.fromkeys(w.lower() for w in _WORD.findall(content)))
        words = [w for w in words if w not in _STOPWORDS] or ["popular", "items"]
        start = int(hashlib.sha256(rendered.encode()).hexdigest(), 16) % len(words)
        picked = (words[start:] + words[:start])[:3]
        return KINDS[self.kind_of(rendered, seed)](picked)

    def _finish(
        self, text: str, rendered: str, max_new_tokens: int, stop: Sequence[str] | None
    ) -> Generation:
        # Mimic a real decoder: a stop string inside the token budget ends the completion,
        # otherwise the end token does if it fits, otherwise the budget does.
        data = text.encode("utf-8")
        window = data[:max_new_tokens].decode("utf-8", errors="ignore")
        hits = [(i, i + len(s)) for s in stop or () if s and (i := window.find(s)) >= 0]
        if hits:
            cut, end = min(hits)
            ids = self.tokenizer.encode(window[:end])
            return Generation(window[:cut], ids, rendered, "stop")
        if len(data) < max_new_tokens:
            return Generation(text, [*data, ByteTokenizer.eos_token_id], rendered, "stop")
        return Generation(window, list(data[:max_new_tokens]), rendered, "length")
