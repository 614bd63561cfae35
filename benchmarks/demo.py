"""The README's main job (``make demo`` / ``python -m benchmarks demo``): data, then baselines.

Prints a summary of the embedded datasets, then evaluates the reference agents on the *test*
split of both Rec-R1 envs with :func:`benchmarks.runner.evaluate` and prints the leaderboard:

- ``RecSearch-v0``: ``raw-query`` (the shopper's request as the query), ``random-words``
  (3 seeds), ``zero-shot`` SmolLM2-135M-Instruct (3 seeds);
- ``RecSeq-v0``: ``history`` (the watched titles as the query), ``random-words`` (3 seeds),
  ``zero-shot`` SmolLM2-135M-Instruct (3 seeds).

The zero-shot agent runs on the CTranslate2 engine (``backend="ct2"``, int8,
:mod:`recgym.llm.ct2`) when the ``ct2`` extra is installed, else on transformers; each row's
agent config records which (``"backend": "ct2-int8"``), and ``--backend transformers`` asks for
the other.

Rows are appended to ``--out`` (default ``<recgym cache>/results/demo.jsonl``, so running the
demo never dirties the checkout); each row carries the ``python -m benchmarks run ...`` command
that regenerates it. ``--llm fake`` swaps in the deterministic fake LLM (for tests).

The measurements behind the defaults and the demo's cost on 2 CPU cores are in
``docs/quickstart.md`` ("What make demo costs").
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["BATCH_SIZE", "EPISODES", "MAX_NEW_TOKENS", "SEEDS", "default_backend", "run_demo"]

EPISODES = 50
"""Test episodes per env (the first of each split's fixed order)."""
MAX_NEW_TOKENS = 128
"""Completion budget of the zero-shot LLM agent."""
BATCH_SIZE = 16
"""Prompts per LLM generation batch (and episodes per scoring batch of the LLM runs)."""
SEEDS = (0, 1, 2)
"""Seeds of the stochastic agents (random words, the sampled LLM)."""

_PLAN: tuple[tuple[str, str, bool], ...] = (
    ("RecSearch-v0", "raw-query", False),
    ("RecSearch-v0", "random-words", True),
    ("RecSearch-v0", "zero-shot", True),
    ("RecSeq-v0", "history", False),
    ("RecSeq-v0", "random-words", True),
    ("RecSeq-v0", "zero-shot", True),
)
"""(env id, agent, seeded) in the order they run; deterministic agents run with seed 0 only."""


def default_backend(llm: str) -> str:
    """``"ct2"`` when CTranslate2 is installed and ``llm`` has weights, else ``"transformers"``."""
    import importlib.util

    if llm != "fake" and importlib.util.find_spec("ctranslate2") is not None:
        return "ct2"
    return "transformers"


def default_out() -> Path:
    """``<recgym cache>/results/demo.jsonl``."""
    from recgym.data import cache_dir

    return cache_dir() / "results" / "demo.jsonl"


def _say(line: str) -> None:
    print(line, flush=True)


def run_demo(
    *,
    episodes: int = EPISODES,
    max_new_tokens: int = MAX_NEW_TOKENS,
    llm: str = "smollm2-135m",
    batch_size: int = BATCH_SIZE,
    seeds: Sequence[int] = SEEDS,
    out: str | Path | None = None,
    backend: str | None = None,
) -> list[dict[str, Any]]:
    """Run the demo, printing to stdout; returns the rows it appended to ``out``.

    ``backend`` is the zero-shot model's engine (:func:`recgym.llm.load`); default
    :func:`default_backend`."""
    import gymnasium as gym

    import recgym
    import recgym.llm
    from agents.llm.zero_shot import ZeroShotLLMAgent
    from benchmarks.runner import append_rows, build_agent, evaluate
    from benchmarks.table import markdown_table
    from recgym.demo import clothing_summary, movielens_summary
    from recgym.evaluation import EvalSpec

    start = time.perf_counter()
    path = Path(out) if out is not None else default_out()
    _say(f"recgym {recgym.__version__}: embedded data and model (cache: {recgym.data.cache_dir()})")
    movielens_summary()
    clothing_summary(bm25=False)

    _say(f"\n== Zero-shot policy: {llm}")
    loaded = time.perf_counter()
    backend = backend or default_backend(llm)
    model_kwargs = {} if backend == "transformers" else {"backend": backend}
    model = recgym.llm.load(llm, progress=False, **model_kwargs)
    _say(f"  loaded {model!r} in {time.perf_counter() - loaded:.1f} s")
    zero_shot_kwargs: dict[str, Any] = {
        "model": llm,
        "max_new_tokens": max_new_tokens,
        "batch_size": batch_size,
        **({"model_kwargs": model_kwargs} if model_kwargs else {}),
    }

    _say(f"\n== Test-split leaderboard: first {episodes} episodes per env, seeds {list(seeds)}")
    rows: list[dict[str, Any]] = []
    for env_id, name, seeded in _PLAN:
        agent_seeds = list(seeds) if seeded else [0]
        if name == "zero-shot":
            kwargs: dict[str, Any] = zero_shot_kwargs
            agent: Any = ZeroShotLLMAgent(
                model, max_new_tokens=max_new_tokens, batch_size=batch_size
            )
            eval_batch = batch_size
        else:
            env = gym.make(env_id, split="test")
            kwargs = {}
            agent = build_agent(name, env, kwargs)
            env.close()
            eval_batch = 64
        _say(f"{env_id} / {name} ({len(agent_seeds)} seed{'s' * (len(agent_seeds) > 1)})")
        spec = EvalSpec(
            env_id,
            name,
            agent_kwargs=kwargs,
            split="test",
            episodes=episodes,
            seeds=agent_seeds,
            batch_size=eval_batch,
        )
        row = evaluate(spec, agent, progress=_say if name == "zero-shot" else False)
        append_rows(path, [row])
        rows.append(row)
        m = row["metrics"]
        _say(
            f"  reward {m['reward']['mean']:.4f}, NDCG@10 {m['ndcg@10']['mean']:.4f}, "
            f"format ok {m['format_ok']['mean']:.2f} ({row['wall_seconds']:.1f} s)"
        )

    _say(f"\n== Results (appended to {path})\n")
    _say(markdown_table(rows))
    _say(f"done in {time.perf_counter() - start:.1f} s")
    return rows
