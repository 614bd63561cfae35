"""BM25 scoring backends, chosen by name from :data:`BACKENDS`.

Every backend scores Lucene's BM25 (Lucene ≥ 8, which drops the constant ``k1 + 1`` factor)::

    idf(t)     = ln(1 + (N - df + 0.5) / (df + 0.5))
    s(t, d)    = idf(t) * tf / (tf + k1 * (1 - b + b * dl / avgdl))
    score(q, d) = sum over query terms t of count(t, q) * s(t, d)

``count(t, q)`` is how often the analyzed query repeats ``t``: Anserini's bag-of-words query
generator boosts each term clause by that count. Backends return, per query, the best documents
with a positive score, ordered by score (float32) descending and then by lower index, so that
rankings agree across backends up to float rounding.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numba
import numpy as np

__all__ = ["BACKENDS", "Bm25sBackend", "RankBM25Backend", "ScoringBackend", "register_backend"]

Ranking = tuple[np.ndarray, np.ndarray]
"""Document indices (int64) and their scores (float32), best first."""


class ScoringBackend(ABC):
    """Scores analyzed queries against a corpus fixed at construction.

    Args:
        corpus_tokens: the analyzed terms of every document, in document order.
        k1: BM25 term-frequency saturation.
        b: BM25 length normalisation.
        threads: threads that score one batch (``None``: Numba's default, the number of CPUs
            or ``NUMBA_NUM_THREADS``); backends that score one query at a time ignore it.
    """

    name: ClassVar[str]

    def __init__(
        self,
        corpus_tokens: Sequence[Sequence[str]],
        *,
        k1: float,
        b: float,
        threads: int | None = None,
    ) -> None:
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1 (or None for Numba's default); got {threads}")
        self.n_docs = len(corpus_tokens)
        self.k1 = k1
        self.b = b
        self.threads = threads

    @abstractmethod
    def scores(self, query: Mapping[str, int]) -> np.ndarray:
        """Scores of every document (float32, shape ``(n_docs,)``) for ``term → count``."""

    def top(self, queries: Sequence[Mapping[str, int]], depths: Sequence[int]) -> list[Ranking]:
        """The ``depths[i]`` best positively scored documents of each query.

        Args:
            queries: each query as ``term → count``.
            depths: how many documents to return at most, per query.

        Returns:
            One ``(indices, scores)`` pair per query, ordered by score, then by lower index.
        """
        return [select_top(self.scores(q), d) for q, d in zip(queries, depths, strict=True)]


def select_top(scores: np.ndarray, depth: int) -> Ranking:
    """The ``depth`` best documents with a positive score, ties to the lower index (NumPy)."""
    candidates = np.flatnonzero(scores > 0)
    values = scores[candidates]
    if len(candidates) > 4 * depth:
        # Keep everything tied with the depth-th best so that ties resolve by index below.
        threshold = np.partition(values, len(values) - depth)[len(values) - depth]
        keep = values >= threshold
        candidates, values = candidates[keep], values[keep]
    order = np.lexsort((candidates, -values))[:depth]
    return candidates[order].astype(np.int64), values[order].astype(np.float32)


@numba.njit(nogil=True, cache=True)
def _sift_down(hs, hi, size, pos):
    """Restore a heap of hits whose root ``hs[0], hi[0]`` is the worst one kept.

    A hit is worse than another if its score is lower, or equal with a higher index.
    """
    while True:
        child = 2 * pos + 1
        if child >= size:
            return
        right = child + 1
        if right < size and (
            hs[right] < hs[child] or (hs[right] == hs[child] and hi[right] > hi[child])
        ):
            child = right
        if hs[child] > hs[pos] or (hs[child] == hs[pos] and hi[child] < hi[pos]):
            return
        hs[pos], hs[child] = hs[child], hs[pos]
        hi[pos], hi[child] = hi[child], hi[pos]
        pos = child


@numba.njit(nogil=True, cache=True)
def _push(hs, hi, size, depth, score, doc):
    """Keep a hit that beats the worst kept one (or fills the heap); returns the new size."""
    if size < depth:
        hs[size], hi[size] = score, doc
        size += 1
        if size == depth:
            for pos in range(depth // 2 - 1, -1, -1):
                _sift_down(hs, hi, depth, pos)
    else:
        hs[0], hi[0] = score, doc
        _sift_down(hs, hi, depth, 0)
    return size


@numba.njit(nogil=True, cache=True)
def _top_one(
    data, indices, indptr, terms, weights, depth, acc, touched, hs, hi, out_ids, out_scores
):
    """One query: weighted sums of columns of a term × document score matrix, then its top-k.

    ``acc`` (all zeros on entry and on return), ``touched``, ``hs`` and ``hi`` are scratch
    buffers; the ranking goes to ``out_ids``/``out_scores``, best first. Selection keeps a
    bounded heap and compares each matched document with the worst kept hit only, so most
    documents cost one comparison and nothing is sorted but the result. Returns its length.
    """
    n_docs = len(acc)
    n_postings = 0
    for j in range(len(terms)):
        n_postings += indptr[terms[j] + 1] - indptr[terms[j]]
    size = 0
    # Long posting lists: accumulate densely and scan every document in order (sequential
    # memory beats bookkeeping); short ones: remember which documents were touched. Two
    # separate loops, so the hot dense one carries no bookkeeping branch.
    if n_postings * 4 > n_docs:
        for j in range(len(terms)):
            term, weight = terms[j], weights[j]
            for p in range(indptr[term], indptr[term + 1]):
                acc[indices[p]] += weight * data[p]
        threshold = np.float32(0.0)  # float32, like the scores: a float64 compare is slower
        for doc in range(n_docs):
            score = acc[doc]
            # Documents come in index order, so an equal score loses to the one kept.
            if score > threshold:
                size = _push(hs, hi, size, depth, score, doc)
                if size == depth:
                    threshold = hs[0]
        acc[:] = 0.0
    else:
        n_touched = 0
        for j in range(len(terms)):
            term, weight = terms[j], weights[j]
            for p in range(indptr[term], indptr[term + 1]):
                doc = indices[p]
                if acc[doc] == 0.0:  # contributions are > 0: 0 means unseen
                    touched[n_touched] = doc
                    n_touched += 1
                acc[doc] += weight * data[p]
        for r in range(n_touched):
            doc = touched[r]
            score = acc[doc]
            acc[doc] = 0.0
            if size < depth or score > hs[0] or (score == hs[0] and doc < hi[0]):
                size = _push(hs, hi, size, depth, score, doc)
    if size < depth:  # fewer matches than depth: the heap was never built
        depth = size
        for pos in range(depth // 2 - 1, -1, -1):
            _sift_down(hs, hi, depth, pos)
    # Pop the worst hit to the back until the heap is empty: best-first output.
    for last in range(depth - 1, -1, -1):
        out_scores[last], out_ids[last] = hs[0], hi[0]
        hs[0], hi[0] = hs[last], hi[last]
        _sift_down(hs, hi, last, 0)
    return depth


@numba.njit(nogil=True, cache=True, parallel=True)
def _top_from_csc(data, indices, indptr, n_docs, q_ptr, q_terms, q_weights, depths, n_workers):
    """:func:`_top_one` for every query of a batch, spread over ``n_workers`` threads.

    Worker ``w`` takes queries ``w, w + n_workers, ...`` with its own scratch buffers, so a
    query's ranking does not depend on the number of workers.
    """
    n_queries = len(q_ptr) - 1
    width = max(1, depths.max()) if n_queries else 1
    out_ids = np.full((n_queries, width), -1, dtype=np.int64)
    out_scores = np.full((n_queries, width), -np.inf, dtype=np.float32)
    counts = np.zeros(n_queries, dtype=np.int64)
    for w in numba.prange(n_workers):
        acc = np.zeros(n_docs, dtype=np.float32)
        touched = np.empty(n_docs, dtype=np.int64)
        hs = np.empty(width, dtype=np.float32)
        hi = np.empty(width, dtype=np.int64)
        for qi in range(w, n_queries, n_workers):
            a, b = q_ptr[qi], q_ptr[qi + 1]
            counts[qi] = _top_one(
                data, indices, indptr, q_terms[a:b], q_weights[a:b], depths[qi],
                acc, touched, hs, hi, out_ids[qi], out_scores[qi],
            )  # fmt: skip
    return out_ids, out_scores, counts


class Bm25sBackend(ScoringBackend):
    """bm25s' eager index (``method="lucene"``) with a compiled, query-weighted top-k.

    bm25s precomputes ``s(t, d)`` for every (term, document) pair as a sparse matrix; a
    Numba kernel sums its columns with query-term counts as weights and selects the top
    documents among those that match, with deterministic tie-breaking, for a whole batch
    in one call, its queries spread over ``threads`` threads.
    """

    name = "bm25s"

    def __init__(
        self,
        corpus_tokens: Sequence[Sequence[str]],
        *,
        k1: float,
        b: float,
        threads: int | None = None,
    ) -> None:
        super().__init__(corpus_tokens, k1=k1, b=b, threads=threads)
        import bm25s

        self.vocab: dict[str, int] = {}
        matrix = {"data": [], "indices": [], "indptr": [0]}
        if any(corpus_tokens):  # bm25s divides by the mean length, 0 without any term
            index = bm25s.BM25(k1=k1, b=b, method="lucene", idf_method="lucene", backend="numpy")
            index.index([list(doc) for doc in corpus_tokens], show_progress=False)
            self.vocab, matrix = dict(index.vocab_dict), index.scores
        self._data = np.ascontiguousarray(matrix["data"], dtype=np.float32)
        self._indices = np.ascontiguousarray(matrix["indices"], dtype=np.int32)
        self._indptr = np.ascontiguousarray(matrix["indptr"], dtype=np.int64)

    def _encode(self, queries: Sequence[Mapping[str, int]]) -> tuple[np.ndarray, ...]:
        ptr, terms, weights = [0], [], []
        for query in queries:
            for term, count in query.items():
                tid = self.vocab.get(term)
                if tid is not None and term:
                    terms.append(tid)
                    weights.append(count)
            ptr.append(len(terms))
        return (
            np.asarray(ptr, dtype=np.int64),
            np.asarray(terms, dtype=np.int64),
            np.asarray(weights, dtype=np.float32),
        )

    def top(self, queries: Sequence[Mapping[str, int]], depths: Sequence[int]) -> list[Ranking]:
        if not queries:
            return []
        ptr, terms, weights = self._encode(queries)
        workers = min(self.threads or numba.get_num_threads(), len(queries))
        ids, scores, counts = _top_from_csc(
            self._data, self._indices, self._indptr, self.n_docs,
            ptr, terms, weights, np.asarray(depths, dtype=np.int64), workers,
        )  # fmt: skip
        # Copies, so that a cached ranking does not keep the whole batch's arrays alive.
        return [
            (ids[i, : counts[i]].copy(), scores[i, : counts[i]].copy()) for i in range(len(queries))
        ]

    def scores(self, query: Mapping[str, int]) -> np.ndarray:
        ids, values = self.top([query], [self.n_docs])[0]
        out = np.zeros(self.n_docs, dtype=np.float32)
        out[ids] = values
        return out


class RankBM25Backend(ScoringBackend):
    """The reference: rank-bm25's ``BM25`` base class with Lucene's idf and term score.

    rank-bm25 has no Lucene variant, so this subclasses its base class; scoring walks every
    document for every query token (repeats included) in Python, which is slow but plain.
    """

    name = "rank-bm25"

    def __init__(
        self,
        corpus_tokens: Sequence[Sequence[str]],
        *,
        k1: float,
        b: float,
        threads: int | None = None,
    ) -> None:
        super().__init__(corpus_tokens, k1=k1, b=b, threads=threads)
        self._model = _lucene_rank_bm25(k1, b)([list(doc) for doc in corpus_tokens])

    def scores(self, query: Mapping[str, int]) -> np.ndarray:
        tokens = [term for term, count in query.items() for _ in range(count)]
        return self._model.get_scores(tokens).astype(np.float32)


def _lucene_rank_bm25(k1: float, b: float) -> Any:
    """A ``rank_bm25.BM25`` subclass scoring Lucene's BM25 (imported lazily: it is optional)."""
    import rank_bm25

    class LuceneBM25(rank_bm25.BM25):
        def __init__(self, corpus: list[list[str]]) -> None:
            self.k1, self.b = k1, b
            super().__init__(corpus)
            self.doc_len_array = np.asarray(self.doc_len, dtype=np.float64)

        def _calc_idf(self, nd: dict[str, int]) -> None:
            n = self.corpus_size
            self.idf = {
                term: math.log(1.0 + (n - df + 0.5) / (df + 0.5)) for term, df in nd.items()
            }

        def get_scores(self, query: list[str]) -> np.ndarray:
            if self.avgdl == 0:  # no document has any term
                return np.zeros(self.corpus_size)
            norm = self.k1 * (1.0 - self.b + self.b * self.doc_len_array / self.avgdl)
            score = np.zeros(self.corpus_size)
            for term in query:  # repeated query tokens add their score again
                idf = self.idf.get(term)
                if idf is None:
                    continue
                tf = np.array([doc.get(term, 0) for doc in self.doc_freqs], dtype=np.float64)
                score += idf * tf / (tf + norm)
            return score

    return LuceneBM25


BACKENDS: dict[str, type[ScoringBackend]] = {}
"""Scoring backends by name; :class:`~recgym.retrieval.bm25.BM25Retriever` looks them up here."""


def register_backend(cls: type[ScoringBackend]) -> type[ScoringBackend]:
    """Add (or replace) a backend under ``cls.name``; usable as a class decorator."""
    BACKENDS[cls.name] = cls
    return cls


register_backend(Bm25sBackend)
register_backend(RankBM25Backend)
