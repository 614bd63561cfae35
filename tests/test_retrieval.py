"""BM25 retrieval: the Lucene-style analyzer, hand-computed scores, backend parity, batching."""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recgym.data.catalog import ItemCatalog
from recgym.error import DataFormatError, RecGymError, UnknownNameError
from recgym.retrieval import BACKENDS, ENGLISH_STOP_WORDS, BM25Retriever, EnglishAnalyzer

BACKEND_NAMES = sorted(BACKENDS)


# --------------------------------------------------------------------------- analyzer


def test_stop_words_are_lucenes_33() -> None:
    assert len(ENGLISH_STOP_WORDS) == 33
    assert {"a", "and", "or", "not", "the", "with", "their", "such"} <= ENGLISH_STOP_WORDS
    assert "me" not in ENGLISH_STOP_WORDS  # not in Lucene's list, unlike NLTK's


def test_boolean_words_are_plain_stop_words() -> None:
    assert EnglishAnalyzer()("shoes AND socks OR NOT hats") == ["shoe", "sock", "hat"]


@pytest.mark.parametrize(
    ("word", "stem"),
    [
        ("running", "run"),
        ("dresses", "dress"),
        ("Jeans", "jean"),
        ("comfortable", "comfort"),
        # Lucene's PorterStemmer, not Snowball's: short words untouched, -logi/-bli departures.
        ("us", "us"),
        ("technology", "technolog"),
        ("possibly", "possibl"),
        ("incredibly", "incred"),
    ],
)
def test_porter_stemming_like_lucene(word: str, stem: str) -> None:
    assert EnglishAnalyzer()(word) == [stem]


def test_splits_on_non_alphanumerics_but_keeps_word_internal_marks() -> None:
    analyzer = EnglishAnalyzer()
    assert analyzer("t-shirt/jeans,skirt;(top)") == ["t", "shirt", "jean", "skirt", "top"]
    # UAX #29 keeps apostrophes and dots inside words and numbers; possessives are dropped.
    assert analyzer("Women's don't 1,000.50 U.S.A.") == ["women", "don't", "1,000.50", "u.s.a"]
    assert analyzer("size_xl!!!") == ["size_xl"]


def test_unicode_letters_and_digits() -> None:
    assert EnglishAnalyzer()("CAFÉ Größe ÜBER 42cm") == ["café", "größe", "über", "42cm"]
    assert EnglishAnalyzer()("北京dress") == ["北", "京", "dress"]  # one token per ideograph


def test_max_tokens_caps_a_megabyte_string() -> None:
    analyzer = EnglishAnalyzer(max_tokens=16)
    assert len(analyzer("cotton dress " * 80_000)) == 16
    # One giant "word" is scanned only up to 64 characters per allowed token.
    assert len(analyzer("x" * 1_000_000)) <= 16
    assert EnglishAnalyzer()("red shirt", max_tokens=1) == ["red"]


def test_stems_are_cached_per_word() -> None:
    analyzer = EnglishAnalyzer()
    assert analyzer.analyze_batch(["running shoes", "shoes running"]) == [
        ["run", "shoe"],
        ["shoe", "run"],
    ]
    assert analyzer._stems == {"running": "run", "shoes": "shoe"}


# --------------------------------------------------------------------------- scoring


def _lucene(tf: float, df: int, dl: int, n: int, avgdl: float) -> float:
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
    return idf * tf / (tf + 1.2 * (1 - 0.75 + 0.75 * dl / avgdl))


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_scores_match_hand_computed_lucene_bm25(backend: str) -> None:
    # Terms: [red, dress], [blue, dress, dress], [red, shoe] -> lengths 2, 3, 2.
    r = BM25Retriever(["Red dress", "blue dresses and dress", "red shoes"], backend=backend)
    avgdl = 7 / 3
    expected = [
        _lucene(1, 2, 2, 3, avgdl),
        _lucene(2, 2, 3, 3, avgdl) + _lucene(1, 1, 3, 3, avgdl),
        0.0,
    ]
    np.testing.assert_allclose(r.scores("blue dress"), expected, rtol=1e-6)
    ids, scores = r.retrieve(["blue dress"], k=3)
    assert ids.tolist() == [[1, 0, -1]]
    np.testing.assert_allclose(scores[0, :2], [expected[1], expected[0]], rtol=1e-6)
    assert scores[0, 2] == -np.inf


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_repeated_query_terms_weigh_more(backend: str) -> None:
    r = BM25Retriever(["red red red", "dress", "green"], backend=backend, cache_size=0)
    once, twice = r.scores("red dress"), r.scores("red dress dress")
    red, dress = r.scores("red"), r.scores("dress")
    np.testing.assert_allclose(twice, red + 2 * dress, rtol=1e-6)
    assert not np.allclose(once, twice)
    assert r.retrieve(["red dress"], k=1)[0][0, 0] == 0
    assert r.retrieve(["red dress dress"], k=1)[0][0, 0] == 1  # the weight flips the ranking


