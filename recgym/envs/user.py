"""``RecUser-v0``: recommend one item at a time to a user simulated by an LLM environment (LE).

After Wang et al., *LLM as environment* (SIGIR 2024): the LE's state model (SM) turns the
user's history into the observation and its reward model (RM) scores the recommended item,
the probability that the user takes it. Taken items join the history; a user who turns down
``patience`` recommendations in a row leaves.

Every LE call is batched: :class:`UserBatch` holds the dynamics for N users and makes at most
one :meth:`~recgym.le.base.UserModel.rewards` and one
:meth:`~recgym.le.base.UserModel.states` call per step for all of them. :class:`RecUserEnv`
is a batch of one, :class:`RecUserVectorEnv` (``gym.make_vec("RecUser-v0", num_envs=N)``) a
batch of N, and ``agents.sb3_vec.RecUserVecEnv`` the same batch for Stable-Baselines3.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from recgym.error import RecGymError
from recgym.le import UserModel, load_user_model
from recgym.le.base import check_histories

__all__ = [
    "FAKE_USERS",
    "BatchStep",
    "RecUserEnv",
    "RecUserVectorEnv",
    "UserBatch",
    "logged_users",
    "synthetic_users",
    "user_model",
]

Obs: TypeAlias = np.ndarray | dict[str, np.ndarray]

FAKE_USERS = 64
"""Synthetic users per split for a user model without logged ones (the ``"fake"``)."""

OBSERVATIONS = ("state", "dict")
ACCEPTS = ("sample", "threshold")

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
        raise ValueError(f"{what} must be an int in 0..{n - 1}; got {value!r}")
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
        **kwargs: the arguments of :class:`RecUserEnv` but ``render_mode``.
    """

    def __init__(
        self,
        num_envs: int = 1,
        *,
        le: str = "ml-100k-smollm2",
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
                    "history": spaces.Box(-1, self.n_items - 1, (self.max_history,), np.int64),
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
        """A digest of the user model's identity (a trained LE's cache folder name, which digests
        its configuration; ``"fake"``) and the split's logged users, for leaderboard rows."""
        digest = hashlib.sha256(Path(str(getattr(self.model, "name", self.le))).name.encode())
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
                :class:`RecUserEnv`).
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
                f"MultiDiscrete({[n] * self.num_envs})); got {actions!r}"
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

    def _padded(self, row: _User) -> np.ndarray:
        padded = np.full(self.max_history, -1, dtype=np.int64)
        recent = row.history[-self.max_history :]
        padded[len(padded) - len(recent) :] = recent
        return padded

    def observation(self, i: int) -> Obs:
        """User ``i``'s observation: the SM state (and the padded history)."""
        row = self._row(i)
        if self.observation_mode == "state":
            return _state(row).copy()
        return {"state": _state(row).copy(), "history": self._padded(row)}

    def has_episode(self, i: int) -> bool:
        """Whether user ``i`` was ever started."""
        return self._rows[i] is not None

    def observations(self) -> Obs:
        """Every user's observation, stacked."""
        rows = [self._row(i) for i in range(self.num_envs)]
        states = np.stack([_state(r) for r in rows])
        if self.observation_mode == "state":
            return states
        return {"state": states, "history": np.stack([self._padded(r) for r in rows])}

    def action_masks(self) -> np.ndarray:
        """``(N, n_items)`` bool: True for the items not in each user's history."""
        return np.stack([~self._row(i).seen for i in range(self.num_envs)])

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


