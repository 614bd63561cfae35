"""How an agent is evaluated on a recgym env: the settings (:class:`EvalSpec`) and the loop.

:class:`EvalSpec` holds everything that decides an evaluation's numbers: the env and its
arguments, the split, how many episodes (the first ones of the split's fixed order), the seeds,
the batch size, the agent by name with its arguments, and the training budget behind it.
:meth:`EvalSpec.command` is the ``python -m benchmarks run ...`` line that regenerates the
leaderboard row of those settings.

:func:`score_episodes` is the one loop over a one-step env's episodes, shared by the leaderboard
runner (:func:`benchmarks.runner.evaluate`) and the LLM trainers' validation and test: for each
seed, reset the agent with it, then for each batch of episodes ask the agent for its actions and
score them with one call of the env's batched scorer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shlex
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recgym.agent import Agent, act_batch, reset_agent

__all__ = ["EvalSpec", "score_episodes"]


@dataclass(frozen=True)
class EvalSpec:
    """The settings of one evaluation, as a leaderboard row records them.

    ``seeds`` is kept as a tuple of ints and the two argument mappings as dicts, so two specs of
    the same settings compare equal however they were written.

    Raises:
        ValueError: no seed, or ``episodes`` or ``batch_size`` below 1.
    """

    env_id: str
    """A registered env id (``"RecSeq-v0"``; ``"RecUser-v0"`` is played step by step)."""
    agent_name: str
    """The agent's name in the row: a key of ``agents.AGENTS`` or ``module.path:Class``."""
    agent_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """The agent's constructor arguments (``--agent-kwargs``)."""
    split: str = "test"
    """``"train"``, ``"validation"`` or ``"test"`` (``RecUser-v0``: its ``users``)."""
    episodes: int = 200
    """How many episodes, from the start of the split (fewer are played if it has fewer)."""
    seeds: Sequence[int] = (0,)
    """The agent is reset with each seed in turn and plays every episode."""
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Extra ``gym.make`` arguments (``{"k": 100}``)."""
    batch_size: int = 64
    """Episodes per ``act_batch`` and ``score`` call."""
    budget: float | None = None
    """Minutes of training behind the agent; ``None``: untrained."""
    budget_device: str | None = None
    """The device the training ran on (``"NVIDIA H100 80GB HBM3"``, ``"cpu"``; a row's
    ``device`` is the one the evaluation ran on)."""
    training: Mapping[str, Any] | None = None
    """How the agent was trained, for a trained agent: ``{"command": the command that trains
    it, "config": its settings (a mapping, or the repository path of a file that holds them),
    "log": the repository path of its training log}``; ``command`` is required. Paths may
    hold ``{seed}`` (one file per training seed)."""

    def __post_init__(self) -> None:
        # Normal forms, so that equal settings make equal specs (a list of seeds, a mapping).
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        object.__setattr__(self, "agent_kwargs", dict(self.agent_kwargs or {}))
        object.__setattr__(self, "env_kwargs", dict(self.env_kwargs or {}))
        if self.training is not None:
            object.__setattr__(self, "training", _training(self.training))
        if not self.seeds:
            raise ValueError("seeds must hold at least one seed")
        if self.episodes < 1 or self.batch_size < 1:
            raise ValueError(
                f"episodes and batch_size must be >= 1; got {self.episodes}, {self.batch_size}"
            )

    def replace(self, **changes: Any) -> EvalSpec:
        """A copy with ``changes`` (``spec.replace(episodes=100)``)."""
        return dataclasses.replace(self, **changes)

    def command(self, out: str | None = None) -> str:
        """The ``python -m benchmarks run ...`` line of these settings (shell-quoted), with
        ``--out out`` if given."""
        args = ["python", "-m", "benchmarks", "run", "--env", self.env_id]
        args += ["--agent", self.agent_name]
        if self.agent_kwargs:
            args += ["--agent-kwargs", json.dumps(dict(self.agent_kwargs), sort_keys=True)]
        args += ["--split", self.split, "--episodes", str(self.episodes)]
        args += ["--seeds", *map(str, self.seeds)]
        if self.env_kwargs:
            # default=str: an object argument (a retriever instance) is named, though a command
            # line cannot rebuild it; pass such arguments by name to keep rows reproducible.
            kwargs = json.dumps(dict(self.env_kwargs), sort_keys=True, default=str)
            args += ["--env-kwargs", kwargs]
        args += ["--batch-size", str(self.batch_size)]
        if self.budget is not None:
            args += ["--budget", str(self.budget)]
        if self.budget_device is not None:
            args += ["--budget-device", self.budget_device]
        if self.training is not None:
            args += ["--training", json.dumps(dict(self.training), sort_keys=True)]
        if out is not None:
            args += ["--out", out]
        return shlex.join(args)


_TRAINING_KEYS = frozenset({"command", "config", "log"})


def _training(value: Mapping[str, Any]) -> dict[str, Any]:
    """``value`` checked as :attr:`EvalSpec.training`, as a JSON-able dict."""
    if not isinstance(value, Mapping) or not isinstance(value.get("command"), str):
        raise ValueError(
            'training must be a mapping with a "command" string (and optionally "config" and '
            f'"log"); got {value!r}'
        )
    unknown = set(value) - _TRAINING_KEYS
    if unknown:
        raise ValueError(
            f"training takes {sorted(_TRAINING_KEYS)}; got unknown keys {sorted(unknown)}"
        )
    return dict(json.loads(json.dumps(dict(value), default=str)))


def score_episodes(
    scorer: Any,
    agent: Agent,
    split: str,
    indices: Sequence[int],
    seeds: Sequence[int],
    batch_size: int,
    *,
    report: Callable[[int, int], None] | None = None,
    act_context: Callable[[], AbstractContextManager[Any]] | None = None,
) -> dict[str, np.ndarray]:
    """Play the one-step episodes ``indices`` of ``split`` once per seed, in batches.

    Args:
        scorer: a one-step env's batched scorer (its ``env.unwrapped``): ``observations(indices,
            split)`` and ``score(actions, indices, split)`` with ``rewards``, ``format_ok`` and
            a ``metrics`` dict of ``(B,)`` arrays.
        agent: anything with ``act`` (and optionally ``act_batch``, ``reset``); it is reset with
            each seed before playing the episodes.
        split: the split of ``indices``.
        indices: the episodes, in the order they are played.
        seeds: one pass over the episodes per seed.
        batch_size: episodes per ``act_batch`` and ``score`` call.
        report: called after each batch with the seed's position in ``seeds`` and how many of
            ``indices`` it has played.
        act_context: a factory of the context each ``act_batch`` call runs in (a trainer's bf16
            autocast); none by default.

    Returns:
        Per metric, an ``(S seeds, N episodes)`` float64 array: ``reward``, ``format_ok``, then
        the scorer's metrics (``ndcg@10``...), in that order.
    """
    per_seed: dict[str, list[np.ndarray]] = {}
    for s, seed in enumerate(seeds):
        reset_agent(agent, seed)
        parts: dict[str, list[np.ndarray]] = {}
        for lo in range(0, len(indices), batch_size):
            chunk = [int(i) for i in indices[lo : lo + batch_size]]
            observations = scorer.observations(chunk, split)
            with act_context() if act_context is not None else contextlib.nullcontext():
                actions = act_batch(agent, observations)
            scores = scorer.score(actions, chunk, split)
            values = {"reward": scores.rewards, "format_ok": scores.format_ok, **scores.metrics}
            for key, value in values.items():
                parts.setdefault(key, []).append(np.asarray(value, dtype=np.float64))
            if report is not None:
                report(s, lo + len(chunk))
        for key, chunks in parts.items():
            per_seed.setdefault(key, []).append(np.concatenate(chunks))
    return {key: np.stack(rows) for key, rows in per_seed.items()}
