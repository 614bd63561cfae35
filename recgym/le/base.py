"""What every LLM environment model (LE) offers: the :class:`UserModel` protocol.

An LE is a simulated user, after Wang et al., *LLM as environment* (SIGIR 2024): a **state
model** (SM) that turns a history of items into a state vector, and a **reward model** (RM) that
scores one candidate item for a history. ``RecUser-v0`` steps users with it; the offline
recommenders of ``agents.rl4rec`` read SM states and RM rewards along logged sequences, and
:class:`recgym.wrappers.LEAWrapper` adds its proposed positives to their training data.

Items are the LE's own catalog indices ``0..n_items-1``; :attr:`UserModel.item_ids` maps them to
the dataset's item indices. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["DEFAULT_LE", "UserModel", "check_candidates", "check_histories", "check_items"]

DEFAULT_LE = "ml-100k-smollm2-v2"
"""The registered LE that ``RecUser-v0`` and the LE studies use by default; it ships trained
with the package (:mod:`recgym.le.hub`)."""


@runtime_checkable
class UserModel(Protocol):
    """A simulated user: state model (SM) and reward model (RM) over a fixed item catalog.

    Implemented by :class:`recgym.le.model.LLMEnvironment` (an LLM with item tokens and two LoRA
    adapters) and :class:`recgym.le.fake.FakeUserModel` (the deterministic ``"fake"`` test
    double).
    """

    name: str
    """The name or folder the model was loaded from (``env.spec`` records it)."""
    n_items: int
    """Catalog size: actions and history entries are ``0..n_items-1``."""
    state_dim: int
    """Length of a state vector."""
    window: int
    """How far back the SM and RM read a history (see :meth:`states`)."""
    item_ids: np.ndarray
    """``(n_items,)`` the dataset item index of each LE item (MovieLens-100k's ``item_idx``)."""

    def states(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """``(B, state_dim)`` float32 unit vectors: the SM state after each history.

        A history is an int array of LE item indices, oldest first; only its recent items are
        read (about the last :attr:`window`; the real LE reads ``window`` to ``2 * window - 1``);
        an empty history is allowed (the state of a new user).
        """
        ...

    def item_vectors(self) -> np.ndarray:
        """``(n_items, state_dim)`` float32 unit vectors: the SM's action embeddings.

        ``states(h) @ item_vectors().T`` is the SM's state–action similarity, the score it was
        trained to give the next item.
        """
        ...

    def rewards(self, histories: Sequence[np.ndarray], items: np.ndarray) -> np.ndarray:
        """``(B,)`` float64 in ``(0, 1)``: the RM's reward for recommending ``items[i]`` after
        ``histories[i]`` (the calibrated probability that the user takes it; 0.5 is the RM's
        boundary between a logged next item and a random unseen one)."""
        ...

    def candidate_rewards(
        self, histories: Sequence[np.ndarray], candidates: np.ndarray
    ) -> np.ndarray:
        """``(B, k)`` float64: the RM's reward for each of ``k`` candidates after each history.

        ``candidates`` is a ``(B, k)`` int array, row ``i`` the items to score after
        ``histories[i]``; entry ``[i, j]`` equals ``rewards([histories[i]], [candidates[i, j]])``
        (what a greedy agent needs to rank many items for one user in one call).
        """
        ...

    def states_along(self, sequences: Sequence[np.ndarray]) -> list[np.ndarray]:
        """For each sequence, ``(len(seq), state_dim)``: row ``t`` is ``states([seq[: t + 1]])``.

        One pass per sequence instead of one call per prefix (for offline training data).
        """
        ...

    def rewards_along(
        self, sequences: Sequence[np.ndarray], candidates: Sequence[np.ndarray] | None = None
    ) -> list[np.ndarray]:
        """RM rewards at every prefix of each sequence, in one pass per sequence.

        Args:
            sequences: item index arrays, oldest first.
            candidates: per sequence, ``(len(seq), k)`` items to score after each prefix
                ``seq[: t + 1]``; ``None`` scores the logged next item, ``seq[t + 1]``.

        Returns:
            Per sequence, ``(len(seq), k)`` rewards (``candidates`` given) or ``(len(seq) - 1,)``
            (the logged next items): row ``t`` equals ``rewards([seq[: t + 1]] * k, row)``.
        """
        ...


def check_histories(histories: Sequence[np.ndarray], n_items: int) -> list[np.ndarray]:
    """Histories as int64 arrays, refusing ids outside ``0..n_items-1`` with a clear error."""
    if isinstance(histories, np.ndarray) and histories.ndim == 1:
        raise TypeError("pass a list of histories (one int array per user), not one history")
    out = []
    for h in histories:
        arr = np.asarray(h, dtype=np.int64).reshape(-1)
        if arr.size and (arr.min() < 0 or arr.max() >= n_items):
            raise ValueError(
                f"history items must be LE item indices in 0..{n_items - 1}; got {arr.min()}.."
                f"{arr.max()}"
            )
        out.append(arr)
    return out


def check_items(items: np.ndarray | Sequence[int], n_items: int, batch: int) -> np.ndarray:
    """One item per history as an int64 ``(batch,)`` array, range-checked."""
    arr = np.asarray(items, dtype=np.int64).reshape(-1)
    if len(arr) != batch:
        raise ValueError(f"got {len(arr)} items for {batch} histories; pass one item per history")
    if arr.size and (arr.min() < 0 or arr.max() >= n_items):
        raise ValueError(f"items must be in 0..{n_items - 1}; got {arr.min()}..{arr.max()}")
    return arr


def check_candidates(
    candidates: np.ndarray | Sequence[Sequence[int]], n_items: int, batch: int
) -> np.ndarray:
    """Candidate items as an int64 ``(batch, k)`` array (one row per history), range-checked."""
    arr = np.asarray(candidates)
    if arr.ndim != 2 or len(arr) != batch or (arr.size and arr.dtype.kind not in "iu"):
        raise ValueError(
            f"candidates must be a ({batch}, k) int array, one row of items per history; got "
            f"shape {arr.shape} of {arr.dtype}"
        )
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= n_items):
        raise ValueError(f"candidates must be in 0..{n_items - 1}; got {arr.min()}..{arr.max()}")
    return arr
