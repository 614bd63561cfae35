"""The base of recgym's one-step envs: fixed episodes per split, ``reset`` picks one, ``step``
scores one action and terminates.

:class:`OneStepEnv` owns what the one-step envs share: the task (their data, built on first use
and cached per process, so ``gym.make_vec`` builds it once), the seeded ``reset``, the template
``step`` (a batch of one through the env's batched ``score``) and the ``info`` layout. A
subclass says what its task is (:meth:`~OneStepEnv._task_key`, :meth:`~OneStepEnv._build_task`),
what an episode shows (:meth:`~OneStepEnv.observation`) and how a batch of actions scores
(``score``); two small hooks add its own ``info`` keys and render state.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Protocol

import gymnasium as gym
import numpy as np
from gymnasium.core import ActType, ObsType

from recgym.error import RecGymError

__all__ = [
    "SPLITS",
    "OneStepEnv",
    "ScoredBatch",
    "dataset_key",
    "episode_index",
    "leave_one_out_examples",
    "load_interactions",
    "reset_episode",
    "score_rows",
    "split_name",
]

SPLITS = ("train", "validation", "test")
"""The splits of every one-step env."""

Examples = tuple[np.ndarray, list[np.ndarray], np.ndarray]
"""``(user ids, histories, targets)`` of a split's next-item examples."""


def split_name(split: str | None, default: str) -> str:
    """``split`` (``default`` when ``None``), checked to be one of :data:`SPLITS`."""
    name = default if split is None else split
    if name not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; got {name!r}")
    return name


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


def score_rows(
    indices: Sequence[int] | int | None,
    split: str | None,
    n: int,
    current: tuple[str, int] | None,
    n_episodes: Callable[[str | None], int],
    what: str,
) -> tuple[str | None, list[int]]:
    """The ``(split, episode indices)`` a batched ``score`` call of ``n`` ``what`` refers to.

    ``indices`` gives each item's episode, or one episode for all of them (a GRPO group);
    ``None`` means the ``current`` episode (and its split).
    """
    if indices is None:
        if current is None:
            raise RecGymError("no current episode: call reset() or pass indices")
        split, indices = current
    if isinstance(indices, (int, np.integer)):
        indices = [int(indices)] * n
    if len(indices) != n:
        raise ValueError(f"got {len(indices)} episode indices for {n} {what}")
    size = n_episodes(split)
    return split, [episode_index(i, size) for i in indices]