class RecUserEnv(gym.Env[Obs, np.int64]):
    """Recommend items one at a time to a user simulated by an LLM environment (LE).

    ## Description
    A user model after Wang et al., *LLM as environment* (SIGIR 2024): an LLM with one token
    per item and two adapters, a state model (SM) that reads the user's recent items (the last
    ``window`` to ``2 * window - 1``) and a reward model (RM) that scores a candidate item after
    them, trained on MovieLens-100k
    (:mod:`recgym.le`). Each step the agent recommends one item; the user takes it with the
    RM's probability and it joins the history, so the next state moves with what was taken. A
    user who turns down ``patience`` recommendations in a row leaves.

    Items are the LE's catalog indices ``0..n_items-1``; ``env.unwrapped.model.item_ids`` maps
    them to the dataset's item indices. ``le="fake"`` swaps the LLM for a numpy test double
    (:class:`recgym.le.FakeUserModel`) with synthetic users, for tests and quick experiments.

    LE calls are batched across users: ``gym.make_vec("RecUser-v0", num_envs=N)`` builds
    :class:`RecUserVectorEnv`, which makes at most one RM and one SM call per step for all N users
    with Gymnasium's next-step autoreset (``agents.sb3_vec.RecUserVecEnv`` is the same batch for
    Stable-Baselines3, with SB3's same-step autoreset). With the same seeds, both play exactly
    the episodes of N single envs.

    ## Observation Space
    - ``observation="state"`` (default): ``Box(-1, 1, (state_dim,), float32)``, the SM state of
      the current history (a unit vector).
    - ``observation="dict"``: ``Dict`` with ``"state"`` (the same ``Box``) and ``"history"``
      (``Box`` int64, ``(max_history,)``: the latest LE item indices, oldest first, left-padded
      with -1).

    ## Action Space
    ``Discrete(n_items)``: the item to recommend. Anything else (a float, a bool, an index out
    of range) raises ``ValueError``. ``info["action_mask"]`` (int8, 1 = not yet in the
    history) and ``env.unwrapped.action_masks()`` (bool) serve masked policies such as
    sb3-contrib's MaskablePPO.

    ## Rewards
    ``p``, the RM's calibrated probability that the user takes the item, in ``(0, 1)`` (0.5 is
    the RM's boundary between a logged next item and a random unseen one). An item already in
    the history earns ``seen_reward`` (default 0) instead, counts as a rejection and is not
    scored. ``info["rewards"]`` splits the reward into ``"rm"`` and ``"seen"``;
    ``info["metrics"]`` has ``"depth"`` (items taken this episode) and ``"accept_rate"``.
    ``info`` also has ``"item"``, ``"accepted"``, ``"p_accept"`` (``p``; 0 for a seen item),
    ``"seen"``, ``"history_len"``, ``"user"`` and ``"action_mask"``.

    Acceptance: ``accept="sample"`` (default) takes the item when a uniform draw from the env's
    generator is below ``p`` (one draw every step); ``accept="threshold"`` when ``p >= 0.5``
    (no randomness after ``reset``).

    ## Starting State
    A logged user is drawn from the ``users`` split with the env's seeded generator, and the
    start history is the first ``L`` items of that user's logged history (oldest first), ``L``
    uniform in ``[min(start_min, n), min(start_max, n)]`` for a history of ``n`` items
    (``start_max=None``: ``n``). ``reset(options={"user": i})`` picks the user (``L`` is still
    drawn); ``reset(options={"history": [...]})`` gives the start history itself (LE item
    indices, oldest first; ``info["user"]`` is -1). Logged users come from the user model's
    ``users`` attribute (``{split: [history, ...]}`` in LE item indices; a trained LE has
    ``"train"`` and ``"test"``); a model without one, like the ``"fake"``, gets ``n_users``
    (default 64) synthetic users per split, ``"train"`` and ``"test"``: 5 to 30 distinct random
    items each (at most half the catalog), from a generator seeded 0 whatever the env's seed.

    ## Episode End
    - Terminated: ``patience`` rejections in a row (the user leaves), or every item is in the
      history.
    - Truncated: after ``max_steps`` steps, unless terminated on that step.

    The env truncates on its own (the spec has no ``max_episode_steps``).

    ## Arguments
    - ``le``: the user model, a name for :func:`recgym.le.load_user_model`: a trained LE
      (default ``"ml-100k-smollm2"``, trained on first use) or ``"fake"``. Loaded once per
      process and shared by every env with the same ``le`` and ``le_kwargs``.
    - ``le_kwargs``: its arguments (JSON-serialisable), e.g. ``{"device": "cuda"}``, or
      ``{"n_items": 20}`` for the fake.
    - ``observation``: ``"state"`` (default) or ``"dict"``.
    - ``max_steps``: steps before truncation (default 20).
    - ``patience``: rejections in a row before the user leaves (default 3).
    - ``start_min``, ``start_max``: bounds of the start history's length (default 5 and
      ``None``, the whole logged history).
    - ``accept``: ``"sample"`` (default) or ``"threshold"``.
    - ``seen_reward``: the reward for an item already in the history (default 0.0).
    - ``max_history``: length of the ``"history"`` observation (default 50).
    - ``users``: the split of logged users (default ``"train"``).
    - ``n_users``: for the fake, synthetic users per split (default 64); for a trained LE, keep
      only the split's first ``n_users`` (default all).
    - ``render_mode``: ``None`` or ``"ansi"``.

    ## Version History
    - v0: initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}  # noqa: RUF012 (Gymnasium's own attribute)

    def __init__(self, *, render_mode: str | None = None, **kwargs: Any) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'ansi'; got {render_mode!r}")
        self.render_mode = render_mode
        self.batch = UserBatch(1, **kwargs)
        self.observation_space = self.batch.single_observation_space
        self.action_space = self.batch.single_action_space

    @property
    def model(self) -> UserModel:
        """The user model."""
        return self.batch.model

    @property
    def data_version(self) -> str:
        """The user batch's ``data_version`` (the user model and the logged users)."""
        return self.batch.data_version

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Obs, dict[str, Any]]:
        """Start a user: ``options={"user": i}`` or ``{"history": [...]}``, else one drawn from
        ``self.np_random``."""
        super().reset(seed=seed)
        self.batch.rngs[0] = self.np_random
        (info,) = self.batch.reset(options=[options])
        return self.batch.observation(0), info

    def step(self, action: Any) -> tuple[Obs, float, bool, bool, dict[str, Any]]:
        """Recommend item ``action`` to the user."""
        item = _check_int(action, self.batch.n_items, "an action (an item index)")
        self.batch.rngs[0] = self.np_random
        out = self.batch.step(np.array([item]))
        obs = self.batch.observation(0)
        return (
            obs,
            float(out.rewards[0]),
            bool(out.terminated[0]),
            bool(out.truncated[0]),
            out.infos[0],
        )

    def action_masks(self) -> np.ndarray:
        """``(n_items,)`` bool: True for the items not in the history (sb3-contrib's name)."""
        return self.batch.action_masks()[0]

    def render(self) -> str | None:
        """``"ansi"``: the latest history and the last recommendation."""
        if self.render_mode != "ansi" or not self.batch.has_episode(0):
            return None
        return self.batch.render(0)


