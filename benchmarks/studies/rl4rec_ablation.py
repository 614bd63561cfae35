"""LE ablation of SQN and SA2C on MovieLens-100k: which LLM-environment input helps?

For each algorithm (SQN, SA2C) and variant of :data:`agents.rl4rec.VARIANTS` (``base``: the
CE-only backbone, one row for both algorithms; ``rating``: rating rewards; ``rm``: the LE's RM
rewards; ``sm``: its SM state added to the RL state; ``lea``: its proposed positives;
``all``: the three LE inputs), train once per seed, early-stopped on validation NDCG@10, and
evaluate on the test split: full ranking of all items with the history excluded,
recommendations from the CE head, HR@10 and NDCG@10 (:mod:`recgym.metrics`; one target per
user, so HR@10 = Recall@10). Cells are ``mean ± ci95`` over seeds (Student t). Each row also
gets its difference from ``base`` paired by seed and user (:func:`benchmarks.runner.summarize`
of the per-user differences: the interval is over users of the seed-averaged difference), and
its validation NDCG@10, the only number to select settings by. A variant may carry its own
settings (:func:`agents.rl4rec.parse_variant`: ``'lea:lea_k=1,lea_rank="rm"'``), which is how
LEA's settings are tuned on validation. The LE runs once, before the first run that needs it,
and every seed and variant reuses its output. Run::

    python -m benchmarks.studies.rl4rec_ablation --seeds 0 1 2
    python -m benchmarks.studies.rl4rec_ablation --le fake --le-kwargs '{"n_items": 1682}'
    python -m benchmarks.studies.rl4rec_ablation --algos sqn --seeds 0 \\
        --variants base lea 'lea:lea_k=1' 'lea:lea_rank="rm"'

``--users 50 --max-epochs 1 --seeds 0`` is a smoke run. The output folder gets
``results.json`` (every run's config, metrics and time, the command, commit and machine) and
``table.md``. While the study runs, ``<out>/checkpoint/`` keeps each finished run and the
running one's last epoch (written atomically); the same command started again after a kill
resumes there, and ends with the results an uninterrupted study writes (other arguments are
refused while a checkpoint is there); ``<out>/checkpoint/le/`` keeps the LE's results, so a
resumed study does not run the LE again. It goes once the results are written.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.rl4rec import (
    LEInputs,
    RL4RecData,
    fit_rl4rec,
    le_inputs,
    parse_variant,
    variant_config,
)
from benchmarks.runner import git_commit, summarize
from recgym.error import UnknownNameError
from recgym.le.base import DEFAULT_LE
from recgym.metrics import metrics_at_rank
from recgym.models.seqrec import default_config
from recgym.utils import atomic
from recgym.utils.checkpoint import check_config, note_resume

__all__ = ["lea_diagnostics", "main", "run", "table"]

DEFAULT_OUT = Path("benchmarks/results/rl4rec-ablation")
METRICS = (("test/hit@10", "HR@10"), ("test/ndcg@10", "NDCG@10"))
VARIANT_NAMES = ("base", "rating", "rm", "sm", "lea", "all")
"""The default variants: every cell of the LE paper's ablation."""


def _summary(values: Sequence[float]) -> dict[str, Any]:
    """Mean, 95 % Student-t half-width over seeds (``None`` for one seed) and the values."""
    found = summarize(np.asarray(values, dtype=np.float64)[None, :])
    return {"mean": found["mean"], "ci95": found["ci95"], "seeds": [float(v) for v in values]}


