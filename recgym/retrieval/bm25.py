"""BM25 retrieval over an item catalog, scored like pyserini/Anserini (Lucene BM25, k1=1.2, b=0.75).

Rec-R1 retrieves with pyserini's BM25 and Anserini's bag-of-words query generator: the query is
analyzed like the documents (:class:`~recgym.retrieval.analyzer.EnglishAnalyzer`) and every
surviving term becomes a clause boosted by how often it occurs, so a repeated query word weighs
more. :class:`BM25Retriever` reproduces that, for a batch of queries per call:

>>> r = BM25Retriever(["red summer dress", "blue jeans", "red jeans"], ["a", "b", "c"])
>>> ids, scores = r.retrieve(["red jeans jeans"], k=2)
>>> r.to_item_ids(ids).tolist()
[['c', 'b']]

Differences from Lucene: a query over ``max_query_tokens`` terms is truncated (Lucene throws
``TooManyClauses`` past 1,024 clauses), and document lengths are exact, not Lucene's one-byte
approximation, so scores can differ from pyserini's in the last digits.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from recgym.error import DataFormatError, UnknownNameError
from recgym.retrieval.analyzer import EnglishAnalyzer
from recgym.retrieval.backends import BACKENDS, Ranking, ScoringBackend

if TYPE_CHECKING:
    from recgym.data.catalog import ItemCatalog

__all__ = ["BM25Retriever", "CacheInfo"]

QueryKey = tuple[tuple[str, int], ...]


def _query_key(terms: list[str]) -> QueryKey:
    """A query's bag of terms in canonical (sorted) order: the cache key, and the summation
    order of its term scores, so equal bags give bit-identical scores."""
    return tuple(sorted(Counter(terms).items()))


class CacheInfo(NamedTuple):
    """Counters of :meth:`BM25Retriever.retrieve`'s query cache.

    Attributes:
        hits: queries answered from the LRU cache of earlier calls.
        misses: rankings computed by the backend.
        deduplicated: queries answered by an identical query (same terms) of the same batch.
        maxsize: the cache's capacity in queries (0: disabled).
        currsize: queries now cached.
    """

    hits: int
    misses: int
    deduplicated: int
    maxsize: int
    currsize: int


class _Entry(NamedTuple):
    ids: np.ndarray
    scores: np.ndarray
    complete: bool  # True when every matching document is in ids

    def serves(self, depth: int) -> bool:
        return self.complete or len(self.ids) >= depth


class BM25Retriever:
    """A BM25 index over documents, answering batches of text queries with item indices.

    Args:
        documents: one text per item.
        item_ids: external ids, parallel to ``documents`` (default: ``0..n-1``).
        k1: BM25 term-frequency saturation (pyserini: 1.2).
        b: BM25 length normalisation (pyserini: 0.75).
        backend: a name from :data:`~recgym.retrieval.backends.BACKENDS` (``"bm25s"``, fast;
            ``"rank-bm25"``, the slow reference).
        max_query_tokens: analyzed query terms kept per query; the rest is ignored.
        cache_size: analyzed queries whose rankings are kept (LRU); 0 disables the cache.
        analyzer: the analyzer for documents and queries (default: a new
            :class:`~recgym.retrieval.analyzer.EnglishAnalyzer`); documents are analyzed with
            its own ``max_tokens`` (normally none), queries with ``max_query_tokens``.
        threads: threads that score one batch of queries (``None``: Numba's default, the
            number of CPUs or ``NUMBA_NUM_THREADS``); rankings do not depend on it.

    Raises:
        DataFormatError: if ``documents`` is empty or not all strings, or ``item_ids`` has
            another length.
        UnknownNameError: if ``backend`` is not registered.

    A retriever is not thread-safe (its cache is shared state); use one per thread or process.
    """

    def __init__(
        self,
        documents: Sequence[str],
        item_ids: Sequence[Any] | None = None,
        *,
        k1: float = 1.2,
        b: float = 0.75,
        backend: str = "bm25s",
        max_query_tokens: int = 1024,
        cache_size: int = 1024,
        analyzer: EnglishAnalyzer | None = None,
        threads: int | None = None,
    ) -> None:
        if isinstance(documents, str) or len(documents) == 0:
            raise DataFormatError(
                "BM25Retriever needs a non-empty list of document texts; got "
                f"{'a single string' if isinstance(documents, str) else 'an empty corpus'}. "
                "Pass one text per item, e.g. catalog.texts()."
            )
        bad = next((i for i, doc in enumerate(documents) if not isinstance(doc, str)), -1)
        if bad >= 0:
            raise DataFormatError(
                f"documents must be strings; document {bad} is {type(documents[bad]).__name__}: "
                f"{documents[bad]!r} (render missing texts as '')"
            )
        if item_ids is not None and len(item_ids) != len(documents):
            raise DataFormatError(
                f"item_ids must be parallel to documents: got {len(item_ids)} ids for "
                f"{len(documents)} documents"
            )
        if backend not in BACKENDS:
            raise UnknownNameError(
                f"no BM25 backend named {backend!r}; known backends: {', '.join(sorted(BACKENDS))}"
            )
        if threads is not None and threads < 1:
            raise DataFormatError(
                f"threads must be >= 1 (or None for Numba's default); got {threads}"
            )
        if max_query_tokens < 1 or cache_size < 0:
            raise DataFormatError(
                f"need max_query_tokens >= 1 and cache_size >= 0; got {max_query_tokens} and "
                f"{cache_size}"
            )
        self.k1, self.b = float(k1), float(b)
        self.backend_name = backend
        self.max_query_tokens = int(max_query_tokens)
        self.cache_size = int(cache_size)
        self.analyzer = analyzer if analyzer is not None else EnglishAnalyzer()
        self._item_ids = np.empty(len(documents), dtype=object)  # 1-D even for tuple ids
        self._item_ids[:] = list(item_ids) if item_ids is not None else range(len(documents))
        corpus_tokens = self.analyzer.analyze_batch(documents, max_tokens=None)
        self.backend: ScoringBackend = BACKENDS[backend](
            corpus_tokens, k1=self.k1, b=self.b, threads=threads
        )
        self._cache: OrderedDict[QueryKey, _Entry] = OrderedDict()
        self._hits = self._misses = self._deduplicated = 0

    @classmethod
    def from_catalog(cls, catalog: ItemCatalog, **kwargs: Any) -> BM25Retriever:
        """Index every item of ``catalog`` by its rendered text; ids are its external item ids.

        Args:
            catalog: the item catalog.
            **kwargs: further arguments of :class:`BM25Retriever`.
        """
        return cls(catalog.texts(), list(catalog.item_ids), **kwargs)

    def __len__(self) -> int:
        return self.backend.n_docs

    @property
    def item_ids(self) -> np.ndarray:
        """External item ids, indexed by internal item index (object array)."""
        return self._item_ids

    def to_item_ids(self, indices: np.ndarray) -> np.ndarray:
        """External ids of internal indices (any shape); padding ``-1`` becomes ``None``."""
        indices = np.asarray(indices, dtype=np.int64)
        out = np.full(indices.shape, None, dtype=object)
        valid = indices >= 0
        out[valid] = self._item_ids[indices[valid]]
        return out

    def analyze_query(self, query: str) -> list[str]:
        """The terms a query is searched with (at most ``max_query_tokens``)."""
        return self.analyzer.analyze(query, max_tokens=self.max_query_tokens)

    def scores(self, query: str) -> np.ndarray:
        """The BM25 score of every document for one query (float32, shape ``(len(self),)``)."""
        return self.backend.scores(dict(_query_key(self.analyze_query(query))))

    def retrieve(
        self,
        queries: Sequence[str],
        k: int,
        exclude: Sequence[Collection[int]] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best items for each query of a batch.

        Documents that share no term with a query score 0 and are never returned; when fewer
        than ``k`` documents match, rows are padded with index ``-1`` and score ``-inf``. Equal
        scores are ordered by lower item index. Queries with the same analyzed terms are scored
        once per call, and rankings are cached across calls (see :meth:`cache_info`).

        Args:
            queries: query texts.
            k: results per query (may exceed the number of documents).
            exclude: per query, internal item indices never to return (e.g. the user's
                history); the rows are still filled to ``k`` from the other documents.

        Returns:
            ``(ids, scores)``: internal item indices (int64) and scores (float32), both of shape
            ``(len(queries), k)``, best first.

        Raises:
            DataFormatError: on ``k < 1``, a single string instead of a list, non-string
                queries, or an ``exclude`` that is not parallel to ``queries`` or holds an index
                outside the catalog.
        """
        excluded = self._check_args(queries, k, exclude)
        n_docs = len(self)
        # Sampled completions often repeat: analyze each distinct text once (pure Python).
        texts = list(dict.fromkeys(queries))
        analyzed = self.analyzer.analyze_batch(texts, max_tokens=self.max_query_tokens)
        key_of = {text: _query_key(terms) for text, terms in zip(texts, analyzed, strict=True)}
        keys = [key_of[query] for query in queries]
        depths = [min(k + len(ex), n_docs) for ex in excluded]
        rankings = self._rankings(keys, depths)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        for row, (key, ex) in enumerate(zip(keys, excluded, strict=True)):
            top_ids, top_scores = rankings[key]
            if len(ex):
                keep = ~np.isin(top_ids, ex)
                top_ids, top_scores = top_ids[keep], top_scores[keep]
            n = min(k, len(top_ids))
            ids[row, :n] = top_ids[:n]
            scores[row, :n] = top_scores[:n]
        return ids, scores

    def cache_info(self) -> CacheInfo:
        """Hits, misses, within-batch duplicates, capacity and size of the query cache."""
        return CacheInfo(
            self._hits, self._misses, self._deduplicated, self.cache_size, len(self._cache)
        )

    def cache_clear(self) -> None:
        """Empty the query cache and reset its counters."""
        self._cache.clear()
        self._hits = self._misses = self._deduplicated = 0

    def _check_args(
        self, queries: Sequence[str], k: int, exclude: Sequence[Collection[int]] | None
    ) -> list[np.ndarray]:
        if isinstance(queries, str):
            raise DataFormatError(
                "retrieve() takes a batch: pass a list of query strings, e.g. [query]"
            )
        for query in queries:
            if not isinstance(query, str):
                raise DataFormatError(
                    f"queries must be strings; got {type(query).__name__}: {query!r}"
                )
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise DataFormatError(f"k must be an integer >= 1; got {k!r}")
        if exclude is None:
            return [np.empty(0, dtype=np.int64)] * len(queries)
        if len(exclude) != len(queries):
            raise DataFormatError(
                f"exclude must hold one collection of item indices per query: got "
                f"{len(exclude)} for {len(queries)} queries (use [] for queries without any)"
            )
        out = []
        for items in exclude:
            arr = np.unique(np.fromiter((int(i) for i in items), dtype=np.int64))
            if len(arr) and (arr[0] < 0 or arr[-1] >= len(self)):
                raise DataFormatError(
                    f"exclude holds item index {arr[0] if arr[0] < 0 else arr[-1]}, outside "
                    f"0..{len(self) - 1}; pass internal item indices (see catalog.indices())"
                )
            out.append(arr)
        return out

    def _rankings(self, keys: list[QueryKey], depths: list[int]) -> dict[QueryKey, Ranking]:
        """Rankings deep enough for every (key, depth), from the cache or the backend."""
        need: dict[QueryKey, int] = {}
        for key, depth in zip(keys, depths, strict=True):
            if key in need:
                self._deduplicated += 1
            need[key] = max(depth, need.get(key, 0))
        found: dict[QueryKey, Ranking] = {}
        todo: list[QueryKey] = []
        for key, depth in need.items():
            entry = self._cache.get(key)
            if entry is not None and entry.serves(depth):
                self._cache.move_to_end(key)
                self._hits += 1
                found[key] = (entry.ids, entry.scores)
            else:
                todo.append(key)
        self._misses += len(todo)
        results = self.backend.top([dict(key) for key in todo], [need[key] for key in todo])
        for key, (ids, scores) in zip(todo, results, strict=True):
            found[key] = (ids, scores)
            self._store(key, ids, scores, complete=len(ids) < need[key] or need[key] >= len(self))
        return found

    def _store(self, key: QueryKey, ids: np.ndarray, scores: np.ndarray, complete: bool) -> None:
        if self.cache_size == 0:
            return
        ids.flags.writeable = False  # cached arrays are shared between calls
        scores.flags.writeable = False
        self._cache[key] = _Entry(ids, scores, complete)
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
