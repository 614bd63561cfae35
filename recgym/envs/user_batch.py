"""The dynamics every ``RecUser-v0`` env shares: :class:`UserBatch`, N simulated users stepped
together.

A batch makes at most one :meth:`~recgym.le.base.UserModel.rewards` and one
:meth:`~recgym.le.base.UserModel.states` call per step for all of its users.
:class:`~recgym.envs.user.RecUserEnv` is a batch of one,
:class:`~recgym.envs.user.RecUserVectorEnv` a batch of N, and ``agents.sb3.vec_env.RecUserVecEnv``
the same batch for Stable-Baselines3. :class:`BatchStep` is what one step returns.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode

from recgym.envs.spaces import describe, history_space, padded_history
from recgym.envs.users import logged_users, user_model
from recgym.error import RecGymError
from recgym.le import UserModel
from recgym.le.base import DEFAULT_LE, check_histories

__all__ = ["ACCEPTS", "OBSERVATIONS", "BatchStep", "Obs", "UserBatch"]

Obs: TypeAlias = np.ndarray | dict[str, np.ndarray]

OBSERVATIONS = ("state", "dict")
ACCEPTS = ("sample", "threshold")


@dataclass
class _User:
    """One user's episode."""

    user: int  # index into the logged users; -1 for a history given in reset options
    history: list[int]  # LE items, oldest first
    seen: np.ndarray  # (n_items,) bool: in the history
    state: np.ndarray | None = None  # SM state of the history (None: to compute)
    steps: int = 0
    misses: int = 0  # consecutive rejections
    depth: int = 0  # items taken this episode
    done: bool = False
    left: bool = False  # done because the user left
    last: dict[str, Any] | None = None  # the last step's info (for render)


@dataclass
class BatchStep:
    """What :meth:`UserBatch.step` returns for N users.

    Attributes:
        rewards: ``(N,)`` float64.
        terminated: ``(N,)`` the user left.
        truncated: ``(N,)`` ``max_steps`` reached (and the user did not leave).
        infos: per user, the step's info, or the reset info of a user restarted this step.
        final_obs: same-step autoreset: the last observation of each restarted user.
        final_infos: same-step autoreset: the last step's info of each restarted user.
    """

    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    infos: list[dict[str, Any]]
    final_obs: dict[int, Obs] = field(default_factory=dict)
    final_infos: dict[int, dict[str, Any]] = field(default_factory=dict)


def _state(row: _User) -> np.ndarray:
    if row.state is None:  # every path that changes a history refreshes it before observing
        raise RecGymError("internal error: a user's state was not computed")
    return row.state


def _check_int(value: Any, n: int, what: str) -> int:
    """``value`` as an int in ``0..n-1`` (a numpy integer or a one-element int array too)."""
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype.kind not in "iu":
        raise ValueError(f"{what} must be an int in 0..{n - 1}; got {describe(value)}")
    out = int(arr.reshape(-1)[0])
    if not 0 <= out < n:
        raise ValueError(f"{what} must be an int in 0..{n - 1}; got {out}")
    return out