def run(
    algos: Sequence[str],
    variants: Sequence[str],
    seeds: Sequence[int],
    *,
    le: str = DEFAULT_LE,
    le_kwargs: dict[str, Any] | None = None,
    backbone: str = "gru4rec",
    max_len: int = 100,
    max_epochs: int | None = None,
    users: int | None = None,
    overrides: dict[str, Any] | None = None,
    progress: bool = False,
    checkpoint: Path | None = None,
    le_store: Path | None = None,
) -> dict[str, Any]:
    """Train and evaluate every (algorithm, variant, seed); return the results record.

    ``overrides`` sets other :class:`agents.rl4rec.RL4RecConfig` fields in every cell (e.g.
    ``{"q_weight": 0.1}``); a variant's own settings win over them. With a ``checkpoint``
    folder, each finished run is kept there and the running one saves every epoch; a study
    started again with the folder skips the finished runs and resumes the running one (the
    caller deletes the folder when the study is done). The LE's results are kept in
    ``le_store`` (default ``<checkpoint>/le``; :func:`agents.rl4rec.le_inputs`), which studies
    on the same data and LE may share.

    Raises:
        UnknownNameError: an unknown variant or algorithm.
        ValueError: a malformed variant setting, or ``checkpoint`` holds an unfinished study
            with other arguments.
    """
    for variant in variants:
        parse_variant(variant)  # an unknown name or a malformed setting fails here, not later
    for algo in algos:
        if algo not in ("sqn", "sa2c"):
            raise UnknownNameError(f"--algos takes 'sqn' and 'sa2c'; got {algo!r}")
    if checkpoint is not None:
        study = {
            "algos": list(algos),
            "variants": list(variants),
            "seeds": list(seeds),
            "le": le,
            "le_kwargs": dict(le_kwargs or {}),
            "backbone": backbone,
            "max_len": max_len,
            "max_epochs": max_epochs,
            "users": users,
            "overrides": dict(overrides or {}),
        }
        _start_checkpoint(checkpoint, study)
    data = RL4RecData.load("ml-100k", users=users, progress=progress)
    # "base" does not depend on the algorithm: one row for all.
    cells = [("ce", "base")] if "base" in variants else []
    cells += [(a, v) for a in algos for v in variants if v != "base"]
    if "base" not in variants and any(parse_variant(v)[0] == "base" for v in variants):
        raise ValueError("the base variant takes no settings: pass it as 'base'")
    extra: dict[str, Any] = {} if max_epochs is None else {"max_epochs": max_epochs}
    rows: list[dict[str, Any]] = []
    le_seconds = 0.0
    diagnosed: dict[str, dict[str, float]] = {}  # per LEA setting: seeds and algos share them
    for algo, variant in cells:
        runs: list[dict[str, Any]] = []
        for seed in seeds:
            config = variant_config(
                variant,
                "sqn" if algo == "ce" else algo,
                backbone=default_config(backbone, seed=seed, max_len=max_len, **extra),
                **{"le": le, "le_kwargs": dict(le_kwargs or {}), **dict(overrides or {})},
            )
            name = f"{algo}-{_slug(variant)}-s{seed}"
            done = None if checkpoint is None else _finished_run(checkpoint, name)
            if done is not None:  # finished before the study was stopped
                le_seconds = max(le_seconds, done.pop("le_seconds"))
                runs.append(done)
                continue
            inputs = None
            if config.uses_le:
                store = le_store or (None if checkpoint is None else checkpoint / "le")
                inputs = le_inputs(
                    data, le, le_kwargs=config.le_kwargs, store=store, **config.lea_settings()
                )
                le_seconds = max(le_seconds, inputs.seconds)
            found: dict[str, float] = {}
            if inputs is not None and inputs.lea is not None:
                setting = json.dumps(config.lea_settings(), sort_keys=True)
                if setting not in diagnosed:
                    diagnosed[setting] = lea_diagnostics(inputs, data)
                found = diagnosed[setting]
            start = time.perf_counter()
            fit_dir = None if checkpoint is None else checkpoint / f"fit-{name}"
            rec = fit_rl4rec(config, data, inputs, progress=progress, checkpoint=fit_dir)
            pos = rec.test_positions
            runs.append(
                {
                    "seed": seed,
                    "config": dataclasses.asdict(config),
                    "metrics": rec.metrics,
                    "test_positions": [] if pos is None else pos.tolist(),
                    "lea": found,
                    "wall_seconds": round(time.perf_counter() - start, 2),
                }
            )
            if checkpoint is not None and fit_dir is not None:  # mypy: both or neither
                seconds = 0.0 if inputs is None else inputs.seconds
                record = {**runs[-1], "le_seconds": seconds}
                atomic.write_text(checkpoint / "runs" / f"{name}.json", json.dumps(record))
                atomic.remove_dir(fit_dir)
            if progress:
                print(f"{algo} {variant} seed {seed}: {json.dumps(rec.metrics)}", flush=True)
        row: dict[str, Any] = {"algo": algo, "variant": variant, "runs": runs}
        for key, _ in METRICS:
            row[key] = _summary([r["metrics"][key] for r in runs])
        row["validation/ndcg@10"] = _summary([r["metrics"]["validation/ndcg@10"] for r in runs])
        row["train_minutes"] = _summary([r["metrics"]["train_seconds"] / 60 for r in runs])
        row["epochs"] = float(np.mean([r["metrics"]["epochs"] for r in runs]))
        if runs[0].get("lea"):
            row["lea"] = runs[0]["lea"]  # the proposals do not depend on the seed
        rows.append(row)
    _pair_with_base(rows)
    return {
        "benchmark": "rl4rec-ablation",
        "dataset": "ml-100k",
        "data_version": data.version,
        "users": len(data.test[0]),
        "n_items": data.n_items,
        "le": le,
        "le_kwargs": dict(le_kwargs or {}),
        "le_seconds": round(le_seconds, 2),
        "overrides": dict(overrides or {}),
        "protocol": (
            "leave-one-out by time, full ranking, history excluded, CE-head scores; "
            "early stopping on validation NDCG@10; mean ± 95% t-interval over seeds; "
            "differences from base paired by seed and user, 95% t-interval over users"
        ),
        "command": "python -m benchmarks.studies.rl4rec_ablation " + shlex.join(sys.argv[1:]),
        "commit": git_commit(),
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
        "rows": rows,
    }


