"""The leaderboard runner: evaluate any agent on a recgym env and record one reproducible row.

:func:`evaluate` takes the settings as one :class:`recgym.evaluation.EvalSpec`, plays the first
``episodes`` episodes of a split (the split's fixed order, so every agent sees the same
episodes) once per seed and returns a JSON-serialisable row. A one-step text env's episodes are
scored with its batched scorer (:func:`recgym.evaluation.score_episodes`); an interactive env
(``RecUser-v0``) is played step by step, its split being its ``users`` (see
:mod:`benchmarks.episodes`). The row holds the env and its full arguments, the agent and its
config, the metric means with 95 % confidence intervals, the data digest, the commit, package
versions, device, wall time and the ``python -m benchmarks run ...`` command that regenerates it.
:func:`append_rows` / :func:`load_rows` keep rows in a JSON-lines file (one row per line).

Statistics. With ``S`` seeds and ``N`` episodes, each episode's metric is first averaged over
the seeds; ``mean`` is the mean of those ``N`` values, ``ci95`` the half-width of the 95 %
Student-t interval over episodes (``t(0.975, N-1) * sd / sqrt(N)``, ``None`` when ``N < 2``),
``seed_std`` the standard deviation (ddof=1, 0 for one seed) of the ``S`` per-seed means, and
``seed_means`` those ``S`` means in the order of the row's ``seeds`` (the per-seed spread).
The interval is over the sampled episodes: it says how much the score would move on other
episodes of the same distribution; ``seed_std`` says how much it moves with the agent's seed.
The t quantile comes from :func:`t_quantile_975` (a table, so scipy is not needed).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import itertools
import json
import math
import platform
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from filelock import FileLock
from tqdm.auto import tqdm

import recgym
from benchmarks.episodes import episode_kwargs, is_episodic, play_episodes
from benchmarks.protocol import default_kwargs, split_size
from recgym.agent import Agent, reset_agent
from recgym.error import RecGymError, UnknownNameError, one_line
from recgym.evaluation import EvalSpec, score_episodes
from recgym.utils.files import write_atomic

__all__ = [
    "METRICS",
    "append_rows",
    "build_agent",
    "evaluate",
    "git_commit",
    "load_rows",
    "summarize",
    "t_quantile_975",
]

METRICS = ("reward", "format_ok")
"""The metrics every text env row has besides the env's ``info`` metrics (``ndcg@10`` ...);
interactive env rows have :data:`benchmarks.episodes.EPISODE_METRICS`."""

_REPO = Path(__file__).resolve().parents[1]
_VERSIONED = ("numpy", "gymnasium", "torch", "transformers", "peft", "stable-baselines3")

# Two-sided 95 % quantiles of Student's t, t(0.975, df), for df = 1..30, then 40, 60, 120, inf
# (the standard table; scipy.stats.t.ppf agrees to the 3 decimals shown).
# A table, ten quantiles a row: the formatter would put one a line.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_T975_TAIL = ((30, 2.042), (40, 2.021), (60, 2.000), (120, 1.980), (math.inf, 1.960))


def t_quantile_975(df: int) -> float:
    """t(0.975, df): the 95 % two-sided Student-t quantile, from a table.

    Exact (to 3 decimals) for df ≤ 30, 40, 60 and 120; between table points it interpolates
    linearly in 1/df, which is within 0.001 of the true quantile; df → ∞ gives 1.960.
    """
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1; got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    for (d0, t0), (d1, t1) in itertools.pairwise(_T975_TAIL):
        if d0 <= df <= d1:
            w = (1 / d0 - 1 / df) / (1 / d0 - 1 / d1)
            return t0 + w * (t1 - t0)
    return 1.960


def summarize(per_seed: np.ndarray) -> dict[str, Any]:
    """``mean``, ``ci95``, ``seed_std`` and ``seed_means`` of an ``(S seeds, N episodes)`` array
    (see the module docstring)."""
    values = np.asarray(per_seed, dtype=np.float64)
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"expected a non-empty (seeds, episodes) array; got shape {values.shape}")
    per_episode = values.mean(axis=0)
    n = len(per_episode)
    ci = t_quantile_975(n - 1) * float(per_episode.std(ddof=1)) / math.sqrt(n) if n > 1 else None
    seed_means = values.mean(axis=1)
    seed_std = float(seed_means.std(ddof=1)) if len(seed_means) > 1 else 0.0
    return {
        "mean": float(per_episode.mean()),
        "ci95": ci,
        "seed_std": seed_std,
        "seed_means": [float(m) for m in seed_means],
    }


def git_commit(repo: Path = _REPO) -> str:
    """``git rev-parse HEAD`` of the checkout, ``+dirty`` when tracked files changed (results
    under ``benchmarks/results/`` do not count), ``"unknown"`` outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":(exclude)benchmarks/results",
            ],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if status.strip() else "") if head else "unknown"


