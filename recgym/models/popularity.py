"""``PopularityRetriever``: the model-free retriever of ``RecRank-v0`` (and the popularity
agent's scores on ``RecNext-v0``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from recgym.metrics import top_k

__all__ = ["PopularityRetriever"]


class PopularityRetriever:
    """Ranks items by how often they occur in training sequences (a ``RecRank-v0`` retriever).

    Args:
        sequences: training sequences of item indices.
        n_items: catalog size.
    """

    name = "popularity"

    def __init__(self, sequences: Sequence[np.ndarray], n_items: int) -> None:
        counts = np.zeros(n_items, dtype=np.float64)
        for seq in sequences:
            np.add.at(counts, np.asarray(seq, dtype=np.int64), 1.0)
        self.n_items = int(n_items)
        self.counts = counts
        self.data_version = f"pop-{int(counts.sum())}-{int(counts.argmax())}"

    @classmethod
    def movielens(cls) -> PopularityRetriever:
        """Popularity over the training part of MovieLens-100k's leave-one-out split."""
        return cls.of_dataset("ml-100k")

    @classmethod
    def of_dataset(
        cls, dataset: str, dataset_kwargs: Mapping[str, Any] | None = None
    ) -> PopularityRetriever:
        """Popularity over the training part of a registered dataset's leave-one-out split
        (the split of the next-item envs on ``dataset=``)."""
        from recgym.data import leave_one_out
        from recgym.envs.one_step import load_interactions

        data = load_interactions(dataset, dataset_kwargs)
        train = leave_one_out(data.interactions).train
        return cls([train["item_idx"].to_numpy()], len(data.items))

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """The same popularity scores for every history, ``(B, n_items)``."""
        return np.tile(self.counts.astype(np.float32), (len(histories), 1))

    def retrieve(
        self, histories: Sequence[np.ndarray], k: int, *, exclude_history: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most popular items per history (history removed when asked), best first;
        ties go to the lower item index (:func:`recgym.metrics.top_k`)."""
        return top_k(self.score(histories), k, list(histories) if exclude_history else None)
