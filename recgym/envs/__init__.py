"""recgym's environments and their registration table.

Ids are registered with string entry points, so registering imports no env module (and no
torch); ``gym.make("RecSearch-v0")`` imports the one it needs.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

__all__ = ["ENVS", "register_envs"]

ENVS: dict[str, dict[str, Any]] = {
    "RecSearch-v0": {"entry_point": "recgym.envs.search:RecSearchEnv"},
    "RecSeq-v0": {"entry_point": "recgym.envs.sequential:RecSeqEnv"},
    "RecRank-v0": {"entry_point": "recgym.envs.rank:RecRankEnv"},
    "RecNext-v0": {"entry_point": "recgym.envs.next_item:RecNextEnv"},
    "RecPref-v0": {"entry_point": "recgym.envs.preference:RecPrefEnv"},
    "RecUser-v0": {
        "entry_point": "recgym.envs.user:RecUserEnv",
        "vector_entry_point": "recgym.envs.user:RecUserVectorEnv",
    },
}
"""Every env id with its registration arguments."""


def register_envs() -> None:
    """Register every id of :data:`ENVS` with Gymnasium (idempotent)."""
    for env_id, kwargs in ENVS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, **kwargs)
