"""Stable-Baselines3 agents on ``RecUser-v0`` against random and popularity.

Each SB3 algorithm (default DQN, PPO, A2C and sb3-contrib's MaskablePPO; ``MlpPolicy`` on the
SM state; ``--algos`` takes names or ``module:Class``) trains for
``--timesteps`` steps on the LE's training users (``users="train"``) through the batched
``agents.sb3.vec_env.RecUserVecEnv``, once per seed. Every agent then plays the same
``--episodes`` evaluation episodes on the held-out users (``users="test"``): episode ``j``
starts user ``j`` with the reset seed ``10_000 + j``, so every agent meets the same users, start
histories and acceptance draws (one uniform per step, whatever the action). The baselines:

- *random*: a uniformly random item the user has not seen (the action mask);
- *popularity*: the unseen item most often taken by the LE's training users.

SB3 policies act greedily over the unseen items (Q-values or action logits with the action
mask applied, :class:`agents.sb3.SB3Agent`), as the baselines do. DQN, PPO and A2C train
without the mask, so a seen item costs them a rejection and reward 0 while learning;
MaskablePPO trains with it (``env_method("action_masks")`` of the VecEnv). It prints, per
agent, the mean episode return (± 95 % interval over episodes, averaged over seeds), the mean
episode length (steps before the user left or the time limit), the share of recommendations
taken, and the training minutes; and writes the rows to ``--out`` as JSON. Run::

    python -m benchmarks.studies.recuser_sb3 [--le ml-100k-smollm2] [--timesteps 4096] \\
        [--seeds 0 1 2]

With ``--out``, ``<out>/checkpoint/`` keeps each finished training run (its evaluation and
model) and the running one's state every ``--checkpoint-minutes``: the model with its
optimizer, the replay buffer, the users in their episodes and the random generators, written
atomically at a rollout's start. The same command started again after a kill resumes there and
ends with the rows of an uninterrupted run (other arguments are refused while the checkpoint is
there); the checkpoint goes once ``results.json`` is written.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from agents.baselines.recuser import PopularItemAgent, RandomItemAgent
from benchmarks.episodes import play_episodes
from benchmarks.runner import summarize
from recgym.agent import Agent, reset_agent
from recgym.le.base import DEFAULT_LE
from recgym.utils import atomic
from recgym.utils.checkpoint import check_config, note_resume

__all__ = ["evaluate", "main", "train"]


def evaluate(agent: Agent, episodes: int, **env_kwargs: Any) -> dict[str, np.ndarray]:
    """Play the fixed held-out episodes (:func:`benchmarks.episodes.play_episodes`: episode
    ``j`` is user ``j`` with reset seed ``10_000 + j``); per-episode ``return``, ``length`` and
    ``taken`` (items accepted)."""
    values, _ = play_episodes(
        "RecUser-v0",
        agent,
        split="test",
        episodes=episodes,
        env_kwargs=env_kwargs,
        batch_size=episodes,
    )
    return values


def _name(algo: str) -> str:
    """The row name of ``algo``: ``"sb3_contrib:MaskablePPO"`` → ``"MaskablePPO"``."""
    return algo.rpartition(":")[2]


def _algo_kwargs(algo: str, n_envs: int) -> dict[str, Any]:
    # Small rollouts and buffers: a training run is a few thousand LE steps on a CPU.
    if _name(algo) in ("PPO", "MaskablePPO"):
        return {"n_steps": max(16, 256 // n_envs), "batch_size": 64, "n_epochs": 4}
    if algo == "A2C":
        return {"n_steps": 8}
    if algo == "DQN":
        return {
            "learning_starts": 256,
            "buffer_size": 20_000,
            "train_freq": 1,
            "gradient_steps": 1,
            "target_update_interval": 250,
            "exploration_fraction": 0.5,
        }
    return {}


def train(
    algo: str,
    seed: int,
    timesteps: int,
    n_envs: int,
    env_kwargs: dict[str, Any],
    checkpoint: Path | None = None,
    checkpoint_minutes: float = 5.0,
) -> tuple[Any, float]:
    """Train ``algo`` on the training users; returns the model and its minutes.

    With a ``checkpoint`` folder, the training state is saved there every
    ``checkpoint_minutes`` (:mod:`agents.sb3.checkpoint`) and a run started again
    with it resumes from the last save; the minutes count the runs before the resume too.
    """
    from agents.sb3 import resolve_algo
    from agents.sb3.checkpoint import resume_or_start
    from agents.sb3.vec_env import make_recuser_vec_env

    start = time.perf_counter()
    run = {"algo": algo, "seed": seed, "timesteps": timesteps, "n_envs": n_envs, **env_kwargs}

    def build() -> Any:
        env = make_recuser_vec_env(n_envs, seed=seed, **env_kwargs, users="train")
        cls = resolve_algo(algo)
        kwargs = _algo_kwargs(algo, n_envs)
        return cls("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **kwargs)

    if checkpoint is None:
        model = build()
        model.learn(total_timesteps=timesteps)
        return model, (time.perf_counter() - start) / 60
    model, learn, before = resume_or_start(
        checkpoint, run, build, resolve_algo(algo), checkpoint_minutes
    )
    learn(timesteps)
    return model, (before + time.perf_counter() - start) / 60


def _row(name: str, runs: list[dict[str, np.ndarray]], minutes: float | None) -> dict[str, Any]:
    ret = summarize(np.stack([r["return"] for r in runs]))
    length = np.stack([r["length"] for r in runs])
    taken = np.stack([r["taken"] for r in runs])
    return {
        "agent": name,
        "return": ret["mean"],
        "return_ci95": ret["ci95"],
        "seed_means": ret["seed_means"],
        "length": float(length.mean()),
        "accept_rate": float(taken.sum() / max(length.sum(), 1)),
        "train_minutes": minutes,
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the comparison (see the module docstring) and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--le", default=DEFAULT_LE, help="user model name ('fake' too)")
    parser.add_argument("--le-kwargs", type=json.loads, default={}, help="JSON, e.g. device")
    parser.add_argument("--env-kwargs", type=json.loads, default={}, help="JSON, RecUser-v0")
    parser.add_argument(
        "--algos", nargs="*", default=["DQN", "PPO", "A2C", "sb3_contrib:MaskablePPO"]
    )
    parser.add_argument("--timesteps", type=int, default=4096)
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=None, help="write results.json here")
    parser.add_argument(
        "--save-dir", type=Path, default=None, help="save each model as ALGO-seedS.zip here"
    )
    parser.add_argument(
        "--checkpoint-minutes",
        type=float,
        default=5.0,
        help="with --out: minutes between two checkpoints of a training run (0: at every rollout)",
    )
    args = parser.parse_args(argv)

    import gymnasium as gym
    import torch

    from agents.sb3 import SB3Agent

    env_kwargs = {"le": args.le, "le_kwargs": args.le_kwargs, **args.env_kwargs}
    probe = gym.make("RecUser-v0", **env_kwargs)
    popular = PopularItemAgent.from_env(probe)
    random_agent = RandomItemAgent.from_env(probe)
    probe.close()
    randoms = []
    for seed in args.seeds:
        reset_agent(random_agent, seed)
        randoms.append(evaluate(random_agent, args.episodes, **env_kwargs))
    rows = [
        _row("random", randoms, None),
        _row("popularity", [evaluate(popular, args.episodes, **env_kwargs)], None),
    ]
    checkpoint = None
    if args.out is not None:
        checkpoint = args.out / "checkpoint"
        study = {k: v for k, v in vars(args).items() if k not in _NOT_STUDY}
        _start_checkpoint(checkpoint, study)
    for algo in args.algos:
        runs, minutes = [], 0.0
        for seed in args.seeds:
            name = f"{_name(algo).lower()}-seed{seed}"
            done = None if checkpoint is None else _finished_run(checkpoint, name)
            if done is not None:  # trained before the study was stopped
                values, took = done
                assert checkpoint is not None
                if args.save_dir is not None:
                    args.save_dir.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(checkpoint / "runs" / f"{name}.zip", args.save_dir)
            else:
                folder = None if checkpoint is None else checkpoint / f"train-{name}"
                model, took = train(
                    algo,
                    seed,
                    args.timesteps,
                    args.n_envs,
                    env_kwargs,
                    folder,
                    args.checkpoint_minutes,
                )
                if args.save_dir is not None:
                    args.save_dir.mkdir(parents=True, exist_ok=True)
                    model.save(args.save_dir / f"{name}.zip")
                values = evaluate(SB3Agent.from_model(model), args.episodes, **env_kwargs)
                if checkpoint is not None and folder is not None:  # mypy: both or neither
                    _keep_run(checkpoint, name, values, took, model)
                    atomic.remove_dir(folder)
            minutes += took
            runs.append(values)
        rows.append(_row(_name(algo), runs, round(minutes / len(args.seeds), 2)))

    device = (
        f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    )
    print(
        f"RecUser-v0, LE {args.le}, {args.episodes} held-out episodes, seeds {args.seeds}, "
        f"{args.timesteps} training steps, device {device}"
    )
    print("| agent | return | episode length | accept rate | train min/seed |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        ci = f" ± {r['return_ci95']:.3f}" if r["return_ci95"] is not None else ""
        cell = "–" if r["train_minutes"] is None else f"{r['train_minutes']:.1f}"
        print(
            f"| {r['agent']} | {r['return']:.3f}{ci} | {r['length']:.2f} | "
            f"{r['accept_rate']:.3f} | {cell} |"
        )
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        meta = {
            "le": args.le,
            "env_kwargs": env_kwargs,
            "timesteps": args.timesteps,
            "episodes": args.episodes,
            "seeds": args.seeds,
            "device": device,
        }
        atomic.write_text(args.out / "results.json", json.dumps({**meta, "rows": rows}, indent=2))
        atomic.remove_dir(args.out / "checkpoint")
    return rows


_NOT_STUDY = ("out", "save_dir", "checkpoint_minutes")
"""Arguments that may change when a stopped study is resumed."""


def _start_checkpoint(folder: Path, study: dict[str, Any]) -> None:
    """Record the study's arguments in ``folder`` (a new study), or check that an unfinished
    study there had the same."""
    path = folder / "study.json"
    if path.is_file():
        check_config(folder, json.loads(path.read_text()), study, "RecUser-v0 SB3 study")
        note_resume(f"the unfinished study in {folder}")
    else:
        atomic.write_text(path, json.dumps(study))


def _keep_run(
    folder: Path, name: str, values: dict[str, np.ndarray], minutes: float, model: Any
) -> None:
    """Keep a finished run's evaluation, minutes and model in the study's checkpoint."""
    runs = folder / "runs"
    zipped, arrays = io.BytesIO(), io.BytesIO()
    model.save(zipped)
    atomic.write_bytes(runs / f"{name}.zip", zipped.getvalue())
    np.savez(arrays, minutes=np.float64(minutes), **values)  # type: ignore[arg-type]
    atomic.write_bytes(runs / f"{name}.npz", arrays.getvalue())  # last: the run is kept


def _finished_run(folder: Path, name: str) -> tuple[dict[str, np.ndarray], float] | None:
    """The evaluation and minutes of run ``name`` if the study in ``folder`` finished it (and
    the leftover of its training checkpoint goes)."""
    path = folder / "runs" / f"{name}.npz"
    if not path.is_file():
        return None
    atomic.remove_dir(folder / f"train-{name}")
    with np.load(path) as saved:
        values = {k: saved[k] for k in saved.files if k != "minutes"}
        return values, float(saved["minutes"])


if __name__ == "__main__":
    main()
