"""Does RecUser-v0 reward personalisation? Reference agents on its held-out users, paired.

Plays ``random-item``, ``popular-item``, ``sm-greedy`` (the state model's best unseen item for
the observed state) and ``rm-greedy`` (the reward model's best unseen item for the user's true
history: privileged, an upper bound an RL agent can approach) on the fixed episodes of
RecUser-v0's ``test`` users (:mod:`benchmarks.episodes`). Each agent's leaderboard row is
appended to ``--board`` (the command in the row regenerates it); the study's own record keeps
the per-episode returns and the **paired** differences against ``popular-item`` (episode ``j``
is the same user, start history and acceptance draws for every agent, so the difference is the
agent's doing), as a mean with a 95 % Student-t interval over episodes.

The env's randomness is fixed per episode, so the seeds only change an agent's own draws: a
deterministic agent replays the same episodes under every seed (its row's ``seed_std`` is 0).
``rm-greedy`` sends every unseen item through the reward model at every step, so it is played
on the first ``--rm-episodes`` episodes with the first ``--rm-seeds`` seeds; its paired
comparison then uses those episodes of ``popular-item``. Run::

    python -m benchmarks.studies.recuser_agents --episodes 200 --rm-episodes 32 --rm-seeds 1
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import recgym  # noqa: F401  (registers the envs)
from agents import make_agent
from benchmarks.runner import append_rows, evaluate, git_commit, summarize
from benchmarks.studies import save_record
from recgym.evaluation import EvalSpec

__all__ = ["AGENTS", "main", "run"]

AGENTS = ("random-item", "popular-item", "sm-greedy", "rm-greedy")
"""The reference agents, in table order."""
DEFAULT_OUT = Path("benchmarks/results/recuser-agents-cpu")
BOARD = Path("benchmarks/results/leaderboard.jsonl")


def _paired(values: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Mean and 95 % t-interval over episodes of ``values - reference`` (NaN for one)."""
    diff = summarize((np.asarray(values) - np.asarray(reference))[None, :])
    ci = math.nan if diff["ci95"] is None else diff["ci95"]
    return {"mean": diff["mean"], "ci95": ci, "episodes": len(values)}


def run(
    *,
    episodes: int,
    rm_episodes: int,
    seeds: list[int],
    batch_size: int,
    env_kwargs: dict[str, Any],
    rm_seeds: int = 1,
    board: Path | None = BOARD,
) -> dict[str, Any]:
    """Play every agent, append the rows to ``board`` (unless ``None``), return the record."""
    rows: dict[str, dict[str, Any]] = {}
    returns: dict[str, np.ndarray] = {}
    for name in AGENTS:
        n = min(rm_episodes, episodes) if name == "rm-greedy" else episodes
        agent_seeds = seeds[:rm_seeds] if name == "rm-greedy" else seeds
        spec = EvalSpec(
            "RecUser-v0",
            name,
            split="test",
            episodes=n,
            seeds=agent_seeds,
            batch_size=batch_size,
            env_kwargs=env_kwargs,
        )
        env = gym.make("RecUser-v0", users="test", **env_kwargs)
        try:
            agent = make_agent(name, env)
        finally:
            env.close()
        row = evaluate(spec, agent, progress=True, per_episode=True)
        per_episode = row.pop("per_episode")
        returns[name] = np.asarray(per_episode["return"]).mean(axis=0)
        rows[name] = row
        if board is not None:
            append_rows(board, [row])
        print(
            f"{name}: return {row['metrics']['return']['mean']:.3f} ± "
            f"{row['metrics']['return']['ci95']:.3f} over {n} episodes, "
            f"{row['wall_seconds']:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    paired = {
        name: _paired(values, returns["popular-item"][: len(values)])
        for name, values in returns.items()
        if name != "popular-item"
    }
    return {
        "study": "recuser_agents",
        "command": "python -m benchmarks.studies.recuser_agents " + shlex.join(sys.argv[1:]),
        "commit": git_commit(),
        "env_kwargs": env_kwargs,
        "rows": rows,
        "returns": {name: values.tolist() for name, values in returns.items()},
        "paired_return_vs_popular_item": paired,
    }


def markdown(record: dict[str, Any]) -> str:
    """The record as a Markdown table."""
    lines = [
        "| agent | episodes | seeds | reward | return | taken | return − popular-item "
        "(paired) | wall s (device) |",
        "|---|---:|---|---|---|---|---|---|",
    ]
    for name, row in record["rows"].items():
        m = row["metrics"]
        cells = " | ".join(
            f"{m[k]['mean']:.3f} ± {m[k]['ci95']:.3f}" for k in ("reward", "return", "taken")
        )
        pair = record["paired_return_vs_popular_item"].get(name)
        diff = "–" if pair is None else f"{pair['mean']:+.3f} ± {pair['ci95']:.3f}"
        lines.append(
            f"| {name} | {row['episodes']} | {' '.join(map(str, row['seeds']))} | {cells} | "
            f"{diff} | {row['wall_seconds']:.0f} ({row['device']}) |"
        )
    data_version = next(iter(record["rows"].values()))["data_version"]
    lines += [
        "",
        f"RecUser-v0 test users, data_version `{data_version}`; mean ± 95 % CI over episodes. "
        f"`{record['command']}` at commit {record['commit']}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.studies.recuser_agents",
        description="Reference agents on RecUser-v0's test users, paired against popular-item.",
    )
    parser.add_argument("--episodes", type=int, default=200, help="episodes (test users)")
    parser.add_argument("--rm-episodes", type=int, default=32, help="episodes of rm-greedy")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rm-seeds", type=int, default=1, help="seeds of rm-greedy (first N)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--env-kwargs", type=json.loads, default={}, help="RecUser-v0 kwargs")
    parser.add_argument("--board", type=Path, default=BOARD, help="leaderboard to append to")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder")
    args = parser.parse_args(argv)
    record = run(
        episodes=args.episodes,
        rm_episodes=args.rm_episodes,
        seeds=args.seeds,
        batch_size=args.batch_size,
        env_kwargs=args.env_kwargs,
        rm_seeds=args.rm_seeds,
        board=args.board,
    )
    save_record(args.out, "agents", record, markdown(record))
    print(markdown(record))


if __name__ == "__main__":
    main()
