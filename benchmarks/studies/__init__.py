"""Studies: one-off experiments that answer one question each, with their own protocol and
result files (not leaderboard rows, which only :mod:`benchmarks.runner` writes). Each runs as
``python -m benchmarks.studies.<name>``.

- :mod:`benchmarks.studies.le_quality`: how faithful a user model is, against popularity and
  SASRec on every user's test event.
- :mod:`benchmarks.studies.recpo_refresh_bias`: does RecPO's partial item refresh bias its
  train reward?
- :mod:`benchmarks.studies.recpref_lift`: what an LLM's preference texts add to
  ``RecPref-v0``'s recommender, paired per user.
- :mod:`benchmarks.studies.recuser_agents`: does ``RecUser-v0`` reward personalisation?
  Reference agents paired against popular-item (their leaderboard rows come from the runner).
- :mod:`benchmarks.studies.recuser_sb3`: Stable-Baselines3 agents trained on ``RecUser-v0``
  against random and popularity.
- :mod:`benchmarks.studies.rl4rec_ablation`: which LLM-environment input helps SQN and SA2C.
- :mod:`benchmarks.studies.seqrec`: SASRec, GRU4Rec and LRURec against popularity on
  MovieLens-100k (``benchmarks/results/seqrec.json``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recgym.utils.files import write_atomic

__all__ = ["save_record"]


def save_record(out: Path, name: str, record: dict[str, Any], table: str) -> None:
    """Write a study's record as ``<out>/<name>.json`` and its Markdown as ``<out>/table.md``
    (each atomically, so an interrupted write never leaves half a file)."""
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / f"{name}.json", json.dumps(record, indent=2) + "\n")
    write_atomic(out / "table.md", table)
