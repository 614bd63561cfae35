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
        self.build(corpus_tokens)

    @abstractmethod
    def build(self, corpus_tokens: Sequence[Sequence[str]]) -> None:
        """Index the analyzed documents (called once, by ``__init__``; a backend implements it)."""

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


_BINS = 4096  # histogram bins of the threshold search


@numba.njit(nogil=True, cache=True)
def _boundary_bin(hist, depth):
    """The lowest bin such that the bins from it up hold at least ``depth`` hits (0 if none)."""
    total = 0
    for b in range(len(hist) - 1, -1, -1):
        total += hist[b]
        if total >= depth:
            return b
    return 0


@numba.njit(nogil=True, cache=True)
def _shrink(scores, docs, n, depth):
    """Keep (in place, in order) the hits of the score bins that hold the best ``depth``.

    Scores are binned linearly between their min and max; the kept hits are every hit of the
    boundary bin and above, so at least ``depth`` (or all) remain and ties stay together.
    Returns how many remain.
    """
    lo, hi = scores[0], scores[0]
    for r in range(1, n):
        lo, hi = min(lo, scores[r]), max(hi, scores[r])
    if hi == lo:
        return n
    scale = (_BINS - 1) / (hi - lo)
    hist = np.zeros(_BINS, dtype=np.int64)
    for r in range(n):
        hist[int((scores[r] - lo) * scale)] += 1
    edge = _boundary_bin(hist, depth)
    kept = 0
    for r in range(n):
        if int((scores[r] - lo) * scale) >= edge:
            scores[kept], docs[kept] = scores[r], docs[r]
            kept += 1
    return kept


