"""How faithful is a simulated user: user models against popularity and SASRec on held-out events.

Protocol: MovieLens-100k, leave-one-out by time (:func:`recgym.data.leave_one_out`); every
user's **test** event, which no model here was trained or selected on. A user's history is
their training and validation events; the target is the test item.

- **SM NDCG@10 / Recall@10**: the target's rank among every item under the state model's
  scores (an LE: ``states(history) @ item_vectors().T``; SASRec: its next-item logits;
  popularity: training counts), the history excluded, ties against the target
  (:func:`recgym.metrics.target_ranks`).
- **RM AUC**: per user, the share of ``--negatives`` unseen items (not in the history, not the
  target) that the reward model scores below the target (ties count one half,
  :func:`recgym.metrics.pairwise_auc`); the negatives are drawn uniformly, or in proportion to
  their training count plus one ("popularity-sampled", where popularity itself is no help).
  An LE's score is its RM reward (``candidate_rewards``); SASRec's and popularity's are the
  same scores as above.

Every model meets the same users, targets and negatives (seeded). Cells are the mean over users
with a 95 % Student-t interval; the paired columns are per-user differences against popularity
(and against SASRec), so an interval that excludes zero is a difference in these users. Run::

    python -m benchmarks.studies.le_quality --le ml-100k-smollm2-v2 [--le ml-100k-smollm2]

An LE that is neither shipped nor trained is an error (train it with
``python -m recgym.le.hub NAME``).
"""

from __future__ import annotations

import argparse
import math
import platform
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.runner import git_commit, t_quantile_975
from benchmarks.studies import save_record
from recgym.le import load_user_model
from recgym.metrics import metrics_at_rank, pairwise_auc, target_ranks
from recgym.models.seqrec.train import load_split

__all__ = ["COLUMNS", "evaluate_scores", "main", "run"]

DEFAULT_OUT = Path("benchmarks/results/le-quality-cpu")
K = 10
COLUMNS = ("sm/ndcg@10", "sm/recall@10", "rm/auc_uniform", "rm/auc_popular")
"""The table's metric columns, in order."""


def _events(seed: int, negatives: int, users: int | None = None) -> dict[str, Any]:
    """Histories, targets and the two negative sets of every user's test event (of the first
    ``users`` users only, for a smoke run)."""
    split, n_items = load_split("ml-100k")
    _, histories, targets = split.examples("test")
    histories, targets = histories[:users], targets[:users]
    counts = np.bincount(split.train["item_idx"].to_numpy(), minlength=n_items).astype(np.float64)
    rng = np.random.default_rng(seed)
    uniform = np.empty((len(targets), negatives), dtype=np.int64)
    popular = np.empty_like(uniform)
    for u, (hist, target) in enumerate(zip(histories, targets, strict=True)):
        allowed = np.ones(n_items, dtype=bool)
        allowed[hist] = False
        allowed[target] = False
        pool = np.flatnonzero(allowed)
        uniform[u] = rng.choice(pool, size=negatives, replace=False)
        weights = counts[pool] + 1.0
        popular[u] = rng.choice(pool, size=negatives, replace=False, p=weights / weights.sum())
    return {
        "histories": [np.asarray(h, dtype=np.int64) for h in histories],
        "targets": np.asarray(targets, dtype=np.int64),
        "uniform": uniform,
        "popular": popular,
        "counts": counts,
        "n_items": n_items,
    }


def evaluate_scores(
    events: dict[str, Any],
    full_scores: Callable[[list[np.ndarray]], np.ndarray],
    candidate_scores: Callable[[list[np.ndarray], np.ndarray], np.ndarray],
    batch: int = 64,
) -> dict[str, np.ndarray]:
    """Per-user values of :data:`COLUMNS` for one model.

    Args:
        events: from :func:`_events`.
        full_scores: histories → ``(B, n_items)`` next-item scores (the SM).
        candidate_scores: histories, ``(B, k)`` candidates → ``(B, k)`` scores (the RM).
        batch: users per call.
    """
    hists, targets = events["histories"], events["targets"]
    out: dict[str, list[np.ndarray]] = {c: [] for c in COLUMNS}
    for lo in range(0, len(targets), batch):
        h, t = hists[lo : lo + batch], targets[lo : lo + batch]
        ranks = target_ranks(full_scores(h), t, h)
        sm = metrics_at_rank(ranks, K, (K,), ("ndcg", "recall"))
        out["sm/ndcg@10"].append(sm[f"ndcg@{K}"])
        out["sm/recall@10"].append(sm[f"recall@{K}"])
        uni, pop = events["uniform"][lo : lo + batch], events["popular"][lo : lo + batch]
        cands = np.concatenate([t[:, None], uni, pop], axis=1)
        scores = candidate_scores(h, cands)
        k = uni.shape[1]
        out["rm/auc_uniform"].append(pairwise_auc(scores[:, 0], scores[:, 1 : 1 + k]))
        out["rm/auc_popular"].append(pairwise_auc(scores[:, 0], scores[:, 1 + k :]))
    return {c: np.concatenate(v) for c, v in out.items()}


def _summary(values: np.ndarray) -> dict[str, float]:
    n = len(values)
    half = t_quantile_975(n - 1) * float(values.std(ddof=1)) / math.sqrt(n)
    return {"mean": float(values.mean()), "ci95": half}


def _popularity(events: dict[str, Any]) -> dict[str, np.ndarray]:
    counts = events["counts"]
    return evaluate_scores(
        events,
        lambda h: np.tile(counts, (len(h), 1)),
        lambda h, c: counts[c],
    )


