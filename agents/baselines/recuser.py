"""Baselines for ``RecUser-v0`` (one item per step): random, most popular, and greedy on the
LE's own scores.

- ``random-item`` (:class:`RandomItemAgent`): a uniformly random item.
- ``popular-item`` (:class:`PopularItemAgent`): the item most taken by the LE's training users.
- ``sm-greedy`` (:class:`SMGreedyAgent`): the item the state model (SM) scores highest for the
  observed state, ``state @ item_vectors().T``; reads only the observation.
- ``rm-greedy`` (:class:`RMGreedyAgent`): a privileged reference, the item with the highest
  reward-model (RM) reward for the user's true history; an upper bound on the one-step
  reward that a learned agent can approach.

All take the env's action mask (``act_batch(observations, action_masks=...)``, see
:mod:`recgym.agent`), so they only recommend items the user has not seen; without a mask they
choose among every item.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from recgym.agent import check_action_masks
from recgym.le import UserModel

__all__ = ["PopularItemAgent", "RMGreedyAgent", "RandomItemAgent", "SMGreedyAgent"]


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


def _user_batch(env: gym.Env[Any, Any], agent: type) -> Any:
    """The env's :class:`~recgym.envs.user_batch.UserBatch` (its user model and users)."""
    batch = getattr(env.unwrapped, "batch", None)
    if batch is None:
        raise ValueError(f"{agent.__name__}.from_env needs a RecUser-v0 env; got {env.unwrapped!r}")
    return batch


def _states(observations: Sequence[Any], state_dim: int) -> np.ndarray:
    """``(B, state_dim)`` float64 SM states of observations (an array, or a dict's ``"state"``)."""
    rows = [obs["state"] if isinstance(obs, Mapping) else obs for obs in observations]
    states = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
    if states.shape[1] != state_dim:
        raise ValueError(
            f'observations must be SM states of length {state_dim} (RecUser-v0\'s "state" '
            f'observation or the "dict" one\'s "state" entry); got {states.shape[1]} values'
        )
    return states


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

        batch = _user_batch(env, cls)
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


class SMGreedyAgent(_ItemAgent):
    """The allowed item the state model scores highest: argmax of ``state @ item_vectors.T``
    (ties: the lower index).

    ``state`` is the observation (for ``observation="dict"``, its ``"state"``), the SM's state
    of the user's history; the SM was trained to score the next item by this similarity, so
    this is the LE's own next-item guess. Cheap (one matrix product per step) and honest: it
    reads only the observation and the LE's public item vectors.

    Args:
        item_vectors: ``(n_items, state_dim)`` the SM's action vectors
            (:meth:`recgym.le.UserModel.item_vectors`).
        source: where the vectors come from, for :meth:`config`.
    """

    def __init__(self, item_vectors: np.ndarray, source: str = "given vectors") -> None:
        vectors = np.asarray(item_vectors, dtype=np.float64)
        if vectors.ndim != 2 or vectors.size == 0:
            raise ValueError(
                f"item_vectors must be a non-empty (n_items, state_dim) array; got shape "
                f"{vectors.shape}"
            )
        self.item_vectors = vectors
        self.source = source

    @classmethod
    def from_env(cls, env: gym.Env[Any, Any]) -> SMGreedyAgent:
        """The item vectors of the env's user model (a ``RecUser-v0`` env, single or vector)."""
        batch = _user_batch(env, cls)
        return cls(batch.model.item_vectors(), f"LE {batch.le} SM")

    def scores(self, observations: Sequence[Any]) -> np.ndarray:
        """``(B, n_items)`` float64 SM scores ``state @ item_vectors.T`` per observation."""
        states = _states(observations, self.item_vectors.shape[1])
        return states @ self.item_vectors.T

    def act_batch(
        self, observations: Sequence[Any], action_masks: np.ndarray | None = None
    ) -> list[int]:
        """The allowed item of highest SM score per observation.

        Raises:
            ValueError: observations that are not SM states, or a mask row that allows nothing.
        """
        n = len(self.item_vectors)
        masks = _masks(action_masks, len(observations), n, need_allowed=True)
        scores = np.where(masks, self.scores(observations), -np.inf)
        return [int(i) for i in scores.argmax(axis=1)]  # argmax: the first, lowest, of ties

    def config(self) -> dict[str, Any]:
        """What a leaderboard row records."""
        return {"item_vectors": self.source}


