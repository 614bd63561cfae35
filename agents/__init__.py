"""Reference agents for recgym environments: baselines, SB3 recommenders, LLM trainers.

:data:`AGENTS` names the agents the benchmark runner can build: ``AGENTS[name](env, kwargs)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym

from agents.baselines import (
    FixedTextAgent,
    HistoryAgent,
    ItemScoresAgent,
    PopularItemAgent,
    RandomItemAgent,
    RandomOrderAgent,
    RandomWordsAgent,
    RawQueryAgent,
    RetrieverOrderAgent,
    RMGreedyAgent,
    SMGreedyAgent,
)
from agents.sb3 import SB3Agent  # imports stable-baselines3 only when a model is loaded
from recgym.agent import Agent
from recgym.error import UnknownNameError
from recgym.utils.moved import alias_modules

# Moved modules (docs/layout.md lists every move): the models that define envs went into the
# library (recgym.models), and agents were grouped by family. The old paths keep working for
# one release, with a DeprecationWarning. Every module is listed: an old path left
# out would be loaded a second time, as another module, from the new package's folder.
alias_modules(
    {
        "agents.seqrec": "recgym.models.seqrec",
        "agents.seqrec.config": "recgym.models.seqrec.config",
        "agents.seqrec.hub": "recgym.models.seqrec.hub",
        "agents.seqrec.lru": "recgym.models.seqrec.lru",
        "agents.seqrec.models": "recgym.models.seqrec.models",
        "agents.seqrec.retriever": "recgym.models.seqrec.retriever",
        "agents.seqrec.train": "recgym.models.seqrec.train",
        "agents.seqrec.kar": "recgym.models.kar",
        # The baselines and the SB3 pieces, grouped by what they are.
        "agents.next_item": "agents.baselines.next_item",
        "agents.ranking": "agents.baselines.ranking",
        "agents.recuser": "agents.baselines.recuser",
        "agents.sb3_vec": "agents.sb3.vec_env",
    }
)

__all__ = [
    "AGENTS",
    "FixedTextAgent",
    "HistoryAgent",
    "ItemScoresAgent",
    "PopularItemAgent",
    "RMGreedyAgent",
    "RandomItemAgent",
    "RandomOrderAgent",
    "RandomWordsAgent",
    "RawQueryAgent",
    "RetrieverOrderAgent",
    "SB3Agent",
    "SMGreedyAgent",
    "make_agent",
]


def _zero_shot(env: gym.Env[Any, Any], kwargs: dict[str, Any]) -> Agent:
    from agents.llm.zero_shot import ZeroShotLLMAgent  # loads torch only when asked for

    return ZeroShotLLMAgent(**kwargs)


def _trained(algorithm: str) -> Callable[[gym.Env[Any, Any], dict[str, Any]], Agent]:
    """A factory of the LLM policy trained by ``agents.llm.grpo``, ``agents.llm.dpo`` or
    ``agents.llm.recpo`` with ``algorithm``."""

    def make(env: gym.Env[Any, Any], kwargs: dict[str, Any]) -> Agent:
        if "adapter" not in kwargs:
            raise ValueError(
                f"agent {algorithm!r} needs the run's output folder: --agent-kwargs "
                '\'{"adapter": "path/to/run", ...}\''
            )
        if algorithm == "recpo":
            from agents.llm.rec_head import RecHeadAgent  # loads torch only when asked for

            agent: Any = RecHeadAgent.from_env(env, **kwargs)
        else:
            from agents.llm.zero_shot import ZeroShotLLMAgent

            agent = ZeroShotLLMAgent(**kwargs)
        trained = (agent.training or {}).get("algorithm")
        if trained != algorithm:
            raise ValueError(
                f"{kwargs['adapter']} was trained with {trained!r}, not {algorithm!r}; use "
                f"--agent {trained}"
                if trained
                else f"{kwargs['adapter']} has no training.json"
            )
        return agent

    return make


def _rec_head(env: gym.Env[Any, Any], kwargs: dict[str, Any]) -> Agent:
    from agents.llm.rec_head import RecHeadAgent  # loads torch only when asked for

    return RecHeadAgent.from_env(env, **kwargs)


def _verbalizer(env: gym.Env[Any, Any], kwargs: dict[str, Any]) -> Agent:
    from agents.llm.verbalizer import VerbalizerAgent  # loads torch only when asked for

    return VerbalizerAgent(**kwargs)


AGENTS: dict[str, Callable[[gym.Env[Any, Any], dict[str, Any]], Agent]] = {
    "raw-query": lambda env, kw: RawQueryAgent(**kw),
    "history": lambda env, kw: HistoryAgent(**kw),
    "random-words": lambda env, kw: RandomWordsAgent.from_env(env, **kw),
    "fixed-text": lambda env, kw: FixedTextAgent(**kw),
    "zero-shot": _zero_shot,
    "retriever-order": lambda env, kw: RetrieverOrderAgent(**kw),
    "random-order": lambda env, kw: RandomOrderAgent(**kw),
    "grpo": _trained("grpo"),
    "rloo": _trained("rloo"),
    "rs-sft": _trained("rs-sft"),
    "dpo": _trained("dpo"),
    "recpo": _trained("recpo"),
    "rec-head": _rec_head,
    "verbalizer": _verbalizer,
    "sb3": lambda env, kw: SB3Agent.from_env(env, **kw),
    "popularity": lambda env, kw: (
        ItemScoresAgent.popularity(**kw) if kw else ItemScoresAgent.popularity_for(env)
    ),
    "seqrec": lambda env, kw: ItemScoresAgent.seqrec(**kw),
    "rl4rec": lambda env, kw: ItemScoresAgent.rl4rec(**kw),
    "random-item": lambda env, kw: RandomItemAgent.from_env(env, **kw),
    "popular-item": lambda env, kw: PopularItemAgent.from_env(env, **kw),
    "sm-greedy": lambda env, kw: SMGreedyAgent.from_env(env, **kw),
    "rm-greedy": lambda env, kw: RMGreedyAgent.from_env(env, **kw),
}
"""Agent factories by name: ``(env, kwargs) -> agent``."""


def make_agent(name: str, env: gym.Env[Any, Any], **kwargs: Any) -> Agent:
    """Build the agent registered as ``name`` for ``env``."""
    if name not in AGENTS:
        raise UnknownNameError(
            f"no agent named {name!r}; known agents: {', '.join(sorted(AGENTS))}"
        )
    return AGENTS[name](env, kwargs)