def lea_diagnostics(inputs: LEInputs, data: RL4RecData) -> dict[str, float]:
    """What LEA proposed, against what each user went on to rate.

    Returns:
        ``proposals``: how many; ``reward``: their mean RM reward; ``later``: the share of
        them that the user rates later (further on in training, or as the validation or test
        item): a proposal that is a positive the log did not show yet; ``popular_later``: the
        same share for the proposals a count would make (the ``k`` most rated training items
        the user has not rated yet, never the logged one), the reference for ``later``.
    """
    lea = inputs.lea
    if lea is None:
        raise ValueError("these LE inputs hold no LEA proposals")
    counts = np.bincount(np.concatenate(data.logged.sequences), minlength=data.n_items)
    by_count = np.argsort(-counts, kind="stable")
    total = later = popular = popular_later = 0
    reward = 0.0
    for i, seq in enumerate(data.logged.sequences):
        proposals = lea.proposals[i]
        steps = len(proposals)
        if not steps:
            continue
        # last[item]: the item's last position in the user's events (training, validation,
        # test); a proposal at transition t is "later" if that is beyond the logged next item.
        events = np.concatenate([seq, [data.validation[1][i], data.test[1][i]]])
        last = np.full(data.n_items + 1, -1, dtype=np.int64)  # index -1: an empty slot
        last[events] = np.arange(len(events))
        t = np.arange(steps)[:, None]
        made = proposals >= 0
        total += int(made.sum())
        reward += float(lea.proposal_rewards[i][made].sum())
        later += int(((last[proposals] > t + 1) & made).sum())
        # A count's proposals: the most rated items not in seq[: t + 1] and not seq[t + 1].
        first = np.full(data.n_items, len(seq), dtype=np.int64)
        np.minimum.at(first, seq, np.arange(len(seq)))
        top = by_count[: lea.k + len(seq) + 1]
        free = (first[top][None, :] > t) & (top[None, :] != seq[1:, None])
        picks = np.where(free, np.cumsum(free, axis=1) <= lea.k, False)
        popular += int(picks.sum())
        popular_later += int((picks & (last[top][None, :] > t + 1)).sum())
    return {
        "proposals": float(total),
        "reward": reward / max(total, 1),
        "later": later / max(total, 1),
        "popular_later": popular_later / max(popular, 1),
    }


