"""Amazon Reviews 2023 (McAuley Lab) in recgym's common form, one category at a time.

The 2023 release (Hou et al., 2024; amazon-reviews-2023.github.io) ships per category a reviews
file ``<Category>.jsonl`` and an item-metadata file ``meta_<Category>.jsonl`` (either may be
gzip-compressed). Reviews carry ``user_id``, ``parent_asin``, ``rating``, ``title``, ``text`` and
a ``timestamp`` in **milliseconds**; metadata is keyed by ``parent_asin``.

Both files are streamed line by line, since the large categories are many GB. Items are keyed
by ``parent_asin`` (product variants share one item), in the metadata file's order. Reviews of
items without a metadata line are dropped, as Rec-R1 did, and the count is reported in a
warning. Repeated reviews are kept as they are (the raw files are not de-duplicated).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recgym.data._files import (
    PathLike,
    as_text,
    describe_sources,
    find_file,
    iter_jsonl,
    sort_interactions,
    warn_dropped,
)
from recgym.data.catalog import Dataset, ItemCatalog
from recgym.data.registry import register_dataset
from recgym.error import DataFormatError

__all__ = ["TEXT_FIELDS", "load_amazon_reviews_2023"]

TEXT_FIELDS = ("title", "features", "categories", "description", "store")
"""Text fields of an item, in rendering order."""

# How each list-valued field is joined: categories are a path from the root of the category
# tree; features and description are lists of sentences or paragraphs.
_JOIN = {"title": " ", "features": " ", "categories": " > ", "description": " ", "store": " "}
_REVIEW_KEYS = ("user_id", "parent_asin", "rating", "timestamp")
_NUMBERS = ("average_rating", "rating_number", "price")
_META_COLUMNS = ("item_id", *TEXT_FIELDS, "main_category", *_NUMBERS)
# Where the release's own folder layout keeps each kind of file.
_REVIEW_DIRS = ("", "raw/review_categories", "review_categories")
_META_DIRS = ("", "raw/meta_categories", "meta_categories")


def _candidates(stem: str) -> list[str]:
    return [f"{stem}.jsonl", f"{stem}.jsonl.gz"]


def _read_meta(path: PathLike) -> pd.DataFrame:
    columns: dict[str, list[Any]] = {name: [] for name in _META_COLUMNS}
    for _, record in iter_jsonl(path, required=("parent_asin",)):
        columns["item_id"].append(str(record["parent_asin"]))
        for name, sep in _JOIN.items():
            columns[name].append(as_text(record.get(name), sep))
        columns["main_category"].append(as_text(record.get("main_category")))
        for name in _NUMBERS:
            columns[name].append(record.get(name))
    items = pd.DataFrame(columns)
    for name in _NUMBERS:
        # Prices come as numbers, null or placeholder strings such as "None".
        items[name] = pd.to_numeric(items[name], errors="coerce").astype("float64")
    duplicated = items["item_id"].duplicated()
    if duplicated.any():
        warn_dropped(
            f"{path}: kept the first of {int(duplicated.sum())} repeated parent_asin lines"
        )
        items = items[~duplicated].reset_index(drop=True)
    return items


def _read_reviews(
    path: PathLike, index: dict[str, int], with_reviews: bool
) -> tuple[dict[str, list[Any]], int]:
    cols: dict[str, list[Any]] = {
        k: [] for k in ("user_id", "item_idx", "timestamp", "rating", "title", "text")
    }
    total = 0
    for lineno, record in iter_jsonl(path, required=_REVIEW_KEYS):
        total += 1
        idx = index.get(str(record["parent_asin"]))
        if idx is None:
            continue
        try:
            seconds = int(record["timestamp"]) // 1000
            rating = float(record["rating"])
        except (TypeError, ValueError):
            raise DataFormatError(
                f"{path}, line {lineno}: expected a numeric timestamp (ms) and rating; found "
                f"timestamp={record['timestamp']!r}, rating={record['rating']!r}"
            ) from None
        cols["user_id"].append(str(record["user_id"]))
        cols["item_idx"].append(idx)
        cols["timestamp"].append(seconds)
        cols["rating"].append(rating)
        if with_reviews:
            cols["title"].append(as_text(record.get("title")))
            cols["text"].append(as_text(record.get("text")))
    return cols, total


@register_dataset(
    "amazon-reviews-2023",
    "Amazon Reviews 2023 (McAuley Lab), one category: "
    "ratings with time, review texts and item metadata, from local files.",
)
def load_amazon_reviews_2023(
    *,
    reviews: PathLike | None = None,
    meta: PathLike | None = None,
    path: PathLike | None = None,
    category: str | None = None,
    with_reviews: bool = True,
) -> Dataset:
    """Load one category of Amazon Reviews 2023.

    Args:
        reviews: the reviews file (JSON lines, gzip or not).
        meta: the item-metadata file (JSON lines, gzip or not).
        path: with ``category``, a folder holding ``<category>.jsonl[.gz]`` and
            ``meta_<category>.jsonl[.gz]``, directly or in the release's ``raw/review_categories``
            and ``raw/meta_categories`` subfolders; explicit ``reviews``/``meta`` win.
        category: the category's file stem, e.g. ``"All_Beauty"``.
        with_reviews: also keep review titles and texts (``False`` saves memory on big files).

    Returns:
        A dataset whose items are keyed by ``parent_asin`` (text fields ``title``,
        ``features``, ``categories`` joined by ``" > "``, ``description``, ``store``; lists
        joined, missing values as ``""``; also ``main_category``, ``average_rating``,
        ``rating_number``, ``price``); ``interactions`` sorted by (user, time) with timestamps
        in seconds (the files' milliseconds floored); and, with ``with_reviews``, a ``reviews``
        table (``item_idx``, ``user_id``, ``title``, ``text``, ``rating``, ``timestamp``) whose
        row ``i`` is the review behind interaction ``i``.

    Raises:
        TypeError: neither the files nor ``path`` and ``category`` were given.
        DataFormatError: a file is missing, is not JSON lines, or a line lacks required keys.
    """
    if (reviews is None or meta is None) and (path is None or category is None):
        raise TypeError("pass reviews= and meta= (files), or path= (a folder) and category=")
    stem = category or ""
    reviews_path = find_file(reviews, path, _candidates(stem), "reviews", _REVIEW_DIRS)
    meta_path = find_file(meta, path, _candidates(f"meta_{stem}"), "meta", _META_DIRS)
    catalog = ItemCatalog(_read_meta(meta_path), text_fields=TEXT_FIELDS)
    index = {item_id: i for i, item_id in enumerate(catalog.item_ids)}
    cols, total = _read_reviews(reviews_path, index, with_reviews)
    dropped = total - len(cols["user_id"])
    if dropped:
        warn_dropped(
            f"{reviews_path}: dropped {dropped} of {total} reviews whose parent_asin has no "
            f"line in {meta_path}"
        )
    table: dict[str, Any] = {
        "user_id": pd.Series(cols["user_id"], dtype=str),
        "item_idx": np.asarray(cols["item_idx"], dtype=np.int64),
        "timestamp": np.asarray(cols["timestamp"], dtype=np.int64),
        "rating": np.asarray(cols["rating"], dtype=np.float32),
    }
    if with_reviews:
        table.update(title=cols["title"], text=cols["text"])
    frame = sort_interactions(pd.DataFrame(table))
    interactions = frame[["user_id", "item_idx", "timestamp", "rating"]]
    review_table = (
        frame[["item_idx", "user_id", "title", "text", "rating", "timestamp"]]
        if with_reviews
        else None
    )
    return Dataset(
        "amazon-reviews-2023",
        catalog,
        interactions=interactions,
        reviews=review_table,
        source=describe_sources(reviews_path, meta_path),
    )