class RMGreedyAgent(_ItemAgent):
    """Reference agent (privileged): the allowed item with the highest reward-model reward for
    the user's true current history (ties: the lower index).

    The env's reward is that RM reward, so with ``candidates=None`` this is the exact
    one-step-greedy policy: an upper bound on the per-step reward that an agent learning from
    the observation can approach, not a fair competitor. It reads what an agent does not see:
    the user model itself, and each user's full history, which the observation does not carry
    (an LE's read window depends on the history's whole length). It takes them as
    ``act_batch(observations, action_masks=..., histories=...)``; ``benchmarks.episodes`` (so
    ``python -m benchmarks run``) and :func:`recgym.agent.act_batch` pass ``env.histories()``
    of the ``RecUser-v0`` vector env to it.

    Cost: every allowed item goes through the RM for every user at every step (one
    :meth:`~recgym.le.UserModel.candidate_rewards` call per step, ``B x n_allowed`` rewards);
    on a trained LE that is an LLM forward pass over about ``n_items`` candidates per user.

    Args:
        model: the user model whose RM scores the candidates.
        candidates: ``None`` (default): score every allowed item (the exact argmax). An int
            ``K``: score only the ``K`` allowed items of highest SM score ``state @
            item_vectors().T`` (ties: lower index), a prefilter that cuts the cost to ``K``
            items per user; then the pick is *not* an exact argmax of the reward.
        source: what the model is, for :meth:`config` (default: its ``name``).
    """

    def __init__(
        self, model: UserModel, candidates: int | None = None, source: str | None = None
    ) -> None:
        if candidates is not None and (isinstance(candidates, bool) or int(candidates) < 1):
            raise ValueError(
                f"candidates must be None (every allowed item) or >= 1; got {candidates!r}"
            )
        self.model = model
        self.candidates = None if candidates is None else int(candidates)
        self.source = str(model.name) if source is None else source

    @classmethod
    def from_env(cls, env: gym.Env[Any, Any], candidates: int | None = None) -> RMGreedyAgent:
        """The user model of a ``RecUser-v0`` env (single or vector)."""
        batch = _user_batch(env, cls)
        return cls(batch.model, candidates, f"LE {batch.le} RM")

    def act(
        self,
        observation: Any,
        action_mask: np.ndarray | None = None,
        history: np.ndarray | None = None,
    ) -> int:
        """The item for one observation; ``history``: the user's full history
        (``env.unwrapped.history()`` of a single ``RecUser-v0`` env)."""
        masks = None if action_mask is None else np.asarray(action_mask)[None, :]
        histories = None if history is None else [np.asarray(history)]
        return self.act_batch([observation], masks, histories)[0]

    def act_batch(
        self,
        observations: Sequence[Any],
        action_masks: np.ndarray | None = None,
        histories: Sequence[np.ndarray] | None = None,
    ) -> list[int]:
        """The allowed item of highest RM reward per observation, for ``histories[i]``.

        Raises:
            ValueError: no histories (or not one per observation), or a mask row that allows
                nothing.
        """
        if histories is None:
            raise ValueError(
                "RMGreedyAgent needs each user's full current history, which the observation "
                "does not carry: pass act_batch(observations, action_masks=env.action_masks(), "
                "histories=env.histories()) with a RecUser-v0 vector env (act(..., "
                "history=env.unwrapped.history()) with a single one), or play it with "
                "benchmarks.episodes.play_episodes / python -m benchmarks run, which pass them"
            )
        batch = len(observations)
        if len(histories) != batch:
            raise ValueError(f"got {len(histories)} histories for {batch} observations")
        masks = _masks(action_masks, batch, self.model.n_items, need_allowed=True)
        rows = self._candidates(observations, masks)
        width = max(len(row) for row in rows)
        # Rectangular for one call: short rows repeat their first (lowest) item, which argmax
        # never prefers over the earlier original.
        cand = np.stack([np.pad(row, (0, width - len(row)), mode="edge") for row in rows])
        rewards = self.model.candidate_rewards(list(histories), cand)
        return [int(cand[i, j]) for i, j in enumerate(rewards.argmax(axis=1))]

    def _candidates(self, observations: Sequence[Any], masks: np.ndarray) -> list[np.ndarray]:
        """Per observation, the items to score, in increasing order (so argmax breaks ties
        towards the lower index): every allowed item, or the top ``candidates`` by SM score."""
        allowed = [np.flatnonzero(row) for row in masks]
        if self.candidates is None:
            return allowed
        vectors = np.asarray(self.model.item_vectors(), dtype=np.float64)
        scores = _states(observations, vectors.shape[1]) @ vectors.T
        out = []
        for row, items in zip(scores, allowed, strict=True):
            best = np.argsort(-row[items], kind="stable")[: self.candidates]
            out.append(np.sort(items[best]))
        return out

    def config(self) -> dict[str, Any]:
        """What a leaderboard row records: the model, and ``candidates`` (``"all"``: every
        allowed item, the exact argmax; an int: the SM prefilter's size)."""
        return {"user_model": self.source, "candidates": self.candidates or "all"}
