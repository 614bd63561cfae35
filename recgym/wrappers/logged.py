"""Logged sequences as offline RL data: per-user item sequences and per-transition rewards.

:class:`LoggedSequences` is what the offline recommenders of ``agents.rl4rec`` train on and
what :class:`recgym.wrappers.LEAWrapper` transforms. Transition ``t`` of a sequence ``seq`` is
the state after ``seq[: t + 1]``, the logged action ``seq[t + 1]``, its reward ``rewards[t]``
and the next state after ``seq[: t + 2]``; the last transition ends the episode. Items are the
dataset's item indices (``item_idx``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recgym.error import DataFormatError

__all__ = ["LoggedSequences", "rating_rewards"]


def rating_rewards(
    ratings: np.ndarray | Sequence[float],
    *,
    threshold: float = 4.0,
    high: float = 1.0,
    low: float = 0.2,
) -> np.ndarray:
    """Xin et al.'s purchase/click rewards from explicit ratings: ``high`` for a rating of at
    least ``threshold`` (a "purchase"), ``low`` otherwise (a "click"), as float64."""
    values = np.asarray(ratings, dtype=np.float64)
    if np.isnan(values).any():
        raise ValueError("ratings hold NaN; drop or fill unrated events before mapping them")
    return np.where(values >= threshold, high, low)


@dataclass(frozen=True)
class LoggedSequences:
    """Per-user logged item sequences and the reward of each logged transition.

    Attributes:
        users: ``(U,)`` user ids, one per sequence.
        sequences: per user, int64 item indices in ``0..n_items-1``, oldest first.
        rewards: per user, ``(len(seq) - 1,)`` float64: ``rewards[u][t]`` is the reward of
            recommending ``seq[t + 1]`` after ``seq[: t + 1]``.
        n_items: the catalog size.
    """

    users: np.ndarray
    sequences: list[np.ndarray]
    rewards: list[np.ndarray]
    n_items: int

    def __post_init__(self) -> None:
        if not len(self.users) == len(self.sequences) == len(self.rewards):
            raise ValueError(
                f"need one user, sequence and reward array each; got {len(self.users)} users, "
                f"{len(self.sequences)} sequences, {len(self.rewards)} reward arrays"
            )
        for row, (seq, rew) in enumerate(zip(self.sequences, self.rewards, strict=True)):
            if seq.ndim != 1 or rew.shape != (max(len(seq) - 1, 0),):
                raise ValueError(
                    f"sequence {row}: rewards must be (len(seq) - 1,) = ({len(seq) - 1},) for a "
                    f"1-D sequence; got sequence {seq.shape}, rewards {rew.shape}"
                )
            if len(seq) and (seq.min() < 0 or seq.max() >= self.n_items):
                raise ValueError(
                    f"sequence {row} has items outside 0..{self.n_items - 1}: "
                    f"{seq[(seq < 0) | (seq >= self.n_items)][:5].tolist()}"
                )

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        n_items: int,
        *,
        reward: Callable[[np.ndarray], np.ndarray] = rating_rewards,
    ) -> LoggedSequences:
        """Group an interaction frame into per-user sequences in time order.

        Users come sorted as the frame's ``user_id`` sorts (the order of
        :meth:`recgym.data.LeaveOneOutSplit.examples`); events keep the split's ``_order``
        when the frame has it, else ``timestamp`` order (ties in frame order).

        Args:
            frame: ``user_id``, ``item_idx``, ``timestamp`` and ``rating`` columns (a split's
                ``train`` frame).
            n_items: the catalog size.
            reward: maps the ratings of each sequence's events after the first to rewards
                (default :func:`rating_rewards`).

        Raises:
            DataFormatError: a needed column is missing.
        """
        order = "_order" if "_order" in frame.columns else "timestamp"
        missing = [c for c in ("user_id", "item_idx", "rating", order) if c not in frame.columns]
        if missing:
            raise DataFormatError(
                f"frame lacks columns {missing}; have {list(frame.columns)} (a dataset without "
                "ratings needs rewards passed to LoggedSequences directly)"
            )
        ordered = frame.sort_values(["user_id", order], kind="stable")
        users, sequences, rewards = [], [], []
        for user, group in ordered.groupby("user_id", sort=False):
            users.append(str(user))
            sequences.append(group["item_idx"].to_numpy(dtype=np.int64))
            rewards.append(np.asarray(reward(group["rating"].to_numpy()[1:]), dtype=np.float64))
        return cls(np.array(users, dtype=object), sequences, rewards, int(n_items))

    @property
    def n_transitions(self) -> int:
        """The number of logged transitions (events after each user's first)."""
        return int(sum(len(r) for r in self.rewards))

    def with_rewards(self, rewards: Sequence[np.ndarray]) -> LoggedSequences:
        """The same sequences with other per-transition rewards (e.g. an LE's RM rewards)."""
        return LoggedSequences(
            self.users,
            self.sequences,
            [np.asarray(r, dtype=np.float64) for r in rewards],
            self.n_items,
        )
