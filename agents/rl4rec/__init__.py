"""SQN and SA2C (Xin et al.) on seqrec backbones, with an LLM environment's inputs.

A next-item model (GRU4Rec or SASRec from :mod:`recgym.models.seqrec`) gets a Q head next to its
cross-entropy head and trains on the logged transitions of each user's sequence. The LLM
environment (:mod:`recgym.le`) can replace the rating rewards by its reward model's (RM),
add its state model's (SM) state to the RL state, and propose extra positives (LEA,
:class:`recgym.wrappers.LEAWrapper`). :data:`VARIANTS` names the ablation's cells;
``python -m benchmarks.studies.rl4rec_ablation`` runs them. See ``docs/guides/rl4rec.md``.
"""

from __future__ import annotations

from agents.rl4rec.config import ALGOS, VARIANTS, RL4RecConfig, parse_variant, variant_config
from agents.rl4rec.data import LEInputs, RL4RecData, le_inputs
from agents.rl4rec.hub import pretrained_rl4rec, rl4rec_config, rl4rec_dir
from agents.rl4rec.model import (
    RL4RecModel,
    advantage_weights,
    double_q_value,
    sa2c_advantage,
    sample_negatives,
    td_targets,
)
from agents.rl4rec.train import RL4RecRecommender, fit_rl4rec, train_rl4rec

__all__ = [
    "ALGOS",
    "VARIANTS",
    "LEInputs",
    "RL4RecConfig",
    "RL4RecData",
    "RL4RecModel",
    "RL4RecRecommender",
    "advantage_weights",
    "double_q_value",
    "fit_rl4rec",
    "le_inputs",
    "parse_variant",
    "pretrained_rl4rec",
    "rl4rec_config",
    "rl4rec_dir",
    "sa2c_advantage",
    "sample_negatives",
    "td_targets",
    "train_rl4rec",
    "variant_config",
]
