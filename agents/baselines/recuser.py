"""Baselines for ``RecUser-v0`` (one item per step): a random and a most-popular item.

Both take the env's action mask (``act_batch(observations, action_masks=...)``, see
:mod:`recgym.agent`), so they only recommend items the user has not seen; without a mask they
choose among every item.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from recgym.agent import check_action_masks

__all__ = ["PopularItemAgent", "RandomItemAgent"]


def _masks(
    action_masks: np.ndarray | None, batch: int, n_items: int, *, need_allowed: bool = False
) -> np.ndarray:
    """``(batch, n_items)`` bool: the given masks (checked), or every item allowed."""
    if action_masks is None:
        return np.ones((batch, n_items), dtype=bool)
    return check_action_masks(action_masks, batch, n_items, need_allowed=need_allowed)


def _n_items(env: gym.Env[Any, Any]) -> int:
    space = env.action_space
    if not isinstance(space, gym.spaces.Discrete):
        raise ValueError(
            f"expected an env with a Discrete item action space (RecUser-v0); got a "
            f"{type(space).__name__} action space"
        )
    return int(space.n)


class _ItemAgent:
    """What both baselines share: one observation is a batch of one."""

    def act_batch(
        self, observations: Sequence[Any], action_masks: np.ndarray | None = None
    ) -> list[int]:
        raise NotImplementedError

    def act(self, observation: Any, action_mask: np.ndarray | None = None) -> int:
        """The item for one observation (``action_mask``: one row, as ``info["action_mask"]``)."""
        masks = None if action_mask is None else np.asarray(action_mask)[None, :]
        return self.act_batch([observation], masks)[0]


class RandomItemAgent(_ItemAgent):
    """A uniformly random allowed item (an item the user has not seen, given the mask).

    Args:
        n_items: the size of the ``Discrete`` action space.
        seed: seeds the draws; :meth:`reset` re-seeds.
    """

    def __init__(self, n_items: int, seed: int | None = None) -> None:
        if n_items < 1:
            raise ValueError(f"n_items must be >= 1; got {n_items}")
        self.n_items = int(n_items)
        self._rng = np.random.default_rng(seed)

    @classmethod
    def from_env(cls, env: gym.Env[Any, Any], seed: int | None = None) -> RandomItemAgent:
        """For an env whose actions are ``Discrete(n_items)``."""
        return cls(_n_items(env), seed)

    def reset(self, seed: int | None = None) -> None:
        """Re-seed the draws."""
        self._rng = np.random.default_rng(seed)

    def act_batch(
        self, observations: Sequence[Any], action_masks: np.ndarray | None = None
    ) -> list[int]:
        """One allowed item per observation, uniformly at random.

        Raises:
            ValueError: a mask row allows nothing.
        """
        masks = _masks(action_masks, len(observations), self.n_items, need_allowed=True)
        return [int(self._rng.choice(np.flatnonzero(row))) for row in masks]

    def config(self) -> dict[str, Any]:
        """What a leaderboard row records."""
        return {"n_items": self.n_items}


class PopularItemAgent(_ItemAgent):
    """The allowed item with the highest count (ties: the lower index), the same for every user.

    Args:
        counts: ``(n_items,)`` scores, e.g. how often each item was taken.
        source: what the counts are, for :meth:`config`.
    """

    def __init__(self, counts: np.ndarray, source: str = "given counts") -> None:
        counts = np.asarray(counts, dtype=np.float64)
        if counts.ndim != 1 or counts.size == 0:
            raise ValueError(f"counts must be a non-empty 1-D array; got shape {counts.shape}")
        self.counts = counts
        self.source = source

    @classmethod
    def from_env(cls, env: gym.Env[Any, Any]) -> PopularItemAgent:
        """Counts of the items in the logged histories of the env's LE *training* users (the
        users the LE learned from; never the evaluation users)."""
        from recgym.envs.users import logged_users

        batch = getattr(env.unwrapped, "batch", None)
        if batch is None:
            raise ValueError(
                f"PopularItemAgent.from_env needs a RecUser-v0 env; got {env.unwrapped!r}"
            )
        histories = logged_users(batch.le, batch.le_kwargs or None, "train")
        counts = np.bincount(np.concatenate(histories), minlength=batch.n_items)
        return cls(counts.astype(np.float64), f"LE {batch.le} training users")

    def act_batch(
        self, observations: Sequence[Any], action_masks: np.ndarray | None = None
    ) -> list[int]:
        """The most popular allowed item per observation."""
        masks = _masks(action_masks, len(observations), len(self.counts))
        return [int(i) for i in np.where(masks, self.counts[None, :], -np.inf).argmax(axis=1)]

    def config(self) -> dict[str, Any]:
        """What a leaderboard row records."""
        return {"counts": self.source}
