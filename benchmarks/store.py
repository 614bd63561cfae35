"""The leaderboard store: rows in JSON-lines files, the latest row per command, stale rows flagged.

Rows are only ever written by the runner (:func:`benchmarks.runner.evaluate` through
``python -m benchmarks run``), appended to JSON-lines files under ``benchmarks/results/``.
Re-running a row's command appends a new row with the same :func:`row_key`; :func:`latest_rows`
keeps the newest one, so a re-run replaces its row instead of adding a duplicate.

A row is *stale* when it no longer describes what its command would measure today:

- its env id is no longer registered, or a newer version of the env is (``RecSeq-v0`` rows
  once ``RecSeq-v1`` exists: Gymnasium's rule is that a change in an env's behaviour bumps the
  version, so the old numbers are not comparable with new ones);
- its ``env_version`` does not match its id;
- its ``data_version`` differs from the digest of the data the env builds today from the
  row's own ``env_kwargs`` (the dataset, the catalog text, the retriever behind the
  candidates changed).

The data check also gives a row from before the runner recorded ``split_episodes`` (the size
of the split it was played on, which :mod:`benchmarks.protocol` needs to tell a whole-split
row) that size.

:func:`check_rows` returns each row with a ``stale`` list of reasons (empty when fresh);
reports show stale rows apart and never rank them with fresh ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
from tqdm.auto import tqdm

from benchmarks.protocol import row_kwargs, split_size
from benchmarks.runner import load_rows

__all__ = [
    "RESULTS",
    "check_rows",
    "current_data_version",
    "latest_rows",
    "load_results",
    "row_key",
]

RESULTS = Path(__file__).resolve().parent / "results" / "leaderboard.jsonl"
"""The committed leaderboard rows."""

_VERSIONED_ID = re.compile(r"^(?P<name>.+)-v(?P<version>\d+)$")


def load_results(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """The rows of several JSON-lines files, in file order then line order."""
    rows: list[dict[str, Any]] = []
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"no results file at {path} (expected runner JSON lines)")
        rows += load_rows(path)
    return rows


_IDENTITY = (
    "env_id",
    "env_kwargs",
    "agent",
    "agent_config",
    "split",
    "episodes",
    "seeds",
    "budget",
    "budget_device",
)


def row_key(row: Mapping[str, Any]) -> str:
    """A row's identity: what it measures (env and its arguments, agent and its config, split,
    episodes played, seeds, training budget), not when, where or how fast it ran. Two commands
    spelt differently (``--episodes 1000`` on a 943-episode split and ``--episodes 943``) are
    the same row."""
    identity = {f: row.get(f) for f in _IDENTITY}
    # An argument the env gained after the row was made counts at its default: the re-run of
    # an old row's command, which records it, replaces that row.
    identity["env_kwargs"] = row_kwargs(row)
    return json.dumps(identity, sort_keys=True, default=str)


def latest_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per :func:`row_key`: the last one written, at the place of the first (so a
    re-run does not reorder the report)."""
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        latest[row_key(row)] = dict(row)  # dicts keep the first insertion's place
    return list(latest.values())


def _registered_versions(name: str) -> list[int]:
    versions = []
    for env_id in gym.registry:
        match = _VERSIONED_ID.match(env_id)
        if match and match["name"] == name:
            versions.append(int(match["version"]))
    return sorted(versions)


def _version_reasons(row: Mapping[str, Any]) -> list[str]:
    env_id = str(row.get("env_id"))
    match = _VERSIONED_ID.match(env_id)
    if match is None:
        return [f"env id {env_id!r} has no version suffix (-vN)"]
    reasons = []
    if row.get("env_version") != f"v{match['version']}":
        reasons.append(f"env_version {row.get('env_version')!r} does not match {env_id}")
    versions = _registered_versions(match["name"])
    if env_id not in gym.registry:
        current = f" (registered: {match['name']}-v{versions[-1]})" if versions else ""
        reasons.append(f"{env_id} is no longer registered{current}")
    elif versions and versions[-1] > int(match["version"]):
        reasons.append(f"superseded by {match['name']}-v{versions[-1]}")
    return reasons


def current_data_version(env_id: str, env_kwargs: Mapping[str, Any]) -> str:
    """The ``data_version`` the env builds today with these arguments (loads its data)."""
    return _rebuild(env_id, env_kwargs, None)[0]


def _rebuild(
    env_id: str, env_kwargs: Mapping[str, Any], split: str | None
) -> tuple[str, int | None]:
    """The env's ``data_version`` today, and the size of ``split`` (if one is named)."""
    env = gym.make(env_id, **dict(env_kwargs))
    try:
        size = None if split is None else split_size(env, split)
        return str(env.unwrapped.data_version), size  # type: ignore[attr-defined]
    finally:
        env.close()


def check_rows(
    rows: Sequence[Mapping[str, Any]], *, check_data: bool = True, progress: bool = False
) -> list[dict[str, Any]]:
    """Copies of ``rows``, each with ``stale``: the reasons it is stale (empty when fresh).

    Args:
        rows: runner rows.
        check_data: rebuild each distinct (env id, env kwargs) once and compare its data
            digest with the rows' (loads datasets, may train a named retriever on first use);
            ``False`` checks env versions only.
        progress: a progress bar over the data checks.
    """
    out = [{**row, "stale": _version_reasons(row)} for row in rows]
    if not check_data:
        return out
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in out:
        if row["env_id"] in gym.registry:
            kwargs = json.dumps(row.get("env_kwargs") or {}, sort_keys=True)
            groups.setdefault((str(row["env_id"]), kwargs, str(row["split"])), []).append(row)
    for (env_id, kwargs, split), members in tqdm(
        groups.items(), desc="checking data", unit="env", disable=not progress
    ):
        try:
            current, size = _rebuild(env_id, json.loads(kwargs), split)
        except Exception as exc:  # any failure to rebuild is itself a reason to distrust the row
            reason = f"cannot rebuild {env_id} to check its data: {type(exc).__name__}: {exc}"
            for row in members:
                row["stale"].append(reason)
            continue
        for row in members:
            row.setdefault("split_episodes", size)  # rows from before the runner recorded it
            if row.get("data_version") != current:
                row["stale"].append(
                    f"data {row.get('data_version')} differs from the current data {current}"
                )
    return out
