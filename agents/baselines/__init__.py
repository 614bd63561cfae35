"""Baselines: agents that need no training of their own, one module per env family.

- :mod:`agents.baselines.text`: ``RecSearch-v0`` / ``RecSeq-v0`` queries (the raw request, the
  history's titles, random words, a fixed text).
- :mod:`agents.baselines.ranking`: ``RecRank-v0`` orders (the retriever's, a random one).
- :mod:`agents.baselines.next_item`: ``RecNext-v0`` item scores from popularity or a trained
  next-item model of :mod:`recgym.models`.
- :mod:`agents.baselines.recuser`: ``RecUser-v0`` items (a random unseen one, the most popular
  unseen one, the SM's or, privileged, the RM's best unseen one).
"""

from __future__ import annotations

from agents.baselines.next_item import ItemScoresAgent
from agents.baselines.ranking import RandomOrderAgent, RetrieverOrderAgent
from agents.baselines.recuser import (
    PopularItemAgent,
    RandomItemAgent,
    RMGreedyAgent,
    SMGreedyAgent,
)
from agents.baselines.text import FixedTextAgent, HistoryAgent, RandomWordsAgent, RawQueryAgent

__all__ = [
    "FixedTextAgent",
    "HistoryAgent",
    "ItemScoresAgent",
    "PopularItemAgent",
    "RMGreedyAgent",
    "RandomItemAgent",
    "RandomOrderAgent",
    "RandomWordsAgent",
    "RawQueryAgent",
    "RetrieverOrderAgent",
    "SMGreedyAgent",
]
