"""recgym: Gymnasium environments for recommendation with LLM policies, users and judges.

``import recgym`` is light on purpose (no torch, transformers or stable-baselines3): the
sub-packages load on first attribute access, e.g. ``recgym.data.load_dataset("ml-100k")``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from recgym.envs import ENVS, register_envs
from recgym.error import RecGymError

__version__ = "0.1.0"
__all__ = [
    "ENVS",
    "RecGymError",
    "__version__",
    "data",
    "evaluation",
    "llm",
    "metrics",
    "models",
    "retrieval",
    "rewards",
]

_LAZY = {"data", "evaluation", "llm", "metrics", "models", "retrieval", "rewards"}

if TYPE_CHECKING:
    from recgym import data, evaluation, llm, metrics, models, retrieval, rewards

register_envs()


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return importlib.import_module(f"recgym.{name}")
    raise AttributeError(f"module 'recgym' has no attribute {name!r}")
