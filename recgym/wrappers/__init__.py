"""Transforms of recgym data and environments.

- :class:`LoggedSequences`: per-user logged item sequences with per-transition rewards (the
  offline RL data of ``agents.rl4rec``); :func:`rating_rewards` maps ratings to Xin et al.'s
  purchase/click rewards.
- :class:`LEAWrapper`: adds an LLM environment's proposed positives, rewarded by its reward
  model, to logged sequences (LEA, Wang et al., SIGIR 2024).
- :class:`LEView`: an LLM environment (:class:`recgym.le.UserModel`) spoken to in dataset item
  indices.

numpy only: importing this package imports no torch.
"""

from __future__ import annotations

from recgym.wrappers.lea import LEAWrapper, LEView, proposal_pool
from recgym.wrappers.logged import LoggedSequences, rating_rewards

__all__ = ["LEAWrapper", "LEView", "LoggedSequences", "proposal_pool", "rating_rewards"]