# --------------------------------------------------------------------------- backend parity


_SYLLABLES = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "ve", "du", "ba", "zo"]


def _synthetic_corpus(n_docs: int, n_queries: int, seed: int) -> tuple[list[str], list[str]]:
    """Documents and queries over a Zipf-distributed vocabulary, with some stop words mixed in."""
    rng = np.random.default_rng(seed)
    vocab = [a + b + c for a in _SYLLABLES for b in _SYLLABLES for c in _SYLLABLES[:3]]
    vocab += ["the", "and", "of"]
    weights = 1.0 / np.arange(1, len(vocab) + 1) ** 1.1
    weights /= weights.sum()

    def text(lo: int, hi: int) -> str:
        return " ".join(rng.choice(vocab, size=int(rng.integers(lo, hi)), p=weights))

    return [text(0, 60) for _ in range(n_docs)], [text(1, 12) for _ in range(n_queries)]


def test_backends_agree_on_a_synthetic_corpus() -> None:
    docs, queries = _synthetic_corpus(300, 50, seed=7)
    fast = BM25Retriever(docs, backend="bm25s")
    ref = BM25Retriever(docs, backend="rank-bm25")
    ids_f, sc_f = fast.retrieve(queries, k=len(docs))
    ids_r, sc_r = ref.retrieve(queries, k=len(docs))
    np.testing.assert_array_equal(ids_f == -1, ids_r == -1)  # same documents match
    np.testing.assert_allclose(sc_f, sc_r, rtol=1e-5)
    for row in range(len(queries)):
        n = int((ids_f[row] >= 0).sum())
        scores = sc_r[row, :n].astype(np.float64)
        # Group positions whose scores are equal up to float rounding: within a group the
        # order may legitimately differ, across groups it may not.
        groups = np.concatenate([[0], np.cumsum(~np.isclose(scores[1:], scores[:-1], rtol=1e-5))])
        for g in np.unique(groups):
            pos = groups == g
            assert set(ids_f[row, :n][pos]) == set(ids_r[row, :n][pos])
    # A short list is the head of the full ranking.
    ids_10, _ = fast.retrieve(queries, k=10)
    np.testing.assert_array_equal(ids_10, ids_f[:, :10])


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    k=st.integers(1, 40),
    n_excluded=st.integers(0, 10),
)
def test_retrieve_equals_sorting_all_scores(seed: int, k: int, n_excluded: int) -> None:
    docs, queries = _synthetic_corpus(30, 4, seed)
    r = BM25Retriever(docs)
    rng = np.random.default_rng(seed)
    exclude = [set(rng.choice(len(docs), size=n_excluded, replace=False).tolist())] * len(queries)
    ids, scores = r.retrieve(queries, k=k, exclude=exclude)
    for row, query in enumerate(queries):
        dense = r.scores(query)
        docs_ok = [d for d in np.flatnonzero(dense > 0) if d not in exclude[row]]
        ranked = sorted(docs_ok, key=lambda d: (-dense[d], d))[:k]
        assert ids[row, : len(ranked)].tolist() == ranked
        assert (ids[row, len(ranked) :] == -1).all()
        assert np.isneginf(scores[row, len(ranked) :]).all()
        np.testing.assert_array_equal(scores[row, : len(ranked)], dense[ranked])


