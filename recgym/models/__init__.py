"""Models that define an env's dynamics or reward: the env needs them to exist.

An env names them and gets them from here, never from ``agents`` (an agent only plays an env):

- :mod:`recgym.models.seqrec`: SASRec, GRU4Rec and LRURec next-item models, ``RecRank-v0``'s
  candidate retrievers (``pretrained("lrurec")``);
- :mod:`recgym.models.popularity`: :class:`PopularityRetriever`, ``RecRank-v0``'s model-free
  ``"popularity"`` retriever;
- :mod:`recgym.models.kar`: the knowledge-augmented recommender that judges ``RecPref-v0``
  (``pretrained_kar("sasrec")``).

A trained model is made by an explicit call (``pretrained``, ``pretrained_kar``) that trains on
first use and then loads from the cache (:func:`recgym.data.cache.cache_dir`). ``import
recgym.models`` is light (no torch): the sub-modules and their main names load on first
attribute access, e.g. ``recgym.models.PopularityRetriever``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "KARRecommender",
    "PopularityRetriever",
    "SeqRecRetriever",
    "kar",
    "popularity",
    "pretrained",
    "pretrained_kar",
    "seqrec",
]

_MODULES = {"kar", "popularity", "seqrec"}
_NAMES = {
    "KARRecommender": "kar",
    "pretrained_kar": "kar",
    "PopularityRetriever": "popularity",
    "SeqRecRetriever": "seqrec",
    "pretrained": "seqrec",
}
"""Public name → the sub-module that defines it (imported on first access)."""

if TYPE_CHECKING:
    from recgym.models import kar, popularity, seqrec
    from recgym.models.kar import KARRecommender, pretrained_kar
    from recgym.models.popularity import PopularityRetriever
    from recgym.models.seqrec import SeqRecRetriever, pretrained


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(f"recgym.models.{name}")
    if name in _NAMES:
        return getattr(importlib.import_module(f"recgym.models.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'recgym.models' has no attribute {name!r}")
