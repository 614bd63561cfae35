"""Reference agents for ``RecRank-v0`` that need no model."""

from __future__ import annotations

from typing import Any

import numpy as np

from recgym.utils.moved import moved_names

__all__ = ["RandomOrderAgent", "RetrieverOrderAgent"]


class RetrieverOrderAgent:
    """Keeps the candidates in the order the env shows them: the retriever's ranking.

    On validation and test candidates come best-first from the retriever, so this agent's
    score is the retriever's own full-ranking NDCG@K: the bar an LLM ranker must clear.
    """

    def act(self, observation: dict[str, Any]) -> np.ndarray:
        """Scores in [-1, 0] that decrease with the candidate's letter: A first."""
        n = len(observation["candidates"])
        return -np.arange(n, dtype=np.float32) / n

    def config(self) -> dict[str, Any]:
        """No settings."""
        return {}


class RandomOrderAgent:
    """A uniformly random order of the candidates (the floor), reproducible per seed."""

    def __init__(self, seed: int | None = 0) -> None:
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        """Restart the generator at ``seed``."""
        self._rng = np.random.default_rng(seed)

    def act(self, observation: dict[str, Any]) -> np.ndarray:
        """Independent uniform scores."""
        return self._rng.random(len(observation["candidates"])).astype(np.float32)

    def config(self) -> dict[str, Any]:
        """No settings."""
        return {}


# PopularityRetriever defines RecRank-v0's "popularity" retriever, so it moved into the library.
__getattr__ = moved_names(__name__, {"PopularityRetriever": "recgym.models.popularity"})
