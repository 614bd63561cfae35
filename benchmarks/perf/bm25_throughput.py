"""BM25 throughput: the bm25s backend against the rank-bm25 reference, batched and one by one.

The corpus is built from the real clothing-reviews data: a seeded sample of reviews (title and
text) is held out as queries, and every garment becomes one document made of its department,
its class and its remaining reviews. Both backends index the same documents and answer the
same batch; the script prints index build times, queries per second, their ratio, a parity
check (top-10 overlap and score differences) and how often a held-out review's own garment is
retrieved. Run::

    python -m benchmarks.perf.bm25_throughput --queries 384 --k 1000 --docs-from clothing

``--docs-from synthetic`` uses a generated corpus instead (no data needed; for smoke tests).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version

import numpy as np

from recgym.retrieval import BM25Retriever

Corpus = tuple[list[str], list[str], list[str], np.ndarray]
"""Documents, their item ids, query texts, and the document index each query came from."""


def clothing_corpus(n_queries: int, seed: int) -> Corpus:
    """Hold out ``n_queries`` reviews as queries; one document per garment from the rest."""
    from recgym.data import load_dataset
    from recgym.data.clothing import item_documents, review_texts

    dataset = load_dataset("clothing-reviews", progress=False)
    assert dataset.reviews is not None
    texts = review_texts(dataset.reviews)
    candidates = np.flatnonzero(texts.str.len().to_numpy() > 0)
    held_out = np.random.default_rng(seed).choice(candidates, size=n_queries, replace=False)
    is_query = np.zeros(len(texts), dtype=bool)
    is_query[held_out] = True
    docs = item_documents(dataset, is_query)
    sources = dataset.reviews["item_idx"].to_numpy()[held_out]
    return docs, [str(i) for i in dataset.items.item_ids], texts.iloc[held_out].tolist(), sources


def synthetic_corpus(n_queries: int, seed: int) -> Corpus:
    """500 documents over a Zipf vocabulary; each query is a slice of a random document."""
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}z" for i in range(5000)])
    weights = 1.0 / np.arange(1, len(vocab) + 1) ** 1.1
    docs = [" ".join(rng.choice(vocab, 200, p=weights / weights.sum())) for _ in range(500)]
    sources = rng.integers(0, len(docs), n_queries)
    queries = [" ".join(docs[s].split()[:40]) for s in sources]
    return docs, [str(i) for i in range(len(docs))], queries, sources


CORPORA: dict[str, Callable[[int, int], Corpus]] = {
    "clothing": clothing_corpus,
    "synthetic": synthetic_corpus,
}


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls (the machine may be shared, so not the mean)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def native_retrieve(
    fast: BM25Retriever, docs: list[str], queries: list[str], k: int, repeats: int
) -> None:
    """bm25s' own ``retrieve`` (numba and numpy backends) on the same analyzed tokens.

    For reference only: it returns zero-score documents, breaks ties arbitrarily, cannot
    exclude per query and needs ``k <= n_docs``, which is why the backend has its own kernel.
    """
    import bm25s

    docs_tokens = fast.analyzer.analyze_batch(docs, max_tokens=None)
    tokens = fast.analyzer.analyze_batch(queries, max_tokens=fast.max_query_tokens)
    k = min(k, len(docs_tokens))
    print(f"bm25s library retrieve on pre-analyzed tokens (k={k}, for reference):")
    for backend in ("numba", "numpy"):
        index = bm25s.BM25(k1=1.2, b=0.75, method="lucene", backend=backend)
        index.index(docs_tokens, show_progress=False)
        index.retrieve(tokens[:2], k=k, show_progress=False)  # JIT compile
        took = timed(lambda: index.retrieve(tokens, k=k, show_progress=False), repeats)  # noqa: B023
        print(f"  backend={backend:<6} {len(queries) / took:>10.1f} queries/s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=384, help="held-out queries per batch")
    parser.add_argument("--k", type=int, default=1000, help="results per query")
    parser.add_argument("--docs-from", choices=sorted(CORPORA), default="clothing")
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out sample")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats of bm25s runs")
    parser.add_argument(
        "--reference-queries",
        type=int,
        default=None,
        help="time rank-bm25 on only this many queries and extrapolate (default: all)",
    )
    args = parser.parse_args(argv)

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, numpy {np.__version__}, "
        f"bm25s {version('bm25s')}, numba {version('numba')}, "
        f"rank-bm25 {version('rank-bm25')}"
    )
    docs, ids, queries, sources = CORPORA[args.docs_from](args.queries, args.seed)
    print(f"corpus: {args.docs_from}, {len(docs)} documents, {len(queries)} queries, k={args.k}")

    built = {}
    for name in ("bm25s", "rank-bm25"):
        start = time.perf_counter()
        built[name] = BM25Retriever(docs, ids, backend=name, cache_size=0)
        print(f"index build [{name}]: {time.perf_counter() - start:.2f} s (analysis included)")
    fast, ref = built["bm25s"], built["rank-bm25"]
    fast.retrieve(queries[:2], k=args.k)  # loads (or compiles) the Numba kernel

    t_batch = timed(lambda: fast.retrieve(queries, k=args.k), args.repeats)
    t_single = timed(lambda: [fast.retrieve([q], k=args.k) for q in queries], 3)
    n_ref = min(args.reference_queries or len(queries), len(queries))
    start = time.perf_counter()
    ref_ids, ref_scores = ref.retrieve(queries[:n_ref], k=args.k)
    t_ref = (time.perf_counter() - start) * len(queries) / n_ref
    ref_label = "" if n_ref == len(queries) else f" (timed on {n_ref}, extrapolated)"

    qps = {
        "bm25s, one batch of all queries": len(queries) / t_batch,
        "bm25s, one query per call": len(queries) / t_single,
        f"rank-bm25, one batch{ref_label}": len(queries) / t_ref,
    }
    print(f"\nthroughput ({len(queries)} queries, k={args.k}, median of repeats):")
    for label, value in qps.items():
        print(f"  {label:<48} {value:>10.1f} queries/s")
    print(
        f"  bm25s batched / rank-bm25: {t_ref / t_batch:.0f}x; "
        f"batched / one per call: {t_single / t_batch:.2f}x"
    )
    t_analysis = timed(lambda: fast.analyzer.analyze_batch(queries, max_tokens=1024), args.repeats)
    print(
        f"  of which query analysis alone (pure Python): {len(queries) / t_analysis:.1f} queries/s"
    )
    native_retrieve(fast, docs, queries, args.k, args.repeats)

    ids_f, scores_f = fast.retrieve(queries[:n_ref], k=args.k)
    depth = min(10, args.k)
    overlap = [
        len(set(a[:depth]) & set(b[:depth])) / depth for a, b in zip(ids_f, ref_ids, strict=True)
    ]
    finite = np.isfinite(ref_scores)
    rel = np.abs(scores_f[finite] - ref_scores[finite]) / np.abs(ref_scores[finite])
    same = (ids_f[:, :depth] == ref_ids[:, :depth]).all(axis=1).mean()
    print(
        f"\nparity on {n_ref} queries: top-{depth} overlap {np.mean(overlap):.4f} (mean), "
        f"identical top-{depth} lists {same:.4f}, "
        f"same padding {np.array_equal(ids_f == -1, ref_ids == -1)}, "
        f"max relative score difference {rel.max(initial=0.0):.2e}"
    )
    ids_all, _ = fast.retrieve(queries, k=args.k)
    for cut in sorted({depth, args.k}):
        hit = (ids_all[:, :cut] == sources[:, None]).any(axis=1).mean()
        print(f"held-out review's own item in top-{cut}: {hit:.3f}")


if __name__ == "__main__":
    main()
