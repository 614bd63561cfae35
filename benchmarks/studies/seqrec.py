"""Next-item benchmark: SASRec, GRU4Rec and LRURec against popularity on MovieLens-100k.

Protocol: leave-one-out by time (:func:`recgym.data.leave_one_out`), full ranking of all items,
the user's history excluded (the target never), ties to the lower item index; Recall@10 and
NDCG@10 from :mod:`recgym.metrics` (one target per user, so HR@10 = Recall@10). Each model
trains with its default configuration (:func:`recgym.models.seqrec.default_config`), early-stopped
on validation NDCG@10, once per seed; the popularity row ranks items by their count among
training events. Cells are ``mean ± ci95``: per-user values averaged over seeds, then the
95 % Student-t interval over users (:func:`benchmarks.runner.summarize`). Run::

    python -m benchmarks.studies.seqrec --seeds 0 1 2

Trained models are taken from (or put into) the ``pretrained()`` cache; ``--retrain`` trains
again. ``--users 50 --max-epochs 1 --no-cache`` is a smoke run. On a CPU shared with other
busy processes, ``--threads 1`` avoids torch's threads waiting on each other (GRU4Rec went
from 2.5 s to 76 s per epoch with 2 threads on 2 shared cores); it changes timings only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.runner import git_commit, summarize
from recgym.metrics import metrics_at_k
from recgym.models.seqrec import (
    DEFAULTS,
    SeqRecRetriever,
    default_config,
    pretrained,
    top_k,
    train_seqrec,
)
from recgym.models.seqrec.train import data_version, load_split

__all__ = ["main", "popularity_scores", "run"]

DEFAULT_OUT = Path("benchmarks/results/seqrec.json")
K = 10
REFERENCE = {
    "source": "RecBole GRU4Rec on ml-100k (leave-one-out, full ranking)",
    "validation/ndcg@10": 0.0717,
    "validation/recall@10": 0.1442,
    "test/ndcg@10": 0.0513,
    "test/recall@10": 0.1103,
}
"""A published reference point, for sanity (not produced by this script)."""


def popularity_scores(train_items: np.ndarray, n_items: int) -> np.ndarray:
    """Each item's number of training events, as float32 scores ``(n_items,)``."""
    return np.bincount(train_items, minlength=n_items).astype(np.float32)


def _per_user(
    scores: np.ndarray, histories: list[np.ndarray], targets: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-user ``ndcg@K`` and ``recall@K`` of the ranking (history out, target kept)."""
    exclude = [h[h != t] for h, t in zip(histories, targets, strict=True)]
    ranked, _ = top_k(scores, K, exclude)
    return metrics_at_k(ranked, targets, ks=(K,), names=("ndcg", "recall"))


def run(
    models: list[str],
    seeds: list[int],
    *,
    users: int | None = None,
    max_epochs: int | None = None,
    use_cache: bool = True,
    retrain: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train (or load) every model for every seed, evaluate, and return the results record."""
    split, n_items = load_split("ml-100k", users=users, progress=progress)
    examples = {s: split.examples(s) for s in ("validation", "test")}
    overrides: dict[str, Any] = {} if max_epochs is None else {"max_epochs": max_epochs}
    rows: list[dict[str, Any]] = []
    pop = popularity_scores(split.train["item_idx"].to_numpy(), n_items)
    per_user = {s: _per_user(np.tile(pop, (len(h), 1)), h, t) for s, (_, h, t) in examples.items()}
    rows.append(_row("popularity", [per_user], runs=[]))
    seed_values: dict[str, list[dict[str, dict[str, np.ndarray]]]] = {m: [] for m in models}
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in models}
    # Seed-major, so that an interrupted run has every model's first seed in the cache.
    for seed in seeds:
        for name in models:
            start = time.perf_counter()
            retriever: SeqRecRetriever
            if use_cache and users is None:
                retriever = pretrained(
                    name, seed=seed, progress=progress, retrain=retrain, **overrides
                )
            else:
                config = default_config(name, seed=seed, **overrides)
                retriever = train_seqrec(config, users=users, progress=progress)
            seed_values[name].append(
                {s: _per_user(retriever.score(h), h, t) for s, (_, h, t) in examples.items()}
            )
            runs[name].append(
                {
                    "seed": seed,
                    "config": dataclasses.asdict(retriever.config),
                    "metrics": retriever.metrics,
                    "data_version": retriever.data_version,
                    "wall_seconds": round(time.perf_counter() - start, 2),
                }
            )
    rows += [_row(name, seed_values[name], runs[name]) for name in models]
    return {
        "benchmark": "seqrec",
        "dataset": "ml-100k",
        "data_version": data_version(split),
        "users": len(examples["test"][1]),
        "n_items": n_items,
        "protocol": "leave-one-out by time, full ranking, history excluded, ties to lower index",
        "command": "python -m benchmarks.studies.seqrec " + shlex.join(sys.argv[1:]),
        "commit": git_commit(),
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
        "reference": REFERENCE,
        "rows": rows,
    }


def _row(
    name: str, seed_values: list[dict[str, dict[str, np.ndarray]]], runs: list[dict[str, Any]]
) -> dict[str, Any]:
    stats = {
        f"{split}/{metric}": summarize(np.stack([v[split][metric] for v in seed_values]))
        for split in ("validation", "test")
        for metric in (f"recall@{K}", f"ndcg@{K}")
    }
    facts = {
        key: float(np.mean([r["metrics"][key] for r in runs])) if runs else None
        for key in ("epochs", "best_epoch", "train_seconds")
    }
    return {
        "model": name,
        "seeds": [r["seed"] for r in runs],
        **facts,
        "metrics": stats,
        "runs": runs,
    }


def markdown(record: dict[str, Any]) -> str:
    """The results record as a Markdown table, with the command that produced it."""
    cols = [f"{s}/{m}@{K}" for s in ("validation", "test") for m in ("recall", "ndcg")]
    head = "| model | seeds | epochs | best epoch | train s | " + " | ".join(cols) + " |"
    lines = [head, "|---|---|---:|---:|---:|" + "---:|" * len(cols)]
    for row in record["rows"]:
        cells = [
            row["model"],
            ",".join(map(str, row["seeds"])) or "-",
            *("-" if row[k] is None else f"{row[k]:.1f}" for k in ("epochs", "best_epoch")),
            "-" if row["train_seconds"] is None else f"{row['train_seconds']:.0f}",
            *(f"{row['metrics'][c]['mean']:.4f} ± {row['metrics'][c]['ci95']:.4f}" for c in cols),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    ref = record["reference"]
    lines += [
        "",
        f"{record['dataset']} (data {record['data_version']}), {record['users']} users, "
        f"{record['n_items']} items; {record['protocol']}; CPU, {record['machine']['threads']} "
        f"threads; commit {record['commit']}. Reference ({ref['source']}): test NDCG@10 "
        f"{ref['test/ndcg@10']}, HR@10 {ref['test/recall@10']}.",
        "",
        f"```bash\n{record['command']}\n```",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULTS), choices=list(DEFAULTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--users", type=int, default=None, help="first N users (smoke runs)")
    parser.add_argument("--max-epochs", type=int, default=None, help="override max_epochs")
    parser.add_argument("--no-cache", action="store_true", help="train without the cache")
    parser.add_argument("--retrain", action="store_true", help="retrain cached models")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's choice)"
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    record = run(
        args.models,
        args.seeds,
        users=args.users,
        max_epochs=args.max_epochs,
        use_cache=not args.no_cache,
        retrain=args.retrain,
        progress=not args.quiet,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(markdown(record))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
