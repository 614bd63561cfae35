"""R²ec's recommendation head on any :mod:`recgym.llm` model, and the ``RecNext-v0`` agent
that reasons with it.

One decoder LLM plays both parts (R²ec, arXiv 2505.16994). Its ``lm_head`` writes reasoning
that ends with :data:`ANSWER`. The last-layer hidden state at the end of that marker is the
user's vector. Item ``i``'s vector is the same model's hidden state at the end of an item prompt
(:data:`ITEM_PROMPT`, the reply prefilled with :data:`ANSWER`). An item's score is the cosine
similarity of the two: R²ec's code divides it by ``tau`` in its softmax, and ``RecNext-v0``'s
fused reward and ``p_target`` do that. No per-item weights are learned. The item table is the
model's own output, so it must be recomputed when the weights change; R²ec rebuilds it at each
evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from agents.llm.verbalizer import last_hidden
from agents.llm.zero_shot import policy_messages, training_summary
from recgym.llm import LLM
from recgym.llm.base import derive_seed

__all__ = ["ANSWER", "ITEM_PROMPT", "RecHead", "RecHeadAgent"]

ANSWER = "<answer>"
"""The marker that ends the reasoning; the user's vector is read at its last token."""

ITEM_PROMPT = "Summarize the key attributes of this movie in a few words.\n\nMovie: {item}"
"""The item prompt (R²ec's asks for the item's key attributes); ``{item}`` is the env's
``"Title (Year) | genres"`` text."""


class RecHead:
    """Encodes users (prompt and reasoning) and items into unit vectors with one LLM.

    Args:
        llm: a transformers-backed :class:`recgym.llm.LLM` (its ``model`` may carry a LoRA
            adapter; the head reads whatever weights it has when called).
        item_texts: the text of each item, by item index.
        batch_size: sequences per forward pass when the item table is built.
    """

    def __init__(self, llm: LLM, item_texts: Sequence[str], batch_size: int = 32) -> None:
        if llm.model is None:
            raise TypeError(f"{llm.name!r} has no torch model to read hidden states from")
        self.llm = llm
        self.item_texts = list(item_texts)
        self.batch_size = int(batch_size)
        tok = llm.tokenizer
        self.pad_id = int(tok.pad_token_id)
        self.eos_id = int(tok.eos_token_id)
        self.answer_ids: list[int] = tok(ANSWER, add_special_tokens=False)["input_ids"]
        self._item_ids: dict[int, list[int]] = {}
        self._table: torch.Tensor | None = None

    # ----- token sequences ------------------------------------------------------------------

    def prompt_ids(self, prompt: str, answer_now: bool) -> list[int]:
        """Tokens of the chat prompt for the user turn ``prompt``; with ``answer_now`` the
        reply is prefilled with :data:`ANSWER` (no reasoning), else it is open for it."""
        messages = policy_messages(prompt, None, ANSWER if answer_now else "")
        # A rendered chat prompt holds its special tokens already (as HFLLM tokenizes it).
        ids: list[int] = self.llm.tokenizer(
            self.llm.chat_prompt(messages), add_special_tokens=False
        )["input_ids"]
        return ids

    def with_answer(self, completion: Sequence[int]) -> list[int]:
        """The reasoning tokens, ending with :data:`ANSWER`: as sampled when the marker ended
        them, else with the end token dropped and the marker appended (a trace cut by the token
        budget is read out after a forced marker)."""
        ids = list(completion)
        if self.has_answer(ids):
            return ids
        if ids and ids[-1] == self.eos_id:
            ids = ids[:-1]
        return ids + self.answer_ids

    def has_answer(self, completion: Sequence[int]) -> bool:
        """Whether the sampled tokens end with :data:`ANSWER` (generation stops on it)."""
        tail = list(completion)[-len(self.answer_ids) - 4 :]
        return ANSWER in self.llm.tokenizer.decode(tail)

    def item_prompt_ids(self, item: int) -> list[int]:
        """Tokens of item ``item``'s prompt, reply prefilled with :data:`ANSWER` (cached)."""
        if item not in self._item_ids:
            prompt = ITEM_PROMPT.format(item=self.item_texts[item])
            self._item_ids[item] = self.prompt_ids(prompt, answer_now=True)
        return self._item_ids[item]

    # ----- vectors ----------------------------------------------------------------------------

    def encode(self, sequences: Sequence[Sequence[int]]) -> torch.Tensor:
        """``(B, hidden)`` unit vectors at the last token of each sequence, float32, with the
        graph when gradients are enabled."""
        hidden = last_hidden(self.llm.model, sequences, self.pad_id).float()
        return torch.nn.functional.normalize(hidden, dim=-1)

    def encode_batches(self, sequences: Sequence[Sequence[int]]) -> torch.Tensor:
        """:meth:`encode` of many sequences, ``batch_size`` per forward pass, with no graph."""
        with torch.no_grad():
            return torch.cat(
                [
                    self.encode(sequences[lo : lo + self.batch_size])
                    for lo in range(0, len(sequences), self.batch_size)
                ]
            )

    def encode_items(self, items: Sequence[int]) -> torch.Tensor:
        """``(len(items), hidden)`` unit item vectors from the current weights."""
        return self.encode([self.item_prompt_ids(int(i)) for i in items])

    def table(self) -> torch.Tensor:
        """``(n_items, hidden)`` unit vectors of every item (built on first use, no graph)."""
        if self._table is None:
            items = range(len(self.item_texts))
            self._table = self.encode_batches([self.item_prompt_ids(i) for i in items])
        return self._table

    def refresh(self, items: Sequence[int] | None = None) -> None:
        """Re-encode ``items`` with the current weights and write them into the table (R²ec
        does this for a batch's targets each step); ``None``: drop the table, so the next use
        rebuilds it whole (at each evaluation)."""
        if items is None or self._table is None:
            self._table = None
            return
        items = sorted({int(i) for i in items})
        with torch.no_grad():
            self._table[items] = self.encode_items(items).to(self._table.device)

    def set_table(self, table: torch.Tensor | None) -> None:
        """Replace the table (a checkpoint's copy)."""
        self._table = table

    def scores(self, users: torch.Tensor) -> np.ndarray:
        """``(B, n_items)`` cosine similarity of each user vector to every item, float32."""
        with torch.no_grad():
            table = self.table()
            return (users.detach().to(table.device) @ table.T).float().cpu().numpy()


