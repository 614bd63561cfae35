"""A zero-shot LLM policy for the text envs: the observation as the user turn, one completion."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from recgym.envs.text import SYSTEM_PROMPT
from recgym.llm import LLM
from recgym.llm.base import derive_seed

__all__ = ["ZeroShotLLMAgent"]


class ZeroShotLLMAgent:
    """Prompt any :mod:`recgym.llm` model with the env's observation; its completion is the action.

    The conversation is Rec-R1's system prompt followed by the observation as the user turn.
    Sampling defaults are Rec-R1's (temperature 0.6, top-p 0.95); each call draws fresh
    per-row seeds from a counter started by :meth:`reset`, so a seeded evaluation is
    reproducible and independent of the batch size.

    Args:
        model: a loaded :class:`recgym.llm.LLM`, or a name/path for :func:`recgym.llm.load`
            (default: the embedded SmolLM2-135M-Instruct).
        max_new_tokens: completion budget in tokens.
        temperature: sampling temperature (0: greedy).
        top_p: nucleus mass.
        batch_size: prompts per generation batch.
        system_prompt: the system turn (``None`` for none).
        seed: initial seed (see :meth:`reset`).
        model_kwargs: arguments of :func:`recgym.llm.load` when ``model`` is a name.
    """

    def __init__(
        self,
        model: LLM | str = "smollm2-135m",
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.6,
        top_p: float = 0.95,
        batch_size: int = 32,
        system_prompt: str | None = SYSTEM_PROMPT,
        seed: int | None = 0,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if isinstance(model, str):
            import recgym.llm

            model = recgym.llm.load(model, **(model_kwargs or {}))
        self.llm: LLM = model
        self.max_new_tokens = int(max_new_tokens)
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.batch_size = int(batch_size)
        self.system_prompt = system_prompt
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        """Restart the per-row seed counter at ``seed`` (``None``: unseeded sampling)."""
        self._seed = seed
        self._rows = 0

    def _messages(self, observation: str) -> list[dict[str, str]]:
        turns = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return [*turns, {"role": "user", "content": observation}]

    def act_batch(self, observations: Sequence[str]) -> list[str]:
        """One completion per observation, generated in batches."""
        n = len(observations)
        seeds = None
        if self._seed is not None:
            # Row r of the whole run gets seed (seed, r): independent of how rows are batched.
            seeds = [derive_seed(self._seed, self._rows + r) for r in range(n)]
        self._rows += n
        outs = self.llm.generate(
            [self._messages(o) for o in observations],
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=seeds,
            batch_size=self.batch_size,
        )
        return [g.text for g in outs]

    def act(self, observation: str) -> str:
        """One completion."""
        return self.act_batch([observation])[0]

    def config(self) -> dict[str, Any]:
        """The settings that define this agent (for leaderboard rows)."""
        return {
            "model": self.llm.name,
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "system_prompt": self.system_prompt is not None,
        }
