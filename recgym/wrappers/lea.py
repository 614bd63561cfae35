"""LEA: an LLM environment's proposed positive actions added to logged training data.

After Wang et al., *LLM as environment* (SIGIR 2024): the LE's state model (SM) proposes, at
every logged transition, the ``k`` items most similar to its state, and its reward model (RM)
rewards each. :class:`LEAWrapper` computes these once over a :class:`LoggedSequences`; the
offline recommenders of ``agents.rl4rec`` read them as extra cross-entropy targets and extra
Q-learning transitions. The paper's details (``k``, weights, selection rule, next state) are
not public; the choices here are documented on the class.

:class:`LEView` lets everything else speak dataset item indices to an LE whose catalog may be
ordered differently (:attr:`recgym.le.UserModel.item_ids`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from recgym.le.base import UserModel
from recgym.metrics import top_k
from recgym.wrappers.logged import LoggedSequences

__all__ = ["RANKS", "LEAWrapper", "LEView", "proposal_pool"]


class LEView:
    """An LE seen in dataset item indices ``0..n_items-1``.

    Histories, sequences and candidates are translated to the LE's catalog through
    :attr:`~recgym.le.UserModel.item_ids` before each call. Every item passed in must be in the
    LE's catalog (an item the LE has no token for has no SM or RM features): a registered LE
    covers the whole MovieLens-100k catalog, so this only refuses a mismatched LE. Items of
    the dataset that the LE lacks are never proposed (:meth:`item_vectors` gives them no
    vector).

    Args:
        user_model: the LE.
        n_items: the dataset's catalog size.

    Raises:
        ValueError: the LE maps an item to an index outside ``0..n_items-1`` twice, or not at
            all.
    """

    def __init__(self, user_model: UserModel, n_items: int) -> None:
        ids = np.asarray(user_model.item_ids, dtype=np.int64)
        if ids.shape != (user_model.n_items,):
            raise ValueError(
                f"{user_model.name}: item_ids must be ({user_model.n_items},); got {ids.shape}"
            )
        inside = (ids >= 0) & (ids < n_items)
        if len(np.unique(ids[inside])) != int(inside.sum()):
            raise ValueError(f"{user_model.name}: item_ids maps two LE items to one dataset item")
        self.user_model = user_model
        self.n_items = int(n_items)
        self.to_le = np.full(n_items, -1, dtype=np.int64)
        """``(n_items,)`` the LE index of each dataset item, ``-1`` where the LE lacks it."""
        self.to_le[ids[inside]] = np.flatnonzero(inside)
        self.covered = self.to_le >= 0
        """``(n_items,)`` bool: the dataset items the LE has."""

    @property
    def state_dim(self) -> int:
        """Length of the LE's state vectors."""
        return int(self.user_model.state_dim)

    def translate(self, items: np.ndarray) -> np.ndarray:
        """Dataset item indices (any shape) as LE indices.

        Raises:
            ValueError: an item is outside ``0..n_items-1`` or not in the LE's catalog.
        """
        arr = np.asarray(items, dtype=np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= self.n_items):
            raise ValueError(
                f"items must be in 0..{self.n_items - 1}; got {arr.min()}..{arr.max()}"
            )
        out = self.to_le[arr]
        if (out < 0).any():
            lacking = np.unique(arr[out < 0])
            raise ValueError(
                f"the LE {self.user_model.name!r} has no item for {len(lacking)} dataset items "
                f"({lacking[:5].tolist()}...): use an LE trained on this catalog, or drop those "
                "events from the data"
            )
        return out

    def states(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """``(B, state_dim)`` SM states after each history (see ``UserModel.states``)."""
        return self.user_model.states([self.translate(h) for h in histories])

    def states_along(self, sequences: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per sequence ``(len(seq), state_dim)``: the SM state after every prefix."""
        return self.user_model.states_along([self.translate(s) for s in sequences])

    def rewards_along(
        self, sequences: Sequence[np.ndarray], candidates: Sequence[np.ndarray] | None = None
    ) -> list[np.ndarray]:
        """RM rewards after every prefix (see ``UserModel.rewards_along``), items in dataset
        indices; ``candidates`` must be LE items too."""
        seqs = [self.translate(s) for s in sequences]
        cands = None if candidates is None else [self.translate(c) for c in candidates]
        return self.user_model.rewards_along(seqs, cands)

    def item_vectors(self) -> np.ndarray:
        """``(n_items, state_dim)`` float32 SM item vectors by dataset index; zero rows for the
        items the LE lacks."""
        out = np.zeros((self.n_items, self.state_dim), dtype=np.float32)
        out[self.covered] = self.user_model.item_vectors()[self.to_le[self.covered]]
        return out


RANKS = ("sm", "rm")
"""How :class:`LEAWrapper` ranks its proposals."""


def proposal_pool(k: int, rank: str, pool: int | None = None) -> int:
    """The SM candidates an :class:`LEAWrapper` with these settings takes per transition:
    ``k`` with ``rank="sm"``; ``pool`` (default ``4 * k``) with ``rank="rm"``."""
    return int(k) if rank == "sm" else 4 * int(k) if pool is None else pool


class LEAWrapper:
    """Logged sequences plus, at every transition, the LE's top-``k`` proposed positives.

    For transition ``t`` of a sequence (state after ``seq[: t + 1]``, logged action
    ``seq[t + 1]``), the proposals are the ``k`` items of highest SM similarity
    ``states_along(seq)[t] @ item_vectors().T``, ties to the lower index, never the logged
    item, never an item the LE lacks, and with ``exclude_history`` never an item of
    ``seq[: t + 1]``. Each is rewarded by the RM after the same prefix
    (``rewards_along(seq[:-1], proposals)``). With ``rank="rm"`` the proposals are instead
    the ``k`` of highest RM reward among the SM's top ``pool`` (same exclusions): the RM
    judges what the SM finds. A trainer adds each proposal as

    - an extra cross-entropy target, weighted ``ce_weight`` (the logged item weighs 1), and
    - an extra Q-learning transition with the RM reward, weighted ``q_weight``, that shares the
      logged transition's next state and end (as Xin et al.'s code does for its sampled
      negative actions): the user is assumed to move on as logged whichever positive was
      shown.

    The wrapper exposes the data's ``users``, ``sequences``, ``rewards`` and ``n_items``
    unchanged. Both LE passes run once, here.

    Args:
        data: the logged sequences (dataset item indices).
        user_model: the LE.
        k: proposals per transition (at least 1).
        ce_weight: weight of each proposal's cross-entropy term (at least 0).
        q_weight: weight of each proposal's Q-learning term (at least 0).
        exclude_history: leave the items of the history so far out of the proposals.
        states: ``states_along(data.sequences)`` through :class:`LEView`, if already computed
            (it is the SM state input of ``agents.rl4rec`` too); computed here otherwise.
        rank: ``"sm"`` (the SM's top ``k``) or ``"rm"`` (the RM's best ``k`` of the SM's top
            ``pool``).
        pool: with ``rank="rm"``, the SM candidates the RM scores (default ``4 * k``).

    Attributes:
        proposals: per sequence ``(len(seq) - 1, k)`` int64 dataset items, best first; ``-1``
            where fewer than ``k`` items were left.
        proposal_rewards: per sequence ``(len(seq) - 1, k)`` float64 RM rewards in ``(0, 1)``;
            ``0`` where the proposal is ``-1``.

    Raises:
        ValueError: ``k < 1``, a negative or non-finite weight, an unknown ``rank``, a
            ``pool`` below ``k``, ``states`` of the wrong shapes, or items the LE lacks in
            ``data`` (see :class:`LEView`).
    """

    def __init__(
        self,
        data: LoggedSequences,
        user_model: UserModel,
        *,
        k: int = 3,
        ce_weight: float = 0.1,
        q_weight: float = 0.5,
        exclude_history: bool = True,
        states: Sequence[np.ndarray] | None = None,
        rank: str = "sm",
        pool: int | None = None,
    ) -> None:
        self._set(data, k, ce_weight, q_weight, exclude_history, rank, pool)
        view = LEView(user_model, data.n_items)
        if self.pool > int(view.covered.sum()):
            raise ValueError(
                f"k={k} (pool {self.pool}) exceeds the {int(view.covered.sum())} items the LE "
                "has; lower k or pool"
            )
        self.view = view
        active = [i for i, s in enumerate(data.sequences) if len(s) >= 2]
        if states is None:
            computed = view.states_along([data.sequences[i] for i in active])
            all_states: list[np.ndarray | None] = [None] * len(data.sequences)
            for i, computed_states in zip(active, computed, strict=True):
                all_states[i] = computed_states
        else:
            if len(states) != len(data.sequences):
                raise ValueError(f"got {len(states)} state arrays for {len(data.sequences)} users")
            all_states = list(states)
        vectors = view.item_vectors()
        self.proposals = [np.zeros((0, self.k), dtype=np.int64) for _ in data.sequences]
        self.proposal_rewards = [np.zeros((0, self.k)) for _ in data.sequences]
        for i in active:
            st = all_states[i]
            seq = data.sequences[i]
            if st is None or st.shape != (len(seq), view.state_dim):
                got = None if st is None else st.shape
                raise ValueError(
                    f"states[{i}] must be (len(seq), state_dim) = ({len(seq)}, "
                    f"{view.state_dim}); got {got}"
                )
            self.proposals[i] = self._propose(seq, st, vectors)
        self._reward(active)
        if self.rank == "rm":  # keep the pool's k best by RM reward (-1 slots score 0: last)
            for i in active:
                best = np.argsort(-self.proposal_rewards[i], axis=1, kind="stable")[:, : self.k]
                self.proposals[i] = np.take_along_axis(self.proposals[i], best, axis=1)
                self.proposal_rewards[i] = np.take_along_axis(self.proposal_rewards[i], best, 1)

    def _set(
        self,
        data: LoggedSequences,
        k: int,
        ce_weight: float,
        q_weight: float,
        exclude_history: bool,
        rank: str,
        pool: int | None,
    ) -> None:
        """Check and keep the settings (see the class)."""
        if int(k) != k or k < 1:
            raise ValueError(f"k (proposals per transition) must be an integer >= 1, got {k}")
        if rank not in RANKS:
            raise ValueError(f"rank must be one of {RANKS}, got {rank!r}")
        pool = proposal_pool(k, rank, pool)
        if int(pool) != pool or pool < k:
            raise ValueError(f"pool must be an integer >= k = {k}, got {pool}")
        for name, value in (("ce_weight", ce_weight), ("q_weight", q_weight)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        self.data = data
        self.k = int(k)
        self.ce_weight = float(ce_weight)
        self.q_weight = float(q_weight)
        self.exclude_history = exclude_history
        self.rank, self.pool = rank, int(pool)

    @classmethod
    def from_proposals(
        cls,
        data: LoggedSequences,
        user_model: UserModel,
        proposals: Sequence[np.ndarray],
        proposal_rewards: Sequence[np.ndarray],
        *,
        k: int = 3,
        ce_weight: float = 0.1,
        q_weight: float = 0.5,
        exclude_history: bool = True,
        rank: str = "sm",
        pool: int | None = None,
    ) -> LEAWrapper:
        """A wrapper over the :attr:`proposals` and :attr:`proposal_rewards` that one built
        with the same data, LE and settings computed (kept on disk, say), without the LE
        passes.

        Raises:
            ValueError: bad settings (as the class), or arrays that do not fit ``data`` and
                ``k``: ``(len(seq) - 1, k)`` per sequence (``(0, k)`` for a shorter one),
                items in ``-1..n_items-1``, finite rewards.
        """
        lea = cls.__new__(cls)
        lea._set(data, k, ce_weight, q_weight, exclude_history, rank, pool)
        lea.view = LEView(user_model, data.n_items)
        if len(proposals) != len(data.sequences) or len(proposal_rewards) != len(proposals):
            raise ValueError(
                f"got {len(proposals)} proposal and {len(proposal_rewards)} reward arrays for "
                f"{len(data.sequences)} sequences"
            )
        lea.proposals, lea.proposal_rewards = [], []
        for i, (seq, items, rewards) in enumerate(
            zip(data.sequences, proposals, proposal_rewards, strict=True)
        ):
            shape = (max(len(seq) - 1, 0), lea.k)
            items = np.asarray(items, dtype=np.int64)
            rewards = np.asarray(rewards, dtype=np.float64)
            if items.shape != shape or rewards.shape != shape:
                raise ValueError(
                    f"sequence {i}: proposals and rewards must be {shape}; got {items.shape} "
                    f"and {rewards.shape}"
                )
            if items.size and (items.min() < -1 or items.max() >= data.n_items):
                raise ValueError(f"sequence {i}: proposals must be in -1..{data.n_items - 1}")
            if not np.isfinite(rewards).all():
                raise ValueError(f"sequence {i}: proposal rewards must be finite")
            lea.proposals.append(items)
            lea.proposal_rewards.append(rewards)
        return lea

    def _propose(self, seq: np.ndarray, states: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """``(len(seq) - 1, pool)`` SM top-``pool`` per transition, exclusions applied."""
        steps = len(seq) - 1
        scores = states[:steps].astype(np.float32) @ vectors.T
        blocked = np.broadcast_to(~self.view.covered, scores.shape)
        if self.exclude_history:
            # Item i is in seq[: t + 1] from its first position on.
            first = np.full(self.data.n_items, len(seq), dtype=np.int64)
            np.minimum.at(first, seq, np.arange(len(seq)))
            blocked = blocked | (first[None, :] <= np.arange(steps)[:, None])
        np.putmask(scores, blocked, -np.inf)
        scores[np.arange(steps), seq[1:]] = -np.inf  # the logged next item
        return top_k(scores, self.pool)[0]

    def _reward(self, active: list[int]) -> None:
        """RM rewards of every proposal, one ``rewards_along`` pass for all sequences."""
        if not active:
            return
        fill = int(np.flatnonzero(self.view.covered)[0])  # scored in place of -1, then zeroed
        candidates = [np.where(self.proposals[i] < 0, fill, self.proposals[i]) for i in active]
        prefixes = [self.data.sequences[i][:-1] for i in active]
        rewards = self.view.rewards_along(prefixes, candidates)
        for i, r in zip(active, rewards, strict=True):
            self.proposal_rewards[i] = np.where(self.proposals[i] < 0, 0.0, r).astype(np.float64)

    @property
    def users(self) -> np.ndarray:
        """The data's user ids."""
        return self.data.users

    @property
    def sequences(self) -> list[np.ndarray]:
        """The data's item sequences."""
        return self.data.sequences

    @property
    def rewards(self) -> list[np.ndarray]:
        """The data's logged rewards."""
        return self.data.rewards

    @property
    def n_items(self) -> int:
        """The catalog size."""
        return self.data.n_items

    @property
    def n_proposals(self) -> int:
        """The number of proposals made (``-1`` slots not counted)."""
        return int(sum((p >= 0).sum() for p in self.proposals))