@pytest.mark.parametrize("k", [1, 10, 100])
def test_histogram_selection_equals_a_full_sort(k: int) -> None:
    # 3,000 documents, a third of them copies of 30 templates (exact ties across the
    # histogram's bins), the rest Zipf text: common words take the dense path, rare ones
    # the sparse one, and depth k is far below the number of matches.
    docs, queries = _synthetic_corpus(2000, 12, seed=11)
    rng = np.random.default_rng(11)
    docs += [docs[i] for i in rng.integers(0, 30, 1000)]
    common = Counter(w for doc in docs for w in set(doc.split()) if w not in ENGLISH_STOP_WORDS)
    queries += [w for w, _ in common.most_common(3)] + [
        " ".join(w for w, _ in common.most_common(6))
    ]
    r = BM25Retriever(docs, cache_size=0)
    ids, scores = r.retrieve(queries, k=k)
    for row, query in enumerate(queries):
        dense = r.scores(query)  # the whole ranking: every match sorted
        ranked = sorted(np.flatnonzero(dense > 0), key=lambda d: (-dense[d], d))[:k]
        assert ids[row, : len(ranked)].tolist() == ranked, query
        np.testing.assert_array_equal(scores[row, : len(ranked)], dense[ranked])


def test_ties_go_to_the_lower_index_in_every_backend() -> None:
    docs = ["blue shirt", "red dress", "red dress", "red dress", "other"]
    for backend in BACKEND_NAMES:
        ids, scores = BM25Retriever(docs, backend=backend).retrieve(["dress"], k=2)
        assert ids.tolist() == [[1, 2]], backend
        assert scores[0, 0] == scores[0, 1]


# --------------------------------------------------------------------------- batching, cache


@pytest.mark.parametrize("n_queries", [1, 2, 7])
def test_rankings_do_not_depend_on_the_number_of_threads(n_queries: int) -> None:
    docs, queries = _synthetic_corpus(400, n_queries, seed=3)
    # The commonest word (in most documents) takes the dense path, short queries the sparse one.
    common = Counter(w for doc in docs for w in set(doc.split()) if w not in ENGLISH_STOP_WORDS)
    queries = [*queries[:-1], common.most_common(1)[0][0]]
    results = [
        BM25Retriever(docs, threads=t, cache_size=0).retrieve(queries, k=50) for t in (1, 2, 3)
    ]
    for ids, scores in results[1:]:
        np.testing.assert_array_equal(ids, results[0][0])
        np.testing.assert_array_equal(scores, results[0][1])


def test_identical_queries_in_a_batch_are_computed_once() -> None:
    r = BM25Retriever(["red dress", "blue shirt", "red shoes"], cache_size=0)
    batch = ["red dress", "Dress, RED!", "the red dress", "blue"]
    ids, scores = r.retrieve(batch, k=2)
    info = r.cache_info()
    assert (info.misses, info.deduplicated, info.hits, info.currsize) == (2, 2, 0, 0)
    assert (ids[0] == ids[1]).all() and (ids[0] == ids[2]).all()
    np.testing.assert_array_equal(scores[0], scores[2])


def test_lru_cache_hits_and_evicts() -> None:
    r = BM25Retriever(["red dress", "blue shirt", "red shoes"], cache_size=2)
    r.retrieve(["red"], k=1)
    r.retrieve(["blue"], k=1)
    r.retrieve(["red"], k=1)  # hit; "blue" is now least recently used
    r.retrieve(["shoes"], k=1)  # evicts "blue"
    assert r.cache_info()[:2] == (1, 3)
    r.retrieve(["red", "blue"], k=1)
    assert r.cache_info()[:2] == (2, 4) and r.cache_info().currsize == 2
    r.cache_clear()
    assert r.cache_info()[:5] == (0, 0, 0, 2, 0)


def test_cache_size_zero_always_recomputes() -> None:
    r = BM25Retriever(["red dress", "blue shirt"], cache_size=0)
    r.retrieve(["red"], k=1)
    r.retrieve(["red"], k=1)
    assert r.cache_info()[:2] == (0, 2)


def test_cached_rankings_serve_deeper_or_filtered_requests_correctly() -> None:
    docs, queries = _synthetic_corpus(80, 6, seed=3)
    cached, fresh = BM25Retriever(docs), BM25Retriever(docs, cache_size=0)
    cached.retrieve(queries, k=3)
    for k, exclude in [(3, None), (20, None), (5, [{0, 1, 2}] * 6), (200, None)]:
        got, want = cached.retrieve(queries, k, exclude), fresh.retrieve(queries, k, exclude)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    ids, _ = cached.retrieve(queries, k=3)
    ids[:] = 0  # the caller's array is a copy: the cache is untouched
    np.testing.assert_array_equal(cached.retrieve(queries, k=3)[0], fresh.retrieve(queries, 3)[0])


