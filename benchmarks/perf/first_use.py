"""First use of every registered env on a fresh machine: ``gym.make`` + ``reset`` + one ``step``.

Each env runs in its own fresh process with an empty model cache (``$RECGYM_CACHE`` a new
temporary folder); only the downloaded dataset artifacts are linked in from the usual cache
(``--artifacts``), since the goal (issue 26: at most 60 s beyond the dataset download) leaves
the download out. The script prints one line per env with its seconds and the cache entries
its first use wrote (a model converted from its shipped format, never one trained), then the
slowest.
Run::

    python -m benchmarks.perf.first_use [--envs RecRank-v0 RecUser-v0] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_PLAY = """
import json, sys, time
start = time.perf_counter()
import gymnasium as gym
import recgym
env = gym.make(sys.argv[1])
env.reset(seed=0)
env.step(env.action_space.sample())
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def first_use(env_id: str, artifacts: Path, threads: int) -> dict[str, object]:
    """Seconds of ``env_id``'s first make + reset + step in a fresh process and cache."""
    with tempfile.TemporaryDirectory(prefix="recgym-first-use-") as cache:
        if artifacts.is_dir():
            (Path(cache) / "artifacts").symlink_to(artifacts)
        env = {**os.environ, "RECGYM_CACHE": cache, "OMP_NUM_THREADS": str(threads)}
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _PLAY, env_id], capture_output=True, text=True, env=env
        )
        wall = time.perf_counter() - start
        trained = sorted(
            str(p.relative_to(cache))
            for p in Path(cache).glob("*/*")
            if p.is_dir() and not str(p.relative_to(cache)).startswith("artifacts")
        )
    if done.returncode != 0:
        return {"env": env_id, "error": done.stderr.strip().splitlines()[-1:], "seconds": wall}
    inner = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
    return {"env": env_id, "seconds": wall, "in_process": inner, "cache_written": trained}


def main(argv: list[str] | None = None) -> None:
    """Time every env's first use (see the module docstring)."""
    import recgym.envs

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=sorted(recgym.envs.ENVS))
    parser.add_argument("--threads", type=int, default=2, help="torch/OpenMP threads")
    parser.add_argument(
        "--artifacts",
        type=Path,
        default=Path(os.environ.get("RECGYM_CACHE") or Path.home() / ".cache" / "recgym")
        / "artifacts",
        help="the downloaded datasets to link in (default: the usual cache's)",
    )
    args = parser.parse_args(argv)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; {args.threads} thread(s)")
    rows = [first_use(env_id, args.artifacts, args.threads) for env_id in args.envs]
    for row in rows:
        print(json.dumps(row))
    worst = max(rows, key=lambda r: float(r["seconds"]))  # type: ignore[arg-type]
    print(f"slowest: {worst['env']} {float(worst['seconds']):.1f} s (goal: 60 s)")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