def _versions() -> dict[str, str]:
    """Python and package versions, read from installed metadata (nothing is imported)."""
    out = {"python": platform.python_version(), "recgym": recgym.__version__}
    for dist in _VERSIONED:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[dist] = importlib.metadata.version(dist)
    return out


def _device() -> str:
    """The CUDA device name when torch is already imported and sees one, else ``"cpu"``."""
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available():
            return str(torch.cuda.get_device_name(0))
    except Exception:  # a broken CUDA setup still evaluates on the CPU
        pass
    return "cpu"


def _full_kwargs(env: gym.Env[Any, Any]) -> dict[str, Any]:
    """The env's constructor defaults updated with its spec kwargs (every argument recorded)."""
    if env.spec is None:
        raise ValueError(f"{type(env.unwrapped).__name__} was not made by gym.make (no spec)")
    full = default_kwargs(env.spec.id)
    full.update(json.loads(json.dumps(env.spec.kwargs, default=str)))
    return full


def _env_version(env_id: str) -> str:
    match = re.search(r"-(v\d+)$", env_id)
    return match.group(1) if match else "unversioned"


def evaluate(
    spec: EvalSpec | str,
    agent: Agent,
    *,
    agent_config: Mapping[str, Any] | None = None,
    command: str | None = None,
    progress: bool | Callable[[str], None] = False,
    per_episode: bool = False,
    **legacy: Any,
) -> dict[str, Any]:
    """Evaluate ``agent`` as ``spec`` says: the first ``spec.episodes`` episodes of
    ``spec.split``, once per seed.

    Args:
        spec: the settings (env, split, episodes, seeds, batch size, the agent's name and
            arguments, the training budget). A text env (``"RecSearch-v0"``) is scored in
            batches; an interactive env (``"RecUser-v0"``) is played step by step, and the agent
            gets the action masks if its ``act_batch`` takes ``action_masks``.
        agent: anything with ``act`` (and optionally ``act_batch``, ``reset``, ``config``).
        agent_config: recorded as the row's ``agent_config``; default ``agent.config()`` if
            the agent has it, else ``spec.agent_kwargs``.
        command: the command that regenerates the row; default ``spec.command()`` with the
            episodes actually played.
        progress: ``True`` for a progress bar on stderr, or a callable given a short line
            after each batch (e.g. ``print``).
        per_episode: also return ``"per_episode"``: per metric, the ``(seeds, episodes)``
            values as lists (for paired comparisons; not a leaderboard field: drop it before
            storing the row).
        **legacy: deprecated: the old form ``evaluate(env_id, agent, agent_name=..., split=...,
            ...)``, whose keywords are the fields of :class:`~recgym.evaluation.EvalSpec`.

    Returns:
        The row (see the module docstring); every value is JSON-serialisable.
    """
    if isinstance(spec, str):
        warnings.warn(
            "evaluate(env_id, agent, agent_name=..., ...) is deprecated; pass the settings as "
            "one spec: evaluate(EvalSpec(env_id, agent_name, ...), agent)",
            DeprecationWarning,
            stacklevel=2,
        )
        spec = EvalSpec(spec, **legacy)
    elif legacy:
        raise TypeError(f"evaluate() takes the settings in the spec; got {', '.join(legacy)}")
    start = time.perf_counter()
    seeds = spec.seeds
    bar = (
        tqdm(
            total=spec.episodes * len(seeds),
            desc=f"{spec.env_id} {spec.agent_name}",
            unit="ep",
            file=sys.stderr,
        )
        if progress is True
        else None
    )

    played_any = False

    def report(seed_index: int, done: int, *, total: int) -> None:
        nonlocal played_any
        played_any = played_any or done > 0
        if bar is not None:
            bar.total = total * len(seeds)
            bar.n = seed_index * total + done
            bar.refresh()
        elif callable(progress):
            progress(
                f"  {spec.env_id} {spec.agent_name} seed {seeds[seed_index]} ({seed_index + 1}/"
                f"{len(seeds)}): {done}/{total} episodes, {time.perf_counter() - start:.0f} s"
            )

    play = _play_episodic if is_episodic(spec.env_id) else _play_text
    try:
        played = play(spec, agent, report)
    except RecGymError:
        raise
    except Exception as exc:
        if played_any:
            raise
        # Failing before any episode is scored is almost always an agent that does not take
        # this env's observations or give its actions (a text agent on a Dict env): say so.
        raise RecGymError(
            f"agent {spec.agent_name!r} cannot play {spec.env_id}: its first episodes failed "
            f"with {one_line(exc)}. Does it take {spec.env_id}'s observations and give its "
            "actions (the env's page lists both)?"
        ) from exc
    finally:
        if bar is not None:
            bar.close()
    metrics = {key: summarize(values) for key, values in played.per_seed.items()}
    if agent_config is None:
        config = getattr(agent, "config", None)
        agent_config = config() if callable(config) else dict(spec.agent_kwargs)
    row = {
        "env_id": spec.env_id,
        "env_version": _env_version(spec.env_id),
        "env_kwargs": played.env_kwargs,
        "agent": spec.agent_name,
        "agent_config": json.loads(json.dumps(dict(agent_config), default=str)),
        "split": spec.split,
        "episodes": played.episodes,
        "split_episodes": played.split_episodes,
        "seeds": list(seeds),
        "metrics": metrics,
        "data_version": played.data_version,
        "k": played.k,
        "reward": played.reward,
        "commit": git_commit(),
        "versions": _versions(),
        "device": _device(),
        "wall_seconds": round(time.perf_counter() - start, 3),
        "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "budget": spec.budget,
        "budget_device": spec.budget_device,
        "training": spec.training,
        # The command of the episodes actually played (a split may be shorter).
        "command": command or spec.replace(episodes=played.episodes).command(),
    }
    if per_episode:
        row["per_episode"] = {key: values.tolist() for key, values in played.per_seed.items()}
    return row