# --------------------------------------------------------------------------- exclusion, padding


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_exclusion_removes_items_and_still_fills_k(backend: str) -> None:
    docs = ["red dress", "red red dress", "red shoes", "red hat", "red scarf", "blue"]
    r = BM25Retriever(docs, backend=backend)
    full, _ = r.retrieve(["red dress"], k=5)
    ids, scores = r.retrieve(["red dress", "red dress"], k=3, exclude=[full[0, :2].tolist(), []])
    assert ids[0].tolist() == full[0, 2:5].tolist()
    assert ids[1].tolist() == full[0, :3].tolist()
    assert np.isfinite(scores).all()


def test_padding_when_few_documents_match() -> None:
    r = BM25Retriever(["red dress", "blue shirt", "green hat"], ["a", "b", "c"])
    ids, scores = r.retrieve(["dress", "nothing matches", "the and of"], k=5)
    assert ids.shape == scores.shape == (3, 5)
    assert ids.dtype == np.int64 and scores.dtype == np.float32
    assert ids.tolist() == [[0, -1, -1, -1, -1], [-1] * 5, [-1] * 5]
    assert np.isneginf(scores[0, 1:]).all() and np.isneginf(scores[1:]).all()
    assert r.to_item_ids(ids[0]).tolist() == ["a", None, None, None, None]


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_a_corpus_without_any_term_matches_nothing(backend: str) -> None:
    r = BM25Retriever(["", "the and of", "!!!"], backend=backend)
    ids, _ = r.retrieve(["the dress", ""], k=2)
    assert (ids == -1).all() and not r.scores("dress").any()


def test_from_catalog_maps_to_external_ids() -> None:
    table = pd.DataFrame({"item_id": ["x1", "x2"], "title": ["Red dress", "Blue jeans"]})
    r = BM25Retriever.from_catalog(ItemCatalog(table, ("title",)))
    ids, _ = r.retrieve(["jeans"], k=1)
    assert len(r) == 2 and r.to_item_ids(ids).tolist() == [["x2"]]


def test_long_queries_are_truncated_not_rejected() -> None:
    r = BM25Retriever(["red dress", "blue shirt"], max_query_tokens=3)
    assert r.analyze_query("shirt " * 5000 + "red") == ["shirt"] * 3
    assert r.retrieve(["shirt " * 5000 + "red"], k=2)[0].tolist() == [[1, -1]]


# --------------------------------------------------------------------------- errors, imports


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"documents": []}, DataFormatError, "non-empty list"),
        ({"documents": "one text"}, DataFormatError, "single string"),
        ({"documents": ["a b", None]}, DataFormatError, "document 1 is NoneType"),
        ({"documents": ["a b"], "item_ids": ["x", "y"]}, DataFormatError, "2 ids for 1"),
        ({"documents": ["a b"], "backend": "lucene"}, UnknownNameError, "bm25s, rank-bm25"),
        ({"documents": ["a b"], "threads": 0}, DataFormatError, "threads must be >= 1"),
    ],
)
def test_construction_errors(kwargs: dict, error: type[RecGymError], message: str) -> None:
    with pytest.raises(error, match=message):
        BM25Retriever(**kwargs)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((["red"], 0), "k must be an integer >= 1"),
        (("red", 1), "list of query strings"),
        (([None], 1), "queries must be strings"),
        ((["red", "blue"], 1, [[0]]), "got 1 for 2 queries"),
        ((["red"], 1, [[7]]), "outside 0..1"),
    ],
)
def test_retrieve_errors(args: tuple, message: str) -> None:
    r = BM25Retriever(["red dress", "blue shirt"])
    with pytest.raises(DataFormatError, match=message):
        r.retrieve(*args)


def test_import_is_light() -> None:
    code = (
        "import sys, recgym.retrieval\n"
        "heavy = {'torch', 'transformers', 'rank_bm25'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
