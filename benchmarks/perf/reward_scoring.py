"""Reward scoring of one GRPO step: the env's batched scorer against one ``step`` per completion.

A Rec-R1 GRPO step samples a group of completions for each prompt of a batch (32 prompts × 12
samples = 384 completions) and needs the reward of every one. For each of ``--prompts`` train
episodes (a seeded sample), this script writes ``--group`` variants of the episode's request
(RecSearch-v0: the shopper's review; RecSeq-v0: the history lines) with random words dropped,
each wrapped with :func:`recgym.rewards.format_answer`, and times

- *batched*: one ``env.unwrapped.score(completions, indices)`` call (one retrieval call), and
- *one by one*: ``reset(options={"split": "train", "index": i})`` then ``step(completion)``
  for each completion,

with the retriever's query cache emptied before every timed run, so each run retrieves every
query afresh. It prints the median wall time of ``--repeats`` runs, the ratio, the reward's NDCG
cut-off ``k``, and checks that both ways give the same rewards. Run::

    python -m benchmarks.perf.reward_scoring [--env RecSeq-v0] [--prompts 32] [--group 12] \\
        [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version

import gymnasium as gym
import numpy as np

import recgym  # noqa: F401 (registers the env ids)
from recgym.envs.text import RetrievalTextEnv, fenced_block
from recgym.rewards import format_answer

__all__ = ["TEXT_ENVS", "grpo_batch", "main", "time_env"]

TEXT_ENVS = ("RecSearch-v0", "RecSeq-v0")
"""The envs scored from LLM completions (the others take numeric actions)."""


def grpo_batch(
    env: RetrievalTextEnv, prompts: int, group: int, seed: int, drop: float = 0.3
) -> tuple[list[int], list[str]]:
    """``prompts`` train episodes × ``group`` completions: the request with words dropped.

    Returns:
        The episode index of each completion and the completions, grouped by episode.
    """
    rng = np.random.default_rng(seed)
    n = env.num_episodes("train")
    episodes = rng.choice(n, size=min(prompts, n), replace=False).tolist()
    indices, completions = [], []
    for index, prompt in zip(episodes, env.observations(episodes, "train"), strict=True):
        words = fenced_block(prompt).split()
        for _ in range(group):
            kept = [w for w in words if rng.random() >= drop] or words[:1]
            indices.append(index)
            completions.append(format_answer(" ".join(kept)))
    return indices, completions


def timed(fn: Callable[[], object], before: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn``, each after an untimed ``before()``."""
    times = []
    for _ in range(repeats):
        before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_env(env_id: str, prompts: int, group: int, repeats: int, seed: int) -> dict[str, float]:
    """Time both ways of scoring one GRPO batch on ``env_id``; print and return the numbers."""
    env = gym.make(env_id)
    inner = env.unwrapped
    assert isinstance(inner, RetrievalTextEnv)
    start = time.perf_counter()
    n_train = inner.num_episodes("train")  # builds the task (data, documents, BM25 index)
    build = time.perf_counter() - start
    indices, completions = grpo_batch(inner, prompts, group, seed)
    inner.score(completions[:2], indices[:2], "train")  # loads the BM25 kernel
    retriever = inner.task.retriever

    def batched() -> np.ndarray:
        return inner.score(completions, indices, "train").rewards

    def one_by_one() -> np.ndarray:
        rewards = np.empty(len(completions))
        for j, (index, completion) in enumerate(zip(indices, completions, strict=True)):
            env.reset(options={"split": "train", "index": index})
            rewards[j] = env.step(completion)[1]
        return rewards

    retriever.cache_clear()
    rewards = batched()
    retriever.cache_clear()
    same = np.array_equal(rewards, one_by_one())
    t_batch = timed(batched, retriever.cache_clear, repeats)
    t_single = timed(one_by_one, retriever.cache_clear, repeats)
    n = len(completions)
    print(
        f"\n{env_id}: k={inner.k}, {len(retriever)} items, {n_train} train episodes, "
        f"task built in {build:.2f} s"
    )
    print(
        f"  batch: {len(set(indices))} prompts x {group} completions = {n}, "
        f"mean reward {rewards.mean():.4f}, rewards > 0: {(rewards > 0).mean():.3f}"
    )
    print(f"  batched score():        {t_batch:8.3f} s  ({n / t_batch:8.1f} completions/s)")
    print(f"  reset()+step() x {n:<5}: {t_single:8.3f} s  ({n / t_single:8.1f} completions/s)")
    print(f"  one by one / batched:   {t_single / t_batch:8.2f}x; same rewards: {same}")
    return {"k": inner.k, "batched_s": t_batch, "one_by_one_s": t_single, "same": float(same)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--env", choices=[*TEXT_ENVS, "all"], default="all", help="env id (default all)"
    )
    parser.add_argument("--prompts", type=int, default=32, help="prompts (episodes) per batch")
    parser.add_argument("--group", type=int, default=12, help="completions per prompt")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (median reported)")
    parser.add_argument("--seed", type=int, default=0, help="seed of episodes and word drops")
    args = parser.parse_args(argv)
    if args.prompts < 1 or args.group < 1 or args.repeats < 1:
        parser.error("--prompts, --group and --repeats must be >= 1")

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, numpy {np.__version__}, "
        f"bm25s {version('bm25s')}, numba {version('numba')}, "
        f"gymnasium {version('gymnasium')}"
    )
    print(
        f"one GRPO batch: {args.prompts} prompts x {args.group} completions, "
        f"median of {args.repeats} runs, retriever cache emptied before each run"
    )
    env_ids = list(TEXT_ENVS) if args.env == "all" else [args.env]
    for env_id in env_ids:
        time_env(env_id, args.prompts, args.group, args.repeats, args.seed)


if __name__ == "__main__":
    main()