def _autoreset_mode(mode: AutoresetMode | str) -> AutoresetMode:
    if isinstance(mode, AutoresetMode):
        out = mode
    else:
        names = {m.value.lower(): m for m in AutoresetMode} | {
            m.name.lower(): m for m in AutoresetMode
        }
        if str(mode).lower() not in names:
            raise ValueError(
                f"autoreset_mode must be 'NextStep' or 'SameStep' (or an AutoresetMode); got "
                f"{mode!r}"
            )
        out = names[str(mode).lower()]
    if out is AutoresetMode.DISABLED:
        raise ValueError("RecUserVectorEnv resets users itself: use NextStep or SameStep")
    return out


def _row_options(options: Mapping[str, Any] | None, n: int) -> list[dict[str, Any] | None]:
    """Vector reset options (``"user"``: an int or N ints; ``"history"``: N histories) per
    user."""
    if not options:
        return [None] * n
    unknown = set(options) - {"user", "history"}
    if unknown:
        raise ValueError(
            f"unknown reset options {sorted(unknown)}; use 'user' (an int or {n} ints) or "
            f"'history' ({n} histories)"
        )
    rows: list[dict[str, Any]] = [{} for _ in range(n)]
    for key, value in options.items():
        if value is None:
            continue
        many = isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, str)
        entries = list(value) if many else [value] * n if key == "user" else []
        if len(entries) != n or (key == "history" and any(np.ndim(e) != 1 for e in entries)):
            what = f"{n} ints" if key == "user" else f"{n} histories (LE item index lists)"
            raise ValueError(f"reset option {key!r} must hold one entry per sub-env: {what}")
        for row, entry in zip(rows, entries, strict=True):
            row[key] = entry
    return [row or None for row in rows]


