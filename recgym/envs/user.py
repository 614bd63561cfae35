"""``RecUser-v0``: recommend one item at a time to a user simulated by an LLM environment (LE).

After Wang et al., *LLM as environment* (SIGIR 2024): the LE's state model (SM) turns the
user's history into the observation and its reward model (RM) scores the recommended item,
the probability that the user takes it. Taken items join the history; a user who turns down
``patience`` recommendations in a row leaves.

This module holds the two Gymnasium envs: :class:`RecUserEnv`, a batch of one, and
:class:`RecUserVectorEnv` (``gym.make_vec("RecUser-v0", num_envs=N)``), a batch of N. The
dynamics they share are :class:`~recgym.envs.user_batch.UserBatch`
(:mod:`recgym.envs.user_batch`), which makes at most one
:meth:`~recgym.le.base.UserModel.rewards` and one :meth:`~recgym.le.base.UserModel.states`
call per step for all users (``agents.sb3.vec_env.RecUserVecEnv`` is the same batch for
Stable-Baselines3); the user model and the logged users come from :mod:`recgym.envs.users`.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from recgym.envs.user_batch import Obs, _check_int
from recgym.envs.user_batch import UserBatch as _UserBatch  # private: UserBatch here warns
from recgym.le import UserModel
from recgym.utils.moved import moved_names

__all__ = ["RecUserEnv", "RecUserVectorEnv"]

# Names that lived here before the split (issue 23), kept importable for one release.
# ``_User`` is listed so that envs pickled before the split still load.
_MOVED = {
    "FAKE_USERS": "recgym.envs.users",
    "logged_users": "recgym.envs.users",
    "synthetic_users": "recgym.envs.users",
    "user_model": "recgym.envs.users",
    "ACCEPTS": "recgym.envs.user_batch",
    "OBSERVATIONS": "recgym.envs.user_batch",
    "BatchStep": "recgym.envs.user_batch",
    "UserBatch": "recgym.envs.user_batch",
    "_User": "recgym.envs.user_batch",
}


__getattr__ = moved_names(__name__, _MOVED)


class RecUserEnv(gym.Env[Obs, np.int64]):
    """Recommend items one at a time to a user simulated by an LLM environment (LE).

    ## Description
    A user model after Wang et al., *LLM as environment* (SIGIR 2024): an LLM with one token
    per item and two adapters, a state model (SM) that reads the user's recent items (the last
    ``window`` to ``2 * window - 1``) and a reward model (RM) that scores a candidate item after
    them, trained on MovieLens-100k and shipped with the package (:mod:`recgym.le`). Each step
    the agent recommends one item; the user takes it with the RM's probability and it joins the
    history, so the next state moves with what was taken. A
    user who turns down ``patience`` recommendations in a row leaves.

    Items are the LE's catalog indices ``0..n_items-1``; ``env.unwrapped.model.item_ids`` maps
    them to the dataset's item indices. ``le="fake"`` swaps the LLM for a numpy test double
    (:class:`recgym.le.FakeUserModel`) with synthetic users, for tests and quick experiments.

    LE calls are batched across users: ``gym.make_vec("RecUser-v0", num_envs=N)`` builds
    :class:`RecUserVectorEnv`, which makes at most one RM and one SM call per step for all N users
    with Gymnasium's next-step autoreset (``agents.sb3.vec_env.RecUserVecEnv`` is the same batch for
    Stable-Baselines3, with SB3's same-step autoreset). With the same seeds, both play exactly
    the episodes of N single envs.

    ## Observation Space
    - ``observation="state"`` (default): ``Box(-1, 1, (state_dim,), float32)``, the SM state of
      the current history (a unit vector).
    - ``observation="dict"``: ``Dict`` with ``"state"`` (the same ``Box``) and ``"history"``
      (``Box`` int64, ``(max_history,)``: the latest LE item indices, oldest first, left-padded
      with -1).

    The full current history is not in the observation; ``env.unwrapped.history()`` (vector
    env: ``histories()``) gives it to privileged reference agents such as ``rm-greedy``.

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
      (default :data:`recgym.le.DEFAULT_LE`, shipped trained: it never trains) or ``"fake"``.
      Another registered LE is trained first by ``python -m recgym.le.hub NAME``. Loaded once per
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
    - v0: initial version. Its default LE changed from ``ml-100k-smollm2`` (100 users, trained
      on first use) to the shipped ``ml-100k-smollm2-v2`` (every user's training events,
      never trained on a user's machine; ``"test"`` = 200 held-out users of the LE's user
      split); rows of the two LEs have different ``data_version`` and are never ranked
      together. ``le="ml-100k-smollm2"`` still gives the old dynamics once trained.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}  # noqa: RUF012 (Gymnasium's own attribute)
    view_kwargs: ClassVar[frozenset[str]] = frozenset({"render_mode", "observation", "max_history"})
    """Constructor arguments that change only what the agent observes, never the users, the
    dynamics or the reward (:mod:`benchmarks.protocol` ranks such rows together)."""
    __signature__: ClassVar[inspect.Signature]  # set below the class: **kwargs spelt out

    def __init__(self, *, render_mode: str | None = None, **kwargs: Any) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'ansi'; got {render_mode!r}")
        self.render_mode = render_mode
        self.batch = _UserBatch(1, **kwargs)
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

    def history(self) -> np.ndarray:
        """The user's current history, int64 LE items, oldest first (privileged: the
        observation does not carry it in full; see :meth:`RecUserVectorEnv.histories`)."""
        return self.batch.histories()[0]

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
        self.batch = _UserBatch(num_envs, **kwargs)
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

    def histories(self) -> list[np.ndarray]:
        """Each sub-env's current history, int64 LE items, oldest first.

        Privileged: the observation does not carry it in full, and an LE's reward depends on
        the whole history (a trained LE's read window starts at a block boundary counted from
        the oldest item). Reference agents that read the user model directly (``rm-greedy``)
        take it as ``act_batch(..., histories=...)``; ``benchmarks.episodes`` and
        :func:`recgym.agent.act_batch` pass it to agents whose ``act_batch`` accepts it.
        """
        return self.batch.histories()

    def render(self) -> tuple[str, ...] | None:
        """``"ansi"``: one text per sub-env (see :meth:`RecUserEnv.render`)."""
        if self.render_mode != "ansi" or not all(map(self.batch.has_episode, range(self.num_envs))):
            return None
        return tuple(self.batch.render(i) for i in range(self.num_envs))


def _signature(cls: type[RecUserEnv]) -> inspect.Signature:
    """``cls``'s constructor signature with what its ``**kwargs`` takes (the user batch's
    arguments) spelt out, so ``inspect.signature(RecUserEnv)`` (and tools that record every
    argument of an env, or read their defaults) see each parameter and its default."""
    own = inspect.signature(cls.__init__).parameters.values()
    batch = inspect.signature(_UserBatch.__init__).parameters.values()
    return inspect.Signature(
        [p for p in own if p.kind is p.KEYWORD_ONLY]
        + [p for p in batch if p.name not in ("self", "num_envs")]
    )


RecUserEnv.__signature__ = _signature(RecUserEnv)
