"""Stable-Baselines3 agents trained on ``RecUser-v0``: learning curves and held-out rows.

Each run is one (algorithm, policy, seed): an SB3 algorithm (``--algos``: PPO, A2C, DQN,
``sb3_contrib:MaskablePPO`` or any ``module:Class``) with one policy (``--policies``):

- ``mlp``: SB3's default ``MlpPolicy`` on the SM state (``observation="state"``);
- ``item``: :mod:`agents.sb3.policies`' item-embedding policy, embeddings from scratch, on
  ``observation="dict"`` (state and the last ``--max-history`` items, which it masks);
- ``item-le``: the same, started from the LE's item vectors (at step 0 it scores items as
  the SM does, i.e. ``sm-greedy`` up to the softmax).

Users. The LE's ``"train"`` split is cut in two: the first ``n - --valid-users`` users are
the training env's (``n_users``), the last ``--valid-users`` are **validation** users that no
run trains on; every ``--eval-every`` steps the run plays them (episode ``j``: user
``n - valid + j``, reset seed ``10_000 + j``) for its learning curve. The final model (no
selection: the budget is fixed) then plays the ``--episodes`` fixed episodes of the held-out
``"test"`` users (:func:`benchmarks.episodes.play_episodes`), as ``random-item``,
``popular-item`` and ``sm-greedy`` (the LE's own next-item guess, where ``item-le`` starts)
do, greedily over the unseen items (the env's masks, :class:`SB3Agent`).

Rows (``<out>/results.json``, ``<out>/table.md``): per (algorithm, policy), the mean test
return with a 95 % interval over episodes of the seed-averaged returns, the per-seed means, the
paired differences against ``popular-item`` and ``sm-greedy`` (same users, start histories
and acceptance draws),
the last validation return, wall minutes per seed and the device. ``<out>/curves.png`` draws
the validation curves (mean over seeds, shaded 95 % interval over seeds). Run::

    python -m benchmarks.studies.recuser_sb3 --out benchmarks/results/recuser-sb3-cpu \\
        [--algos sb3_contrib:MaskablePPO PPO A2C DQN] [--policies item-le item mlp] \\
        [--timesteps 100000] [--seeds 0 1 2]

Resumable. ``<out>/runs/NAME.json`` and ``NAME.zip`` keep each finished run (its curve, test
returns, minutes and model, saved for evaluation: without the optimizer's state). The running
one saves its training state every ``--checkpoint-minutes`` (:mod:`agents.sb3.checkpoint`) in
``<out>/checkpoint/NAME/`` and its curve so far in ``<out>/checkpoint/NAME.curve.json``. The
same command started again after a kill skips finished runs and resumes the running one (a
study of other settings there is refused). ``--only-runs`` trains without writing the rows,
e.g. to spread a grid over sessions; ``--report-only`` writes the rows of the pairs finished
so far and trains nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from agents.baselines.recuser import PopularItemAgent, RandomItemAgent, SMGreedyAgent
from benchmarks.episodes import play_episodes
from benchmarks.runner import summarize, t_quantile_975
from benchmarks.studies import save_record
from recgym.agent import Agent, reset_agent
from recgym.le.base import DEFAULT_LE
from recgym.utils import atomic
from recgym.utils.checkpoint import check_config, note_resume

__all__ = ["POLICIES", "evaluate", "main", "train"]

POLICIES = ("mlp", "item", "item-le")
"""The policies a run can use (see the module docstring)."""
MAX_HISTORY = 256
"""Default history length of the item policies' observation (what they mask)."""


def evaluate(
    agent: Agent, episodes: int, split: str = "test", first_user: int = 0, **env_kwargs: Any
) -> dict[str, np.ndarray]:
    """Play the fixed episodes of ``split`` from user ``first_user`` on
    (:func:`benchmarks.episodes.play_episodes`); per-episode ``return``, ``length``,
    ``taken``."""
    values, _ = play_episodes(
        "RecUser-v0",
        agent,
        split=split,
        episodes=episodes,
        env_kwargs=env_kwargs,
        batch_size=min(episodes, 128),
        first_user=first_user,
    )
    return values


def _name(algo: str) -> str:
    """The row name of ``algo``: ``"sb3_contrib:MaskablePPO"`` → ``"MaskablePPO"``."""
    return algo.rpartition(":")[2]