@dataclass
class _Played:
    """What one env's evaluation loop hands to the row: per metric, an ``(S seeds, N
    episodes)`` array."""

    per_seed: dict[str, np.ndarray]
    episodes: int
    split_episodes: int
    env_kwargs: dict[str, Any]
    data_version: str
    k: int | None
    reward: str


def _play_text(spec: EvalSpec, agent: Agent, report: Callable[..., None]) -> _Played:
    """A one-step text env: the first ``episodes`` prompts of the split, scored in batches."""
    env = gym.make(spec.env_id, split=spec.split, **spec.env_kwargs)
    try:
        scorer: Any = env.unwrapped
        n = min(spec.episodes, scorer.num_episodes(spec.split))
        per_seed = score_episodes(
            scorer,
            agent,
            spec.split,
            range(n),
            spec.seeds,
            spec.batch_size,
            report=lambda s, done: report(s, done, total=n),
        )
        return _Played(
            per_seed,
            n,
            split_size(env, spec.split),
            _full_kwargs(env),
            scorer.data_version,
            int(scorer.k),
            str(scorer.reward_name),
        )
    finally:
        env.close()


def _play_episodic(spec: EvalSpec, agent: Agent, report: Callable[..., None]) -> _Played:
    """An interactive env (``RecUser-v0``): the fixed episodes of :mod:`benchmarks.episodes`."""
    per_seed: dict[str, list[np.ndarray]] = {}
    env: Any = None
    for s, seed in enumerate(spec.seeds):
        reset_agent(agent, seed)
        values, env = play_episodes(
            spec.env_id,
            agent,
            split=spec.split,
            episodes=spec.episodes,
            env_kwargs=spec.env_kwargs,
            batch_size=spec.batch_size,
            progress=functools.partial(report, s, total=spec.episodes),
        )
        for key, value in values.items():
            per_seed.setdefault(key, []).append(value)
    batch = env.batch
    return _Played(
        {key: np.stack(rows) for key, rows in per_seed.items()},
        spec.episodes,
        split_size(env, spec.split),
        episode_kwargs(env),
        batch.data_version,
        None,
        batch.reward_name,
    )


