"""Datasets: fetch-on-first-use with verified caching, a common in-memory form, splits, loaders."""

from __future__ import annotations

from recgym.data.artifacts import ARTIFACTS, fetch, get_artifact
from recgym.data.cache import cache_dir
from recgym.data.catalog import INTERACTION_COLUMNS, Dataset, ItemCatalog
from recgym.data.registry import (
    DATASETS,
    dataset_spec,
    list_datasets,
    load_dataset,
    register_dataset,
)
from recgym.data.splits import LeaveOneOutSplit, leave_one_out

__all__ = [
    "ARTIFACTS",
    "DATASETS",
    "INTERACTION_COLUMNS",
    "Dataset",
    "ItemCatalog",
    "LeaveOneOutSplit",
    "cache_dir",
    "dataset_spec",
    "fetch",
    "get_artifact",
    "leave_one_out",
    "list_datasets",
    "load_dataset",
    "register_dataset",
]