@numba.njit(nogil=True, cache=True)
def _sampled_cut(acc, stride, want):
    """A score such that about ``want`` documents score at or above it, estimated from every
    ``stride``-th document's score (0 = no match): the lower edge of a histogram bin."""
    hi = np.float32(0.0)
    for doc in range(0, len(acc), stride):
        hi = max(hi, acc[doc])
    if hi == 0.0:
        return np.float32(0.0)
    scale = (_BINS - 1) / hi
    hist = np.zeros(_BINS, dtype=np.int64)
    for doc in range(0, len(acc), stride):
        if acc[doc] > 0.0:
            hist[int(acc[doc] * scale)] += 1
    return np.float32(_boundary_bin(hist, want // stride + 1) / scale)


@numba.njit(nogil=True, cache=True)
def _gather_above(acc, cut, scores, docs):
    """Every matching document (score > 0) scoring at least ``cut``, in index order."""
    n = 0
    for doc in range(len(acc)):
        score = acc[doc]
        if score >= cut and score > 0.0:
            scores[n], docs[n] = score, doc
            n += 1
    return n


@numba.njit(nogil=True, cache=True)
def _emit(scores, docs, n, depth, in_index_order, out_ids, out_scores):
    """Write the best ``depth`` of ``n`` hits, by score then lower index; returns how many.

    Many hits are first cut down by score histograms (:func:`_shrink`) to little more than
    ``depth``; then two stable sorts (by index unless the hits already are in index order,
    then by score) order them.
    """
    while n > 4 * depth:
        kept = _shrink(scores, docs, n, depth)
        if kept == n:  # all tied, or no bin to split: sort what is left
            break
        n = kept
    s, d = scores[:n], docs[:n]
    if not in_index_order:
        by_doc = np.argsort(d, kind="mergesort")
        s, d = s[by_doc], d[by_doc]
    order = np.argsort(-s, kind="mergesort")  # stable: equal scores keep index order
    k = min(depth, n)
    for r in range(k):
        out_ids[r], out_scores[r] = d[order[r]], s[order[r]]
    return k


@numba.njit(nogil=True, cache=True)
def _top_one(data, indices, indptr, terms, weights, depth, acc, cand, touched, out_ids, out_scores):
    """One query: weighted sums of columns of a term × document score matrix, then its top-k.

    ``acc`` (all zeros on entry and on return), ``cand`` and ``touched`` are scratch buffers;
    the ranking goes to ``out_ids``/``out_scores``, best first. Returns its length.

    Selection never sorts the matches: a histogram of their scores finds the score bin that
    holds the ``depth``-th best, only the matches from that bin up are kept, and those
    (little more than ``depth``) are sorted (:func:`_emit`).
    """
    n_docs = len(acc)
    n_postings = 0
    for j in range(len(terms)):
        n_postings += indptr[terms[j] + 1] - indptr[terms[j]]
    # Long posting lists: accumulate densely and scan every document in order (sequential
    # memory beats bookkeeping); short ones: remember which documents were touched. Two
    # separate loops, so the hot dense one carries no bookkeeping branch.
    if n_postings * 4 <= n_docs:
        n = 0
        for j in range(len(terms)):
            term, weight = terms[j], weights[j]
            for p in range(indptr[term], indptr[term + 1]):
                doc = indices[p]
                if acc[doc] == 0.0:  # contributions are > 0: 0 means unseen
                    touched[n] = doc
                    n += 1
                acc[doc] += weight * data[p]
        for r in range(n):
            cand[r] = acc[touched[r]]
            acc[touched[r]] = 0.0
        return _emit(cand, touched, n, depth, False, out_ids, out_scores)
    for j in range(len(terms)):
        term, weight = terms[j], weights[j]
        for p in range(indptr[term], indptr[term + 1]):
            acc[indices[p]] += weight * data[p]
    if n_docs >= 64 * depth:
        # A large corpus: guess a cut from a histogram of every 16th score, one that keeps
        # about 2 x depth documents, and gather everything at or above it in one pass. Any cut
        # that keeps at least depth documents is exact; a miss falls through to the full pass.
        n = _gather_above(acc, _sampled_cut(acc, 16, 2 * depth), cand, touched)
        if n >= depth:
            acc[:] = 0.0
            return _emit(cand, touched, n, depth, True, out_ids, out_scores)
    # Every match, in index order; _emit's histograms cut them down to about depth.
    n = _gather_above(acc, np.float32(0.0), cand, touched)
    acc[:] = 0.0
    return _emit(cand, touched, n, depth, True, out_ids, out_scores)


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
        cand = np.empty(n_docs, dtype=np.float32)
        touched = np.empty(n_docs, dtype=np.int64)
        for qi in range(w, n_queries, n_workers):
            a, b = q_ptr[qi], q_ptr[qi + 1]
            counts[qi] = _top_one(
                data,
                indices,
                indptr,
                q_terms[a:b],
                q_weights[a:b],
                depths[qi],
                acc,
                cand,
                touched,
                out_ids[qi],
                out_scores[qi],
            )
    return out_ids, out_scores, counts


class Bm25sBackend(ScoringBackend):
    """bm25s' eager index (``method="lucene"``) with a compiled, query-weighted top-k.

    bm25s precomputes ``s(t, d)`` for every (term, document) pair as a sparse matrix; a
    Numba kernel sums its columns with query-term counts as weights and selects the top
    documents among those that match, with deterministic tie-breaking, for a whole batch
    in one call, its queries spread over ``threads`` threads.
    """

    name = "bm25s"

    def build(self, corpus_tokens: Sequence[Sequence[str]]) -> None:
        import bm25s

        self.vocab: dict[str, int] = {}
        matrix = {"data": [], "indices": [], "indptr": [0]}
        if any(corpus_tokens):  # bm25s divides by the mean length, 0 without any term
            index = bm25s.BM25(
                k1=self.k1, b=self.b, method="lucene", idf_method="lucene", backend="numpy"
            )
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
            self._data,
            self._indices,
            self._indptr,
            self.n_docs,
            ptr,
            terms,
            weights,
            np.asarray(depths, dtype=np.int64),
            workers,
        )
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

    def build(self, corpus_tokens: Sequence[Sequence[str]]) -> None:
        self._model = _lucene_rank_bm25(self.k1, self.b)([list(doc) for doc in corpus_tokens])

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