class RecUserVectorEnv(VectorEnv[Obs, np.ndarray, np.ndarray]):
    """N ``RecUser-v0`` users in one process with batched LE calls (at most one RM and one SM
    call per step for all of them).

    ``gym.make_vec("RecUser-v0", num_envs=N)`` builds it (its ``vector_entry_point``); the
    dynamics are those of :class:`RecUserEnv`. Each sub-env has its own generator: ``reset(seed=s)``
    seeds sub-env ``i`` with ``s + i`` (as ``SyncVectorEnv`` does), so with the same seeds it
    plays exactly the episodes of N single envs (``vectorization_mode="sync"``).

    Autoreset: ``autoreset_mode="NextStep"`` (default, Gymnasium's): a sub-env whose episode
    ended restarts on the next ``step``, which ignores its action and returns its first
    observation with reward 0. ``"SameStep"``: it restarts in the step that ended it; that
    step returns the new episode's first observation and puts the last one and its info in
    ``info["final_obs"]`` and ``info["final_info"]``. The mode is in
    ``metadata["autoreset_mode"]``.

    Reset options: ``{"user": i}`` (every sub-env) or ``{"user": [i_0, ..., i_N-1]}``, or
    ``{"history": [h_0, ..., h_N-1]}``.

    Args:
        num_envs: N.
        autoreset_mode: ``"NextStep"`` or ``"SameStep"`` (or an ``AutoresetMode``).
        render_mode: ``None`` or ``"ansi"`` (``render()`` returns one text per sub-env).
        **kwargs: the arguments of :class:`RecUserEnv`.
    """

    metadata = {"render_modes": ["ansi"], "autoreset_mode": AutoresetMode.NEXT_STEP}  # noqa: RUF012

    def __init__(
        self,
        num_envs: int = 1,
        *,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        render_mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        if render_mode is not None and render_mode != "ansi":
            raise ValueError(f"render_mode must be None or 'ansi'; got {render_mode!r}")
        self.autoreset_mode = _autoreset_mode(autoreset_mode)
        self.batch = UserBatch(num_envs, **kwargs)
        self.num_envs = self.batch.num_envs
        self.render_mode = render_mode
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}
        self.single_observation_space = self.batch.single_observation_space
        self.single_action_space = self.batch.single_action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    @property
    def model(self) -> UserModel:
        """The user model."""
        return self.batch.model

    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[Obs, dict[str, Any]]:
        """Start every sub-env; ``seed``: ``None``, an int (sub-env ``i`` gets ``seed + i``) or
        one per sub-env."""
        n = self.num_envs
        if seed is None:
            seeds: list[int | None] = [None] * n
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(n)]
        else:
            seeds = list(seed)
            if len(seeds) != n:
                raise ValueError(f"got {len(seeds)} seeds for num_envs={n}; pass one each")
        infos: dict[str, Any] = {}
        for i, info in enumerate(self.batch.reset(None, seeds, _row_options(options, n))):
            infos = self._add_info(infos, info, i)
        return self.batch.observations(), infos

    def step(self, actions: Any) -> tuple[Obs, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Recommend ``actions[i]`` to sub-env ``i``'s user (autoreset as the mode says)."""
        out = self.batch.step(actions, self.autoreset_mode)
        infos: dict[str, Any] = {}
        for i, info in enumerate(out.infos):
            if i in out.final_infos:
                final = {"final_obs": out.final_obs[i], "final_info": out.final_infos[i]}
                infos = self._add_info(infos, final, i)
            infos = self._add_info(infos, info, i)
        return self.batch.observations(), out.rewards, out.terminated, out.truncated, infos

    def action_masks(self) -> np.ndarray:
        """``(num_envs, n_items)`` bool: True for the items not in each sub-env's history."""
        return self.batch.action_masks()

    def render(self) -> tuple[str, ...] | None:
        """``"ansi"``: one text per sub-env (see :meth:`RecUserEnv.render`)."""
        if self.render_mode != "ansi" or not all(map(self.batch.has_episode, range(self.num_envs))):
            return None
        return tuple(self.batch.render(i) for i in range(self.num_envs))
