"""What an LLM's preference texts add to RecPref-v0's recommender, paired per user.

For the first ``--episodes`` users of a split, an LLM policy (the embedded SmolLM2-135M, or a
DPO/GRPO run's adapter) writes one text per user, greedily, as the ``zero-shot`` agent does
with ``{"system_prompt": null, "temperature": 0, "max_new_tokens": 80}``. Each user is then
scored twice by the same judge, with the text and with none (the plain SASRec backbone):

- among ``RecPref-v0``'s 20 candidates (the env's reward and metrics), and
- over the whole catalog, history masked (NDCG@10, Recall@10): the lift of the
  knowledge-augmented recommender over its backbone without the easy sampled negatives.

It prints each metric without and with the text, the paired difference with its 95 %
interval (normal approximation over users), and how many users gained or lost. It can also
write a JSON record with a few example texts. Run::

    python -m benchmarks.studies.recpref_lift --split test --episodes 200 [--adapter RUN/rounds/2]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import recgym  # noqa: F401 (registers the env ids)
from recgym.envs.preference import RecPrefEnv
from recgym.metrics import metrics_at_rank, target_ranks

__all__ = ["main", "paired"]


def paired(without: np.ndarray, with_text: np.ndarray) -> dict[str, float]:
    """Means, the paired difference (mean ± 1.96 standard errors) and the users it moved."""
    diff = with_text - without
    se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("nan")
    return {
        "without": float(without.mean()),
        "with": float(with_text.mean()),
        "diff": float(diff.mean()),
        "ci95": 1.96 * se,
        "gained": int((diff > 0).sum()),
        "lost": int((diff < 0).sum()),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse the arguments, write the texts, score them, print the table."""
    from agents.llm.zero_shot import ZeroShotLLMAgent

    parser = argparse.ArgumentParser(prog="python -m benchmarks.studies.recpref_lift")
    parser.add_argument("--split", default="test", choices=("train", "validation", "test"))
    parser.add_argument("--episodes", type=int, default=200, help="first N users of the split")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--adapter", default=None, help="a trainer's run folder (LoRA adapter)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None, help="write the record as JSON here")
    args = parser.parse_args(argv)

    env = gym.make("RecPref-v0").unwrapped
    assert isinstance(env, RecPrefEnv)
    n = min(args.episodes, env.num_episodes(args.split))
    rows = list(range(n))
    agent = ZeroShotLLMAgent(
        args.model,
        max_new_tokens=80,
        temperature=0.0,
        batch_size=args.batch_size,
        system_prompt=None,
        adapter=args.adapter,
    )
    t0 = time.perf_counter()
    texts = agent.act_batch(env.observations(rows, args.split))
    seconds = time.perf_counter() - t0
    plain, augmented = env.score([""] * n, rows, args.split), env.score(texts, rows, args.split)
    report = {"reward": paired(plain.rewards, augmented.rewards)}
    for key in ("ndcg@10", "hit@1"):
        report[key] = paired(plain.metrics[key], augmented.metrics[key])
    episodes = env.task.splits[args.split]
    histories, targets = [episodes.histories[i] for i in rows], episodes.targets[:n]
    judge: Any = env.recommender
    full: dict[str, dict[str, np.ndarray]] = {}
    for name, batch in (("plain", [""] * n), ("text", texts)):
        ranks = target_ranks(judge.score_items(histories, batch), targets, histories)
        full[name] = metrics_at_rank(ranks, 10, (10,), ("ndcg", "recall"))
    report["full/ndcg@10"] = paired(full["plain"]["ndcg@10"], full["text"]["ndcg@10"])
    report["full/recall@10"] = paired(full["plain"]["recall@10"], full["text"]["recall@10"])

    print(
        f"RecPref-v0 {args.split}, first {n} users; texts by {args.model}"
        + (f" + {args.adapter}" if args.adapter else "")
        + f" ({seconds:.0f} s to write)"
    )
    print("| metric | no text | text | text − no text (95 % CI) | users gained / lost |")
    print("|---|---:|---:|---:|---:|")
    for key, r in report.items():
        print(
            f"| {key} | {r['without']:.4f} | {r['with']:.4f} | {r['diff']:+.4f} ± "
            f"{r['ci95']:.4f} | {r['gained']} / {r['lost']} |"
        )
    record = {
        "split": args.split,
        "episodes": n,
        "model": args.model,
        "adapter": args.adapter,
        "metrics": report,
        "write_seconds": round(seconds, 1),
        "examples": [
            {"index": i, "user": str(episodes.users[i]), "text": texts[i]} for i in range(min(3, n))
        ],
    }
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n")
    return record


if __name__ == "__main__":
    main()
