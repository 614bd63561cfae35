"""Reward scoring of one GRPO batch over corpora of growing size: recgym's scorer vs BM25 loops.

One Rec-R1 GRPO step needs the reward of every completion of a batch (32 prompts × 12 samples
= 384), and the reward is the NDCG of a BM25 retrieval. For each corpus this script builds the
batch, then times three ways of turning the 384 completions into NDCG@``k`` rewards (``k``
1000 by default), side by side in one run:

- **recgym**: :meth:`recgym.retrieval.BM25Retriever.retrieve` on the whole batch (one call:
  query analysis, identical queries scored once, a compiled top-k over the index), then
  :func:`recgym.metrics.ndcg_at_k`. The query cache is emptied before every timed run, so no
  run is answered from an earlier one; within a run, duplicates are scored once.
- **bm25s loop**: bm25s' own index (``method="lucene"``, ``backend="numba"``) and one
  ``retrieve(..., k, backend_selection="numba", n_threads=1)`` call per completion, on
  tokens analyzed beforehand by the same analyzer (outside the timing: the loop gets its
  tokens for free).
- **rank-bm25 loop**: rank-bm25's ``BM25`` with Lucene's idf (what
  :class:`recgym.retrieval.backends.RankBM25Backend` wraps), ``get_scores`` per completion and
  a top-``k`` selection, on pre-analyzed tokens. It is slow, so it is timed on
  ``--reference-queries`` completions and extrapolated linearly (every query costs the same
  order of work: one pass over all documents per query term).

Every way computes the NDCG with the same function, and the script checks that their mean
rewards agree. Corpora:

- ``zipf-N``: ``N`` synthetic documents, lengths Poisson(``--doc-len``), words drawn from a
  Zipf law (exponent ``--zipf``) over ``--vocab`` words. A prompt's target is a random
  document; each completion keeps ``--query-len`` of its words, drops each with probability
  0.3 and adds two random corpus words; with probability ``--dup`` a completion repeats an
  earlier one of its group (sampled LLM completions often coincide).
- ``RecSearch-v0`` / ``RecSeq-v0``: the envs' real catalogs and train episodes, with the
  completions of :func:`benchmarks.perf.reward_scoring.grpo_batch` (the request with words dropped).

``--profile`` adds the time of each part of the recgym way (parsing, query analysis, the
kernel on 1 and on all threads at depth 1 and at full depth, NDCG). It also prints index
build times (recgym's includes analyzing the documents; the others get
analyzed tokens), the size of each index (the arrays of the two sparse indexes; for rank-bm25
its per-document term-count dicts) and the process's peak resident memory. Run::

    python -m benchmarks.perf.reward_sweep [--corpora zipf-10000 zipf-100000 zipf-1000000
        RecSearch-v0 RecSeq-v0] [--repeats 3] [--reference-queries 24] [--profile]
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version

import numba
import numpy as np

from benchmarks.perf.reward_scoring import timed
from recgym.metrics import ndcg_at_k
from recgym.retrieval import BM25Retriever
from recgym.retrieval.backends import Bm25sBackend, RankBM25Backend, select_top
from recgym.rewards import format_answer, parse_completion

__all__ = ["Batch", "main", "peak_rss_mib", "real_batch", "sweep_corpus", "zipf_batch"]

DEFAULT_CORPORA = ("zipf-10000", "zipf-100000", "zipf-1000000", "RecSearch-v0", "RecSeq-v0")


@dataclass
class Batch:
    """A corpus and one GRPO batch of completions over it.

    Attributes:
        name: the corpus's name in the printout.
        documents: one text per document.
        completions: the LLM completions (answer-formatted queries), grouped by prompt.
        targets: per completion, the relevant document indices.
    """

    name: str
    documents: Sequence[str]
    completions: list[str]
    targets: list[np.ndarray]


def zipf_batch(
    n_docs: int,
    *,
    prompts: int,
    group: int,
    seed: int,
    vocab: int = 100_000,
    exponent: float = 1.1,
    doc_len: int = 60,
    query_len: int = 16,
    dup: float = 0.25,
) -> Batch:
    """``n_docs`` Zipf documents and ``prompts × group`` completions aimed at random ones."""
    rng = np.random.default_rng(seed)
    words = np.array([f"t{i}x" for i in range(vocab)], dtype=object)
    weights = 1.0 / np.arange(1, vocab + 1) ** exponent
    lengths = np.maximum(rng.poisson(doc_len, n_docs), 1)
    flat = rng.choice(vocab, size=int(lengths.sum()), p=weights / weights.sum())
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    documents = [" ".join(words[flat[a:b]]) for a, b in itertools.pairwise(bounds)]
    completions, targets = [], []
    for target in rng.choice(n_docs, size=prompts, replace=False):
        source = documents[target].split()
        group_texts: list[str] = []
        for _ in range(group):
            if group_texts and rng.random() < dup:
                text = group_texts[rng.integers(len(group_texts))]
            else:
                start = rng.integers(max(len(source) - query_len, 0) + 1)
                kept = [w for w in source[start : start + query_len] if rng.random() >= 0.3]
                noise = words[rng.choice(vocab, size=2, p=weights / weights.sum())].tolist()
                text = " ".join(kept + noise)
            group_texts.append(text)
        completions += [format_answer(text) for text in group_texts]
        targets += [np.array([target], dtype=np.int64)] * group
    return Batch(f"zipf-{n_docs}", documents, completions, targets)


def real_batch(env_id: str, *, prompts: int, group: int, seed: int) -> Batch:
    """An env's catalog and a GRPO batch of its train episodes (the request, words dropped)."""
    import gymnasium as gym

    import recgym  # noqa: F401 (registers the env ids)
    from benchmarks.perf.reward_scoring import grpo_batch
    from recgym.envs.text import RetrievalTextEnv

    inner = gym.make(env_id).unwrapped
    assert isinstance(inner, RetrievalTextEnv)
    indices, completions = grpo_batch(inner, prompts, group, seed)
    episodes = inner.task.splits["train"]
    return Batch(env_id, inner.task.documents, completions, [episodes.targets(i) for i in indices])


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def _mib(*arrays: np.ndarray) -> float:
    return sum(a.nbytes for a in arrays) / 2**20