def dataset_key(dataset: str, dataset_kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
    """A hashable key of a dataset and its loader's arguments, for an env's task cache."""
    return (dataset, tuple(sorted((k, repr(v)) for k, v in dataset_kwargs.items())))


def load_interactions(dataset: str, dataset_kwargs: Mapping[str, Any] | None = None) -> Any:
    """A registered dataset loaded with ``dataset_kwargs`` (quietly), checked to have
    interactions.

    Raises:
        RecGymError: the dataset has no interactions.
    """
    from recgym.data import dataset_spec

    loader = dataset_spec(dataset).loader
    kwargs = dict(dataset_kwargs or {})
    if "progress" in inspect.signature(loader).parameters:
        kwargs.setdefault("progress", False)
    data = loader(**kwargs)
    if data.interactions is None:
        raise RecGymError(f"dataset {dataset!r} has no interactions to split")
    return data


def leave_one_out_examples(
    dataset: str = "ml-100k", dataset_kwargs: Mapping[str, Any] | None = None
) -> tuple[Any, dict[str, Examples]]:
    """A dataset (a registered name, loaded with ``dataset_kwargs``) and the next-item examples
    of each split of its leave-one-out split by time
    (:meth:`recgym.data.LeaveOneOutSplit.examples`).

    Raises:
        RecGymError: the dataset has no interactions, or too few users to split.
    """
    from recgym.data import leave_one_out

    data = load_interactions(dataset, dataset_kwargs)
    loo = leave_one_out(data.interactions)
    examples = {name: loo.examples(name) for name in SPLITS}  # type: ignore[arg-type]
    if not all(len(examples[name][2]) for name in SPLITS):
        raise RecGymError(
            f"dataset {dataset!r} leaves an empty split after the leave-one-out split by time "
            f"(examples per split: {', '.join(f'{n} {len(examples[n][2])}' for n in SPLITS)}); "
            "it needs users with enough interactions"
        )
    return data, examples


class ScoredBatch(Protocol):
    """What every one-step env's ``score`` returns (the runner and the trainers read it)."""

    rewards: np.ndarray
    format_ok: np.ndarray
    metrics: dict[str, np.ndarray]


_TASKS: dict[tuple[Any, ...], Any] = {}
_TASKS_LOCK = threading.Lock()


class OneStepEnv(gym.Env[ObsType, ActType]):
    """An env whose episodes are the fixed rows of a split, one step each.

    Subclasses call ``super().__init__(split=..., render_mode=...)`` and implement
    :meth:`_task_key`, :meth:`_build_task` (a task with ``splits`` — a sized episode container
    per split — and ``data_version``), :meth:`observation` and ``score(actions, indices,
    split) -> ScoredBatch``. They get :attr:`task`, :attr:`data_version`, the seeded ``reset``
    (``options={"split": ..., "index": ...}``), the template ``step`` and the batched
    :meth:`observations`.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}  # noqa: RUF012 (Gymnasium's own attribute)
    view_kwargs: ClassVar[frozenset[str]] = frozenset({"render_mode"})
    """Constructor arguments that change only how the agent sees an episode, never which
    episodes there are or what an action earns: rows that differ only in these are measured
    under one protocol (:mod:`benchmarks.protocol`)."""
    split: str
    reward: str
    _episode: tuple[str, int] | None = None
    _done: bool = True
    _last: dict[str, Any] | None = None

    def __init__(self, *, split: str, render_mode: str | None) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be None or one of {self.metadata['render_modes']}; got "
                f"{render_mode!r}"
            )
        self.split = split
        self.render_mode = render_mode

    # ----- the task -------------------------------------------------------------------------

    def _task_key(self) -> tuple[Any, ...]:
        """The arguments that decide the task's data (equal keys share one built task)."""
        raise NotImplementedError

    def _build_task(self) -> Any:
        """Load the data and build the episodes of every split."""
        raise NotImplementedError

    @property
    def task(self) -> Any:
        """The built task (built on first access, shared by envs with the same data)."""
        key = (type(self).__name__, *self._task_key())
        with _TASKS_LOCK:
            if key not in _TASKS:
                _TASKS[key] = self._build_task()
            return _TASKS[key]

    @property
    def data_version(self) -> str:
        """A digest of what the env's rewards depend on, recorded by leaderboard rows (a row
        whose ``data_version`` differs from today's is stale): the task's data, and in envs
        whose reward comes from a trained model (``RecPref-v0``'s judge), its weights."""
        return str(self.task.data_version)

    @property
    def reward_name(self) -> str:
        """The reward's name (``"ndcg"``, ``"rec-r1"``, ``"fused"``), for leaderboard rows."""
        return self.reward

    def _split(self, split: str | None) -> Any:
        """The episodes of ``split`` (default: the env's split)."""
        return self.task.splits[split_name(split, self.split)]

    def num_episodes(self, split: str | None = None) -> int:
        """Number of episodes in ``split`` (default: the env's split)."""
        return len(self._split(split))

    # ----- episodes -------------------------------------------------------------------------

    def observation(self, index: int, split: str | None = None) -> ObsType:
        """The observation of episode ``index`` of ``split`` (default: the env's split)."""
        raise NotImplementedError

    def observations(self, indices: Sequence[int], split: str | None = None) -> list[ObsType]:
        """The observations of the given episodes of ``split`` (default: the env's split)."""
        return [self.observation(i, split) for i in indices]

    def _info(self, split: str, index: int) -> dict[str, Any]:
        """The ``info`` of ``reset`` (and the start of ``step``'s)."""
        return {"split": split, "index": index}

    def _step_info(self, result: Any, action: Any) -> dict[str, Any]:
        """The env's own ``info`` keys of a step, from its one-row ``score`` result."""
        return {}

    def _render_state(self, result: Any, action: Any, split: str, index: int) -> dict[str, Any]:
        """What ``render`` needs of the last step besides its ``info`` and reward."""
        return {}

    # ----- the Gymnasium API ----------------------------------------------------------------

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

    def step(self, action: ActType) -> tuple[ObsType, float, bool, bool, dict[str, Any]]:
        """Score the action (a batch of one through ``score``); the episode ends
        (``terminated``) after this one step. ``info`` holds the reset ``info``, the step's
        ``metrics`` and the env's own keys."""
        split, index = self._current()
        result = self.score([action], index, split)  # type: ignore[attr-defined]
        reward = float(result.rewards[0])
        info = {
            **self._info(split, index),
            **self._step_info(result, action),
            "metrics": {key: float(v[0]) for key, v in result.metrics.items()},
        }
        self._done = True
        self._last = {**self._render_state(result, action, split, index), "reward": reward, **info}
        return self.observation(index, split), reward, True, False, info

    def _current(self) -> tuple[str, int]:
        """The ``(split, index)`` a ``step`` scores (``step`` sets ``_done`` once it has scored,
        so an invalid action raises and leaves the episode open)."""
        if self._episode is None or self._done:
            raise RecGymError("the episode is over (one step per episode): call reset() first")
        return self._episode

    def close(self) -> None:
        """Nothing to release (the shared task stays cached for other envs)."""
        self._episode = None
