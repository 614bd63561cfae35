"""Does RecPO's partial item refresh bias its train reward? One run's adapter, two tables.

R²ec re-encodes only a step's target items and writes them into the item table built at the
last evaluation (``RecPOConfig.item_refresh="targets"``). This script reads the user vectors of
``--episodes`` train users (greedy reasoning, the trained adapter) once, and scores them against
two tables:

- ``stale+targets``: the base model's table (the table a run's first steps score against,
  built at step 0) with the users' targets re-encoded by the adapter. This is what a rollout
  sees with ``item_refresh="targets"``;
- ``fresh``: the whole table from the adapter (``item_refresh="all"``, and every evaluation).

A higher reward against the first table means the targets' fresh rows win over stale rows for
no reason the ranking keeps. Run::

    python -m benchmarks.studies.recpo_refresh_bias RUN_DIR [--episodes 32] \\
        [--out refresh-bias.json]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import recgym  # noqa: F401 (registers the env ids)

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Score one run's user vectors against both tables; print and return the means."""

    from agents.llm.rec_head import RecHeadAgent

    parser = argparse.ArgumentParser(
        "python -m benchmarks.studies.recpo_refresh_bias", description=__doc__
    )
    parser.add_argument("run", type=Path, help="a RecPO run folder (its training.json and adapter)")
    parser.add_argument("--episodes", type=int, default=32, help="train users (seeded sample)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the record as JSON here")
    args = parser.parse_args(argv)
    config = json.loads((args.run / "training.json").read_text())["config"]
    env = gym.make(config["env"], **config["env_kwargs"])
    scorer: Any = env.unwrapped
    agent = RecHeadAgent.from_env(
        env,
        model=config["model"],
        adapter=str(args.run),
        max_new_tokens=config["max_new_tokens"],
        batch_size=config["eval_batch_size"],
    )
    rng = np.random.default_rng(args.seed)
    episodes = sorted(rng.choice(scorer.num_episodes("train"), args.episodes, replace=False))
    episodes = [int(i) for i in episodes]
    observations = scorer.observations(episodes, "train")
    sequences, _ = agent.readouts([o["prompt"] for o in observations])
    head = agent.head
    targets = [scorer.target(i, "train") for i in episodes]
    users = head.encode_batches(sequences)
    with agent.llm.model.disable_adapter():  # the base model's table
        head.refresh(None)
        stale = head.table().clone()
    head.refresh(None)
    fresh = head.table().clone()
    stale[targets] = fresh[targets]
    record: dict[str, Any] = {"run": str(args.run), "episodes": len(episodes)}
    for name, table in (("stale+targets", stale), ("fresh", fresh)):
        head.set_table(table)
        scores = scorer.score(head.scores(users), episodes, "train")
        record[name] = {
            "reward": float(scores.rewards.mean()),
            "median_target_rank": float(np.median(scores.ranks)),
            "ndcg@50": float(scores.metrics["ndcg@50"].mean()),
            "p_target": float(scores.metrics["p_target"].mean()),
        }
    text = json.dumps(record, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return record


if __name__ == "__main__":
    main()
