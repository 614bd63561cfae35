"""Stable-Baselines3 on recgym: a saved SB3 model as an agent, and ``RecUser-v0`` as an SB3
``VecEnv``.

- :mod:`agents.sb3.agent`: :class:`SB3Agent` plays any saved SB3 model on any env.
- :mod:`agents.sb3.vec_env`: :class:`RecUserVecEnv`, N simulated users as one SB3 ``VecEnv``
  (one user-model call per step for all of them).

``import agents.sb3`` does not import stable-baselines3; the vec env module does, on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from agents.sb3.agent import ALGOS, SB3Agent, resolve_algo, save_for_evaluation

if TYPE_CHECKING:
    from agents.sb3.vec_env import RecUserVecEnv, make_recuser_vec_env

__all__ = [
    "ALGOS",
    "RecUserVecEnv",
    "SB3Agent",
    "make_recuser_vec_env",
    "resolve_algo",
    "save_for_evaluation",
]

_LAZY = {"RecUserVecEnv", "make_recuser_vec_env"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:  # stable-baselines3 loads only when the vec env is asked for
        return getattr(importlib.import_module("agents.sb3.vec_env"), name)
    raise AttributeError(f"module 'agents.sb3' has no attribute {name!r}")
