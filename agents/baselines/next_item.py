"""Full-catalog recommenders as ``RecNext-v0`` agents: popularity, the seqrec models and
SQN / SA2C.

An :class:`ItemScoresAgent` turns any item retriever (``score(histories) -> (B, n_items)``)
into an agent: it reads the observation's ``history`` ids and returns the retriever's scores
as the action. With SASRec, GRU4Rec or LRURec (``recgym.models.seqrec``) its ``RecNext-v0`` test
figures are the models' own full-ranking evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

__all__ = ["ItemScoresAgent"]


class _Scorer(Protocol):
    n_items: int

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray: ...


class ItemScoresAgent:
    """Scores every item with ``retriever`` from the observation's history (-1 padding dropped).

    Args:
        retriever: anything with ``score(histories) -> (B, n_items)`` scores.
        config: what the leaderboard row records about it (``{"model": ..., "seed": ...}``).
    """

    def __init__(self, retriever: _Scorer, config: dict[str, Any] | None = None) -> None:
        self.retriever = retriever
        self._config = dict(config or {})

    @classmethod
    def popularity(
        cls, dataset: str = "ml-100k", dataset_kwargs: dict[str, Any] | None = None
    ) -> ItemScoresAgent:
        """Item counts over the training part of ``dataset`` (default MovieLens-100k; the same
        for every user)."""
        from recgym.models.popularity import PopularityRetriever

        retriever = PopularityRetriever.of_dataset(dataset, dataset_kwargs)
        return cls(retriever, {"counts": f"{dataset} training split"})

    @classmethod
    def popularity_for(cls, env: Any) -> ItemScoresAgent:
        """:meth:`popularity` of the dataset ``env`` is built on (MovieLens-100k for an env
        without ``dataset``)."""
        inner = getattr(env, "unwrapped", env)
        return cls.popularity(
            getattr(inner, "dataset", "ml-100k"), getattr(inner, "dataset_kwargs", None)
        )

    @classmethod
    def seqrec(
        cls, model: str = "lrurec", seed: int = 0, device: str | None = None, **overrides: Any
    ) -> ItemScoresAgent:
        """A pretrained ``recgym.models.seqrec`` model (trained and cached on first use, ~2 min
        on two cores); ``overrides`` change its :class:`recgym.models.seqrec.SeqRecConfig`
        fields."""
        from recgym.models.seqrec import pretrained  # imports torch

        retriever = pretrained(model, seed=seed, device=device, progress=False, **overrides)
        return cls(retriever, {"model": model, "seed": int(seed), **overrides})

    @classmethod
    def rl4rec(
        cls,
        algo: str = "sqn",
        variant: str = "rating",
        seed: int = 0,
        device: str | None = None,
        **config_kwargs: Any,
    ) -> ItemScoresAgent:
        """SQN or SA2C (``agents.rl4rec``, its CE head's scores) in an LE ablation ``variant``,
        trained and cached on first use (~4 min on one CPU thread for ``"rating"``; the LE
        variants run the LE first); ``config_kwargs`` go to
        :func:`agents.rl4rec.rl4rec_config` (``backbone``, ``backbone_kwargs``, ``q_weight``...)."""
        from agents.rl4rec import pretrained_rl4rec  # imports torch

        rec = pretrained_rl4rec(
            algo, variant, seed=seed, device=device, progress=False, **config_kwargs
        )
        config = {"model": f"{algo}-{variant}", "seed": int(seed), **config_kwargs}
        return cls(rec, config)

    def act(self, observation: dict[str, Any]) -> np.ndarray:
        """The scores of every item for one observation."""
        return self.act_batch([observation])[0]

    def act_batch(self, observations: Sequence[dict[str, Any]]) -> list[np.ndarray]:
        """One retriever call for the batch."""
        histories = []
        for obs in observations:
            ids = np.asarray(obs["history"], dtype=np.int64)
            histories.append(ids[ids >= 0])
        return list(np.asarray(self.retriever.score(histories), dtype=np.float32))

    def config(self) -> dict[str, Any]:
        """The model (and its training seed) behind the scores."""
        return dict(self._config)
