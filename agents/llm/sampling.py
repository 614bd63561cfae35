"""Seeded group sampling for LLM policy trainers: :class:`GroupSampler` and its :class:`Rollout`.

A step of a policy trainer samples a *group* of completions of each of a few train episodes
and scores them all with one call of the env's batched scorer. Row ``r`` of a batch is sampled
with seed ``(config.seed, first_row + r)``, so a batch does not depend on what ran before it
and a resumed run samples exactly what the killed one would have.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from agents.llm import trainer_utils
from agents.llm.grpo_config import GRPOConfig
from agents.llm.zero_shot import policy_messages
from recgym.llm import LLM, Generation
from recgym.llm.base import derive_seed

__all__ = ["GroupSampler", "Rollout"]


@dataclass
class Rollout:
    """One batch of sampled completions, scored.

    Attributes:
        episodes: ``(N,)`` train episode of each completion (groups are consecutive).
        prompt_ids: the tokens of each completion's rendered prompt (with the prefix).
        completion_ids: the sampled tokens (with the end token when generation stopped).
        actions: what the env scored: the response prefix followed by the completion text.
        rewards: ``(N,)`` the env's rewards (format penalty included).
        advantages: ``(N,)`` per-completion weights of the loss.
        metrics: the env's per-completion metrics (``ndcg@10``...), ``format_ok`` and
            ``ndcg`` (at the env's k).
    """

    episodes: np.ndarray
    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    actions: list[str]
    rewards: np.ndarray
    advantages: np.ndarray
    metrics: dict[str, np.ndarray]


class GroupSampler:
    """Sampling and scoring of completion groups, for a trainer (a mixin of
    :class:`~agents.llm.training.PolicyTrainer`) that has ``config`` (a
    :class:`~agents.llm.grpo_config.GRPOConfig`), ``scorer``, ``llm``, ``model``,
    ``generator``, ``device``, ``system_prompt`` and ``timing``.

    A trainer fills in :meth:`advantages`; one for another env family replaces
    :meth:`prompt_of` and :attr:`group_size`.
    """

    config: GRPOConfig
    scorer: Any
    llm: LLM
    model: Any
    generator: LLM
    device: torch.device
    system_prompt: str | None
    timing: dict[str, float]
    _sampled_ids: bool
    """Whether ``generator`` samples ``llm``'s own tokens (else completions are re-tokenized)."""

    def prompt_of(self, observation: Any) -> str:
        """The user turn of an observation (a text env's observation is the text)."""
        return str(observation)

    @property
    def group_size(self) -> int:
        """Completions per train episode in a rollout (``samples_per_prompt``)."""
        return self.config.samples_per_prompt

    def advantages(self, rewards: np.ndarray, ndcg: np.ndarray) -> np.ndarray:
        """Each completion's loss weight in :meth:`rollout` (groups of :attr:`group_size`
        are consecutive), from its reward and NDCG."""
        raise NotImplementedError

    def autocast(self) -> Any:
        """The context forward passes run in (bf16 autocast on CUDA, nothing elsewhere)."""
        return trainer_utils.autocast(self.device)

    def rollout(
        self, step: int, indices: Sequence[int], *, first_row: int | None = None
    ) -> Rollout:
        """Sample a group of completions for each train episode and score them all at once.

        Row ``r`` of step ``step`` is sampled with seed ``(config.seed, step * N + r)``, so the
        rollouts of a step do not depend on what ran before it; ``first_row`` replaces
        ``step * N`` (for callers whose batches differ in size). Each row's advantage comes
        from :meth:`advantages`.
        """
        cfg = self.config
        episodes, prompt_ids, generations = self.sample(step, indices, first_row=first_row)
        actions = [cfg.response_prefix + gen.text for gen in generations]
        start = time.perf_counter()
        scores = self.scorer.score(actions, episodes.tolist(), "train")
        self.timing["scoring_seconds"] = time.perf_counter() - start
        rewards = np.asarray(scores.rewards, dtype=np.float64)
        metrics = {
            **scores.metrics,
            "format_ok": scores.format_ok.astype(np.float64),
            "ndcg": scores.ndcg,
        }
        advantages = self.advantages(rewards, scores.ndcg)
        completion_ids = [self._completion_tokens(gen) for gen in generations]
        return Rollout(episodes, prompt_ids, completion_ids, actions, rewards, advantages, metrics)

    def sample(
        self,
        step: int,
        indices: Sequence[int],
        *,
        first_row: int | None = None,
        stop: Sequence[str] | None = None,
    ) -> tuple[np.ndarray, list[list[int]], list[Generation]]:
        """:attr:`group_size` completions of each train episode, seeded as :meth:`rollout`
        says; ``stop`` strings end a completion (kept in its tokens).

        Returns:
            ``(episodes, prompt_ids, generations)``, one row per completion: the episode, the
            tokens of its rendered prompt (with the response prefix), the generation.
        """
        cfg = self.config
        g = self.group_size
        episodes = np.repeat(np.asarray(indices, dtype=np.int64), g)
        observations = self.scorer.observations([int(i) for i in indices], "train")
        conversations = [
            policy_messages(self.prompt_of(o), self.system_prompt, cfg.response_prefix)
            for o in observations
        ]
        rows = [c for c in conversations for _ in range(g)]
        first = step * len(rows) if first_row is None else first_row
        seeds = [derive_seed(cfg.seed, first + r) for r in range(len(rows))]
        self.model.eval()
        start = time.perf_counter()
        with self.autocast():
            generations = self.generator.generate(
                rows,
                max_new_tokens=cfg.max_new_tokens,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                seed=seeds,
                batch_size=len(rows),
                stop=stop,
            )
        self.timing["generation_seconds"] = time.perf_counter() - start
        tok = self.llm.tokenizer
        # A rendered chat prompt holds its special tokens already (as HFLLM tokenizes it).
        prompts = [
            tok(self.llm.chat_prompt(c), add_special_tokens=False)["input_ids"]
            for c in conversations
        ]
        return episodes, [prompts[r // g] for r in range(len(rows))], list(generations)

    def _completion_tokens(self, gen: Generation) -> list[int]:
        if self._sampled_ids:
            # The sampled ids themselves: re-tokenizing the text need not give them back.
            return list(gen.token_ids)
        tok = self.llm.tokenizer
        ids: list[int] = tok(gen.text, add_special_tokens=False)["input_ids"]
        return [*ids, int(tok.eos_token_id)] if gen.finish_reason == "stop" else ids
