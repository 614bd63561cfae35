"""An LLM policy for the text envs: the observation as the user turn, one completion.

Zero-shot with the base model, or with an adapter written by a trainer
(:mod:`agents.llm.grpo`), which samples its rollouts through the same :func:`policy_messages`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from recgym.envs.text import SYSTEM_PROMPT
from recgym.llm import LLM
from recgym.llm.base import derive_seed

__all__ = ["ZeroShotLLMAgent", "policy_messages", "training_summary"]


def policy_messages(
    observation: str, system_prompt: str | None, response_prefix: str = ""
) -> list[dict[str, str]]:
    """The conversation an LLM policy completes: the system turn (if any), the observation as
    the user turn, and ``response_prefix`` as the start of the reply (a prefill) if not empty."""
    turns = [{"role": "system", "content": system_prompt}] if system_prompt else []
    turns.append({"role": "user", "content": observation})
    if response_prefix:
        turns.append({"role": "assistant", "content": response_prefix})
    return turns


class ZeroShotLLMAgent:
    """Prompt any :mod:`recgym.llm` model with the env's observation; its completion is the action.

    The conversation is Rec-R1's system prompt followed by the observation as the user turn.
    Sampling defaults are Rec-R1's (temperature 0.6, top-p 0.95); each call draws fresh
    per-row seeds from a counter started by :meth:`reset`, so a seeded evaluation is
    reproducible and independent of the batch size.

    With ``response_prefix`` the reply is prefilled with that text and the model continues it;
    the action is the prefix followed by the completion. A small model that never produces the
    answer format on its own (SmolLM2-135M on the Rec-R1 envs) can be started inside it, e.g.
    ``'<answer>{"query": "'``.

    Args:
        model: a loaded :class:`recgym.llm.LLM`, or a name/path for :func:`recgym.llm.load`
            (default: the embedded SmolLM2-135M-Instruct).
        max_new_tokens: completion budget in tokens.
        temperature: sampling temperature (0: greedy).
        top_p: nucleus mass.
        batch_size: prompts per generation batch.
        system_prompt: the system turn (``None`` for none).
        seed: initial seed (see :meth:`reset`).
        model_kwargs: arguments of :func:`recgym.llm.load` when ``model`` is a name; e.g.
            ``{"backend": "ct2"}`` for the fast CPU engine (:mod:`recgym.llm.ct2`).
        response_prefix: the start of every reply (see above).
        adapter: an output folder of :mod:`agents.llm.grpo` (a PEFT LoRA adapter), loaded onto
            the model in place. With ``model_kwargs={"backend": "ct2", ...}`` the model is
            loaded with transformers, the adapter put on it, and the result folded and
            converted (:func:`recgym.llm.ct2.from_hf`).
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
        response_prefix: str = "",
        adapter: str | None = None,
    ) -> None:
        from agents.llm.run_files import load_policy_llm

        self.adapter = None if adapter is None else str(adapter)
        self.llm: LLM
        self.llm, self.training = load_policy_llm(
            model, model_kwargs, self.adapter, "agents.llm.grpo.train_grpo"
        )
        self.max_new_tokens = int(max_new_tokens)
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.batch_size = int(batch_size)
        self.system_prompt = system_prompt
        self.response_prefix = str(response_prefix)
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        """Restart the per-row seed counter at ``seed`` (``None``: unseeded sampling)."""
        self._seed = seed
        self._rows = 0

    def act_batch(self, observations: Sequence[str]) -> list[str]:
        """One completion per observation, generated in batches."""
        n = len(observations)
        seeds = None
        if self._seed is not None:
            # Row r of the whole run gets seed (seed, r): independent of how rows are batched.
            seeds = [derive_seed(self._seed, self._rows + r) for r in range(n)]
        self._rows += n
        outs = self.llm.generate(
            [policy_messages(o, self.system_prompt, self.response_prefix) for o in observations],
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=seeds,
            batch_size=self.batch_size,
        )
        return [self.response_prefix + g.text for g in outs]

    def act(self, observation: str) -> str:
        """One completion."""
        return self.act_batch([observation])[0]

    def config(self) -> dict[str, Any]:
        """The settings that define this agent (for leaderboard rows)."""
        return {
            "model": self.llm.name,
            # Only another engine is recorded: rows made before engines existed stay equal.
            **({"backend": backend} if (backend := getattr(self.llm, "backend", None)) else {}),
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "system_prompt": self.system_prompt is not None,
            **({"response_prefix": self.response_prefix} if self.response_prefix else {}),
            **(
                {"adapter": self.adapter, "training": training_summary(self.training)}
                if self.adapter
                else {}
            ),
        }


def training_summary(training: dict[str, Any] | None) -> dict[str, Any] | None:
    """The parts of a trainer's ``training.json`` a leaderboard row keeps."""
    keys = ("algorithm", "best_step", "best_metric", "steps", "train_minutes", "device", "seed")
    return None if training is None else {k: training[k] for k in keys if k in training}
