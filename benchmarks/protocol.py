"""Evaluation protocols: which leaderboard rows measure the same thing and may be ranked together.

A row's *protocol* is its env id, the env arguments that decide the episodes and their reward,
the split and the number of episodes played. Two rows of one protocol met the same episodes
under the same reward, so their numbers compare; rows of different protocols never share a
table (:mod:`benchmarks.table`).

Arguments that only change how the agent sees an episode (an env class's ``view_kwargs``:
``render_mode`` everywhere, ``RecUser-v0``'s ``observation`` and ``max_history``) are left
out, and so is the argument that names the split (``split=``, or ``RecUser-v0``'s ``users=``),
which is the protocol's ``split``. ``None`` and an empty container count as the same setting
(an unset ``le_kwargs`` is recorded as ``{}``).

Each env's *canonical* protocol is its default arguments on the whole test split: its table
comes first. A row knows the size of the split it was played on (``split_episodes``, recorded
by the runner; :func:`benchmarks.store.check_rows` fills it in for older rows when it rebuilds
the env); a row without it is never taken for a whole-split row.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator

from benchmarks.episodes import split_kwargs

__all__ = [
    "Protocol",
    "default_kwargs",
    "protocol_of",
    "row_kwargs",
    "split_size",
    "view_kwargs",
]

CANONICAL_SPLIT = "test"
"""The split of every env's canonical protocol."""


def _creator(env_id: str) -> Any:
    entry = gym.spec(env_id).entry_point
    return load_env_creator(entry) if isinstance(entry, str) else entry


@functools.cache
def view_kwargs(env_id: str) -> frozenset[str]:
    """The arguments of ``env_id`` that change only what the agent sees (the env class's
    ``view_kwargs``; ``{"render_mode"}`` for a class that declares none)."""
    return frozenset(getattr(_creator(env_id), "view_kwargs", {"render_mode"}))


@functools.cache
def _split_arg(env_id: str) -> str:
    (name,) = split_kwargs(env_id, CANONICAL_SPLIT)
    return str(name)


def default_kwargs(env_id: str) -> dict[str, Any]:
    """Every constructor argument of ``env_id`` with its default (its registration's kwargs
    applied), as JSON values: what the runner records for ``gym.make(env_id)``."""
    spec = gym.spec(env_id)
    kwargs = json.dumps(spec.kwargs, sort_keys=True, default=str)
    return dict(json.loads(_default_json(env_id, str(spec.entry_point), kwargs)))


@functools.cache
def _default_json(env_id: str, entry_point: str, kwargs: str) -> str:
    # Read once per registration (every row of a report asks, for its protocol and identity).
    params = inspect.signature(_creator(env_id)).parameters.values()
    full = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    full.update(json.loads(kwargs))
    return json.dumps(full, default=str)


def row_kwargs(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row's env arguments, with the default of each argument it does not record: one the
    env gained after the row was made, whose default keeps the env as it was (an env that
    changes what it returns bumps its version instead). A row of an env id that is not
    registered keeps its own."""
    recorded = dict(row.get("env_kwargs") or {})
    env_id = str(row.get("env_id"))
    if env_id not in gym.registry:
        return recorded
    return {**default_kwargs(env_id), **recorded}


def _unset(value: Any) -> bool:
    return value is None or (isinstance(value, (dict, list, str)) and not value)


def _settings(env_id: str, env_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``env_kwargs`` without the view and split arguments, unset values dropped."""
    drop = view_kwargs(env_id) | {_split_arg(env_id)}
    return {k: v for k, v in env_kwargs.items() if k not in drop and not _unset(v)}


@dataclass(frozen=True)
class Protocol:
    """What a row measured: rows with equal protocols are ranked in one table.

    Attributes:
        env_id: the env id.
        settings: the env arguments that decide episodes and rewards, as sorted JSON.
        split: the split played.
        episodes: the episodes played (``None`` if the row's count is not a number).
        canonical: the env's defaults on the whole test split.
        label: what differs from the canonical protocol, in words (``"canonical: ..."`` for
            the canonical one).
    """

    env_id: str
    settings: str
    split: str
    episodes: int | None
    canonical: bool
    label: str

    @property
    def key(self) -> tuple[str, str, str, int | None]:
        """The identity of the protocol (the label and ``canonical`` follow from it)."""
        return (self.env_id, self.settings, self.split, self.episodes)


def _count(value: Any) -> int | None:
    """``value`` as an episode count, ``None`` if it is not one."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def protocol_of(row: Mapping[str, Any]) -> Protocol:
    """The protocol of a runner row (its env id must be registered)."""
    env_id = str(row["env_id"])
    settings = _settings(env_id, row_kwargs(row))
    defaults = _settings(env_id, default_kwargs(env_id))
    changed = [
        f"{k}={json.dumps(settings.get(k))}"
        for k in sorted(set(settings) | set(defaults))
        if settings.get(k) != defaults.get(k)
    ]
    split, episodes, size = (
        str(row.get("split")),
        _count(row.get("episodes")),
        _count(row.get("split_episodes")),
    )
    whole = size is not None and episodes is not None and episodes >= size
    canonical = not changed and split == CANONICAL_SPLIT and whole
    if whole:
        played = f"all {episodes} episodes"
    elif size is not None:
        played = f"{episodes} of {size} episodes"
    else:
        played = f"{row.get('episodes')} episodes"
    words = [f"{split} split, {played}", *(changed if changed else ["default settings"])]
    label = ("canonical: " if canonical else "") + ", ".join(words)
    return Protocol(env_id, json.dumps(settings, sort_keys=True), split, episodes, canonical, label)


def split_size(env: gym.Env[Any, Any], split: str) -> int:
    """The number of episodes in ``split`` of a built env (its test split's users for an
    interactive env built on that split)."""
    base: Any = env.unwrapped
    if hasattr(base, "num_episodes"):
        return int(base.num_episodes(split))
    return len(base.batch.logged)
