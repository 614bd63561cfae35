"""Any interaction log plus item table, as CSV or parquet, in recgym's common form."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from recgym.data._files import (
    PathLike,
    describe_sources,
    drop_or_raise,
    read_table,
    sort_interactions,
    table_columns,
)
from recgym.data.catalog import Dataset, ItemCatalog
from recgym.data.registry import register_dataset
from recgym.error import DataFormatError

__all__ = ["load_generic", "load_recbole", "to_unix_seconds"]

_EPOCH = pd.Timestamp(0, tz="UTC")


def _datetimes_to_seconds(stamps: pd.Series) -> np.ndarray:
    if stamps.dt.tz is None:
        stamps = stamps.dt.tz_localize("UTC")
    return ((stamps - _EPOCH) // pd.Timedelta(seconds=1)).to_numpy(np.int64)


def _parse_datetimes(values: pd.Series) -> pd.Series:
    try:
        return pd.to_datetime(values, utc=True)
    except (ValueError, TypeError):
        # One format is inferred from the first value and is fast; fall back to per-value
        # parsing only for files that mix formats or offsets.
        return pd.to_datetime(values, utc=True, format="mixed")


def to_unix_seconds(values: pd.Series, where: str = "timestamps") -> np.ndarray:
    """Unix seconds (int64) from integer seconds, floats (floored) or date-time values.

    Date-times without a time zone are taken as UTC; text that is all numbers is read as
    seconds.

    Raises:
        DataFormatError: a value is missing or is neither a number nor a date-time; the
            message starts with ``where``.
    """
    if values.isna().any():
        raise DataFormatError(f"{where}: {int(values.isna().sum())} missing values")
    if pd.api.types.is_datetime64_any_dtype(values):
        return _datetimes_to_seconds(values)
    if pd.api.types.is_bool_dtype(values):
        raise DataFormatError(f"{where}: expected seconds or date-times; found booleans")
    if pd.api.types.is_integer_dtype(values):
        return values.to_numpy(np.int64)
    if pd.api.types.is_numeric_dtype(values):
        return np.floor(values.to_numpy(np.float64)).astype(np.int64)
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all():
        return to_unix_seconds(numbers, where)
    try:
        return _datetimes_to_seconds(_parse_datetimes(values))
    except (ValueError, TypeError, OverflowError):
        example = values[numbers.isna()].iloc[0]
        raise DataFormatError(
            f"{where}: expected integer seconds or date-times; found {example!r}"
        ) from None


def _read_items(
    path: Path, item_col: str, text_fields: Sequence[str] | None
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    found = table_columns(path)
    if item_col != "item_id" and "item_id" in found:
        raise DataFormatError(
            f"{path}: the id column is {item_col!r}, so the column 'item_id' would be "
            f"overwritten; rename it or pass item_col='item_id'"
        )
    fields = tuple(c for c in found if c != item_col) if text_fields is None else tuple(text_fields)
    items = read_table(path, required=[item_col, *fields], str_columns=[item_col])
    if items[item_col].isna().any():
        raise DataFormatError(f"{path}: {int(items[item_col].isna().sum())} items have no id")
    items = items.rename(columns={item_col: "item_id"})
    repeated = items["item_id"][items["item_id"].duplicated()].unique()
    if len(repeated):
        raise DataFormatError(
            f"{path}: item ids must be unique; {len(repeated)} repeat (e.g. {list(repeated[:5])})"
        )
    return items, fields


@register_dataset(
    "generic", "Your own data: an interaction log and an item table, as CSV or parquet files."
)
def load_generic(
    *,
    interactions: PathLike,
    items: PathLike,
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str | None = "timestamp",
    rating_col: str | None = None,
    text_fields: Sequence[str] | None = None,
    drop_unknown_items: bool = False,
    dataset_name: str = "generic",
) -> Dataset:
    """Load an interaction log and an item table from CSV or parquet files.

    The format is chosen by file name: ``.csv``, ``.csv.gz``, ``.parquet`` or ``.pq``.

    Args:
        interactions: the interaction log, one row per event.
        items: the item table, one row per item.
        user_col: the user-id column of ``interactions``.
        item_col: the item-id column, in both files.
        time_col: the time column of ``interactions``: integer (or float) Unix seconds, or
            date-times (text or datetime columns; without a zone taken as UTC). ``None``: no
            time, every timestamp is 0 and file order is kept within a user.
        rating_col: the rating column of ``interactions``; ``None``: implicit feedback, 1.0.
        text_fields: item columns that describe an item, in rendering order; by default every
            item column but the id, in file order.
        drop_unknown_items: drop, with a warning, interactions whose item is not in the item
            table (by default they are an error).
        dataset_name: the name the dataset reports (not ``name``, which
            :func:`~recgym.data.registry.load_dataset` takes itself).

    Returns:
        A dataset whose items keep every column of the item file (the id renamed ``item_id``)
        and whose ``interactions`` are sorted by (user, time), stably.

    Raises:
        DataFormatError: a file has an unknown extension, lacks a column, has missing ids,
            timestamps or ratings, repeats an item id, or names unknown items.
    """
    inter_path, items_path = Path(interactions), Path(items)
    for p in (inter_path, items_path):
        if not p.is_file():
            raise DataFormatError(f"{p}: no such file")
    table, fields = _read_items(items_path, item_col, text_fields)
    catalog = ItemCatalog(table, text_fields=fields)

    wanted = [user_col, item_col, *(c for c in (time_col, rating_col) if c is not None)]
    log = read_table(inter_path, list(dict.fromkeys(wanted)), str_columns=[user_col, item_col])
    for col in (user_col, item_col):
        if log[col].isna().any():
            n = int(log[col].isna().sum())
            raise DataFormatError(f"{inter_path}: column {col!r} has {n} missing values")
    unknown = ~log[item_col].isin(catalog.table["item_id"])
    ids = log.loc[unknown, item_col].unique()
    what = (
        f"{int(unknown.sum())} of {len(log)} interactions in {inter_path} name "
        f"{len(ids)} items absent from {items_path} (e.g. {list(ids[:5])})"
    )
    log = drop_or_raise(log, unknown, what, "drop_unknown_items", drop_unknown_items)

    if time_col is None:
        seconds = np.zeros(len(log), dtype=np.int64)
    else:
        seconds = to_unix_seconds(log[time_col], f"{inter_path}, column {time_col!r}")
    if rating_col is None:
        ratings = np.ones(len(log), dtype=np.float32)
    else:
        ratings = pd.to_numeric(log[rating_col], errors="coerce").to_numpy(np.float32)
        if np.isnan(ratings).any():
            raise DataFormatError(
                f"{inter_path}, column {rating_col!r}: {int(np.isnan(ratings).sum())} ratings "
                f"are missing or not numbers"
            )
    frame = pd.DataFrame(
        {
            "user_id": log[user_col].astype(str),
            "item_idx": catalog.indices(log[item_col]),
            "timestamp": seconds,
            "rating": ratings,
        }
    )
    return Dataset(
        dataset_name,
        catalog,
        interactions=sort_interactions(frame),
        source=describe_sources(inter_path, items_path),
    )


@register_dataset(
    "recbole",
    "RecBole's atomic files: <name>.inter (and <name>.item) in a folder, from local files.",
)
def load_recbole(
    *,
    path: PathLike,
    name: str | None = None,
    rating: bool = True,
    text_fields: Sequence[str] | None = None,
    drop_unknown_items: bool = False,
) -> Dataset:
    """Load a dataset in RecBole's atomic-file layout (as RecBole's own dataset downloads
    come): ``<path>/<name>.inter`` (``user_id:token``, ``item_id:token``, optionally
    ``rating:float`` and ``timestamp:float``) and ``<path>/<name>.item`` (``item_id:token``
    and the fields that describe an item), tab-separated with typed headers.

    Args:
        path: the dataset's folder.
        name: the files' stem (default: the folder's name, RecBole's convention).
        rating: read the ``rating`` field if there is one (``False``: implicit feedback).
        text_fields: the item fields that describe an item (default: all but the id).
        drop_unknown_items: as :func:`load_generic`'s.

    Raises:
        DataFormatError: a file is missing, or as :func:`load_generic`.
    """
    folder = Path(path)
    stem = name or folder.name
    inter, items = folder / f"{stem}.inter", folder / f"{stem}.item"
    if not inter.is_file():
        raise DataFormatError(f"{inter}: no such file (RecBole's {stem}.inter in {folder})")
    columns = table_columns(inter)
    return load_generic(
        interactions=inter,
        items=items,
        time_col="timestamp" if "timestamp" in columns else None,
        rating_col="rating" if rating and "rating" in columns else None,
        text_fields=text_fields,
        drop_unknown_items=drop_unknown_items,
        dataset_name=stem,
    )
