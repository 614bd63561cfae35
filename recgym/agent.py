"""The agent protocol: what the benchmark runner and the envs' users can plug in.

An agent is anything with ``act(observation) -> action``. It may also offer
``act_batch(observations) -> actions`` (an LLM generates a batch at once) and
``reset(seed=...)`` (re-seed its sampling before an evaluation run).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["Agent", "act_batch", "reset_agent"]


@runtime_checkable
class Agent(Protocol):
    """A policy: one action for one observation."""

    def act(self, observation: Any) -> Any:
        """The action to take on ``observation``."""
        ...


def act_batch(agent: Agent, observations: Sequence[Any]) -> list[Any]:
    """The agent's actions for a batch: its ``act_batch`` if it has one, else ``act`` per item."""
    batched = getattr(agent, "act_batch", None)
    if batched is not None:
        actions = list(batched(list(observations)))
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