class RecHeadAgent:
    """A ``RecNext-v0`` agent: reason about the history, then score every movie with the
    recommendation head (:class:`RecHead`).

    With ``reasoning`` the model writes up to ``max_new_tokens`` of reasoning, stopping at
    :data:`ANSWER`, and the user's vector is read there. Without it the reply is prefilled with
    the marker and the vector is read straight from the prompt (R²ec's "no reasoning"
    ablation). The action is ``{"scores": (n_items,) cosine, "reasoning": text}``.

    Args:
        model: a loaded transformers-backed :class:`recgym.llm.LLM`, or a name/path for
            :func:`recgym.llm.load` (default: the embedded SmolLM2-135M-Instruct).
        item_texts: each item's text by index (``env.unwrapped.task.texts``; see
            :meth:`from_env`).
        reasoning: reason before the answer marker (``False``: read the prompt's state).
        max_new_tokens: reasoning budget in tokens.
        temperature: sampling temperature of the reasoning (0: greedy).
        top_p: nucleus mass.
        batch_size: prompts per generation and item-encoding batch.
        seed: initial seed of the per-row sampling seeds (see :meth:`reset`).
        model_kwargs: arguments of :func:`recgym.llm.load` when ``model`` is a name.
        adapter: an output folder of :mod:`agents.llm.recpo` (a PEFT LoRA adapter), loaded onto
            the model in place.
    """

    def __init__(
        self,
        model: LLM | str = "smollm2-135m",
        *,
        item_texts: Sequence[str],
        reasoning: bool = True,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 1.0,
        batch_size: int = 16,
        seed: int | None = 0,
        model_kwargs: dict[str, Any] | None = None,
        adapter: str | None = None,
    ) -> None:
        if isinstance(model, str):
            import recgym.llm

            model = recgym.llm.load(model, **(model_kwargs or {}))
        self.llm: LLM = model
        self.adapter = None if adapter is None else str(adapter)
        self.training: dict[str, Any] | None = None
        if self.adapter is not None:
            from agents.llm.run_files import load_adapter

            self.llm.model, self.training = load_adapter(
                self.llm.model, Path(self.adapter), "agents.llm.recpo.train_recpo"
            )
        self.head = RecHead(self.llm, item_texts, batch_size)
        self.reasoning = bool(reasoning)
        self.max_new_tokens = int(max_new_tokens)
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.batch_size = int(batch_size)
        self.reset(seed)

    @classmethod
    def from_env(cls, env: gym.Env[Any, Any], **kwargs: Any) -> RecHeadAgent:
        """The agent for ``env`` (a ``RecNext-v0``), reading its item texts."""
        texts: list[str] = getattr(env.unwrapped, "task").texts  # noqa: B009 (a RecNext-v0)
        return cls(item_texts=texts, **kwargs)

    def reset(self, seed: int | None = None) -> None:
        """Restart the per-row seed counter at ``seed`` (``None``: unseeded sampling)."""
        self._seed = seed
        self._rows = 0

    def readouts(self, prompts: Sequence[str]) -> tuple[list[list[int]], list[str]]:
        """The token sequence each user's vector is read from, and the reasoning texts."""
        if not self.reasoning:
            return [self.head.prompt_ids(p, answer_now=True) for p in prompts], [""] * len(prompts)
        seeds = None
        if self._seed is not None:
            seeds = [derive_seed(self._seed, self._rows + r) for r in range(len(prompts))]
        self._rows += len(prompts)
        gens = self.llm.generate(
            [policy_messages(p, None) for p in prompts],
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=seeds,
            batch_size=self.batch_size,
            stop=[ANSWER],
        )
        sequences = [
            self.head.prompt_ids(p, answer_now=False) + self.head.with_answer(g.token_ids)
            for p, g in zip(prompts, gens, strict=True)
        ]
        return sequences, [g.text for g in gens]

    def act_batch(self, observations: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """One ``{"scores", "reasoning"}`` action per observation."""
        sequences, texts = self.readouts([str(o["prompt"]) for o in observations])
        matrix = self.head.scores(self.head.encode_batches(sequences))
        return [{"scores": s, "reasoning": t} for s, t in zip(matrix, texts, strict=True)]

    def act(self, observation: dict[str, Any]) -> dict[str, Any]:
        """One action."""
        return self.act_batch([observation])[0]

    def config(self) -> dict[str, Any]:
        """The settings that define this agent (for leaderboard rows)."""
        return {
            "model": self.llm.name,
            "reasoning": self.reasoning,
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            **(
                {"adapter": self.adapter, "training": training_summary(self.training)}
                if self.adapter
                else {}
            ),
        }