def algo_kwargs(algo: str, n_envs: int) -> dict[str, Any]:
    """The hyperparameters of ``algo`` in this study (fixed before any test run; the
    horizon is 20 steps, hence ``gamma=0.9``)."""
    name = _name(algo)
    common: dict[str, Any] = {"gamma": 0.9, "learning_rate": 1e-3}
    if name in ("PPO", "MaskablePPO"):
        steps = max(8, 2048 // n_envs)
        return {**common, "n_steps": steps, "batch_size": 256, "n_epochs": 4}
    if name == "A2C":
        return {**common, "n_steps": 8}
    if name == "DQN":
        return {
            **common,
            "learning_starts": 2_000,
            "buffer_size": 50_000,
            "batch_size": 256,
            "train_freq": 1,
            "gradient_steps": 2,
            "target_update_interval": 2_000,
            "exploration_fraction": 0.2,
            "exploration_final_eps": 0.05,
        }
    return common


def env_kwargs_for(policy: str, base: dict[str, Any], max_history: int) -> dict[str, Any]:
    """The env arguments a policy reads its observations from."""
    if policy == "mlp":
        return {**base, "observation": "state"}
    return {**base, "observation": "dict", "max_history": max_history}


class _Curve:
    """Validation returns along training, kept in a file so that a resumed run keeps them.

    Called by :class:`_CurveCallback` at a rollout's start (the policy just updated); a point
    is ``(steps, mean return, 95 % interval)``.
    """

    def __init__(
        self, path: Path | None, play: Callable[[Any], np.ndarray], every: int, total: int = 0
    ) -> None:
        self.path, self.play, self.every, self.total = path, play, every, total
        self._since: tuple[int, float] | None = None
        self.points: list[list[float]] = []
        if path is not None and path.is_file():
            self.points = json.loads(path.read_text())

    def resume_at(self, steps: int) -> None:
        """Forget the points after ``steps`` (made after the checkpoint a run resumes from)."""
        self.points = [p for p in self.points if p[0] <= steps]

    def due(self, steps: int) -> bool:
        last = self.points[-1][0] if self.points else -math.inf
        return steps >= last + self.every

    def add(self, steps: int, model: Any) -> None:
        returns = summarize(self.play(model)[None, :])
        self.points.append([int(steps), returns["mean"], returns["ci95"]])
        if self.path is not None:
            atomic.write_text(self.path, json.dumps(self.points))
        self._progress(steps)

    def _progress(self, steps: int) -> None:
        # One line per point: where the run is, how fast, and how long it still needs.
        now = time.perf_counter()
        if self.total and self._since is not None and steps > self._since[0]:
            rate = (steps - self._since[0]) / (now - self._since[1])
            left = max(self.total - steps, 0) / rate / 60
            pace = f", {rate:.0f} steps/s, ~{left:.0f} min left"
        else:
            pace = ""
        self._since = (steps, now)
        name = self.path.name.removesuffix(".curve.json") if self.path else "run"
        print(
            f"{name}: step {steps}/{self.total}, validation return {self.points[-1][1]:.2f}{pace}",
            flush=True,
        )


def _curve_callback(curve: _Curve) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback

    class _CurveCallback(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_start(self) -> None:
            if curve.due(self.model.num_timesteps):
                curve.add(self.model.num_timesteps, self.model)

    return _CurveCallback()


def train(
    algo: str,
    policy: str,
    seed: int,
    timesteps: int,
    n_envs: int,
    env_kwargs: dict[str, Any],
    curve: _Curve,
    checkpoint: Path | None = None,
    checkpoint_minutes: float = 5.0,
) -> tuple[Any, float]:
    """Train one run on the training users, drawing its curve; the model and its minutes.

    With a ``checkpoint`` folder, the training state is saved there every
    ``checkpoint_minutes`` (:mod:`agents.sb3.checkpoint`) and a run started again with it
    resumes from the last save; the minutes count the runs before the resume too.
    """
    from agents.sb3 import resolve_algo
    from agents.sb3.checkpoint import resume_or_start
    from agents.sb3.policies import item_policy, item_policy_kwargs
    from agents.sb3.vec_env import make_recuser_vec_env

    start = time.perf_counter()
    cls = resolve_algo(algo)
    kwargs = algo_kwargs(algo, n_envs)
    run = {"algo": algo, "policy": policy, "seed": seed, "n_envs": n_envs, **kwargs, **env_kwargs}

    def build() -> Any:
        env = make_recuser_vec_env(n_envs, seed=seed, **env_kwargs)
        if policy == "mlp":
            return cls("MlpPolicy", env, seed=seed, device="cpu", **kwargs)
        init = "le" if policy == "item-le" else "random"
        return cls(
            item_policy(algo),
            env,
            policy_kwargs=item_policy_kwargs(env, init),
            seed=seed,
            device="cpu",
            **kwargs,
        )

    callback = _curve_callback(curve)
    if checkpoint is None:
        model = build()
        model.learn(total_timesteps=timesteps, callback=callback)
        minutes = (time.perf_counter() - start) / 60
    else:
        model, learn, before = resume_or_start(
            checkpoint, run, build, cls, checkpoint_minutes, callbacks=[callback]
        )
        curve.resume_at(model.num_timesteps)
        learn(timesteps)
        minutes = (before + time.perf_counter() - start) / 60
    if curve.due(model.num_timesteps) or curve.points[-1][0] != model.num_timesteps:
        curve.add(model.num_timesteps, model)
    return model, minutes


def _paired(values: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Mean and 95 % interval over episodes of ``values - reference`` (seed-averaged)."""
    diff = summarize((values.mean(axis=0) - reference.mean(axis=0))[None, :])
    return {"mean": diff["mean"], "ci95": diff["ci95"]}


def _row(
    name: str,
    policy: str | None,
    runs: list[dict[str, Any]],
    refs: dict[str, np.ndarray],
) -> dict[str, Any]:
    """A table row from runs' test returns, paired against each reference agent of
    ``refs`` (``(1, episodes)`` returns of popular-item and sm-greedy)."""
    returns = np.stack([np.asarray(r["test"]["return"]) for r in runs])
    length = np.stack([np.asarray(r["test"]["length"]) for r in runs])
    taken = np.stack([np.asarray(r["test"]["taken"]) for r in runs])
    ret = summarize(returns)
    minutes = [r["minutes"] for r in runs if r.get("minutes") is not None]
    curves = [r["curve"] for r in runs if r.get("curve")]
    return {
        "agent": name,
        "policy": policy,
        "return": ret["mean"],
        "return_ci95": ret["ci95"],
        "seed_means": ret["seed_means"],
        "vs_popular": _paired(returns, refs["popular-item"]),
        "vs_sm_greedy": _paired(returns, refs["sm-greedy"]),
        "length": float(length.mean()),
        "accept_rate": float(taken.sum() / max(length.sum(), 1)),
        "valid_return": float(np.mean([c[-1][1] for c in curves])) if curves else None,
        "train_minutes": float(np.mean(minutes)) if minutes else None,
        "curves": curves,
    }


def _table(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        f"RecUser-v0 `{meta['le']}`: {meta['episodes']} fixed test episodes (held-out users), "
        f"{meta['timesteps']} training steps per run, training seeds {meta['seeds']}, "
        f"{meta['valid_users']} validation users; device {meta['device']}.",
        "",
        "| agent | policy | test return | vs popular-item (paired) | vs sm-greedy (paired) "
        "| per-seed | valid return | episode length | accept rate | train min/seed |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        ci = "" if r["return_ci95"] is None else f" ± {r['return_ci95']:.2f}"
        vs, sm = r["vs_popular"], r["vs_sm_greedy"]
        seeds = ", ".join(f"{m:.2f}" for m in r["seed_means"])
        valid = "–" if r["valid_return"] is None else f"{r['valid_return']:.2f}"
        minutes = "–" if r["train_minutes"] is None else f"{r['train_minutes']:.1f}"
        lines.append(
            f"| {r['agent']} | {r['policy'] or '–'} | {r['return']:.2f}{ci} | "
            f"{vs['mean']:+.2f} ± {vs['ci95']:.2f} | {sm['mean']:+.2f} ± {sm['ci95']:.2f} | "
            f"{seeds} | {valid} | {r['length']:.2f} | "
            f"{r['accept_rate']:.3f} | {minutes} |"
        )
    return "\n".join(lines) + "\n"


def plot_curves(
    rows: list[dict[str, Any]],
    path: Path,
    title: str,
    references: dict[str, float] | None = None,
) -> None:
    """Validation return against training steps, one line per (algorithm, policy): the mean
    over seeds with a shaded 95 % interval over seeds; ``references`` (name: return on the
    same validation episodes) as dashed horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        curves = r["curves"]
        if not curves:
            continue
        n = min(len(c) for c in curves)
        steps = np.array([p[0] for p in curves[0][:n]])
        values = np.array([[p[1] for p in c[:n]] for c in curves])
        mean = values.mean(axis=0)
        label = f"{r['agent']} / {r['policy']}"
        (line,) = ax.plot(steps, mean, label=label)
        if len(curves) > 1:
            half = t_quantile_975(len(curves) - 1) * values.std(axis=0, ddof=1)
            half /= math.sqrt(len(curves))
            ax.fill_between(steps, mean - half, mean + half, alpha=0.2, color=line.get_color())
    for name, value in (references or {}).items():
        ax.axhline(value, linestyle="--", linewidth=1, color="gray")
        ax.annotate(name, (0, value), textcoords="offset points", xytext=(4, 3), fontsize=7)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("validation return (20 steps)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _arrays(values: dict[str, np.ndarray]) -> dict[str, list[float]]:
    return {k: [float(x) for x in v] for k, v in values.items()}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--le", default=DEFAULT_LE, help="user model name ('fake' too)")
    parser.add_argument("--le-kwargs", type=json.loads, default={}, help="JSON, e.g. device")
    parser.add_argument("--env-kwargs", type=json.loads, default={}, help="JSON, RecUser-v0")
    parser.add_argument(
        "--algos", nargs="+", default=["sb3_contrib:MaskablePPO", "PPO", "A2C", "DQN"]
    )
    parser.add_argument("--policies", nargs="+", choices=POLICIES, default=list(POLICIES))
    parser.add_argument("--timesteps", type=int, default=100_000)
    parser.add_argument("--n-envs", type=int, default=64)
    parser.add_argument("--eval-every", type=int, default=10_000, help="steps between points")
    parser.add_argument("--valid-users", type=int, default=100)
    parser.add_argument("--episodes", type=int, default=200, help="test episodes")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-history", type=int, default=MAX_HISTORY)
    parser.add_argument("--out", type=Path, required=True, help="the study's folder")
    parser.add_argument(
        "--checkpoint-minutes", type=float, default=5.0, help="minutes between two checkpoints"
    )
    parser.add_argument(
        "--board",
        type=Path,
        default=None,
        help="also append a leaderboard row per reported (algorithm, policy) pair to this "
        "JSON-lines file: the runner playing the runs' zips, one training seed per --seeds",
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--only-runs", action="store_true", help="train the runs; write no rows or curves"
    )
    what.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: rows and curves of the (algorithm, policy) pairs whose every seed "
        "has finished",
    )
    return parser


def train_command(args: argparse.Namespace, algo: str, policy: str) -> str:
    """The command that trains the runs of one (algorithm, policy) pair of this study: its
    settings that differ from the defaults, the pair, the seeds, ``--only-runs``."""
    defaults = vars(_parser().parse_args(["--out", str(args.out)]))
    line = ["python", "-m", "benchmarks.studies.recuser_sb3", "--out", str(args.out)]
    for key in _RUN_SETTINGS:
        value = getattr(args, key)
        if value != defaults[key]:
            flag = "--" + key.replace("_", "-")
            line += [flag, json.dumps(value) if isinstance(value, dict) else str(value)]
    line += ["--algos", algo, "--policies", policy, "--seeds", *map(str, args.seeds)]
    return shlex.join([*line, "--only-runs"])


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the study (see the module docstring) and print the table."""
    args = _parser().parse_args(argv)

    import gymnasium as gym
    import torch

    from agents.sb3 import SB3Agent, save_for_evaluation

    base = {"le": args.le, "le_kwargs": args.le_kwargs, **args.env_kwargs}
    probe = gym.make("RecUser-v0", **base)
    n_train = len(probe.get_wrapper_attr("batch").logged)
    if not 0 < args.valid_users < n_train:
        raise ValueError(f"--valid-users must be in 1..{n_train - 1}; got {args.valid_users}")
    train_kwargs = {**base, "users": "train", "n_users": n_train - args.valid_users}
    # What a run's result depends on; --algos, --policies and --seeds only pick runs, so a
    # grid can grow over sessions.
    study = {k: v for k, v in vars(args).items() if k in _RUN_SETTINGS}
    runs_dir, checkpoint = args.out / "runs", args.out / "checkpoint"
    _start_study(args.out, study)
    device = f"cpu ({platform.machine()}, {torch.get_num_threads()} torch threads)"

    def valid_play(model: Any, kwargs: dict[str, Any]) -> np.ndarray:
        values = evaluate(
            SB3Agent.from_model(model),
            args.valid_users,
            split="train",
            first_user=n_train - args.valid_users,
            **kwargs,
        )
        return values["return"]

    for policy in args.policies:
        for algo in args.algos:
            for seed in args.seeds:
                name = f"{_name(algo).lower()}-{policy}-seed{seed}"
                if args.report_only or (runs_dir / f"{name}.json").is_file():
                    continue
                kwargs = env_kwargs_for(policy, base, args.max_history)
                curve = _Curve(
                    checkpoint / f"{name}.curve.json",
                    lambda model, kw=kwargs: valid_play(model, kw),  # type: ignore[misc]
                    args.eval_every,
                    args.timesteps,
                )
                model, minutes = train(
                    algo,
                    policy,
                    seed,
                    args.timesteps,
                    args.n_envs,
                    {**kwargs, "users": "train", "n_users": train_kwargs["n_users"]},
                    curve,
                    checkpoint / name,
                    args.checkpoint_minutes,
                )
                test = evaluate(SB3Agent.from_model(model), args.episodes, **kwargs)
                record = {
                    "algo": algo,
                    "policy": policy,
                    "seed": seed,
                    "timesteps": int(model.num_timesteps),
                    "minutes": minutes,
                    "device": device,
                    "curve": curve.points,
                    "test": _arrays(test),
                }
                save_for_evaluation(model, runs_dir / f"{name}.zip")
                atomic.write_text(runs_dir / f"{name}.json", json.dumps(record))  # last: done
                atomic.remove_dir(checkpoint / name)
                (checkpoint / f"{name}.curve.json").unlink(missing_ok=True)
                print(
                    f"{name}: test return {float(np.mean(test['return'])):.3f}, valid "
                    f"{curve.points[-1][1]:.3f}, {minutes:.1f} min",
                    flush=True,
                )
    if checkpoint.is_dir() and not any(checkpoint.iterdir()):
        checkpoint.rmdir()  # every run asked for is finished
    if args.only_runs:
        return []
    return _report(args, base, probe, device)


def _baselines(args: argparse.Namespace, base: dict[str, Any], probe: Any) -> dict[str, Any]:
    """The baselines' test returns (``popular-item``, ``sm-greedy``; ``random-item`` per seed)
    and their mean validation returns (``valid_references``, the curves' dashed lines).

    They are played once per study and kept in ``<out>/runs/baselines.json`` under what they
    depend on (the env's ``data_version``, the episodes, seeds and validation users): a
    ``--report-only`` after each finished pair plays only the new rows.
    """
    key = {
        "data_version": probe.get_wrapper_attr("data_version"),
        "episodes": args.episodes,
        "seeds": args.seeds,
        "valid_users": args.valid_users,
        "env_kwargs": base,
    }
    path = args.out / "runs" / "baselines.json"
    if path.is_file():
        kept = json.loads(path.read_text())
        if kept.get("key") == key:
            return dict(kept["values"])
    popular = evaluate(PopularItemAgent.from_env(probe), args.episodes, **base)
    greedy = evaluate(SMGreedyAgent.from_env(probe), args.episodes, **base)
    random_agent = RandomItemAgent.from_env(probe)
    randoms = []
    for seed in args.seeds:
        reset_agent(random_agent, seed)
        randoms.append(_arrays(evaluate(random_agent, args.episodes, **base)))
    # The curves' references: the baselines on the same validation episodes.
    n_train = len(probe.get_wrapper_attr("batch").logged)
    valid = {"split": "train", "first_user": n_train - args.valid_users, **base}
    references = {
        name: float(evaluate(agent, args.valid_users, **valid)["return"].mean())
        for name, agent in (
            ("popular-item", PopularItemAgent.from_env(probe)),
            ("sm-greedy", SMGreedyAgent.from_env(probe)),
        )
    }
    values = {
        "popular-item": _arrays(popular),
        "sm-greedy": _arrays(greedy),
        "random-item": randoms,
        "valid_references": references,
    }
    atomic.write_text(path, json.dumps({"key": key, "values": values}))
    return values


def _report(args: argparse.Namespace, base: dict[str, Any], probe: Any, device: str) -> list[Any]:
    """The baselines' and runs' rows, the table and the curves."""
    found = _baselines(args, base, probe)
    popular, greedy = found["popular-item"], found["sm-greedy"]
    randoms = [{"test": values} for values in found["random-item"]]
    refs = {
        "popular-item": np.asarray(popular["return"])[None, :],
        "sm-greedy": np.asarray(greedy["return"])[None, :],
    }
    rows = [
        _row("random-item", None, randoms, refs),
        _row("popular-item", None, [{"test": popular}], refs),
        _row("sm-greedy", None, [{"test": greedy}], refs),
    ]
    pending = []
    for policy in args.policies:
        for algo in args.algos:
            names = [f"{_name(algo).lower()}-{policy}-seed{s}" for s in args.seeds]
            paths = [args.out / "runs" / f"{n}.json" for n in names]
            if not all(p.is_file() for p in paths):
                pending.append(f"{_name(algo)} / {policy}")
                continue
            runs = [json.loads(p.read_text()) for p in paths]
            rows.append(_row(_name(algo), policy, runs, refs))
            if args.board is not None:
                _board_row(args, algo, policy, rows[-1], runs[0]["device"])
    meta = {
        "le": args.le,
        "env_kwargs": base,
        "timesteps": args.timesteps,
        "episodes": args.episodes,
        "valid_users": args.valid_users,
        "seeds": args.seeds,
        "device": device,
    }
    table = _table(rows, meta)
    if pending:  # --report-only before the grid is done
        table += f"\nNot finished yet (no row): {', '.join(pending)}.\n"
    print(table)
    references = found["valid_references"]
    record = {**meta, "valid_references": references, "rows": rows}
    save_record(args.out, "results", record, table)
    plot_curves(
        rows,
        args.out / "curves.png",
        f"RecUser-v0 validation return ({len(args.seeds)} seeds, {device})",
        references,
    )
    return rows


_RUN_SETTINGS = (
    "le",
    "le_kwargs",
    "env_kwargs",
    "timesteps",
    "n_envs",
    "eval_every",
    "valid_users",
    "episodes",
    "max_history",
)


def _board_row(
    args: argparse.Namespace, algo: str, policy: str, row: dict[str, Any], device: str
) -> None:
    """Append the runner's row of one (algorithm, policy) pair to ``args.board``: the ``sb3``
    agent on the runs' zips (``{seed}``: each training seed's), with the training minutes
    per seed as its budget."""
    from agents.sb3 import SB3Agent
    from benchmarks.runner import append_rows
    from benchmarks.runner import evaluate as run_row
    from recgym.evaluation import EvalSpec

    zips = args.out / "runs" / f"{_name(algo).lower()}-{policy}-seed{{seed}}.zip"
    kwargs = {"algo": algo, "path": str(zips)}
    # The env's defaults stay out, so the row's command is short.
    env_kwargs = env_kwargs_for(policy, dict(args.env_kwargs), args.max_history)
    if args.le != DEFAULT_LE:
        env_kwargs["le"] = args.le
    if args.le_kwargs:
        env_kwargs["le_kwargs"] = args.le_kwargs
    spec = EvalSpec(
        "RecUser-v0",
        "sb3",
        kwargs,
        split="test",
        episodes=args.episodes,
        seeds=args.seeds,
        env_kwargs=env_kwargs,
        budget=round(row["train_minutes"], 1),
        budget_device=device,
        training={
            "command": train_command(args, algo, policy),
            "config": str(args.out / "study.json"),
            "log": str(args.out / "runs" / f"{_name(algo).lower()}-{policy}-seed{{seed}}.json"),
        },
    )
    agent = SB3Agent(zips, algo, seed=args.seeds[0])
    append_rows(args.board, [run_row(spec, agent)])


def _start_study(folder: Path, study: dict[str, Any]) -> None:
    """Record the study's arguments in ``folder`` (a new study), or check that the study
    there had the same."""
    path = folder / "study.json"
    if path.is_file():
        check_config(folder, json.loads(path.read_text()), study, "RecUser-v0 SB3 study")
        note_resume(f"the study in {folder}")
    else:
        atomic.write_text(path, json.dumps(study))


if __name__ == "__main__":
    main()
