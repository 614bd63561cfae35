"""The ``"fake"`` user model: a deterministic numpy test double, not a language model.

:class:`FakeUserModel` gives envs, wrappers and agents a :class:`~recgym.le.base.UserModel`
that answers in microseconds and needs no torch, so their fast tests need no trained LE. Its
items are random unit vectors with a Zipf popularity; a state is the normalised mean of the
last ``window`` items' vectors; a reward is ``sigmoid(4 * cos(state, item) + 2 * pop - 2)``,
so taste and popularity both matter and a learner can beat random. It is named ``"fake"``
everywhere it appears (``RecUser-v0(le="fake")``): it stands in for the LLM only in tests.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recgym.le.base import check_candidates, check_histories, check_items

__all__ = ["FakeUserModel"]


class FakeUserModel:
    """A deterministic stand-in for an LE (see the module docstring).

    Args:
        n_items: catalog size.
        state_dim: length of states and item vectors.
        window: history items a state reads.
        seed: seed of the item vectors and popularity.
    """

    def __init__(
        self, n_items: int = 100, state_dim: int = 16, window: int = 10, seed: int = 0
    ) -> None:
        if n_items < 2 or state_dim < 1 or window < 1:
            raise ValueError(
                f"need n_items >= 2, state_dim >= 1, window >= 1; got {n_items}, {state_dim}, "
                f"{window}"
            )
        rng = np.random.default_rng(seed)
        vectors = rng.standard_normal((n_items, state_dim))
        self._vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(
            np.float32
        )
        ranks = rng.permutation(n_items) + 1
        self._popularity = (1.0 / ranks) ** 0.5  # Zipf-like, in (0, 1]
        self._start = self._vectors[rng.integers(n_items)]  # a new user's state
        self.name = "fake"
        self.n_items = int(n_items)
        self.state_dim = int(state_dim)
        self.window = int(window)
        self.item_ids = np.arange(n_items, dtype=np.int64)

    def states(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """The normalised mean vector of each history's last ``window`` items."""
        hs = check_histories(histories, self.n_items)
        out = np.empty((len(hs), self.state_dim), dtype=np.float32)
        for i, h in enumerate(hs):
            v = self._vectors[h[-self.window :]].mean(axis=0) if h.size else self._start
            out[i] = v / max(float(np.linalg.norm(v)), 1e-6)
        return out

    def item_vectors(self) -> np.ndarray:
        """The items' unit vectors."""
        return self._vectors.copy()

    def rewards(self, histories: Sequence[np.ndarray], items: np.ndarray) -> np.ndarray:
        """``sigmoid(4 * cos(state, item) + 2 * popularity - 2)``."""
        hs = check_histories(histories, self.n_items)
        a = check_items(items, self.n_items, len(hs))
        return self._rewards(self.states(hs), a)

    def candidate_rewards(
        self, histories: Sequence[np.ndarray], candidates: np.ndarray
    ) -> np.ndarray:
        """:meth:`rewards` of every candidate (one state per history), ``(B, k)``."""
        hs = check_histories(histories, self.n_items)
        cand = check_candidates(candidates, self.n_items, len(hs))
        k = cand.shape[1]
        states = np.repeat(self.states(hs), k, axis=0)
        return self._rewards(states, cand.reshape(-1)).reshape(len(hs), k)

    def _rewards(self, states: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The reward of ``items[i]`` for ``states[i]``: the one formula both calls share, so
        that they agree exactly."""
        cos = np.einsum("bd,bd->b", states, self._vectors[items]).astype(np.float64)
        return 1.0 / (1.0 + np.exp(-(4.0 * cos + 2.0 * self._popularity[items] - 2.0)))

    def states_along(self, sequences: Sequence[np.ndarray]) -> list[np.ndarray]:
        """States after every prefix, one :meth:`states` call per sequence."""
        seqs = check_histories(sequences, self.n_items)
        return [self.states([s[: t + 1] for t in range(len(s))]) for s in seqs]

    def rewards_along(
        self, sequences: Sequence[np.ndarray], candidates: Sequence[np.ndarray] | None = None
    ) -> list[np.ndarray]:
        """Rewards after every prefix (see :meth:`recgym.le.base.UserModel.rewards_along`)."""
        seqs = check_histories(sequences, self.n_items)
        out = []
        for j, s in enumerate(seqs):
            if candidates is None:
                prefixes = [s[: t + 1] for t in range(len(s) - 1)]
                out.append(self.rewards(prefixes, s[1:]))
                continue
            cand = np.asarray(candidates[j], dtype=np.int64)
            if cand.ndim != 2 or len(cand) != len(s):
                raise ValueError(
                    f"candidates[{j}] must be (len(seq), k) = ({len(s)}, k); got {cand.shape}"
                )
            k = cand.shape[1]
            prefixes = [s[: t + 1] for t in range(len(s)) for _ in range(k)]
            out.append(self.rewards(prefixes, cand.reshape(-1)).reshape(len(s), k))
        return out
