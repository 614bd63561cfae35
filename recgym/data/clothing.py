"""Women's E-Commerce Clothing Reviews (CC0) in recgym's common form.

23,486 real customer reviews of 1,206 garments. Items carry the retailer's division,
department and class; the reviews table keeps every review (title, text, rating, the
"recommended" flag), which the product-search env turns into shoppers' requests and item
documents. The data has no user ids or timestamps, so it has no interaction log.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from recgym.data.artifacts import fetch
from recgym.data.catalog import Dataset, ItemCatalog
from recgym.data.registry import register_dataset
from recgym.error import DataFormatError

__all__ = [
    "REQUEST_SPLIT_SIZES",
    "item_documents",
    "load_clothing_reviews",
    "review_texts",
    "search_requests",
]

_COLUMNS = {
    "Clothing ID": "item_id",
    "Age": "age",
    "Title": "title",
    "Review Text": "text",
    "Rating": "rating",
    "Recommended IND": "recommended",
    "Positive Feedback Count": "positive_feedback",
    "Division Name": "division",
    "Department Name": "department",
    "Class Name": "class",
}
_N_REVIEWS, _N_ITEMS = 23_486, 1_206


def _read_kaggle_csv(files: dict[str, Path]) -> pd.DataFrame:
    # Kaggle's CSV has an unnamed leading index column; everything else matches the parquet.
    return pd.read_csv(files["reviews.csv"]).drop(columns=["Unnamed: 0"], errors="ignore")


def _read_widedeep(files: dict[str, Path]) -> pd.DataFrame:
    return pd.read_parquet(files["reviews.parquet"])


_READERS: dict[str, Callable[[dict[str, Path]], pd.DataFrame]] = {
    "kaggle-csv": _read_kaggle_csv,
    "widedeep": _read_widedeep,
}


@register_dataset(
    "clothing-reviews",
    "Women's E-Commerce Clothing Reviews: 23,486 reviews of 1,206 garments (CC0).",
    artifact="clothing-reviews",
)
def load_clothing_reviews(*, progress: bool = True) -> Dataset:
    """Fetch (on first use) and load the clothing reviews.

    Returns a dataset whose items are the garments (``division``, ``department``, ``class``)
    and whose ``reviews`` table has one row per review in the original order: ``review_id``
    (the row number in the published file), ``item_idx``, ``title``, ``text`` (missing
    titles/texts as ``""``), ``rating``, ``recommended``, ``positive_feedback``, ``age``.
    """
    fetched = fetch("clothing-reviews", progress=progress)
    raw = _READERS[fetched.format](fetched.files)
    missing = sorted(set(_COLUMNS) - set(raw.columns))
    if missing or len(raw) != _N_REVIEWS:
        raise DataFormatError(
            f"clothing reviews from {fetched.source.describe()}: expected {_N_REVIEWS} rows with "
            f"columns {sorted(_COLUMNS)}; got {len(raw)} rows, missing {missing}"
        )
    frame = raw.rename(columns=_COLUMNS)
    for col in ("title", "text", "division", "department", "class"):
        frame[col] = frame[col].fillna("").astype(str).str.strip()
    # An item's labels are the same on every review of it, except where a review left them
    # blank; take the most common non-blank value.
    items = (
        frame.groupby("item_id", sort=True)[["division", "department", "class"]]
        .agg(lambda s: s[s != ""].mode().iloc[0] if (s != "").any() else "")
        .reset_index()
    )
    items["item_id"] = items["item_id"].astype(str)
    if len(items) != _N_ITEMS:
        raise DataFormatError(f"expected {_N_ITEMS} garments, found {len(items)}")
    catalog = ItemCatalog(items, text_fields=("division", "department", "class"))
    reviews = pd.DataFrame(
        {
            "review_id": range(len(frame)),
            "item_idx": catalog.indices(frame["item_id"].astype(str)),
            "title": frame["title"],
            "text": frame["text"],
            "rating": frame["rating"].astype("int64"),
            "recommended": frame["recommended"].astype(bool),
            "positive_feedback": frame["positive_feedback"].astype("int64"),
            "age": frame["age"].astype("int64"),
        }
    )
    return Dataset("clothing-reviews", catalog, reviews=reviews, source=fetched.source.key)


def review_texts(reviews: pd.DataFrame) -> pd.Series:
    """A review's searchable text: its title and body joined (either may be empty)."""
    return (reviews["title"] + " " + reviews["text"]).str.strip()