def _sasrec(events: dict[str, Any], seed: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    from recgym.models.seqrec.hub import pretrained

    retriever = pretrained("sasrec", seed=seed)

    def full(h: list[np.ndarray]) -> np.ndarray:
        return np.asarray(retriever.score(h), dtype=np.float64)

    def cand(h: list[np.ndarray], c: np.ndarray) -> np.ndarray:
        return np.take_along_axis(full(h), c, axis=1)

    info = {
        "train_minutes": round(float(retriever.metrics["train_seconds"]) / 60, 2),
        "device": "cpu",
    }
    return evaluate_scores(events, full, cand), info


def _le(events: dict[str, Any], name: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    model = load_user_model(name, device="cpu")
    ids = np.asarray(model.item_ids)
    if len(ids) != events["n_items"] or not np.array_equal(ids, np.arange(len(ids))):
        raise ValueError(f"LE {name!r} does not cover MovieLens-100k's whole catalog in order")
    vectors = model.item_vectors()

    def full(h: list[np.ndarray]) -> np.ndarray:
        return np.asarray(model.states(h) @ vectors.T, dtype=np.float64)

    metrics = dict(getattr(model, "metrics", {}))
    info = {
        "train_minutes": metrics.get("minutes/total"),
        "device": "cpu",
        "folder": Path(str(getattr(model, "name", name))).name,
        "digest": getattr(model, "digest", ""),
        "config": dict(getattr(model, "extra", {}).get("config", {})),
    }
    return evaluate_scores(events, full, model.candidate_rewards), info


def run(
    les: list[str], *, seed: int = 0, negatives: int = 50, users: int | None = None
) -> dict[str, Any]:
    """Evaluate popularity, SASRec and each LE in ``les``; returns the results record."""
    events = _events(seed, negatives, users)
    per_user: dict[str, dict[str, np.ndarray]] = {"popularity": _popularity(events)}
    infos: dict[str, dict[str, Any]] = {"popularity": {"train_minutes": None, "device": "-"}}
    start = time.perf_counter()
    per_user["sasrec"], infos["sasrec"] = _sasrec(events, seed)
    infos["sasrec"]["eval_seconds"] = round(time.perf_counter() - start, 1)
    for name in les:
        start = time.perf_counter()
        per_user[name], infos[name] = _le(events, name)
        infos[name]["eval_seconds"] = round(time.perf_counter() - start, 1)
    rows: list[dict[str, Any]] = []
    for model, values in per_user.items():
        row: dict[str, Any] = {"model": model, **infos[model], "metrics": {}, "paired": {}}
        for col in COLUMNS:
            row["metrics"][col] = _summary(values[col])
            for ref in ("popularity", "sasrec")[: len(rows)]:  # the rows above this one
                if ref != model:
                    row["paired"][f"{col} - {ref}"] = _summary(values[col] - per_user[ref][col])
        rows.append(row)
    return {
        "benchmark": "le_quality",
        "dataset": "ml-100k",
        "users": len(events["targets"]),
        "negatives": negatives,
        "seed": seed,
        "protocol": "leave-one-out test events of every user; history = training + validation "
        "events; full ranking (history excluded, ties against the target) for the SM; the "
        "target against uniform and popularity-sampled unseen negatives for the RM",
        "command": "python -m benchmarks.studies.le_quality " + shlex.join(sys.argv[1:]),
        "commit": git_commit(),
        "machine": {"platform": platform.platform(), "device": "cpu"},
        "rows": rows,
    }


def markdown(record: dict[str, Any]) -> str:
    """The record as Markdown: the table, then the paired differences against popularity."""

    def cell(s: dict[str, float]) -> str:
        return f"{s['mean']:.4f} ± {s['ci95']:.4f}"

    head = "| model | SM NDCG@10 | SM Recall@10 | RM AUC (uniform neg.) | RM AUC (popular neg.) | "
    lines = [
        f"MovieLens-100k test events of {record['users']} users, {record['negatives']} "
        f"negatives of each kind per user (seed {record['seed']}); mean ± 95 % CI over users.",
        "",
        head + "train min (device) |",
        "|---" * 6 + "|",
    ]
    for row in record["rows"]:
        minutes = row["train_minutes"]
        when = "–" if minutes is None else f"{minutes:.1f} ({row['device']})"
        cells = " | ".join(cell(row["metrics"][c]) for c in COLUMNS)
        lines.append(f"| {row['model']} | {cells} | {when} |")
    lines += [
        "",
        "Paired differences (per user), 95 % CI:",
        "",
        "| model − reference | " + " | ".join(COLUMNS) + " |",
        "|---" * (len(COLUMNS) + 1) + "|",
    ]
    for row in record["rows"]:
        for ref in ("popularity", "sasrec"):
            if f"{COLUMNS[0]} - {ref}" not in row["paired"]:
                continue
            cells = " | ".join(cell(row["paired"][f"{c} - {ref}"]) for c in COLUMNS)
            lines.append(f"| {row['model']} − {ref} | {cells} |")
    lines += ["", f"`{record['command']}` at commit {record['commit']}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.studies.le_quality",
        description="User models against popularity and SASRec on MovieLens-100k test events.",
    )
    parser.add_argument("--le", action="append", default=[], help="an LE to evaluate (repeat)")
    parser.add_argument("--negatives", type=int, default=50, help="negatives of each kind")
    parser.add_argument("--seed", type=int, default=0, help="negatives and SASRec seed")
    parser.add_argument("--users", type=int, default=None, help="first N users (smoke runs)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder")
    args = parser.parse_args(argv)
    record = run(args.le, seed=args.seed, negatives=args.negatives, users=args.users)
    save_record(args.out, "le_quality", record, markdown(record))
    print(markdown(record))


if __name__ == "__main__":
    main()