def _queries(completions: Sequence[str]) -> list[str]:
    """The parsed query of each completion ('' for a malformed one: it retrieves nothing)."""
    return [parse_completion(c).query or "" for c in completions]


def sweep_corpus(
    batch: Batch,
    *,
    k: int,
    repeats: int,
    reference_queries: int,
    skip_rank_bm25: bool,
    profile: bool = False,
) -> dict[str, float]:
    """Build the three indexes over ``batch.documents``, time each way, print and return it."""
    import bm25s

    n = len(batch.completions)
    print(f"\n{batch.name}: {len(batch.documents)} documents, {n} completions, NDCG@{k}")
    start = time.perf_counter()
    retriever = BM25Retriever(batch.documents, cache_size=1024)
    built = {"recgym": time.perf_counter() - start}
    backend = retriever.backend
    assert isinstance(backend, Bm25sBackend)
    memory = {"recgym": _mib(backend._data, backend._indices, backend._indptr)}
    analyzer = retriever.analyzer
    # The references get the same analyzed terms for free (not timed).
    doc_tokens = analyzer.analyze_batch(list(batch.documents), max_tokens=None)
    queries = _queries(batch.completions)
    query_tokens = analyzer.analyze_batch(queries, max_tokens=retriever.max_query_tokens)

    start = time.perf_counter()
    native = bm25s.BM25(k1=1.2, b=0.75, method="lucene", idf_method="lucene", backend="numba")
    native.index(doc_tokens, show_progress=False)
    built["bm25s"] = time.perf_counter() - start
    memory["bm25s"] = _mib(*(native.scores[key] for key in ("data", "indices", "indptr")))
    reference = None
    if not skip_rank_bm25:
        start = time.perf_counter()
        reference = RankBM25Backend(doc_tokens, k1=1.2, b=0.75)
        built["rank-bm25"] = time.perf_counter() - start
        freqs = reference._model.doc_freqs
        memory["rank-bm25"] = sum(sys.getsizeof(d) for d in freqs) / 2**20
    del doc_tokens
    depth = min(k, len(batch.documents))

    def recgym_way() -> np.ndarray:
        ids, _ = retriever.retrieve(_queries(batch.completions), depth)
        return ndcg_at_k(ids, batch.targets, k)

    def bm25s_way() -> np.ndarray:
        ids = np.full((n, depth), -1, dtype=np.int64)
        for row, tokens in enumerate(query_tokens):
            if not tokens:  # bm25s cannot retrieve for an empty query
                continue
            found, scores = native.retrieve(
                [tokens], k=depth, n_threads=1, backend_selection="numba", show_progress=False
            )
            ids[row] = np.where(scores[0] > 0, found[0], -1)  # bm25s pads with unmatched docs
        return ndcg_at_k(ids, batch.targets, k)

    def rank_bm25_way(rows: int) -> np.ndarray:
        assert reference is not None
        ids = np.full((rows, depth), -1, dtype=np.int64)
        for row, tokens in enumerate(query_tokens[:rows]):
            counts: dict[str, int] = {}
            for term in tokens:
                counts[term] = counts.get(term, 0) + 1
            top, _ = select_top(reference.scores(counts), depth)
            ids[row, : len(top)] = top
        return ndcg_at_k(ids, batch.targets[:rows], k)

    # Warm-up: Numba kernels load (or compile) on first use.
    recgym_way()
    bm25s_way()
    retriever.cache_clear()
    rewards = {"recgym": recgym_way(), "bm25s": bm25s_way()}
    duplicates = retriever.cache_info().deduplicated
    seconds = {
        "recgym": timed(recgym_way, retriever.cache_clear, repeats),
        "bm25s": timed(bm25s_way, lambda: None, repeats),
    }
    if reference is not None:
        rows = min(reference_queries, n)
        start = time.perf_counter()
        rewards["rank-bm25"] = rank_bm25_way(rows)
        seconds["rank-bm25"] = (time.perf_counter() - start) * n / rows

    print(
        f"  {'way':<10} {'build s':>8} {'index MiB':>10} {'batch s':>9} {'completions/s':>14}"
        f" {'mean NDCG':>10} {'vs recgym':>10}"
    )
    for way, took in seconds.items():
        rows = len(rewards[way])
        note = (
            ""
            if rows == n
            else f"  (on its {rows} timed rows; recgym's mean there: "
            f"{rewards['recgym'][:rows].mean():.4f})"
        )
        mean = rewards[way].mean()
        print(
            f"  {way:<10} {built[way]:>8.2f} {memory[way]:>10.0f} {took:>9.3f} {n / took:>14.1f}"
            f" {mean:>10.4f} {took / seconds['recgym']:>9.1f}x{note}"
        )
    agree = {
        way: float(np.abs(r - rewards["recgym"][: len(r)]).max()) for way, r in rewards.items()
    }
    print(f"  peak resident memory of the process so far: {peak_rss_mib():.0f} MiB")
    diffs = ", ".join(f"{w} {d:.2e}" for w, d in agree.items() if w != "recgym")
    print(
        f"  within-batch duplicates scored once by recgym: {duplicates} of {n}; "
        f"max |NDCG difference| vs recgym: {diffs}"
    )
    if profile:
        profile_recgym(retriever, batch, depth, k, repeats)
    return {f"{way}_s": took for way, took in seconds.items()}