def _slug(variant: str) -> str:
    """``variant`` as a file-name part: the name alone, or the name and a digest of its
    settings."""
    name, _, settings = variant.partition(":")
    return name if not settings else f"{name}-{hashlib.sha256(settings.encode()).hexdigest()[:10]}"


def _per_user(run: dict[str, Any], key: str) -> np.ndarray:
    """A run's per-test-user values of metric ``key`` (``"test/ndcg@10"``) from its target
    positions."""
    name, _, k = key.removeprefix("test/").partition("@")
    found = metrics_at_rank(np.asarray(run["test_positions"]), int(k), ks=(int(k),), names=(name,))
    return found[f"{name}@{k}"]


def _pair_with_base(rows: list[dict[str, Any]]) -> None:
    """Add ``paired/<metric>`` (:func:`benchmarks.runner.summarize` of the per-user
    differences from ``base``, seed by seed) to every other row that has the base's seeds."""
    base = next((r for r in rows if r["variant"] == "base"), None)
    if base is None or any(not r.get("test_positions") for r in base["runs"]):
        return
    base_runs = {r["seed"]: r for r in base["runs"]}
    for row in rows:
        seeds = [r["seed"] for r in row["runs"]]
        if row is base or sorted(seeds) != sorted(base_runs):
            continue
        if any(not r.get("test_positions") for r in row["runs"]):
            continue
        for key, _ in METRICS:
            diffs = [_per_user(r, key) - _per_user(base_runs[r["seed"]], key) for r in row["runs"]]
            row[f"paired/{key}"] = summarize(np.stack(diffs))


def _start_checkpoint(folder: Path, study: dict[str, Any]) -> None:
    """Record the study's arguments in ``folder`` (a new study), or check that an unfinished
    study there had the same."""
    path = folder / "study.json"
    if path.is_file():
        check_config(folder, json.loads(path.read_text()), study, "rl4rec ablation")
        note_resume(f"the unfinished study in {folder}")
    else:
        atomic.write_text(path, json.dumps(study))


def _finished_run(folder: Path, name: str) -> dict[str, Any] | None:
    """The record of run ``name`` if the study in ``folder`` finished it (and the leftover of
    its epoch checkpoint goes)."""
    path = folder / "runs" / f"{name}.json"
    if not path.is_file():
        return None
    atomic.remove_dir(folder / f"fit-{name}")
    record: dict[str, Any] = json.loads(path.read_text())
    return record


def _cell(stat: dict[str, Any], digits: int = 4, signed: bool = False) -> str:
    ci, sign = stat["ci95"], "+" if signed else ""
    return f"{stat['mean']:{sign}.{digits}f}" + (f" ± {ci:.{digits}f}" if ci is not None else "")


