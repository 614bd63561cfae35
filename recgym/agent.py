"""The agent protocol: what the benchmark runner and the envs' users can plug in.

An agent is anything with ``act(observation) -> action``. It may also offer
``act_batch(observations) -> actions`` (an LLM generates a batch at once) and
``reset(seed=...)`` (re-seed its sampling before an evaluation run).

Masked actions. An env with a ``Discrete`` action space may say which actions are allowed now
(``RecUser-v0``: the items the user has not seen, ``env.action_masks()``). An agent that can use
that takes it as a keyword, ``act_batch(observations, action_masks=...)`` with one boolean row
per observation, as sb3-contrib's ``MaskablePPO.predict(..., action_masks=...)`` does; an agent
without that keyword is given observations only.

Histories. A reference agent that reads the env's user model itself (``rm-greedy``) needs each
user's full current history, which a ``RecUser-v0`` observation does not carry
(``env.histories()`` of the vector env). Such an agent takes it as a keyword too,
``act_batch(observations, histories=...)`` with one int array per observation; it is
privileged information, passed only to agents that ask for it (:func:`takes_histories`).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "Agent",
    "act_batch",
    "check_action_masks",
    "reset_agent",
    "takes_action_masks",
    "takes_histories",
]


@runtime_checkable
class Agent(Protocol):
    """A policy: one action for one observation."""

    def act(self, observation: Any) -> Any:
        """The action to take on ``observation``."""
        ...


def _takes(agent: Agent, keyword: str) -> bool:
    batched = getattr(agent, "act_batch", None)
    if batched is None:
        return False
    try:
        return keyword in inspect.signature(batched).parameters
    except (TypeError, ValueError):  # a builtin or C callable without a signature
        return False


def takes_action_masks(agent: Agent) -> bool:
    """Whether the agent's ``act_batch`` takes an ``action_masks`` keyword."""
    return _takes(agent, "action_masks")


def takes_histories(agent: Agent) -> bool:
    """Whether the agent's ``act_batch`` takes a ``histories`` keyword (the users' full
    histories, privileged; see the module docstring)."""
    return _takes(agent, "histories")


def check_action_masks(
    action_masks: Any, batch: int, n_actions: int | None = None, *, need_allowed: bool = False
) -> np.ndarray:
    """``action_masks`` as a ``(batch, n_actions)`` bool array, checked.

    Args:
        action_masks: one row per observation, True where the action is allowed.
        batch: the number of observations.
        n_actions: the number of actions (``None``: any).
        need_allowed: every row must allow at least one action (an agent that picks one).

    Raises:
        ValueError: another shape, or (``need_allowed``) a row that allows nothing.
    """
    masks = np.asarray(action_masks, dtype=bool)
    n = masks.shape[-1] if n_actions is None and masks.ndim == 2 else n_actions
    if masks.shape != (batch, n):
        raise ValueError(
            f"action_masks must have shape ({batch}, {'n_actions' if n is None else n}) (one row "
            f"per observation, one column per action); got {masks.shape}"
        )
    if need_allowed and not masks.any(axis=1).all():
        rows = np.flatnonzero(~masks.any(axis=1)).tolist()
        raise ValueError(f"action_masks allow no action in rows {rows}: nothing to choose from")
    return masks


def act_batch(
    agent: Agent,
    observations: Sequence[Any],
    action_masks: np.ndarray | None = None,
    histories: Sequence[np.ndarray] | None = None,
) -> list[Any]:
    """The agent's actions for a batch: its ``act_batch`` if it has one, else ``act`` per item.

    ``action_masks`` (``(B, n_actions)`` bool, True = allowed) goes to agents whose
    ``act_batch`` takes it (:func:`takes_action_masks`), ``histories`` (one int array per
    observation) to agents whose ``act_batch`` takes it (:func:`takes_histories`); other
    agents act without them.

    Raises:
        ValueError: masks of another shape, or not one history per observation.
    """
    batched = getattr(agent, "act_batch", None)
    if batched is not None:
        extra: dict[str, Any] = {}
        if action_masks is not None and takes_action_masks(agent):
            extra["action_masks"] = check_action_masks(action_masks, len(observations))
        if histories is not None and takes_histories(agent):
            if len(histories) != len(observations):
                raise ValueError(
                    f"got {len(histories)} histories for {len(observations)} observations; "
                    "pass one history per observation"
                )
            extra["histories"] = [np.asarray(h, dtype=np.int64) for h in histories]
        actions = list(batched(list(observations), **extra))
        if len(actions) != len(observations):
            raise ValueError(
                f"{type(agent).__name__}.act_batch returned {len(actions)} actions for "
                f"{len(observations)} observations"
            )
        return actions
    return [agent.act(obs) for obs in observations]


def reset_agent(agent: Agent, seed: int | None) -> None:
    """Call the agent's ``reset(seed=...)`` if it has one (seeds its sampling)."""
    reset = getattr(agent, "reset", None)
    if reset is not None:
        reset(seed=seed)
