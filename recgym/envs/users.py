"""Who the users of ``RecUser-v0`` are: the LE user model and its logged (or synthetic) users.

:func:`user_model` loads a user model (:func:`recgym.le.load_user_model`) once per process;
:func:`logged_users` gives a split's logged histories, and a model without logged users (the
``"fake"``) gets :func:`synthetic_users`. Both caches are per process and thread-safe, so every
env of the process with the same ``le`` and ``le_kwargs`` shares one model and one user list
(and a pickled env holds neither).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from recgym.error import RecGymError
from recgym.le import UserModel, load_user_model
from recgym.le.base import check_histories

__all__ = ["FAKE_USERS", "logged_users", "synthetic_users", "user_model"]

FAKE_USERS = 64
"""Synthetic users per split for a user model without logged ones (the ``"fake"``)."""

_MODELS: dict[tuple[str, str], UserModel] = {}
_USERS: dict[tuple[str, str, str, int | None], list[np.ndarray]] = {}
_LOCK = threading.Lock()


def _model_key(le: str, le_kwargs: Mapping[str, Any] | None) -> tuple[str, str]:
    try:
        return le, json.dumps(dict(le_kwargs or {}), sort_keys=True)
    except TypeError as exc:
        raise TypeError(
            f"le_kwargs must be JSON-serialisable (names and numbers, so env.spec records the "
            f"run); got {le_kwargs!r} ({exc})"
        ) from None


def user_model(le: str, le_kwargs: Mapping[str, Any] | None = None) -> UserModel:
    """``load_user_model(le, **le_kwargs)``, loaded once per process and shared by every env."""
    key = _model_key(le, le_kwargs)
    with _LOCK:
        if key not in _MODELS:
            _MODELS[key] = load_user_model(le, **dict(le_kwargs or {}))
        return _MODELS[key]


def synthetic_users(n_items: int, n_users: int = FAKE_USERS) -> dict[str, list[np.ndarray]]:
    """``{"train": ..., "test": ...}``: ``n_users`` histories each of distinct random items.

    Lengths are uniform in 5..30 (at most half the catalog); the generator is seeded 0, so the
    users never depend on an env's seed.
    """
    rng = np.random.default_rng(0)
    longest = max(1, min(30, n_items // 2))
    shortest = min(5, longest)
    return {
        split: [
            rng.choice(n_items, size=int(rng.integers(shortest, longest + 1)), replace=False)
            for _ in range(n_users)
        ]
        for split in ("train", "test")
    }


def logged_users(
    le: str, le_kwargs: Mapping[str, Any] | None, split: str, n_users: int | None = None
) -> list[np.ndarray]:
    """The logged histories (LE item indices, oldest first) of ``split``'s users.

    A user model with a ``users`` attribute (``{split: [history, ...]}``) gives its own (the
    first ``n_users`` of them if given); one without (the ``"fake"``) gets
    :func:`synthetic_users` (``n_users`` per split, default :data:`FAKE_USERS`).

    Raises:
        ValueError: ``split`` is not one of the model's splits.
        RecGymError: the split has no users.
    """
    model = user_model(le, le_kwargs)
    key = (*_model_key(le, le_kwargs), split, n_users)
    with _LOCK:
        if key in _USERS:
            return _USERS[key]
    logged = getattr(model, "users", None)
    if logged is None:
        logged = synthetic_users(model.n_items, n_users or FAKE_USERS)
    if not logged:
        raise RecGymError(f"user model {le!r} has no logged users (its 'users' is empty)")
    if split not in logged:
        raise ValueError(
            f"users must be one of {sorted(logged)} (the splits of user model {le!r}); "
            f"got {split!r}"
        )
    histories = check_histories(logged[split][:n_users], model.n_items)
    if not histories:
        raise RecGymError(f"split {split!r} of user model {le!r} has no users")
    with _LOCK:
        return _USERS.setdefault(key, histories)
