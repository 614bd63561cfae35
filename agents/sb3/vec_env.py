"""``RecUser-v0`` as a Stable-Baselines3 ``VecEnv``: N simulated users, batched LE calls.

SB3's ``DummyVecEnv`` steps its envs one by one, so with an LLM user model it runs one RM and
one SM pass per env per step. :class:`RecUserVecEnv` steps the N users of one
:class:`recgym.envs.user_batch.UserBatch` together: one RM and one SM call per step for all of
them. It follows SB3's conventions: an ended episode restarts in the same step, whose
observation is the new episode's; the last observation is in
``infos[i]["terminal_observation"]``, ``infos[i]["TimeLimit.truncated"]`` says whether the end
was the step limit, and the new episode's info is in ``reset_infos[i]``::

    from stable_baselines3 import PPO
    from agents.sb3.vec_env import make_recuser_vec_env

    env = make_recuser_vec_env(16, seed=0, le="ml-100k-smollm2-v2", le_kwargs={"device": "cuda"})
    PPO("MlpPolicy", env, n_steps=64).learn(50_000)

With the same seeds it plays exactly the episodes of ``DummyVecEnv`` over single
``RecUser-v0`` envs. stable-baselines3 is imported here only; ``import recgym`` does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from recgym.envs.user_batch import UserBatch

__all__ = ["RecUserVecEnv", "make_recuser_vec_env"]


class RecUserVecEnv(VecEnv):
    """N ``RecUser-v0`` users as one SB3 ``VecEnv`` (see the module docstring).

    Seed it with :meth:`seed` (user ``i`` gets ``seed + i`` at the next :meth:`reset`) and pick
    users with :meth:`set_options` (``{"user": j}`` or ``{"history": [...]}`` per env), as for
    any SB3 ``VecEnv``. ``env_method("action_masks")`` gives each user's mask (what
    sb3-contrib's MaskablePPO asks for).

    Training revisits the same users episode after episode, so by default an LLM user model
    reads across episodes (``kv_cross_episode``, :mod:`recgym.le.kv`): a restart from a part
    of a logged block read before costs one item, not a window (about twice the steps per
    second on the CPU; outputs equal up to float noise). The user model is shared by the
    process; evaluations through :func:`benchmarks.episodes.play_episodes` read exactly on
    their own caches all the same.

    Args:
        num_envs: N.
        cross_episode: set the user model's ``kv_cross_episode`` (an LLM LE; no effect on
            others).
        **env_kwargs: the arguments of :class:`recgym.envs.user.RecUserEnv` but
            ``render_mode`` (e.g. ``le="fake"``, ``observation="dict"``).
    """

    def __init__(self, num_envs: int = 1, cross_episode: bool = True, **env_kwargs: Any) -> None:
        if "render_mode" in env_kwargs:
            raise ValueError("RecUserVecEnv does not render; use RecUser-v0's render_mode")
        self.batch = UserBatch(num_envs, **env_kwargs)
        self.cross_episode = bool(cross_episode)
        self._set_reads()
        self._actions: np.ndarray | None = None
        super().__init__(
            num_envs, self.batch.single_observation_space, self.batch.single_action_space
        )

    def _set_reads(self) -> None:
        if hasattr(self.batch.model, "kv_cross_episode"):
            self.batch.model.kv_cross_episode = self.cross_episode

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Unpickled (a resumed training): the process's user model reads as before.
        self.__dict__.update(state)
        self._set_reads()

    def reset(self) -> VecEnvObs:
        """Start every user (with the seeds and options set since the last reset)."""
        options = [opts or None for opts in self._options]
        self.reset_infos = self.batch.reset(None, self._seeds, options)
        self._reset_seeds()
        self._reset_options()
        return self.batch.observations()

    def step_async(self, actions: np.ndarray) -> None:
        """Keep the actions for :meth:`step_wait`."""
        self._actions = np.asarray(actions).reshape(-1)

    def step_wait(self) -> VecEnvStepReturn:
        """Step every user; ended episodes restart at once (SB3's autoreset)."""
        if self._actions is None:
            raise RuntimeError("step_wait() without step_async(): call step(actions)")
        actions, self._actions = self._actions, None
        out = self.batch.step(actions, AutoresetMode.SAME_STEP)
        dones = out.terminated | out.truncated
        infos: list[dict[str, Any]] = []
        for i in range(self.num_envs):
            if dones[i]:
                info = dict(out.final_infos[i])
                info["terminal_observation"] = out.final_obs[i]
                self.reset_infos[i] = out.infos[i]
            else:
                info = dict(out.infos[i])
            info["TimeLimit.truncated"] = bool(out.truncated[i] and not out.terminated[i])
            infos.append(info)
        return self.batch.observations(), out.rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        """Nothing to release (the user model is shared by the process)."""

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """An attribute of the shared :class:`UserBatch`, once per index (``render_mode``:
        ``None``)."""
        value = None if attr_name == "render_mode" else getattr(self.batch, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute of the shared :class:`UserBatch` (for every user at once)."""
        if sorted(self._get_indices(indices)) != list(range(self.num_envs)):
            raise ValueError("the users share one UserBatch: set attributes for all of them")
        setattr(self.batch, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        """``"action_masks"`` (bool ``(n_items,)`` per user) or ``"render"`` (text per user)."""
        rows: Sequence[int] = list(self._get_indices(indices))
        if method_name == "action_masks":
            masks = self.batch.action_masks()
            return [masks[i] for i in rows]
        if method_name == "render":
            return [self.batch.render(i) for i in rows]
        raise AttributeError(
            f"RecUserVecEnv has no per-env method {method_name!r}; it offers 'action_masks' "
            "and 'render'"
        )

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper[Any, Any, Any, Any]], indices: VecEnvIndices = None
    ) -> list[bool]:
        """Always False: the users are not gym envs, so nothing wraps them."""
        return [False for _ in self._get_indices(indices)]


def make_recuser_vec_env(
    num_envs: int = 1, seed: int | None = None, **env_kwargs: Any
) -> RecUserVecEnv:
    """A :class:`RecUserVecEnv` seeded with ``seed`` (user ``i``: ``seed + i``)."""
    env = RecUserVecEnv(num_envs, **env_kwargs)
    if seed is not None:
        env.seed(seed)
    return env
