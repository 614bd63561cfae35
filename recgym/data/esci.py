"""Amazon Shopping Queries (ESCI) in recgym's common form, from the dataset's own files.

The Shopping Queries Dataset (Reddy et al., 2022; github.com/amazon-science/esci-data) ships
two parquet files: ``shopping_queries_dataset_examples.parquet`` (one row per judged
(query, product) pair with an E/S/C/I label, the small/large version flags and a train/test
split) and ``shopping_queries_dataset_products.parquet`` (product texts per locale).

Items are all products of one locale, in the products file's order; queries and qrels come
from the examples of that locale and version. Rec-R1 evaluated ESCI against its own item pool
(BLaIR-encoded products), keeping Exact matches only as relevant; this loader reproduces the
labels, not that pool — pass ``judged_items_only=True`` for a small pool of judged products.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from recgym.data._files import (
    PathLike,
    describe_sources,
    find_file,
    read_table,
    warn_dropped,
)
from recgym.data.catalog import Dataset, ItemCatalog
from recgym.data.registry import register_dataset
from recgym.error import DataFormatError

__all__ = ["ESCI_LABELS", "TEXT_FIELDS", "load_esci"]

ESCI_LABELS = ("E", "S", "C", "I")
"""Exact, Substitute, Complement, Irrelevant."""

TEXT_FIELDS = ("title", "description", "bullet_points", "brand", "color")
"""Text fields of an ESCI item, in rendering order."""

_EXAMPLES = "shopping_queries_dataset_examples.parquet"
_PRODUCTS = "shopping_queries_dataset_products.parquet"
_EXAMPLE_COLUMNS = (
    "query_id",
    "query",
    "product_id",
    "product_locale",
    "esci_label",
    "small_version",
    "large_version",
    "split",
)
_PRODUCT_COLUMNS = {
    "product_id": "item_id",
    "product_title": "title",
    "product_description": "description",
    "product_bullet_point": "bullet_points",
    "product_brand": "brand",
    "product_color": "color",
}


def _relevance_of(
    relevant_labels: Sequence[str], relevance: Mapping[str, float] | None
) -> dict[str, float]:
    labels = tuple(relevant_labels)
    unknown = [label for label in labels if label not in ESCI_LABELS]
    if not labels or unknown:
        raise ValueError(
            f"relevant_labels must be a non-empty subset of {ESCI_LABELS}; got {labels}"
        )
    if relevance is None:
        return dict.fromkeys(labels, 1.0)
    uncovered = [label for label in labels if label not in relevance]
    if uncovered:
        raise ValueError(f"relevance gives no grade for relevant labels {uncovered}")
    return {label: float(relevance[label]) for label in labels}


def _read_examples(path: PathLike, locale: str, small_version: bool) -> pd.DataFrame:
    frame = read_table(
        path,
        _EXAMPLE_COLUMNS,
        str_columns=("query_id", "product_id"),
        where=("product_locale", locale),
    )
    if frame.empty:
        found = sorted(read_table(path, ["product_locale"])["product_locale"].dropna().unique())
        raise DataFormatError(f"{path}: no examples for locale {locale!r}; locales found: {found}")
    flag = "small_version" if small_version else "large_version"
    frame = frame[frame[flag].eq(1)]
    bad = sorted(set(map(str, frame["esci_label"])) - set(ESCI_LABELS))
    if bad:
        raise DataFormatError(f"{path}: esci_label must be one of {ESCI_LABELS}; found {bad}")
    return frame.reset_index(drop=True)


def _read_products(path: PathLike, locale: str) -> pd.DataFrame:
    frame = read_table(
        path,
        [*_PRODUCT_COLUMNS, "product_locale"],
        str_columns=("product_id",),
        where=("product_locale", locale),
    )
    frame = frame.rename(columns=_PRODUCT_COLUMNS)[list(_PRODUCT_COLUMNS.values())]
    duplicated = frame["item_id"].duplicated()
    if duplicated.any():
        warn_dropped(f"{path}: kept the first of {int(duplicated.sum())} repeated product rows")
        frame = frame[~duplicated]
    for col in TEXT_FIELDS:
        frame[col] = frame[col].fillna("").astype(str).str.strip()
    return frame.reset_index(drop=True)


@register_dataset(
    "esci",
    "Amazon Shopping Queries (ESCI): search queries with E/S/C/I labels "
    "over product texts, from local parquet files.",
)
def load_esci(
    *,
    path: PathLike | None = None,
    examples: PathLike | None = None,
    products: PathLike | None = None,
    locale: str = "us",
    small_version: bool = True,
    relevant_labels: Sequence[str] = ("E",),
    relevance: Mapping[str, float] | None = None,
    keep_unjudged_queries: bool = False,
    judged_items_only: bool = False,
) -> Dataset:
    """Load ESCI for one locale from the Shopping Queries Dataset's files.

    Args:
        path: a folder holding both files under their published names.
        examples: the examples file (overrides ``path``).
        products: the products file (overrides ``path``).
        locale: ``"us"``, ``"es"`` or ``"jp"``.
        small_version: keep the examples of the small version (Task 1, used by Rec-R1); with
            ``False``, those of the large version.
        relevant_labels: labels that count as relevant; Rec-R1 used Exact only.
        relevance: grade of each relevant label (e.g. ``{"E": 3, "S": 2, "C": 1}`` with
            ``relevant_labels=("E", "S", "C")``); every relevant label gets 1.0 by default.
        keep_unjudged_queries: keep queries with no relevant product (they cannot be scored).
        judged_items_only: restrict the items to products that appear in the kept examples.

    Returns:
        A dataset whose items are the locale's products (``item_id`` = ``product_id``; text
        fields ``title``, ``description`` (raw, may hold HTML), ``bullet_points``, ``brand``,
        ``color``; missing texts as ``""``); ``queries`` with ``query_id`` (str), ``query`` and
        ``split`` (``"train"``/``"test"``) in order of first appearance; ``qrels`` with one row
        per relevant (query, item) pair, the highest grade where a pair repeats.

    Raises:
        DataFormatError: a file is missing, lacks columns, has unknown labels, has no rows for
            ``locale``, or an example names a product absent from the products file.
    """
    grades = _relevance_of(relevant_labels, relevance)
    examples_path = find_file(examples, path, [_EXAMPLES], "examples")
    products_path = find_file(products, path, [_PRODUCTS], "products")
    ex = _read_examples(examples_path, locale, small_version)
    items = _read_products(products_path, locale)

    unknown = ~ex["product_id"].isin(items["item_id"])
    if unknown.any():
        ids = ex.loc[unknown, "product_id"].unique()
        raise DataFormatError(
            f"{examples_path}: {int(unknown.sum())} examples name {len(ids)} products absent "
            f"from {products_path} for locale {locale!r} (e.g. {list(ids[:5])})"
        )
    if judged_items_only:
        items = items[items["item_id"].isin(ex["product_id"])]
    catalog = ItemCatalog(items, text_fields=TEXT_FIELDS)

    rel = ex[ex["esci_label"].isin(list(grades))].copy()
    rel["relevance"] = rel["esci_label"].map(grades).astype("float64")
    # Keep the best grade of a repeated pair, in the pairs' order of first appearance.
    rel = (
        rel.sort_values("relevance", ascending=False, kind="stable")
        .drop_duplicates(["query_id", "product_id"])
        .sort_index()
    )
    qrels = pd.DataFrame(
        {
            "query_id": rel["query_id"].to_numpy(),
            "item_idx": catalog.indices(rel["product_id"]),
            "relevance": rel["relevance"].to_numpy(),
        }
    )
    queries = ex[["query_id", "query", "split"]].drop_duplicates("query_id")
    if not keep_unjudged_queries:
        queries = queries[queries["query_id"].isin(qrels["query_id"])]
    return Dataset(
        "esci",
        catalog,
        queries=queries.reset_index(drop=True),
        qrels=qrels,
        source=describe_sources(examples_path, products_path),
    )
