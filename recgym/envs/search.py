"""``RecSearch-v0``: product search by query rewriting (Rec-R1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recgym.envs.one_step import SPLITS, dataset_key
from recgym.envs.spaces import to_charset
from recgym.envs.text import RetrievalTextEnv, SplitEpisodes, TextTask

__all__ = ["SEARCH_PROMPT", "RecSearchEnv"]

SEARCH_PROMPT = (
    "You are an expert at writing search queries for an online store ({store}). A shopper "
    "describes what they want between triple backticks:\n\n```\n{request}\n```\n\n"
    "Write a search query that makes a BM25 keyword search engine over the store's catalog "
    "({documents}) rank the product the shopper wants as high as possible. Show your reasoning "
    "inside <think> </think> tags, then give the final query as JSON inside <answer> </answer> "
    'tags, for example: <answer>{{"query": "..."}}</answer>'
)
"""The observation template; ``{request}`` is the shopper's request."""

_STORES = {
    "clothing-reviews": (
        "women's clothing",
        "each product is described by its department, class and customer reviews",
    ),
    "esci": (
        "Amazon",
        "each product is described by its title, description, bullet points, brand and colour",
    ),
    "amazon-c4": ("Amazon", "each product is described by its title and metadata"),
}
_MAX_REQUEST_CHARS = 4000


class RecSearchEnv(RetrievalTextEnv):
    """Product search by query rewriting, after Rec-R1 (arXiv 2503.24289).

    ## Description
    A shopper's request arrives as a prompt; the policy (an LLM) writes a search query; a frozen
    BM25 retriever (k1=1.2, b=0.75, Lucene's English analyzer, query-term frequency counted,
    like pyserini) ranks the catalog; the reward is the NDCG@K of the wanted product(s).
    One step per episode.

    The default data are the Women's E-Commerce Clothing Reviews (CC0, 23,486 reviews of 1,206
    garments). Positive reviews (rating ≥ 4, ≥ 10 words) held out as shoppers' requests — the
    way Amazon-C4 builds queries from reviews — form fixed train (4,000) / validation (500) /
    test (1,000) splits; each garment's document is its division, department and class plus
    the text of its *remaining* reviews, so a request's own review is never in a document, and
    every garment keeps at least one review. (The raw data repeats a few reviews word for word;
    the copy that is not a request stays in its document: 3 of the 5,500 requests appear word
    for word in a document, and test request 693 in its own target's. See
    :func:`recgym.data.clothing.item_documents`.) With ``dataset="esci"`` or
    ``dataset="amazon-c4"`` and ``dataset_kwargs={"path": ...}`` pointing at local files, the
    env runs the seed's own benchmarks (their queries and relevance judgements; a validation
    split is carved from the training queries, and Amazon-C4's single test split is cut
    80/10/10 by a fixed seed).

    ## Observation Space
    ``Text``: the user turn of the prompt, with the request between triple backticks.
    Characters outside the Basic Multilingual Plane are replaced by U+FFFD.

    ## Action Space
    ``Text``: the LLM's completion (any string; bytes are decoded as UTF-8). It should hold
    ``<answer>{"query": "..."}</answer>``, optionally after a ``<think>…</think>`` block; see
    :func:`recgym.rewards.parse_completion` for the exact rules. The space samples strings of up
    to 16,384 characters from the whole BMP, but ``step`` accepts any string (empty, megabytes
    long, lone surrogates and other invalid code points included: a completion that breaks the
    format gets the format reward, never an error); only the first 65,536 characters are
    parsed and the query is cut to ``max_query_tokens`` analyzed terms. An action that is not
    a ``str`` or ``bytes`` raises ``TypeError``.

    ## Rewards
    ``reward="rec-r1"`` (default): −2 if the format is broken, else 0.1 + NDCG@K if NDCG@K > 0,
    else 0 — range {−2, 0} ∪ (0.1, 1.1]. ``reward="ndcg"``: NDCG@K, 0 if the format is broken —
    range [0, 1]. NDCG uses binary relevance with de-duplicated targets, so a perfect ranking
    scores 1. ``info["rewards"]`` holds the parts (``format``: 0 or the penalty; ``ndcg``),
    ``info["metrics"]`` NDCG@10/100 and Recall@10/50/100, ``info["retrieved"]`` the top-10
    item ids, ``info["query"]`` the parsed query (``None`` if broken).

    ## Starting State
    ``reset(options={"split": s, "index": i})`` starts request ``i`` of split ``s``; without an
    index, a request of the split is drawn from the env's seeded generator.

    ## Episode End
    Terminated after one step. Stepping again before ``reset`` raises an error.

    ## Arguments
    - ``split``: ``"train"`` (default), ``"validation"`` or ``"test"``.
    - ``dataset``: ``"clothing-reviews"`` (default, embedded), ``"esci"`` or ``"amazon-c4"``.
    - ``dataset_kwargs``: keyword arguments of the dataset loader (e.g. ``{"path": "..."}``).
    - ``k``: the reward's NDCG cut-off (default 1000, Rec-R1's training depth for search).
    - ``reward``: ``"rec-r1"`` (default) or ``"ndcg"``.
    - ``max_query_tokens``: analyzed query terms kept (default 1024, Lucene's clause limit).
    - ``backend``: BM25 backend, ``"bm25s"`` (default) or ``"rank-bm25"``.
    - ``render_mode``: ``None`` or ``"ansi"``.

    ## Version History
    - v0: initial version.
    - v0 (issue 28): the description's promise about requests and documents was corrected (the
      data did not change); ``score`` given something that is not a batch raises a
      ``TypeError`` that says so. No reward changed.
    """

    default_k = 1000

    def __init__(
        self,
        *,
        split: str = "train",
        dataset: str = "clothing-reviews",
        dataset_kwargs: dict[str, Any] | None = None,
        k: int | None = None,
        reward: str = "rec-r1",
        max_query_tokens: int = 1024,
        backend: str = "bm25s",
        render_mode: str | None = None,
    ) -> None:
        super().__init__(
            split=split,
            k=k,
            reward=reward,
            max_query_tokens=max_query_tokens,
            backend=backend,
            render_mode=render_mode,
        )
        from recgym.data.registry import dataset_spec

        dataset_spec(dataset)  # an unknown name fails here, not at the first reset
        self.dataset = dataset
        self.dataset_kwargs = dict(dataset_kwargs or {})

    def _task_key(self) -> tuple[Any, ...]:
        return (*super()._task_key(), *dataset_key(self.dataset, self.dataset_kwargs))

    def _build_task(self) -> TextTask:
        from recgym.data import load_dataset

        data = load_dataset(self.dataset, **self.dataset_kwargs)
        titles = data.items.texts()
        if self.dataset == "clothing-reviews":
            from recgym.data.clothing import item_documents, search_requests

            requests = search_requests(data)
            assert data.reviews is not None
            held_out = np.zeros(len(data.reviews), dtype=bool)
            held_out[requests["review_id"].to_numpy()] = True
            documents = item_documents(data, held_out)
            pairs = zip(requests["review_id"], requests["item_idx"], strict=True)
            qrels = {str(r): np.array([i]) for r, i in pairs}
            requests = requests.assign(query_id=requests["review_id"].astype(str))
        else:
            if data.queries is None or data.qrels is None:
                raise ValueError(f"dataset {self.dataset!r} has no search queries and judgements")
            documents = titles
            requests = _split_queries(data.queries)
            grouped = data.qrels[data.qrels["relevance"] > 0].groupby("query_id")["item_idx"]
            qrels = {str(q): np.unique(g.to_numpy(np.int64)) for q, g in grouped}
        store, described = _STORES.get(
            self.dataset, ("a shop", "each product is described by its text")
        )
        splits: dict[str, SplitEpisodes] = {}
        for name in SPLITS:
            part = requests[requests["split"] == name]
            queries = [to_charset(q[:_MAX_REQUEST_CHARS].strip()) for q in part["query"]]
            ids = part["query_id"].astype(str).tolist()
            splits[name] = _Requests(queries, [qrels[q] for q in ids], ids, store, described)
        return self._make_task(documents, data.items.item_ids, titles, splits)


