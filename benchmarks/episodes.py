"""Multi-step episodes for the leaderboard: play an agent on ``RecUser-v0``-style envs.

The text envs are one step per episode and scored in batches (:mod:`benchmarks.runner`). An
interactive env is played step by step instead: :func:`play_episodes` runs ``episodes``
episodes side by side in the env's vector form (``gym.make_vec``, one batched user-model call
per step) and returns per-episode metrics.

Fixed episodes. Episode ``j`` starts user ``j`` (modulo the split's users) with the reset seed
``EPISODE_SEED + j``, so every agent and every seed meets the same users, start histories and,
with ``RecUser-v0``'s one uniform draw per step whatever the action, the same acceptance draws
until their actions differ. The split is the env's ``users`` argument (``"train"``: the users
the LE learned from; ``"test"``: held-out users).

Metrics per episode: ``return`` (sum of rewards), ``length`` (steps until the user left or the
time limit), ``reward`` (mean reward per step) and ``taken`` (items the user took).
"""

from __future__ import annotations

import contextlib
import inspect
import json
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import load_env_creator

from recgym.agent import Agent, act_batch, takes_histories

__all__ = [
    "EPISODE_METRICS",
    "EPISODE_SEED",
    "episode_kwargs",
    "is_episodic",
    "open_vector_env",
    "play_episodes",
    "split_kwargs",
]

EPISODE_SEED = 10_000
"""Episode ``j`` is reset with seed ``EPISODE_SEED + j``."""
EPISODE_METRICS = ("reward", "return", "length", "taken")
"""The per-episode metrics of :func:`play_episodes`."""


def is_episodic(env_id: str) -> bool:
    """Whether ``env_id`` is played step by step (it has a vector entry point and no batched
    ``score``, which every one-step text env has)."""
    spec = gym.spec(env_id)
    if spec.vector_entry_point is None or not isinstance(spec.entry_point, str):
        return False
    return not hasattr(load_env_creator(spec.entry_point), "score")


def split_kwargs(
    env_id: str, split: str, env_kwargs: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The ``gym.make`` arguments of ``env_id`` on ``split``: ``split=`` for a text env, the
    ``users=`` argument for an interactive one."""
    kwargs = dict(env_kwargs or {})
    if not is_episodic(env_id):
        return {"split": split, **kwargs}
    if "users" in kwargs and kwargs["users"] != split:
        raise ValueError(
            f"{env_id} takes the split as its users argument; got split={split!r} and "
            f"env_kwargs users={kwargs['users']!r}. Pass the split only"
        )
    return {**kwargs, "users": split}


def open_vector_env(
    env_id: str, num_envs: int, split: str, env_kwargs: Mapping[str, Any] | None = None
) -> Any:
    """``gym.make_vec`` of an interactive env on ``split`` (its ``users``)."""
    return gym.make_vec(env_id, num_envs=num_envs, **split_kwargs(env_id, split, env_kwargs))


def episode_kwargs(env: Any) -> dict[str, Any]:
    """Every argument of the env's dynamics (defaults updated with the given ones), as JSON."""
    batch = env.batch
    params = inspect.signature(type(batch).__init__).parameters.values()
    full = {p.name: getattr(batch, p.name, p.default) for p in params if p.name not in ("self",)}
    full.pop("num_envs", None)
    full["observation"] = batch.observation_mode
    return dict(json.loads(json.dumps(full, default=str)))


def _play_batch(env: Any, agent: Agent, users: list[int], first: int) -> dict[str, np.ndarray]:
    """Play one episode per sub-env of ``env`` (``len(users)`` of them) until each has ended."""
    n = env.num_envs
    obs, _ = env.reset(seed=[EPISODE_SEED + first + i for i in range(n)], options={"user": users})
    returns = np.zeros(n)
    lengths = np.zeros(n, dtype=np.int64)
    taken = np.zeros(n, dtype=np.int64)
    live = np.ones(n, dtype=bool)
    privileged = takes_histories(agent)
    while live.any():
        observations = _rows(obs, n)
        histories = env.histories() if privileged else None
        actions = np.asarray(
            act_batch(agent, observations, env.action_masks(), histories), dtype=np.int64
        )
        obs, rewards, terminated, truncated, info = env.step(actions)
        returns += np.where(live, rewards, 0.0)
        lengths += live
        taken += live & np.asarray(info["accepted"], dtype=bool)
        live &= ~(np.asarray(terminated) | np.asarray(truncated))  # later steps: autoreset
    steps = np.maximum(lengths, 1)
    return {
        "reward": returns / steps,
        "return": returns,
        "length": lengths.astype(np.float64),
        "taken": taken.astype(np.float64),
    }


def _rows(obs: Any, n: int) -> list[Any]:
    """A batched observation (an array, or a dict of arrays) as one observation per sub-env."""
    if isinstance(obs, Mapping):
        return [{key: value[i] for key, value in obs.items()} for i in range(n)]
    return [obs[i] for i in range(n)]


def play_episodes(
    env_id: str,
    agent: Agent,
    *,
    split: str,
    episodes: int,
    env_kwargs: Mapping[str, Any] | None = None,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
    first_user: int = 0,
) -> tuple[dict[str, np.ndarray], Any]:
    """Play the first ``episodes`` fixed episodes (see the module docstring) of ``split``.

    ``first_user`` shifts the users: episode ``j`` starts user ``first_user + j`` (modulo the
    split's users), still with reset seed ``EPISODE_SEED + j``; e.g. validation users kept out
    of an agent's training env by its ``n_users``.

    The agent gets the env's action masks if its ``act_batch`` takes them, and the users' full
    histories (``env.histories()``, privileged) if it takes ``histories``
    (:func:`recgym.agent.act_batch`). ``progress`` is called with the episodes played after
    each batch.

    Returns:
        ``{metric: (episodes,) array}`` for :data:`EPISODE_METRICS`, and the (closed) vector
        env of the last batch, whose ``batch`` describes the dynamics.
    """
    if episodes < 1 or batch_size < 1 or first_user < 0:
        raise ValueError(
            f"episodes and batch_size must be >= 1 and first_user >= 0; got {episodes}, "
            f"{batch_size}, {first_user}"
        )
    parts: dict[str, list[np.ndarray]] = {}
    env: Any = None
    n_users = 0
    with contextlib.ExitStack() as reads:
        for lo in range(0, episodes, batch_size):
            size = min(batch_size, episodes - lo)
            if env is None or env.num_envs != size:
                if env is not None:
                    env.close()
                env = open_vector_env(env_id, size, split, env_kwargs)
                n_users = len(env.batch.logged)
                if lo == 0:
                    # An LLM LE's incremental reads match full ones up to float noise, so what
                    # its caches hold from earlier runs in this process could nudge a reward:
                    # start empty (and exact), and a row is the same whatever ran before it (a
                    # CLI re-run included); a training run's caches are back afterwards.
                    fresh = getattr(env.batch.model, "fresh_reads", None)
                    if callable(fresh):
                        reads.enter_context(fresh())
            users = [(first_user + lo + i) % n_users for i in range(size)]
            for key, values in _play_batch(env, agent, users, lo).items():
                parts.setdefault(key, []).append(values)
            if progress is not None:
                progress(lo + size)
        env.close()
    return {key: np.concatenate(chunks) for key, chunks in parts.items()}, env