def profile_recgym(
    retriever: BM25Retriever, batch: Batch, depth: int, k: int, repeats: int
) -> dict[str, float]:
    """Time the parts of the recgym way one by one (median of ``repeats``) and print them.

    The kernel runs on the batch's distinct queries, on 1 thread and on all threads, at the
    full depth and at depth 1 (accumulating scores and scanning documents, almost no
    selection), which separates accumulation from top-k selection.
    """
    from recgym.retrieval.bm25 import _query_key

    backend = retriever.backend
    queries = _queries(batch.completions)
    terms = retriever.analyzer.analyze_batch(queries, max_tokens=retriever.max_query_tokens)
    keys = [dict(key) for key in dict.fromkeys(_query_key(t) for t in terms)]
    ids, _ = retriever.retrieve(queries, depth)
    parts = {
        "parse completions": lambda: _queries(batch.completions),
        "analyze queries": lambda: retriever.analyzer.analyze_batch(
            queries, max_tokens=retriever.max_query_tokens
        ),
        "NDCG": lambda: ndcg_at_k(ids, batch.targets, k),
    }
    threads = backend.threads
    for n_threads in sorted({1, numba.get_num_threads()}):
        for cut in (1, depth):

            def kernel(n: int = n_threads, d: int = cut) -> object:
                backend.threads = n
                return backend.top(keys, [d] * len(keys))

            parts[f"kernel, {n_threads} thread(s), depth {cut}"] = kernel
    times = {name: timed(fn, lambda: None, repeats) for name, fn in parts.items()}
    backend.threads = threads
    print(f"  profile of the recgym way ({len(keys)} distinct queries):")
    for name, took in times.items():
        print(f"    {name:<32} {took * 1000:9.1f} ms")
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--corpora",
        nargs="+",
        default=list(DEFAULT_CORPORA),
        help="zipf-N (N synthetic documents) or a text env id",
    )
    parser.add_argument("--prompts", type=int, default=32, help="prompts per GRPO batch")
    parser.add_argument("--group", type=int, default=12, help="completions per prompt")
    parser.add_argument("--k", type=int, default=1000, help="NDCG cut-off and retrieval depth")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (median reported)")
    parser.add_argument(
        "--reference-queries",
        type=int,
        default=24,
        help="completions rank-bm25 is timed on (then extrapolated)",
    )
    parser.add_argument(
        "--skip-rank-bm25-above",
        type=int,
        default=2_000_000,
        help="leave rank-bm25 out on corpora larger than this",
    )
    parser.add_argument("--vocab", type=int, default=100_000, help="zipf vocabulary size")
    parser.add_argument("--zipf", type=float, default=1.1, help="zipf exponent")
    parser.add_argument("--doc-len", type=int, default=60, help="mean zipf document length")
    parser.add_argument(
        "--dup",
        type=float,
        default=0.25,
        help="probability a zipf completion repeats one of its group",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--profile", action="store_true", help="also time the parts of the recgym way"
    )
    args = parser.parse_args(argv)
    if min(args.prompts, args.group, args.k, args.repeats, args.reference_queries) < 1:
        parser.error("--prompts, --group, --k, --repeats and --reference-queries must be >= 1")

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, numpy {np.__version__}, "
        f"bm25s {version('bm25s')}, numba {version('numba')}, "
        f"rank-bm25 {version('rank-bm25')}"
    )
    print(
        f"one GRPO batch: {args.prompts} prompts x {args.group} completions; "
        f"median of {args.repeats} runs (rank-bm25: one run, extrapolated)"
    )
    results = {}
    for name in args.corpora:
        if name.startswith("zipf-"):
            batch = zipf_batch(
                int(name.removeprefix("zipf-")),
                prompts=args.prompts,
                group=args.group,
                seed=args.seed,
                vocab=args.vocab,
                exponent=args.zipf,
                doc_len=args.doc_len,
                dup=args.dup,
            )
        else:
            batch = real_batch(name, prompts=args.prompts, group=args.group, seed=args.seed)
        results[name] = sweep_corpus(
            batch,
            k=args.k,
            repeats=args.repeats,
            reference_queries=args.reference_queries,
            skip_rank_bm25=len(batch.documents) > args.skip_rank_bm25_above,
            profile=args.profile,
        )
        del batch
    print("\nsummary (batch seconds; ratios = way / recgym):")
    for name, row in results.items():
        ratios = ", ".join(
            f"{w.removesuffix('_s')} {s / row['recgym_s']:.1f}x"
            for w, s in row.items()
            if w != "recgym_s"
        )
        print(f"  {name:<16} recgym {row['recgym_s']:.3f} s; {ratios}")


if __name__ == "__main__":
    main()
