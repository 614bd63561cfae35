"""Amazon-C4 (McAuley Lab) in recgym's common form, from the dataset's own files.

Amazon-C4 ("Complex Contexts Created by ChatGPT", Hou et al., 2024, the BLaIR paper) turns
Amazon reviews into complex product-search queries: ``test.csv`` holds one query per row
(``qid``, ``query``, the target ``item_id``, and the ``user_id``/``ori_rating``/``ori_review``
it was written from) and ``sampled_item_metadata_1M.jsonl`` holds the item pool (``item_id``,
``category``, ``metadata`` — one text blob per item). The release has only a test split.

Every query must find its target in the item pool. A query whose item is missing is an error by
default (the published files have none, so a miss means a truncated or mismatched file);
``drop_missing_items=True`` drops such queries with a warning instead.
"""

from __future__ import annotations

import pandas as pd

from recgym.data._files import (
    PathLike,
    as_text,
    describe_sources,
    drop_or_raise,
    find_file,
    iter_jsonl,
    read_table,
    warn_dropped,
)
from recgym.data.catalog import Dataset, ItemCatalog
from recgym.data.registry import register_dataset

__all__ = ["TEXT_FIELDS", "load_amazon_c4"]

TEXT_FIELDS = ("metadata", "category")
"""Text fields of an Amazon-C4 item, in rendering order."""

_QUERIES = "test.csv"
_ITEMS = "sampled_item_metadata_1M.jsonl"
_QUERY_COLUMNS = ("qid", "query", "item_id", "user_id", "ori_rating", "ori_review")


def _read_items(path: PathLike) -> pd.DataFrame:
    ids, categories, metadata = [], [], []
    for _, record in iter_jsonl(path, required=("item_id", "metadata")):
        ids.append(str(record["item_id"]))
        categories.append(as_text(record.get("category")))
        metadata.append(as_text(record["metadata"]))
    items = pd.DataFrame({"item_id": ids, "metadata": metadata, "category": categories})
    duplicated = items["item_id"].duplicated()
    if duplicated.any():
        warn_dropped(f"{path}: kept the first of {int(duplicated.sum())} repeated item lines")
        items = items[~duplicated].reset_index(drop=True)
    return items


@register_dataset(
    "amazon-c4",
    "Amazon-C4: complex product-search queries written from reviews, "
    "over a 1M-item pool (McAuley Lab), from local files.",
)
def load_amazon_c4(
    *,
    path: PathLike | None = None,
    queries: PathLike | None = None,
    items: PathLike | None = None,
    drop_missing_items: bool = False,
) -> Dataset:
    """Load Amazon-C4 from its query file and item-metadata file.

    Args:
        path: a folder holding ``test.csv`` and ``sampled_item_metadata_1M.jsonl``.
        queries: the query file (CSV or parquet; overrides ``path``).
        items: the item metadata, JSON lines, gzip or not (overrides ``path``).
        drop_missing_items: drop, with a warning, queries whose item has no metadata line
            (by default they are an error).

    Returns:
        A dataset whose items are the item pool in file order (text fields ``metadata`` and
        ``category``, missing values as ``""``); ``queries`` with ``query_id`` (the ``qid`` as
        str), ``query``, ``split`` (always ``"test"``) and the source review's ``user_id``,
        ``ori_rating`` and ``ori_review``; ``qrels`` with one relevant item per query
        (relevance 1.0).

    Raises:
        DataFormatError: a file is missing or lacks columns/keys, or a query's item is missing
            from the pool and ``drop_missing_items`` is false.
    """
    queries_path = find_file(queries, path, [_QUERIES], "queries")
    items_path = find_file(items, path, [_ITEMS, _ITEMS + ".gz"], "items")
    frame = read_table(queries_path, _QUERY_COLUMNS, str_columns=("qid", "item_id", "user_id"))
    catalog = ItemCatalog(_read_items(items_path), text_fields=TEXT_FIELDS)

    missing = ~frame["item_id"].isin(catalog.table["item_id"])
    what = (
        f"{int(missing.sum())} of {len(frame)} queries in {queries_path} ask for items "
        f"absent from {items_path} (e.g. {list(frame.loc[missing, 'item_id'].unique()[:5])})"
    )
    frame = drop_or_raise(frame, missing, what, "drop_missing_items", drop_missing_items)

    query_table = pd.DataFrame(
        {
            "query_id": frame["qid"],
            "query": frame["query"].fillna("").astype(str),
            "split": "test",
            "user_id": frame["user_id"],
            "ori_rating": frame["ori_rating"].astype("float32"),
            "ori_review": frame["ori_review"].fillna("").astype(str),
        }
    ).drop_duplicates("query_id", ignore_index=True)
    qrels = pd.DataFrame(
        {
            "query_id": frame["qid"],
            "item_idx": catalog.indices(frame["item_id"]),
            "relevance": 1.0,
        }
    ).drop_duplicates(["query_id", "item_idx"], ignore_index=True)
    return Dataset(
        "amazon-c4",
        catalog,
        queries=query_table,
        qrels=qrels,
        source=describe_sources(queries_path, items_path),
    )