def table(record: dict[str, Any]) -> str:
    """The Markdown table of a :func:`run` record, with its command."""
    names = [name for _, name in METRICS]
    lines = [
        f"| algo | variant | {' | '.join(names)} | "
        + " | ".join(f"Δ {n} vs base" for n in names)
        + " | valid NDCG@10 | train min | epochs |",
        "|---|---|" + "--:|" * (2 * len(METRICS) + 3),
    ]
    for row in record["rows"]:
        cells = [_cell(row[key]) for key, _ in METRICS]
        cells += [
            _cell(row[f"paired/{key}"], signed=True) if f"paired/{key}" in row else "–"
            for key, _ in METRICS
        ]
        valid = row.get("validation/ndcg@10")
        cells += [_cell(valid) if valid else "–", _cell(row["train_minutes"], 2)]
        cells.append(f"{row['epochs']:.1f}")
        variant = row["variant"].replace("|", "\\|")
        lines.append(f"| {row['algo']} | {variant} | {' | '.join(cells)} |")
    lea = [row for row in record["rows"] if row.get("lea")]
    if lea:
        lines += [
            "",
            "LEA's proposals (the same for every seed and algorithm): how many, their mean RM "
            "reward, and the share the user rates later, beside that share for a count's "
            "proposals:",
            "",
            "| variant | proposals | RM reward | rated later | a count's, rated later |",
            "|---|--:|--:|--:|--:|",
        ]
        shown = set()
        for row in lea:
            if row["variant"] in shown:
                continue
            shown.add(row["variant"])
            found = row["lea"]
            lines.append(
                f"| {row['variant']} | {found['proposals']:.0f} | {found['reward']:.3f} | "
                f"{found['later']:.3f} | {found['popular_later']:.3f} |"
            )
    seeds = len(record["rows"][0]["runs"]) if record["rows"] else 0
    lines += [
        "",
        f"MovieLens-100k test split, {record['users']} users, {seeds} seed(s), LE "
        f"`{record['le']}` (its passes took {record['le_seconds']:.0f} s)"
        + "".join(f", {k}={v}" for k, v in record.get("overrides", {}).items())
        + f"; commit {record['commit']}.",
        "",
        f"    {record['command']}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.studies.rl4rec_ablation")
    parser.add_argument("--algos", nargs="+", default=["sqn", "sa2c"])
    parser.add_argument(
        "--variants",
        nargs="+",
        default=list(VARIANT_NAMES),
        help="VARIANTS names, each optionally with settings: 'lea:lea_k=1,lea_rank=\"rm\"'",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--le", default=DEFAULT_LE, help="recgym.le.load_user_model name")
    parser.add_argument("--le-kwargs", default="{}", help="JSON arguments of load_user_model")
    parser.add_argument("--backbone", default="gru4rec", choices=["gru4rec", "sasrec"])
    parser.add_argument("--max-len", type=int, default=100)
    parser.add_argument("--max-epochs", type=int, default=None)
    parser.add_argument("--users", type=int, default=None, help="first N users only")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=JSON",
        help="an RL4RecConfig field for every cell, e.g. --set q_weight=0.1 (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--le-store",
        type=Path,
        default=None,
        help="folder for the LE's results, shared by studies on the same data and LE "
        "(default: <out>/checkpoint/le, which goes with the checkpoint)",
    )
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        le_kwargs = json.loads(args.le_kwargs)
    except json.JSONDecodeError as err:
        parser.error(f"--le-kwargs must be a JSON object: {err}")
    overrides: dict[str, Any] = {}
    for item in args.set:
        field, sep, value = item.partition("=")
        if not sep or not field:
            parser.error(f"--set takes FIELD=JSON (e.g. q_weight=0.1); got {item!r}")
        try:
            overrides[field] = json.loads(value)
        except json.JSONDecodeError as err:
            parser.error(f"--set {field}: the value must be JSON: {err}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    checkpoint = args.out / "checkpoint"
    record = run(
        args.algos,
        args.variants,
        args.seeds,
        le=args.le,
        le_kwargs=le_kwargs,
        backbone=args.backbone,
        max_len=args.max_len,
        max_epochs=args.max_epochs,
        users=args.users,
        overrides=overrides,
        progress=args.progress,
        checkpoint=checkpoint,
        le_store=args.le_store,
    )
    given = sys.argv[1:] if argv is None else list(argv)
    record["command"] = "python -m benchmarks.studies.rl4rec_ablation " + shlex.join(given)
    atomic.write_text(args.out / "results.json", json.dumps(record, indent=2) + "\n")
    text = table(record)
    atomic.write_text(args.out / "table.md", text + "\n")
    atomic.remove_dir(checkpoint)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