def item_documents(dataset: Dataset, held_out: np.ndarray | None = None) -> list[str]:
    """One search document per garment: its labels plus the text of its remaining reviews.

    Args:
        dataset: the loaded clothing reviews.
        held_out: boolean mask over ``dataset.reviews`` of the reviews used as shoppers'
            requests. A held-out review *row* is left out of every document, so a request
            cannot find itself. The raw data holds a few reviews more than once (the same
            title and text on two rows); the copy that is not held out stays in its document,
            so a request can still appear word for word in one: 3 of the 5,500 default
            requests do (train 586 and 1573 in other garments' documents, test 693 in its own
            target's; ``tests/test_search_datasets.py`` counts them).

    Returns:
        Documents indexed by item index, ready for :class:`recgym.retrieval.BM25Retriever`.
    """
    if dataset.reviews is None:
        raise DataFormatError(f"dataset {dataset.name!r} has no reviews")
    reviews = dataset.reviews
    keep = np.ones(len(reviews), dtype=bool) if held_out is None else ~np.asarray(held_out)
    if len(keep) != len(reviews):
        raise DataFormatError(f"held_out has {len(keep)} entries for {len(reviews)} reviews")
    kept = reviews.loc[keep].assign(_text=review_texts(reviews.loc[keep]))
    by_item = kept.loc[kept["_text"] != ""].groupby("item_idx")["_text"].agg(" ".join)
    labels = dataset.items.texts()
    return [" ".join(filter(None, (labels[i], by_item.get(i, "")))) for i in range(len(labels))]


REQUEST_SPLIT_SIZES: dict[str, int] = {"train": 4000, "validation": 500, "test": 1000}
"""Default number of shoppers' requests per split of the product-search task."""


def search_requests(
    dataset: Dataset,
    sizes: dict[str, int] | None = None,
    *,
    min_rating: int = 4,
    min_words: int = 10,
    seed: int = 0,
) -> pd.DataFrame:
    """Choose the reviews that become shoppers' requests, and their split.

    Amazon-C4 writes its search queries from reviews; here a review is used as written. Only
    positive reviews (``rating >= min_rating``) with at least ``min_words`` words qualify, and
    every garment keeps at least one review for its document, so no item becomes unfindable.
    The choice is a seeded permutation, the same on every machine.

    Args:
        dataset: the loaded clothing reviews.
        sizes: requests per split (default :data:`REQUEST_SPLIT_SIZES`).
        min_rating: lowest star rating of a request review.
        min_words: fewest words (title and text together) of a request review.
        seed: seed of the permutation.

    Returns:
        One row per request, ordered by split (train, validation, test) then by draw:
        ``review_id``, ``item_idx``, ``query`` (title and text), ``split``.
    """
    if dataset.reviews is None:
        raise DataFormatError(f"dataset {dataset.name!r} has no reviews")
    sizes = dict(REQUEST_SPLIT_SIZES if sizes is None else sizes)
    reviews = dataset.reviews
    texts = review_texts(reviews)
    item = reviews["item_idx"].to_numpy()
    eligible = (reviews["rating"].to_numpy() >= min_rating) & (
        texts.str.split().str.len().to_numpy() >= min_words
    )
    # Reviews that stay in each garment's document; a request may not take the last one.
    remaining = np.bincount(item[texts.str.len().to_numpy() > 0], minlength=len(dataset.items))
    chosen: list[int] = []
    total = sum(sizes.values())
    for r in np.random.default_rng(seed).permutation(np.flatnonzero(eligible)):
        if len(chosen) == total:
            break
        if remaining[item[r]] > 1:
            remaining[item[r]] -= 1
            chosen.append(int(r))
    if len(chosen) < total:
        raise DataFormatError(f"only {len(chosen)} reviews qualify as requests; asked for {total}")
    labels = [name for name, n in sizes.items() for _ in range(n)]
    return pd.DataFrame(
        {
            "review_id": reviews["review_id"].to_numpy()[chosen],
            "item_idx": item[chosen],
            "query": texts.to_numpy()[chosen],
            "split": labels,
        }
    )
