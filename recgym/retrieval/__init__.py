"""Retrieval: BM25 with a Lucene-compatible English analyzer, scored like pyserini/Anserini.

``BM25Retriever.from_catalog(catalog)`` indexes a catalog; ``retrieve(queries, k)`` answers a
batch of text queries with internal item indices and scores. Backends are chosen by name from
:data:`BACKENDS` (``"bm25s"``, the default; ``"rank-bm25"``, the slow reference).
"""

from __future__ import annotations

from recgym.retrieval.analyzer import ENGLISH_STOP_WORDS, EnglishAnalyzer
from recgym.retrieval.backends import BACKENDS, ScoringBackend, register_backend
from recgym.retrieval.bm25 import BM25Retriever, CacheInfo

__all__ = [
    "BACKENDS",
    "ENGLISH_STOP_WORDS",
    "BM25Retriever",
    "CacheInfo",
    "EnglishAnalyzer",
    "ScoringBackend",
    "register_backend",
]