class UserBatch:
    """N simulated users of ``RecUser-v0`` stepped together: the env's dynamics.

    Holds one episode and one random generator per user. :meth:`reset` starts users,
    :meth:`step` recommends one item to each: one ``rewards`` call for the users whose item is
    new to them, then one ``states`` call for the users whose history changed (or who
    restarted), so an LLM LE runs at most two batched passes per step whatever N is.

    Args:
        num_envs: N.
        **kwargs: the arguments of :class:`~recgym.envs.user.RecUserEnv` but ``render_mode``.
    """

    def __init__(
        self,
        num_envs: int = 1,
        *,
        le: str = DEFAULT_LE,
        le_kwargs: Mapping[str, Any] | None = None,
        observation: str = "state",
        max_steps: int = 20,
        patience: int = 3,
        start_min: int = 5,
        start_max: int | None = None,
        accept: str = "sample",
        seen_reward: float = 0.0,
        max_history: int = 50,
        users: str = "train",
        n_users: int | None = None,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1; got {num_envs}")
        if observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {OBSERVATIONS}; got {observation!r}")
        if accept not in ACCEPTS:
            raise ValueError(f"accept must be one of {ACCEPTS}; got {accept!r}")
        if max_steps < 1 or patience < 1 or max_history < 1:
            raise ValueError(
                f"max_steps, patience and max_history must be >= 1; got {max_steps}, "
                f"{patience}, {max_history}"
            )
        if start_min < 0 or (start_max is not None and start_max < start_min):
            raise ValueError(
                f"need 0 <= start_min <= start_max (None: the whole logged history); got "
                f"{start_min}, {start_max}"
            )
        if n_users is not None and n_users < 1:
            raise ValueError(f"n_users must be >= 1 or None; got {n_users}")
        self.num_envs = int(num_envs)
        self.le = le
        self.le_kwargs = dict(le_kwargs or {})
        self.observation_mode = observation
        self.max_steps = int(max_steps)
        self.patience = int(patience)
        self.start_min = int(start_min)
        self.start_max = None if start_max is None else int(start_max)
        self.accept = accept
        self.seen_reward = float(seen_reward)
        self.max_history = int(max_history)
        self.users = users
        self.n_users = n_users
        model = self.model
        self.n_items = int(model.n_items)
        self.state_dim = int(model.state_dim)
        self.logged  # noqa: B018 (checks the split now, not at the first reset)
        state = spaces.Box(-1.0, 1.0, (self.state_dim,), np.float32)
        self.single_observation_space: spaces.Space[Any] = (
            state
            if observation == "state"
            else spaces.Dict(
                {
                    "state": state,
                    "history": history_space(self.n_items, self.max_history),
                }
            )
        )
        self.single_action_space = spaces.Discrete(self.n_items)
        self.rngs: list[np.random.Generator | None] = [None] * self.num_envs
        self._rows: list[_User | None] = [None] * self.num_envs

    # The model and the users live in per-process caches, not on the batch: a pickle holds the
    # arguments, the generators and the episodes only.
    @property
    def model(self) -> UserModel:
        """The user model (shared by every env of the process with the same ``le``)."""
        return user_model(self.le, self.le_kwargs)

    @property
    def logged(self) -> list[np.ndarray]:
        """The logged histories of the users (:func:`logged_users`)."""
        return logged_users(self.le, self.le_kwargs, self.users, self.n_users)

    reward_name = "rm-probability"
    """What the reward is, for leaderboard rows."""

    @property
    def data_version(self) -> str:
        """A digest of the user model's identity (a trained LE's weights digest, or its folder
        name; ``"fake"``) and the split's logged users, for leaderboard rows: a row made with
        other weights has another one."""
        model = self.model
        identity = getattr(model, "digest", "") or Path(str(getattr(model, "name", self.le))).name
        digest = hashlib.sha256(identity.encode())
        for history in self.logged:
            digest.update(np.asarray(history, dtype=np.int64).tobytes() + b"|")
        return digest.hexdigest()[:12]

    # ----- episodes ---------------------------------------------------------------------------

    def _start(self, rng: np.random.Generator, options: Mapping[str, Any] | None) -> _User:
        """A new episode (no LE call): the user and the starting history."""
        options = dict(options or {})
        unknown = set(options) - {"user", "history"}
        if unknown:
            raise ValueError(
                f"unknown reset options {sorted(unknown)}; use 'user' (an index into the "
                "logged users) or 'history' (LE item indices, oldest first)"
            )
        if "history" in options:
            if "user" in options:
                raise ValueError("give reset option 'user' or 'history', not both")
            (history,) = check_histories([options["history"]], self.n_items)
            user = -1
        else:
            logged = self.logged
            if options.get("user") is None:
                user = int(rng.integers(len(logged)))
            else:
                user = _check_int(options["user"], len(logged), "reset option 'user'")
            full = logged[user]
            high = len(full) if self.start_max is None else min(self.start_max, len(full))
            history = full[: int(rng.integers(min(self.start_min, high), high + 1))]
        seen = np.zeros(self.n_items, dtype=bool)
        seen[history] = True
        return _User(user, history.tolist(), seen)

    def _refresh(self, rows: Sequence[_User]) -> None:
        """One ``states`` call for the rows whose state is unknown."""
        stale = [row for row in rows if row.state is None]
        if not stale:
            return
        states = self.model.states([np.asarray(r.history, dtype=np.int64) for r in stale])
        for row, state in zip(stale, np.clip(states, -1.0, 1.0), strict=True):
            row.state = state.astype(np.float32)

    def _row(self, i: int) -> _User:
        row = self._rows[i]
        if row is None:
            raise RecGymError("no episode has started: call reset() first")
        return row

    def reset(
        self,
        indices: Sequence[int] | None = None,
        seeds: Sequence[int | None] | None = None,
        options: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[dict[str, Any]]:
        """Start the users ``indices`` (default all); one ``states`` call. Returns their infos.

        Args:
            indices: the users to start.
            seeds: per user, a seed for a new generator (``None``: keep the user's generator,
                or start an unseeded one).
            options: per user, ``{"user": i}`` or ``{"history": [...]}`` (see
                :class:`~recgym.envs.user.RecUserEnv`).
        """
        idx = list(range(self.num_envs)) if indices is None else [int(i) for i in indices]
        for name, given in (("seeds", seeds), ("options", options)):
            if given is not None and len(given) != len(idx):
                raise ValueError(f"got {len(given)} {name} for {len(idx)} users; pass one each")
        new = []
        for k, i in enumerate(idx):
            seed = None if seeds is None else seeds[k]
            if seed is not None or self.rngs[i] is None:
                self.rngs[i], _ = seeding.np_random(seed)
            rng = self.rngs[i]
            assert rng is not None
            new.append(self._start(rng, None if options is None else options[k]))
        self._refresh(new)
        for i, row in zip(idx, new, strict=True):
            self._rows[i] = row
        return [self._reset_info(i) for i in idx]

    def check_actions(self, actions: Any) -> np.ndarray:
        """``actions`` as ``(N,)`` int64 item indices.

        Raises:
            ValueError: not N ints in ``0..n_items-1``.
        """
        arr = np.asarray(actions)
        n = self.n_items
        if arr.shape != (self.num_envs,) or arr.dtype.kind not in "iu":
            raise ValueError(
                f"actions must be {self.num_envs} item indices (ints in 0..{n - 1}, "
                f"MultiDiscrete({[n] * self.num_envs})); got {describe(actions)}"
            )
        if arr.size and (arr.min() < 0 or arr.max() >= n):
            raise ValueError(f"actions must be item indices in 0..{n - 1}; got {arr.tolist()}")
        return arr.astype(np.int64)

    def step(self, actions: Any, autoreset: AutoresetMode | None = None) -> BatchStep:
        """Recommend ``actions[i]`` to user ``i``.

        Args:
            actions: ``(N,)`` item indices.
            autoreset: ``None``: every user must be in an episode; ``NEXT_STEP``: users whose
                episode ended at the last step restart instead of stepping (reward 0, their
                action ignored); ``SAME_STEP``: users whose episode ends now restart at once
                (their last observation and info in :attr:`BatchStep.final_obs` and
                :attr:`BatchStep.final_infos`).

        Raises:
            ValueError: bad actions.
            RecGymError: a user without an episode to step (and no autoreset to start one).
        """
        acts = self.check_actions(actions)
        n = self.num_envs
        waiting = {i for i in range(n) if self._row(i).done}  # ended at an earlier step
        if waiting and autoreset is not AutoresetMode.NEXT_STEP:
            raise RecGymError(
                "the episode is over (the user left or max_steps was reached): call reset()"
            )
        out = BatchStep(np.zeros(n), np.zeros(n, bool), np.zeros(n, bool), [{} for _ in range(n)])
        self._advance([i for i in range(n) if i not in waiting], acts, out)
        if autoreset is AutoresetMode.NEXT_STEP:
            restart = sorted(waiting)
        elif autoreset is AutoresetMode.SAME_STEP:
            restart = [i for i in range(n) if self._row(i).done]
        else:
            restart = []
        restarted = {}
        for i in restart:
            rng = self.rngs[i]
            assert rng is not None
            restarted[i] = self._start(rng, None)
        rows = [self._row(i) for i in range(n)]
        self._refresh(rows + list(restarted.values()))  # final and new states in one call
        for i, row in restarted.items():
            if autoreset is AutoresetMode.SAME_STEP:
                out.final_obs[i] = self.observation(i)
                out.final_infos[i] = out.infos[i]
            self._rows[i] = row
            out.infos[i] = self._reset_info(i)
        return out

    def _advance(self, indices: list[int], actions: np.ndarray, out: BatchStep) -> None:
        """Step the users ``indices`` (one ``rewards`` call for the items new to them)."""
        rows = [self._row(i) for i in indices]
        items = actions[indices]
        fresh = [j for j, row in enumerate(rows) if not row.seen[items[j]]]
        p = np.zeros(len(rows))
        if fresh:
            histories = [np.asarray(rows[j].history, dtype=np.int64) for j in fresh]
            p[fresh] = self.model.rewards(histories, items[fresh])
        for j, (i, row) in enumerate(zip(indices, rows, strict=True)):
            item = int(items[j])
            rng = self.rngs[i]
            assert rng is not None
            # One uniform per step in "sample" mode, drawn even for a seen item, so a user's
            # random stream does not depend on the actions.
            draw = rng.random() if self.accept == "sample" else None
            seen = bool(row.seen[item])
            if seen:
                accepted, reward = False, self.seen_reward
            else:
                reward = float(p[j])
                accepted = bool(draw < reward) if draw is not None else reward >= 0.5
            row.steps += 1
            if accepted:
                row.history.append(item)
                row.seen[item] = True
                row.state = None
                row.misses = 0
                row.depth += 1
            else:
                row.misses += 1
            terminated = row.misses >= self.patience or bool(row.seen.all())
            truncated = not terminated and row.steps >= self.max_steps
            row.done, row.left = terminated or truncated, terminated
            info = {
                **self._reset_info(i),
                "item": item,
                "accepted": accepted,
                "p_accept": 0.0 if seen else reward,
                "seen": seen,
                "rewards": {
                    "rm": 0.0 if seen else reward,
                    "seen": self.seen_reward if seen else 0.0,
                },
                "metrics": {"depth": row.depth, "accept_rate": row.depth / row.steps},
            }
            row.last = info
            out.rewards[i], out.terminated[i], out.truncated[i] = reward, terminated, truncated
            out.infos[i] = info

    # ----- views ------------------------------------------------------------------------------

    def _reset_info(self, i: int) -> dict[str, Any]:
        row = self._row(i)
        return {
            "user": row.user,
            "history_len": len(row.history),
            "action_mask": (~row.seen).astype(np.int8),
        }

    def observation(self, i: int) -> Obs:
        """User ``i``'s observation: the SM state (and the padded history)."""
        row = self._row(i)
        if self.observation_mode == "state":
            return _state(row).copy()
        return {
            "state": _state(row).copy(),
            "history": padded_history(row.history, self.max_history),
        }

    def has_episode(self, i: int) -> bool:
        """Whether user ``i`` was ever started."""
        return self._rows[i] is not None

    def observations(self) -> Obs:
        """Every user's observation, stacked."""
        rows = [self._row(i) for i in range(self.num_envs)]
        states = np.stack([_state(r) for r in rows])
        if self.observation_mode == "state":
            return states
        histories = [padded_history(r.history, self.max_history) for r in rows]
        return {"state": states, "history": np.stack(histories)}

    def action_masks(self) -> np.ndarray:
        """``(N, n_items)`` bool: True for the items not in each user's history."""
        return np.stack([~self._row(i).seen for i in range(self.num_envs)])

    def histories(self) -> list[np.ndarray]:
        """Every user's current history as an int64 array (LE items, oldest first): privileged
        information that the observation does not carry in full (``"dict"`` keeps only the
        latest ``max_history`` items), for reference agents such as ``rm-greedy``."""
        return [np.asarray(self._row(i).history, dtype=np.int64) for i in range(self.num_envs)]

    def render(self, i: int) -> str:
        """User ``i``'s episode as text: the latest history and the last recommendation."""
        row = self._row(i)
        ids = self.model.item_ids
        who = "a given history" if row.user < 0 else f"user {row.user} ({self.users})"
        lines = [
            f"[RecUser-v0 {self.le}] {who}: step {row.steps}/{self.max_steps}, "
            f"rejections in a row {row.misses}/{self.patience}, items taken {row.depth}",
            f"HISTORY ({len(row.history)} items, latest last; LE item [dataset item]):",
            "   " + " ".join(f"{j}[{ids[j]}]" for j in row.history[-10:]),
        ]
        if row.last is not None:
            last = row.last
            verdict = "seen before" if last["seen"] else "taken" if last["accepted"] else "declined"
            left = " -- the user left" if row.left else ""
            lines.append(
                f"LAST: item {last['item']}[{ids[last['item']]}] p={last['p_accept']:.3f} "
                f"{verdict}{left}"
            )
        return "\n".join(lines) + "\n"
