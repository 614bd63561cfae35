"""The data and model summary on the embedded defaults (``recgym demo``).

Fetches the embedded datasets and model, prints a summary of each dataset, runs BM25 product
search over the clothing catalog with held-out reviews as the shoppers' requests (the raw-query
baseline of the product-search task), and generates a next-movie description with SmolLM2.
The README's main job (``make demo``) is ``python -m benchmarks demo``, which reuses these
summaries and then evaluates the baseline agents on the envs.
"""

from __future__ import annotations

import time

import numpy as np

__all__ = ["clothing_summary", "generation_sample", "movielens_summary", "run_demo"]


def _section(title: str) -> None:
    print(f"\n== {title}")


def movielens_summary() -> None:
    """Print MovieLens-100k's size, its leave-one-out split and one test example."""
    from recgym.data import leave_one_out, load_dataset

    ds = load_dataset("ml-100k")
    assert ds.interactions is not None
    split = leave_one_out(ds.interactions)
    _section(f"MovieLens-100k (from {ds.source})")
    print("  " + ", ".join(f"{k} {v:,}" for k, v in ds.summary().items()))
    print(
        f"  leave-one-out: train {len(split.train):,} / validation {len(split.validation):,}"
        f" / test {len(split.test):,} events"
    )
    users, histories, targets = split.examples("test")
    print(f"  user {users[0]}: last watched " + "; ".join(ds.items.texts(histories[0][-3:])))
    print(f"  -> held-out next movie: {ds.items.text(targets[0])}")


def clothing_summary(n_queries: int = 384, k: int = 10, *, bm25: bool = True) -> None:
    """Print the clothing reviews' size and, with ``bm25``, a raw-review BM25 search over the
    garments (``n_queries`` held-out reviews, NDCG/Recall@``k``)."""
    from recgym.data import load_dataset
    from recgym.data.clothing import item_documents, review_texts
    from recgym.metrics import ndcg_at_k, recall_at_k
    from recgym.retrieval import BM25Retriever

    ds = load_dataset("clothing-reviews")
    assert ds.reviews is not None
    _section(f"Women's E-Commerce Clothing Reviews (from {ds.source})")
    print("  " + ", ".join(f"{key} {v:,}" for key, v in ds.summary().items()))
    if not bm25:
        return
    texts = review_texts(ds.reviews)
    rng = np.random.default_rng(0)
    queries = rng.choice(np.flatnonzero(texts.str.len() > 0), size=n_queries, replace=False)
    held_out = np.zeros(len(texts), dtype=bool)
    held_out[queries] = True
    start = time.perf_counter()
    retriever = BM25Retriever(item_documents(ds, held_out))
    built = time.perf_counter() - start
    start = time.perf_counter()
    ranked, _ = retriever.retrieve(texts.iloc[queries].tolist(), k=k)
    searched = time.perf_counter() - start
    targets = ds.reviews["item_idx"].to_numpy()[queries]
    print(
        f"  BM25 (k1=1.2, b=0.75) over {len(retriever):,} garments: index {built:.2f} s, "
        f"{n_queries} queries in {searched * 1000:.0f} ms"
    )
    print(
        f"  raw review as query: NDCG@{k} {ndcg_at_k(ranked, targets, k).mean():.4f}, "
        f"Recall@{k} {recall_at_k(ranked, targets, k).mean():.4f}"
    )
    q = queries[0]
    print(f"  e.g. request: {texts.iloc[q][:110]!r}...")
    ids = ds.items.item_ids
    print(
        f"       its garment: #{ids[targets[0]]} ({ds.items.text(targets[0])}); "
        f"BM25 top-5: {['#' + ids[i] for i in ranked[0, :5]]}"
    )


def generation_sample(max_new_tokens: int) -> None:
    """Load SmolLM2 and print one greedy next-movie description with its speed."""
    import recgym.llm

    _section("SmolLM2-135M-Instruct (embedded)")
    start = time.perf_counter()
    llm = recgym.llm.load("smollm2-135m", progress=True)
    print(f"  loaded in {time.perf_counter() - start:.1f} s")
    prompt = (
        "A user recently watched these movies, in order: Toy Story (1995); Aladdin (1992); "
        "The Lion King (1994). Describe in one sentence the next movie they will want to watch."
    )
    start = time.perf_counter()
    out = llm.generate([prompt], max_new_tokens=max_new_tokens, temperature=0.0)[0]
    elapsed = time.perf_counter() - start
    print(f"  prompt: {prompt}")
    print(
        f"  greedy reply ({len(out.token_ids)} tokens, {len(out.token_ids) / elapsed:.1f} tok/s"
        f", finish={out.finish_reason}): {out.text.strip()}"
    )


def run_demo(max_new_tokens: int = 48) -> None:
    """Run the demo, printing to stdout."""
    import recgym

    print(
        f"recgym {recgym.__version__}: embedded data and model (cache: {recgym.data.cache_dir()})"
    )
    movielens_summary()
    clothing_summary()
    generation_sample(max_new_tokens)
