"""What LLM trainers need of a recgym text env, and the check that an env has it.

One definition for the GRPO/DPO trainers (:mod:`agents.llm.grpo`) and the TRL interop
(:mod:`agents.llm.trl_reward`). It imports neither torch nor transformers, so the TRL reward
function stays importable without them.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, Protocol, cast

import numpy as np
from gymnasium import spaces

__all__ = ["TextScorer", "TextScores", "env_name", "text_scorer"]


class TextScores(Protocol):
    """What the trainers read of a text env's ``score(...)`` result (``ScoreBatch``,
    ``PrefScores``): ``(B,)`` arrays and per-metric ``(B,)`` arrays with ``"ndcg@10"``."""

    @property
    def rewards(self) -> np.ndarray: ...
    @property
    def ndcg(self) -> np.ndarray: ...
    @property
    def format_ok(self) -> np.ndarray: ...
    @property
    def metrics(self) -> dict[str, np.ndarray]: ...


class TextScorer(Protocol):
    """What the trainers need of a text env (its ``env.unwrapped``): episodes by split, their
    prompts, one batched scorer, the default split, and what a summary records
    (``data_version``, ``reward_name``, ``k``). ``RecSeq-v0``, ``RecSearch-v0`` and
    ``RecPref-v0`` have it."""

    k: int
    split: str

    @property
    def task(self) -> Any: ...
    @property
    def data_version(self) -> str: ...
    @property
    def reward_name(self) -> str: ...
    def num_episodes(self, split: str | None = None) -> int: ...
    def observations(self, indices: Sequence[int], split: str | None = None) -> list[Any]: ...
    def score(
        self, actions: Sequence[str], indices: Sequence[int] | int | None, split: str | None, /
    ) -> TextScores: ...


_SCORER_MEMBERS = (
    "num_episodes",
    "observations",
    "score",
    "split",
    "task",
    "data_version",
    "reward_name",
    "k",
)


def text_scorer(env: Any) -> TextScorer:
    """``env.unwrapped`` (or ``env`` itself if it has no ``unwrapped``) if it is a text env the
    trainers can use (see :class:`TextScorer`).

    The check is structural (Text observation and action spaces, and the members of
    :class:`TextScorer`), so any env family with that API trains; attributes are looked up
    statically, so a lazily built task is not built here.

    Raises:
        TypeError: the env is not such a text env (``RecNext-v0``'s actions are score vectors).
    """
    inner = getattr(env, "unwrapped", env)
    missing = [m for m in _SCORER_MEMBERS if inspect.getattr_static(inner, m, None) is None]
    spaces_ok = isinstance(getattr(inner, "observation_space", None), spaces.Text) and isinstance(
        getattr(inner, "action_space", None), spaces.Text
    )
    if missing or not spaces_ok:
        why = f"it lacks {', '.join(missing)}" if missing else "its spaces are not Text"
        raise TypeError(
            f"env must be a recgym text env (RecSeq-v0, RecSearch-v0, RecPref-v0: Text "
            f"observations and actions, and {', '.join(_SCORER_MEMBERS)} on env.unwrapped); "
            f"got {type(inner).__name__}, and {why}"
        )
    return cast(TextScorer, inner)


def env_name(env: Any) -> str:
    """A short lower-case name of an env: ``"recseq"`` for ``RecSeq-v0`` (from its spec, else
    from its class name)."""
    inner = getattr(env, "unwrapped", env)
    spec = getattr(env, "spec", None) or getattr(inner, "spec", None)
    if spec is not None:
        return str(spec.id).split("/")[-1].split("-v")[0].lower()
    return type(inner).__name__.lower().removesuffix("env")
