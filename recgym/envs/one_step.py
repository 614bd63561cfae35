"""The base of recgym's one-step envs: fixed episodes per split, ``reset`` picks one, ``step``
scores one action and terminates."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.core import ActType, ObsType

from recgym.error import RecGymError

__all__ = ["OneStepEnv", "episode_index", "reset_episode"]


def episode_index(index: Any, n_episodes: int) -> int:
    """``index`` as an int, checked to be an episode of a split of ``n_episodes``."""
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise TypeError(f"an episode index must be an int; got {index!r}")
    if not 0 <= index < n_episodes:
        raise IndexError(f"episode index {index} is outside 0..{n_episodes - 1}")
    return int(index)


def reset_episode(
    options: dict[str, Any] | None,
    default_split: str,
    n_episodes: Callable[[str], int],
    rng: np.random.Generator,
    owner: str,
) -> tuple[str, int]:
    """The ``(split, index)`` a one-step env's ``reset`` starts: ``options={"split": ...,
    "index": ...}`` pick one, else an index of the split is drawn from ``rng``."""
    options = dict(options or {})
    unknown = set(options) - {"split", "index"}
    if unknown:
        raise ValueError(f"unknown reset options {sorted(unknown)}; use 'split' and 'index'")
    split = options.get("split", default_split)
    n = n_episodes(split)
    index = options.get("index")
    if index is None:
        if n == 0:
            raise RecGymError(f"split {split!r} of {owner} has no episodes")
        index = int(rng.integers(n))
    return split, episode_index(index, n)


class OneStepEnv(gym.Env[ObsType, ActType]):
    """An env whose episodes are the fixed rows of a split, one step each.

    Subclasses set ``self.split`` and implement :attr:`task`, :meth:`num_episodes`,
    :meth:`observation` and :meth:`_info`; they get :attr:`data_version`, the seeded ``reset``
    (``options={"split": ..., "index": ...}``), the batched :meth:`observations` and
    :meth:`_current`, the episode a ``step`` scores.
    """

    split: str
    _episode: tuple[str, int] | None = None
    _done: bool = True
    _last: dict[str, Any] | None = None

    @property
    def task(self) -> Any:
        """The built task: the data the episodes and rewards come from."""
        raise NotImplementedError

    @property
    def data_version(self) -> str:
        """A digest of what the env's rewards depend on, recorded by leaderboard rows (a row
        whose ``data_version`` differs from today's is stale): the task's data, and in envs
        whose reward comes from a trained model (``RecPref-v0``'s judge), its weights."""
        return str(self.task.data_version)

    def num_episodes(self, split: str | None = None) -> int:
        """Number of episodes in ``split`` (default: the env's split)."""
        raise NotImplementedError

    def observation(self, index: int, split: str | None = None) -> ObsType:
        """The observation of episode ``index`` of ``split`` (default: the env's split)."""
        raise NotImplementedError

    def _info(self, split: str, index: int) -> dict[str, Any]:
        """The ``info`` of ``reset`` (and the start of ``step``'s)."""
        raise NotImplementedError

    def observations(self, indices: Sequence[int], split: str | None = None) -> list[ObsType]:
        """The observations of the given episodes of ``split`` (default: the env's split)."""
        return [self.observation(i, split) for i in indices]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsType, dict[str, Any]]:
        """Start an episode: ``options={"split": ..., "index": ...}`` picks one, else one of the
        split is drawn from ``self.np_random``."""
        super().reset(seed=seed)
        split, index = reset_episode(
            options, self.split, self.num_episodes, self.np_random, type(self).__name__
        )
        self._episode = (split, index)
        self._done = False
        self._last = None
        return self.observation(index, split), self._info(split, index)

    def _current(self) -> tuple[str, int]:
        """The ``(split, index)`` a ``step`` scores (``step`` sets ``_done`` once it has scored,
        so an invalid action raises and leaves the episode open)."""
        if self._episode is None or self._done:
            raise RecGymError("the episode is over (one step per episode): call reset() first")
        return self._episode