def append_rows(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Append rows to a JSON-lines file (created with its folders if missing); returns it.

    Safe when several runs write one file at once: the read-append-write holds an exclusive
    lock on ``<path>.lock`` and the new content replaces the file atomically
    (:func:`recgym.utils.files.write_atomic`), so no run loses another's rows and a reader,
    or a run killed mid-write, never sees a half-written line. Rows are serialised before the
    file is touched: a row that is not JSON (``NaN``, an object) changes nothing.
    """
    path = Path(path)
    text = "".join(json.dumps(row, allow_nan=False) + "\n" for row in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):
        old = path.read_bytes() if path.exists() else b""
        if old and not old.endswith(b"\n"):  # a file edited by hand may lack the last newline
            old += b"\n"
        write_atomic(path, old + text.encode("utf-8"))
    return path


def load_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file (blank lines skipped)."""
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _import_target(spec: str) -> Any:
    """The object named by ``"module.path:Name"`` or ``"path/to/file.py:Name"``."""
    where, _, attr = spec.rpartition(":")
    if not where or not attr:
        raise ValueError(f"expected 'module.path:Name' or 'path/to/file.py:Name'; got {spec!r}")
    if where.endswith(".py"):
        path = Path(where).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"agent file {where!r} does not exist (from {spec!r})")
        # A unique module name per file, so two files named agent.py do not collide.
        name = f"_recgym_agent_{hashlib.sha1(str(path).encode()).hexdigest()[:12]}"
        module = sys.modules.get(name)
        if module is None:
            file_spec = importlib.util.spec_from_file_location(name, path)
            if file_spec is None or file_spec.loader is None:
                raise ImportError(f"cannot import {path} as a Python module")
            module = importlib.util.module_from_spec(file_spec)
            sys.modules[name] = module  # dataclasses and pickling look the module up by name
            try:
                file_spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
    else:
        module = importlib.import_module(where)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise AttributeError(f"{where!r} has no attribute {attr!r} (from {spec!r})") from None


def build_agent(spec: str, env: gym.Env[Any, Any], kwargs: Mapping[str, Any] | None = None) -> Any:
    """The agent named ``spec``, built for ``env`` with ``kwargs``.

    ``spec`` is a key of ``agents.AGENTS`` (built as ``factory(env, kwargs)``), or
    ``"module.path:ClassName"`` / ``"path/to/file.py:ClassName"`` for any other agent (built as
    ``ClassName.from_env(env, **kwargs)`` when it has ``from_env``, else
    ``ClassName(**kwargs)``). A file path is imported from the file, so a third-party agent
    needs no package.
    """
    kwargs = dict(kwargs or {})
    if ":" in spec:
        target = _import_target(spec)
        from_env = getattr(target, "from_env", None)
        return from_env(env, **kwargs) if from_env is not None else target(**kwargs)
    from agents import AGENTS

    if spec not in AGENTS:
        raise UnknownNameError(
            f"no agent named {spec!r}; use one of {', '.join(sorted(AGENTS))}, "
            "module.path:Class or path/to/file.py:Class"
        )
    return AGENTS[spec](env, kwargs)
