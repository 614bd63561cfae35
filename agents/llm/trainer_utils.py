"""The pieces of a training run that are not files: episode order, schedule, precision, LoRA.

Used by the policy trainers (:mod:`agents.llm.training`) and the verbalizer's
(:mod:`agents.llm.verbalizer_train`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

__all__ = ["EpisodeStream", "autocast", "linear_schedule", "with_lora"]


class EpisodeStream:
    """Episode indices in a seeded order: a fixed sample of a split, reshuffled every epoch.

    ``at(position)`` depends only on ``(n_episodes, size, seed, position)``, so a run that
    stores its cursor resumes on exactly the episodes it would have seen.

    Args:
        n_episodes: episodes in the split.
        size: how many of them to train on (sampled with ``seed``); ``None``: all.
        seed: seed of the sample and of every epoch's order.
    """

    def __init__(self, n_episodes: int, size: int | None, seed: int) -> None:
        if n_episodes < 1:
            raise ValueError("the split has no episodes to train on")
        rng = np.random.default_rng(seed)
        size = n_episodes if size is None else min(size, n_episodes)
        self.pool = np.sort(rng.choice(n_episodes, size=size, replace=False))
        self.seed = seed
        self._orders: dict[int, np.ndarray] = {}

    def at(self, position: int) -> int:
        """The episode at ``position`` of the endless stream."""
        epoch, offset = divmod(position, len(self.pool))
        if epoch not in self._orders:
            self._orders[epoch] = np.random.default_rng([self.seed, epoch]).permutation(self.pool)
        return int(self._orders[epoch][offset])

    def take(
        self, cursor: int, n: int, keep: Callable[[int], bool] | None = None
    ) -> tuple[list[int], int]:
        """The next ``n`` episodes from ``cursor`` (those passing ``keep``), and the new cursor.

        Raises:
            RuntimeError: ``keep`` rejected 100 x ``n`` episodes in a row.
        """
        out: list[int] = []
        for _ in range(100 * n):
            if len(out) == n:
                break
            i, cursor = self.at(cursor), cursor + 1
            if keep is None or keep(i):
                out.append(i)
        if not out:
            raise RuntimeError("no train episode passes the filter")
        return out, cursor


def linear_schedule(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> Any:
    """Linear warm-up over ``warmup`` steps, then linear decay to 0 at ``total``."""

    # transformers' linear schedule, except that the first step already gets lr / (warmup + 1)
    # rather than 0 (a step at lr 0 is a wasted forward/backward pass).
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def autocast(device: torch.device) -> Any:
    """bf16 autocast on CUDA (weights stay float32), nothing elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def with_lora(model: Any, config: Any) -> Any:
    """``model`` wrapped with a fresh LoRA adapter from a trainer config's ``lora_r``,
    ``lora_alpha``, ``lora_dropout`` and ``target_modules`` (no bias, causal LM)."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)
