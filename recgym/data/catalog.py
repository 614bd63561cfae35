"""The common in-memory form of every dataset: an item catalog plus interaction and text tables."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recgym.error import DataFormatError

__all__ = ["INTERACTION_COLUMNS", "Dataset", "ItemCatalog", "default_renderer"]

INTERACTION_COLUMNS = ("user_id", "item_idx", "timestamp", "rating")
"""Columns of :attr:`Dataset.interactions`: user id (str), item index into the catalog (int64),
Unix time in seconds (int64), rating (float32; 1.0 for implicit feedback)."""


def default_renderer(fields: Sequence[str]) -> Callable[[Mapping[str, Any]], str]:
    """A renderer that joins the non-empty ``fields`` of a row as ``"value | value"``."""

    def render(row: Mapping[str, Any]) -> str:
        parts = []
        for name in fields:
            value = row.get(name)
            if value is None or (isinstance(value, float) and np.isnan(value)):
                continue
            if isinstance(value, (list, tuple, np.ndarray)):
                value = ", ".join(str(v) for v in value)
            text = str(value).strip()
            if text:
                parts.append(text)
        return " | ".join(parts)

    return render


@dataclass(frozen=True)
class ItemCatalog:
    """The items of a dataset; row ``i`` of :attr:`table` is internal item index ``i``.

    Attributes:
        table: one row per item, with an ``item_id`` column (external id, str) and text fields.
        text_fields: the columns that describe an item, in rendering order.
        renderer: turns one row (a mapping of column → value) into the item's text.
    """

    table: pd.DataFrame
    text_fields: tuple[str, ...]
    renderer: Callable[[Mapping[str, Any]], str] | None = None
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if "item_id" not in self.table.columns:
            raise DataFormatError(
                f"item table needs an 'item_id' column; has {list(self.table.columns)}"
            )
        missing = [f for f in self.text_fields if f not in self.table.columns]
        if missing:
            raise DataFormatError(f"text fields {missing} are not columns of the item table")
        table = self.table.reset_index(drop=True)
        table["item_id"] = table["item_id"].astype(str)
        if table["item_id"].duplicated().any():
            dup = table.loc[table["item_id"].duplicated(), "item_id"].iloc[0]
            raise DataFormatError(f"item ids must be unique; {dup!r} appears more than once")
        object.__setattr__(self, "table", table)
        object.__setattr__(self, "_index", {iid: i for i, iid in enumerate(table["item_id"])})
        if self.renderer is None:
            object.__setattr__(self, "renderer", default_renderer(self.text_fields))

    def __len__(self) -> int:
        return len(self.table)

    @property
    def item_ids(self) -> np.ndarray:
        """External item ids (str), indexed by internal item index."""
        return self.table["item_id"].to_numpy()

    def index(self, item_id: str) -> int:
        """Internal index of an external item id."""
        try:
            return self._index[str(item_id)]
        except KeyError:
            raise DataFormatError(f"unknown item id {item_id!r}") from None

    def indices(self, item_ids: Iterable[Any]) -> np.ndarray:
        """Internal indices of many external ids (int64 array)."""
        return np.fromiter((self.index(i) for i in item_ids), dtype=np.int64)

    def text(self, idx: int) -> str:
        """The rendered text of item ``idx``."""
        assert self.renderer is not None
        return self.renderer(self.table.iloc[int(idx)].to_dict())

    def texts(self, indices: Iterable[int] | None = None) -> list[str]:
        """Rendered texts of the given items (all items by default), in order."""
        assert self.renderer is not None
        rows = self.table.to_dict("records")
        if indices is None:
            return [self.renderer(r) for r in rows]
        return [self.renderer(rows[int(i)]) for i in indices]


@dataclass(frozen=True)
class Dataset:
    """A loaded dataset in recgym's common form.

    Attributes:
        name: registry name (e.g. ``"ml-100k"``).
        items: the item catalog.
        interactions: user-item events with :data:`INTERACTION_COLUMNS`, or ``None``.
        reviews: review texts with at least ``item_idx`` and ``text`` columns, or ``None``.
        queries: search requests with ``query_id``, ``query`` and ``split`` columns, or ``None``.
        qrels: relevance judgements with ``query_id``, ``item_idx``, ``relevance``, or ``None``.
        source: where the files came from (a source key or a local path).
    """

    name: str
    items: ItemCatalog
    interactions: pd.DataFrame | None = None
    reviews: pd.DataFrame | None = None
    queries: pd.DataFrame | None = None
    qrels: pd.DataFrame | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if self.interactions is not None:
            missing = [c for c in INTERACTION_COLUMNS if c not in self.interactions.columns]
            if missing:
                raise DataFormatError(f"interactions lack columns {missing}")
            bad = self.interactions["item_idx"]
            if len(bad) and (bad.min() < 0 or bad.max() >= len(self.items)):
                raise DataFormatError("interactions reference item indices outside the catalog")

    def summary(self) -> dict[str, int]:
        """Sizes of each part: items, users, interactions, reviews, queries, qrels."""
        out = {"items": len(self.items)}
        if self.interactions is not None:
            out["users"] = int(self.interactions["user_id"].nunique())
            out["interactions"] = len(self.interactions)
        for name in ("reviews", "queries", "qrels"):
            frame = getattr(self, name)
            if frame is not None:
                out[name] = len(frame)
        return out
