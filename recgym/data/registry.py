"""Datasets by name: ``load_dataset("ml-100k")`` and friends."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from recgym.data.catalog import Dataset
from recgym.error import UnknownNameError

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "dataset_spec",
    "list_datasets",
    "load_dataset",
    "register_dataset",
]


@dataclass(frozen=True)
class DatasetSpec:
    """How to load one named dataset.

    Attributes:
        name: registry name.
        loader: callable returning a :class:`Dataset`; keyword arguments of
            :func:`load_dataset` are passed through (e.g. ``path=`` for local files).
        description: one line for ``recgym data list``.
        artifact: name of the embedded artifact it fetches, or ``None`` for datasets read from
            user-provided files.
    """

    name: str
    loader: Callable[..., Dataset]
    description: str
    artifact: str | None = None


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(
    name: str, description: str, artifact: str | None = None
) -> Callable[[Callable[..., Dataset]], Callable[..., Dataset]]:
    """Decorator that registers a loader function under ``name``."""

    def wrap(loader: Callable[..., Dataset]) -> Callable[..., Dataset]:
        DATASETS[name] = DatasetSpec(name, loader, description, artifact)
        return loader

    return wrap


def _ensure_builtin() -> None:
    # Import for the registration side effect, lazily so `import recgym` stays light.
    import recgym.data.clothing
    import recgym.data.loaders
    import recgym.data.movielens  # noqa: F401


def list_datasets() -> list[DatasetSpec]:
    """All registered datasets, sorted by name."""
    _ensure_builtin()
    return [DATASETS[k] for k in sorted(DATASETS)]


def dataset_spec(name: str) -> DatasetSpec:
    """The registration of dataset ``name`` (loads nothing).

    Raises:
        UnknownNameError: ``name`` is not registered (the message suggests close names).
    """
    _ensure_builtin()
    if name not in DATASETS:
        close = difflib.get_close_matches(name, DATASETS, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise UnknownNameError(
            f"no dataset named {name!r}; registered: {', '.join(sorted(DATASETS))}.{hint}"
        )
    return DATASETS[name]


def load_dataset(name: str, **kwargs: Any) -> Dataset:
    """Load a registered dataset in recgym's common form.

    Embedded datasets are fetched on first use into the cache. Datasets in the seeds' own
    formats (``esci``, ``amazon-c4``, ``amazon-reviews-2023``, ``generic``) read local files
    given by keyword arguments.

    Raises:
        UnknownNameError: ``name`` is not registered (the message suggests close names).
    """
    return dataset_spec(name).loader(**kwargs)