@dataclass
class _Requests(SplitEpisodes):
    """Search episodes: a request text and its relevant items."""

    queries: list[str]
    relevant: list[np.ndarray]
    query_ids: list[str]
    store: str
    documents: str

    def __len__(self) -> int:
        return len(self.queries)

    def prompt(self, i: int) -> str:
        return SEARCH_PROMPT.format(
            store=self.store, request=self.queries[i], documents=self.documents
        )

    def targets(self, i: int) -> np.ndarray:
        return self.relevant[i]

    def describe(self, i: int) -> dict[str, Any]:
        return {"query_id": self.query_ids[i], "request": self.queries[i]}


def _split_queries(queries: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Give every query a train/validation/test split, leak-free.

    The dataset's own splits are kept. Without a validation split, 10% of the training queries
    (at most 1,000) become validation; with only a test split (Amazon-C4), it is cut 80/10/10.
    The cut is a seeded permutation of the query order.
    """
    names = queries["split"].astype(str).str.lower()
    out = queries.assign(split=names.replace({"val": "validation", "dev": "validation"}))
    rng = np.random.default_rng(seed)
    present = set(out["split"])
    if present == {"test"}:
        order = rng.permutation(len(out))
        n_val = n_test = max(1, len(out) // 10)
        labels = np.array(["train"] * len(out), dtype=object)
        labels[order[:n_val]] = "validation"
        labels[order[n_val : n_val + n_test]] = "test"
        out["split"] = labels
    elif "validation" not in present and "train" in present:
        train = np.flatnonzero(out["split"].to_numpy() == "train")
        n_val = min(1000, len(train) // 10)  # none from fewer than 10: train stays non-empty
        out.loc[out.index[rng.permutation(train)[:n_val]], "split"] = "validation"
    return out
