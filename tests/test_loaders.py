"""Loaders of the seeds' own formats, on small fixtures written in each format's real layout."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recgym.data.generic import to_unix_seconds
from recgym.data.registry import list_datasets, load_dataset
from recgym.error import DataFormatError


def _rows(frame: pd.DataFrame | None) -> list[tuple[Any, ...]]:
    assert frame is not None
    return [tuple(r) for r in frame.itertuples(index=False)]


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    text = "".join(json.dumps(r) + "\n" for r in records)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_all_loaders_are_registered() -> None:
    names = {spec.name for spec in list_datasets()}
    assert {"esci", "amazon-c4", "amazon-reviews-2023", "generic"} <= names


# --- ESCI -----------------------------------------------------------------------------------

_ESCI_EXAMPLES = [
    # example_id, query, query_id, product_id, locale, label, small, large, split
    (0, "red shoes", 1, "P1", "us", "E", 1, 1, "train"),
    (1, "red shoes", 1, "P2", "us", "S", 1, 1, "train"),
    (2, "red shoes", 1, "P1", "us", "E", 1, 1, "train"),  # repeated (query, product) pair
    (3, "red shoes", 1, "P3", "us", "I", 1, 1, "train"),
    (4, "usb cable", 2, "P2", "us", "C", 1, 1, "train"),  # no Exact match in the small version
    (5, "usb cable", 2, "P3", "us", "E", 0, 1, "train"),  # large version only
    (6, "lamp", 3, "P4", "us", "E", 1, 1, "test"),
    (7, "zapatos rojos", 4, "P1", "es", "E", 1, 1, "train"),
]
_ESCI_EXAMPLE_COLUMNS = [
    "example_id",
    "query",
    "query_id",
    "product_id",
    "product_locale",
    "esci_label",
    "small_version",
    "large_version",
    "split",
]
_ESCI_PRODUCT_COLUMNS = [
    "product_id",
    "product_title",
    "product_description",
    "product_bullet_point",
    "product_brand",
    "product_color",
    "product_locale",
]
_ESCI_PRODUCTS = [
    # product_id, title, description, bullet_point, brand, color, locale
    ("P1", "Red Shoe", None, "Comfy\nLight", "Acme", "red", "us"),
    ("P2", "Blue Shoe", "<p>Nice</p>", None, None, "blue", "us"),
    ("P3", "USB-C Cable", "1 m", None, "Wire", None, "us"),
    ("P4", "Desk Lamp", None, None, None, None, "us"),
    ("P5", "Never Judged", None, None, None, None, "us"),
    ("P1", "Zapato rojo", None, None, "Acme", "rojo", "es"),
]


def _write_esci(folder: Path, drop_column: str | None = None) -> Path:
    examples = pd.DataFrame(_ESCI_EXAMPLES, columns=_ESCI_EXAMPLE_COLUMNS)
    products = pd.DataFrame(_ESCI_PRODUCTS, columns=_ESCI_PRODUCT_COLUMNS)
    if drop_column:
        examples = examples.drop(columns=[drop_column])
    examples.to_parquet(folder / "shopping_queries_dataset_examples.parquet", index=False)
    products.to_parquet(folder / "shopping_queries_dataset_products.parquet", index=False)
    return folder


def test_esci_defaults_exact_only_small_version_us(tmp_path: Path) -> None:
    ds = load_dataset("esci", path=_write_esci(tmp_path))
    assert ds.name == "esci"
    assert list(ds.items.item_ids) == ["P1", "P2", "P3", "P4", "P5"]
    assert ds.items.text_fields == ("title", "description", "bullet_points", "brand", "color")
    assert ds.items.texts()[:2] == [
        "Red Shoe | Comfy\nLight | Acme | red",
        "Blue Shoe | <p>Nice</p> | blue",
    ]
    assert _rows(ds.qrels) == [("1", 0, 1.0), ("3", 3, 1.0)]
    assert _rows(ds.queries) == [("1", "red shoes", "train"), ("3", "lamp", "test")]
    assert "shopping_queries_dataset_examples.parquet" in ds.source
    assert "shopping_queries_dataset_products.parquet" in ds.source
    assert ds.interactions is None


def test_esci_graded_large_version_and_unjudged_queries(tmp_path: Path) -> None:
    _write_esci(tmp_path)
    ds = load_dataset(
        "esci",
        examples=tmp_path / "shopping_queries_dataset_examples.parquet",
        products=tmp_path / "shopping_queries_dataset_products.parquet",
        small_version=False,
        relevant_labels=("E", "S", "C"),
        relevance={"E": 3, "S": 2, "C": 1, "I": 0},
        keep_unjudged_queries=True,
    )
    assert _rows(ds.qrels) == [
        ("1", 0, 3.0),
        ("1", 1, 2.0),
        ("2", 1, 1.0),
        ("2", 2, 3.0),
        ("3", 3, 3.0),
    ]
    assert list(ds.queries["query_id"]) == ["1", "2", "3"]


def test_esci_other_locale_and_judged_items_only(tmp_path: Path) -> None:
    _write_esci(tmp_path)
    es = load_dataset("esci", path=tmp_path, locale="es")
    assert list(es.items.item_ids) == ["P1"]
    assert es.items.text(0) == "Zapato rojo | Acme | rojo"
    assert _rows(es.qrels) == [("4", 0, 1.0)]
    judged = load_dataset("esci", path=tmp_path, judged_items_only=True)
    assert list(judged.items.item_ids) == ["P1", "P2", "P3", "P4"]
    assert _rows(judged.qrels) == [("1", 0, 1.0), ("3", 3, 1.0)]


def test_esci_errors(tmp_path: Path) -> None:
    _write_esci(tmp_path)
    with pytest.raises(DataFormatError, match=r"locale 'fr'.*\['es', 'us'\]"):
        load_dataset("esci", path=tmp_path, locale="fr")
    with pytest.raises(ValueError, match="relevant_labels"):
        load_dataset("esci", path=tmp_path, relevant_labels=("X",))
    with pytest.raises(ValueError, match=r"no grade for relevant labels \['S'\]"):
        load_dataset("esci", path=tmp_path, relevant_labels=("E", "S"), relevance={"E": 1})
    with pytest.raises(DataFormatError, match="no examples file"):
        load_dataset("esci", path=tmp_path / "nowhere")
    bad = tmp_path / "bad"
    bad.mkdir()
    _write_esci(bad, drop_column="esci_label")
    with pytest.raises(DataFormatError) as err:
        load_dataset("esci", path=bad)
    message = str(err.value)
    assert "bad/shopping_queries_dataset_examples.parquet" in message
    assert "missing ['esci_label']" in message and "'query_id'" in message


def test_esci_example_with_unknown_product(tmp_path: Path) -> None:
    _write_esci(tmp_path)
    products = pd.read_parquet(tmp_path / "shopping_queries_dataset_products.parquet")
    products = products[products["product_id"] != "P4"]
    products.to_parquet(tmp_path / "shopping_queries_dataset_products.parquet", index=False)
    with pytest.raises(DataFormatError, match=r"1 examples name 1 products absent.*'P4'"):
        load_dataset("esci", path=tmp_path)


# --- Amazon-C4 ------------------------------------------------------------------------------

_C4_QUERIES = [
    (0, "Sunscreen my kids will not fight me over", "B01", "U1", 5.0, "Great for kids."),
    (1, "A cable that survives a backpack", "B02", "U2", 4.0, None),
    (2, "Query about an item outside the pool", "B09", "U3", 3.0, "Meh."),
]
_C4_ITEMS = [
    {"item_id": "B01", "category": "Care", "metadata": "Supergoop! Sunscreen Mousse SPF 50."},
    {"item_id": "B02", "category": None, "metadata": "Braided USB-C cable, 2 m."},
    {"item_id": "B03", "category": "Electronics", "metadata": "Wireless mouse."},
]


def _write_c4(folder: Path, n_queries: int = 2) -> Path:
    frame = pd.DataFrame(
        _C4_QUERIES[:n_queries],
        columns=["qid", "query", "item_id", "user_id", "ori_rating", "ori_review"],
    )
    frame.to_csv(folder / "test.csv", index=False)
    _write_jsonl(folder / "sampled_item_metadata_1M.jsonl", _C4_ITEMS)
    return folder


def test_amazon_c4(tmp_path: Path) -> None:
    ds = load_dataset("amazon-c4", path=_write_c4(tmp_path))
    assert list(ds.items.item_ids) == ["B01", "B02", "B03"]
    assert ds.items.texts() == [
        "Supergoop! Sunscreen Mousse SPF 50. | Care",
        "Braided USB-C cable, 2 m.",
        "Wireless mouse. | Electronics",
    ]
    assert _rows(ds.qrels) == [("0", 0, 1.0), ("1", 1, 1.0)]
    assert _rows(ds.queries) == [
        ("0", _C4_QUERIES[0][1], "test", "U1", 5.0, "Great for kids."),
        ("1", _C4_QUERIES[1][1], "test", "U2", 4.0, ""),
    ]
    assert ds.source == f"{tmp_path / 'test.csv'}, {tmp_path / 'sampled_item_metadata_1M.jsonl'}"


def test_amazon_c4_query_for_missing_item(tmp_path: Path) -> None:
    _write_c4(tmp_path, n_queries=3)
    with pytest.raises(DataFormatError, match=r"1 of 3 queries .*'B09'.*drop_missing_items"):
        load_dataset("amazon-c4", path=tmp_path)
    with pytest.warns(UserWarning, match="dropped 1 of 3 queries"):
        ds = load_dataset(
            "amazon-c4",
            queries=tmp_path / "test.csv",
            items=tmp_path / "sampled_item_metadata_1M.jsonl",
            drop_missing_items=True,
        )
    assert list(ds.queries["query_id"]) == ["0", "1"]
    assert _rows(ds.qrels) == [("0", 0, 1.0), ("1", 1, 1.0)]


def test_amazon_c4_malformed(tmp_path: Path) -> None:
    _write_c4(tmp_path)
    pd.DataFrame({"qid": [0], "query": ["q"]}).to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(
        DataFormatError, match=r"short\.csv: expected columns .*missing \['item_id'"
    ):
        load_dataset("amazon-c4", path=tmp_path, queries=tmp_path / "short.csv")
    _write_jsonl(tmp_path / "items.jsonl", [{"item_id": "B01", "category": "Care"}])
    with pytest.raises(DataFormatError, match=r"items\.jsonl, line 1: .*missing \['metadata'\]"):
        load_dataset("amazon-c4", path=tmp_path, items=tmp_path / "items.jsonl")


# --- Amazon Reviews 2023 --------------------------------------------------------------------

_META = [
    {
        "main_category": "All Beauty",
        "title": "Rose Soap",
        "average_rating": 4.5,
        "rating_number": 10,
        "features": ["Gentle", "Vegan"],
        "description": ["Handmade soap."],
        "price": 5.99,
        "images": [],
        "videos": [],
        "store": "SoapCo",
        "categories": ["Beauty", "Bath", "Soap"],
        "details": {"Size": "100 g"},
        "parent_asin": "A1",
        "bought_together": None,
    },
    {
        "main_category": "All Beauty",
        "title": "Hair Oil",
        "average_rating": 3.0,
        "rating_number": 2,
        "features": [],
        "description": [],
        "price": None,
        "images": [],
        "videos": [],
        "store": None,
        "categories": [],
        "details": {},
        "parent_asin": "A2",
        "bought_together": None,
    },
    {"title": "Comb", "price": "None", "parent_asin": "A3"},  # optional keys absent
]


def _review(user: str, parent: str, ms: int, rating: float, **extra: Any) -> dict[str, Any]:
    record = {
        "rating": rating,
        "title": f"t-{user}-{parent}",
        "text": f"x-{user}-{parent}",
        "images": [],
        "asin": parent + "v",
        "parent_asin": parent,
        "user_id": user,
        "timestamp": ms,
        "helpful_vote": 0,
        "verified_purchase": True,
    }
    record.update(extra)
    return record


_REVIEWS = [
    _review("U2", "A1", 1_600_000_000_999, 5.0),
    _review("U1", "A2", 1_600_000_005_000, 3.0),
    {k: v for k, v in _review("U1", "A1", 1_500_000_000_500, 4.0).items() if k != "title"},
    _review("U3", "B404", 1_600_000_001_000, 2.0),  # no metadata line: dropped
    _review("U2", "A3", 1_600_000_000_001, 1.0, text=None),  # same second as the first review
]


def _write_reviews_2023(folder: Path) -> Path:
    (folder / "raw" / "review_categories").mkdir(parents=True)
    _write_jsonl(folder / "raw" / "review_categories" / "All_Beauty.jsonl.gz", _REVIEWS)
    _write_jsonl(folder / "meta_All_Beauty.jsonl", _META)
    return folder


def test_amazon_reviews_2023(tmp_path: Path) -> None:
    _write_reviews_2023(tmp_path)
    with pytest.warns(UserWarning, match="dropped 1 of 5 reviews"):
        ds = load_dataset("amazon-reviews-2023", path=tmp_path, category="All_Beauty")
    assert list(ds.items.item_ids) == ["A1", "A2", "A3"]
    assert ds.items.texts() == [
        "Rose Soap | Gentle Vegan | Beauty > Bath > Soap | Handmade soap. | SoapCo",
        "Hair Oil",
        "Comb",
    ]
    np.testing.assert_array_equal(ds.items.table["price"], [5.99, np.nan, np.nan])
    assert _rows(ds.interactions) == [
        ("U1", 0, 1_500_000_000, 4.0),
        ("U1", 1, 1_600_000_005, 3.0),
        ("U2", 0, 1_600_000_000, 5.0),
        ("U2", 2, 1_600_000_000, 1.0),
    ]
    assert ds.interactions is not None
    assert ds.interactions.dtypes.astype(str).tolist()[1:] == ["int64", "int64", "float32"]
    assert _rows(ds.reviews) == [
        (0, "U1", "", "x-U1-A1", 4.0, 1_500_000_000),
        (1, "U1", "t-U1-A2", "x-U1-A2", 3.0, 1_600_000_005),
        (0, "U2", "t-U2-A1", "x-U2-A1", 5.0, 1_600_000_000),
        (2, "U2", "t-U2-A3", "", 1.0, 1_600_000_000),
    ]
    assert "All_Beauty.jsonl.gz" in ds.source and "meta_All_Beauty.jsonl" in ds.source


def test_amazon_reviews_2023_explicit_files_without_texts(tmp_path: Path) -> None:
    _write_reviews_2023(tmp_path)
    with pytest.warns(UserWarning):
        ds = load_dataset(
            "amazon-reviews-2023",
            reviews=tmp_path / "raw" / "review_categories" / "All_Beauty.jsonl.gz",
            meta=tmp_path / "meta_All_Beauty.jsonl",
            with_reviews=False,
        )
    assert ds.reviews is None
    assert ds.summary() == {"items": 3, "users": 2, "interactions": 4}


def test_amazon_reviews_2023_malformed(tmp_path: Path) -> None:
    _write_reviews_2023(tmp_path)
    broken = {k: v for k, v in _REVIEWS[0].items() if k != "user_id"}
    _write_jsonl(tmp_path / "broken.jsonl.gz", [_REVIEWS[1], broken])
    meta = tmp_path / "meta_All_Beauty.jsonl"
    with pytest.raises(
        DataFormatError, match=r"broken\.jsonl\.gz, line 2: .*missing \['user_id'\]"
    ):
        load_dataset("amazon-reviews-2023", reviews=tmp_path / "broken.jsonl.gz", meta=meta)
    (tmp_path / "meta.csv").write_text("parent_asin\nA1\n")
    with pytest.raises(DataFormatError, match=r"meta\.csv: expected a JSON-lines file"):
        load_dataset(
            "amazon-reviews-2023", path=tmp_path, category="All_Beauty", meta=tmp_path / "meta.csv"
        )
    with pytest.raises(DataFormatError, match="no reviews file"):
        load_dataset("amazon-reviews-2023", path=tmp_path, category="Books")
    with pytest.raises(TypeError, match="category="):
        load_dataset("amazon-reviews-2023", path=tmp_path)


# --- Generic --------------------------------------------------------------------------------


def _write_generic_csv(folder: Path) -> tuple[Path, Path]:
    items = folder / "items.csv"
    items.write_text("sku,title,genre\n007,Spy Film,Action\ni2,Quiet Film,\ni3,Loud Film,Drama\n")
    log = folder / "events.csv"
    log.write_text(
        "who,sku,when,stars\n"
        "u2,i2,2021-01-01 00:00:10,4\n"
        "u1,007,2021-01-01T00:00:00Z,5\n"
        "u1,i3,2020-12-31 23:59:59,3.5\n"
        "u2,007,2021-01-01 00:00:10,2\n"
    )
    return log, items


def test_generic_csv_with_overrides_and_datetime_strings(tmp_path: Path) -> None:
    log, items = _write_generic_csv(tmp_path)
    ds = load_dataset(
        "generic",
        interactions=log,
        items=items,
        user_col="who",
        item_col="sku",
        time_col="when",
        rating_col="stars",
    )
    assert list(ds.items.item_ids) == ["007", "i2", "i3"]
    assert ds.items.text_fields == ("title", "genre")
    assert ds.items.texts() == ["Spy Film | Action", "Quiet Film", "Loud Film | Drama"]
    midnight = 1_609_459_200  # 2021-01-01 00:00:00 UTC
    assert _rows(ds.interactions) == [
        ("u1", 2, midnight - 1, 3.5),
        ("u1", 0, midnight, 5.0),
        ("u2", 1, midnight + 10, 4.0),  # a tie keeps file order
        ("u2", 0, midnight + 10, 2.0),
    ]
    assert ds.source == f"{log}, {items}"


def test_generic_parquet_int_seconds_implicit_feedback(tmp_path: Path) -> None:
    pd.DataFrame({"item_id": [10, 20], "title": ["A", "B"], "price": [1.0, 2.0]}).to_parquet(
        tmp_path / "items.parquet", index=False
    )
    pd.DataFrame(
        {"user_id": [7, 7, 3], "item_id": [20, 10, 20], "timestamp": [200, 100, 50]}
    ).to_parquet(tmp_path / "log.parquet", index=False)
    ds = load_dataset(
        "generic",
        interactions=tmp_path / "log.parquet",
        items=tmp_path / "items.parquet",
        text_fields=["title"],
        dataset_name="toy",
    )
    assert ds.name == "toy"
    assert list(ds.items.item_ids) == ["10", "20"]
    assert ds.items.texts() == ["A", "B"]
    assert _rows(ds.interactions) == [("3", 1, 50, 1.0), ("7", 0, 100, 1.0), ("7", 1, 200, 1.0)]
    no_time = load_dataset(
        "generic",
        interactions=tmp_path / "log.parquet",
        items=tmp_path / "items.parquet",
        time_col=None,
    )
    assert _rows(no_time.interactions) == [("3", 1, 0, 1.0), ("7", 1, 0, 1.0), ("7", 0, 0, 1.0)]


def test_generic_unknown_items(tmp_path: Path) -> None:
    log, items = _write_generic_csv(tmp_path)
    with log.open("a") as f:
        f.write("u3,zzz,2021-02-01 00:00:00,1\n")
    kwargs = dict(interactions=log, items=items, user_col="who", item_col="sku", time_col="when")
    with pytest.raises(DataFormatError, match=r"1 of 5 interactions .*\['zzz'\].*drop_unknown"):
        load_dataset("generic", **kwargs)
    with pytest.warns(UserWarning, match="dropped 1 of 5 interactions"):
        ds = load_dataset("generic", drop_unknown_items=True, **kwargs)
    assert ds.interactions is not None
    assert list(ds.interactions["user_id"]) == ["u1", "u1", "u2", "u2"]


def test_generic_malformed(tmp_path: Path) -> None:
    log, items = _write_generic_csv(tmp_path)
    with pytest.raises(DataFormatError) as err:
        load_dataset("generic", interactions=log, items=items, item_col="sku", time_col="ts")
    assert str(err.value).startswith(f"{log}: expected columns ['user_id', 'sku', 'ts']")
    assert "found ['who', 'sku', 'when', 'stars']" in str(err.value)
    with pytest.raises(DataFormatError, match=r"items\.csv: expected columns \['sku', 'plot'\]"):
        load_dataset("generic", interactions=log, items=items, item_col="sku", text_fields=["plot"])
    txt = tmp_path / "events.txt"
    txt.write_text(log.read_text())
    with pytest.raises(DataFormatError, match=r"events\.txt: cannot tell the table format"):
        load_dataset("generic", interactions=txt, items=items, user_col="who", item_col="sku")
    (tmp_path / "dup.csv").write_text("sku,title\na,A\na,B\n")
    with pytest.raises(DataFormatError, match=r"dup\.csv: item ids must be unique.*\['a'\]"):
        load_dataset("generic", interactions=log, items=tmp_path / "dup.csv", item_col="sku")
    (tmp_path / "bad_time.csv").write_text("user_id,sku,timestamp\nu,007,yesterday-ish\n")
    with pytest.raises(DataFormatError, match=r"bad_time\.csv, column 'timestamp'.*yesterday"):
        load_dataset("generic", interactions=tmp_path / "bad_time.csv", items=items, item_col="sku")


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=0, max_value=4_000_000_000))
def test_to_unix_seconds_round_trips(seconds: int) -> None:
    stamp = datetime.fromtimestamp(seconds, tz=timezone.utc)
    texts = pd.Series([stamp.strftime("%Y-%m-%d %H:%M:%S"), stamp.isoformat()])
    assert to_unix_seconds(texts).tolist() == [seconds, seconds]
    assert to_unix_seconds(pd.Series([seconds, seconds + 0.9])).tolist() == [seconds, seconds]
