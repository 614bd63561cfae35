"""Memory over long runs: a million RecUser-v0 steps and 100,000 RecSearch-v0 steps stay flat.

For each env the script warms up (builds the task, loads the user model, fills every bounded
cache, such as the BM25 query LRU), measures the process's memory, plays the long run, measures
again, and prints both measurements and the growth (end / start - 1) side by side:

- *RSS*: the resident set now (``/proc/self/statm``) and its peak so far (``ru_maxrss``);
- *Python blocks*: ``sys.getallocatedblocks()``, the objects the interpreter holds (a per-step
  cache that never empties shows here first, and costs nothing to read);
- *traced*: with ``--tracemalloc``, tracemalloc's current and peak traced bytes (it slows
  every allocation, so it is off by default).

The runs:

- ``RecUser-v0``: ``gym.make_vec("RecUser-v0", num_envs=N, le="fake")``, a uniformly random item
  per user from a seeded generator, Gymnasium's next-step autoreset; a *step* is one user's
  step, so ``--user-steps 1000000`` with ``N = 64`` is 15,625 steps of the vector env.
- ``RecSearch-v0``: ``reset(options={"split": "train", "index": i})`` then ``step(completion)``
  with a completion drawn at random from a fixed pool of well-formed ones (the episode's
  request with words dropped, as in :mod:`benchmarks.perf.reward_scoring`). The pool is larger
  than the retriever's query cache (1,024 queries), so the cache stays full and evicts all
  along, while most steps still hit it (a miss costs a BM25 query over the catalog).

The exit status is 1 when a growth exceeds ``--max-growth`` (default 5 %). Run::

    python -m benchmarks.perf.long_run_memory                       # the full budget
    python -m benchmarks.perf.long_run_memory --user-steps 20000 --search-steps 2000
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

import recgym  # noqa: F401 (registers the env ids)
from benchmarks.perf.reward_scoring import grpo_batch
from recgym.envs.text import RetrievalTextEnv

__all__ = ["Memory", "main", "measure", "run_search", "run_user"]


@dataclass(frozen=True)
class Memory:
    """One measurement of this process's memory (MiB, or blocks)."""

    rss: float
    """Resident set now, MiB."""
    peak_rss: float
    """Peak resident set so far, MiB."""
    blocks: int
    """Memory blocks the Python allocator holds (``sys.getallocatedblocks()``)."""
    traced: float | None
    """tracemalloc's current traced size, MiB (``None`` when not tracing)."""
    traced_peak: float | None
    """tracemalloc's peak traced size since the last reset, MiB."""


def _rss_mib() -> float:
    """The resident set now: ``/proc/self/statm`` on Linux, else the peak (the best there is)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return _peak_rss_mib()


def _peak_rss_mib() -> float:
    # Linux reports KiB, macOS bytes.
    scale = 1 if sys.platform == "darwin" else 2**10
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def measure() -> Memory:
    """This process's memory now."""
    traced = tracemalloc.get_traced_memory() if tracemalloc.is_tracing() else None
    return Memory(
        rss=_rss_mib(),
        peak_rss=_peak_rss_mib(),
        blocks=sys.getallocatedblocks(),
        traced=traced[0] / 2**20 if traced else None,
        traced_peak=traced[1] / 2**20 if traced else None,
    )


def run_user(num_envs: int, steps: int, warmup: int, seed: int) -> Callable[[], int]:
    """Build and warm up the RecUser-v0 vector env; returns the long run (it returns the user
    steps it played)."""
    env = gym.make_vec("RecUser-v0", num_envs=num_envs, le="fake")
    env.reset(seed=seed)
    n_items = int(env.single_action_space.n)  # type: ignore[attr-defined]
    rng = np.random.default_rng(seed)
    for _ in range(max(1, warmup // num_envs)):
        env.step(rng.integers(n_items, size=num_envs))

    def run() -> int:
        vector_steps = max(1, steps // num_envs)
        for _ in range(vector_steps):
            env.step(rng.integers(n_items, size=num_envs))
        return vector_steps * num_envs

    return run


def run_search(steps: int, warmup: int, pool: int, seed: int) -> Callable[[], int]:
    """Build and warm up RecSearch-v0 (one reset and step per completion); returns the long
    run (it returns the steps it played)."""
    env = gym.make("RecSearch-v0")
    inner = env.unwrapped
    assert isinstance(inner, RetrievalTextEnv)
    group = 4
    indices, completions = grpo_batch(inner, -(-pool // group), group, seed)
    rng = np.random.default_rng(seed)

    def play(n: int) -> int:
        for i in rng.integers(len(completions), size=n).tolist():
            env.reset(options={"split": "train", "index": indices[i]})
            env.step(completions[i])
        return n

    play(warmup)
    return lambda: play(steps)


def _growth(start: float, end: float) -> float:
    return end / start - 1 if start > 0 else 0.0


def report(name: str, start: Memory, end: Memory, steps: int, seconds: float) -> float:
    """Print start, end and growth of each measurement; returns the largest RSS growth."""
    print(f"\n{name}: {steps:,} steps in {seconds:.1f} s ({steps / seconds:,.0f} steps/s)")
    print("| measurement | start | end | growth |")
    print("|---|---:|---:|---:|")
    rows: list[tuple[str, float | None, float | None, str]] = [
        ("RSS (MiB)", start.rss, end.rss, ".1f"),
        ("peak RSS (MiB)", start.peak_rss, end.peak_rss, ".1f"),
        ("Python blocks", start.blocks, end.blocks, ",.0f"),
        ("traced (MiB)", start.traced, end.traced, ".2f"),
        ("traced peak (MiB)", start.traced_peak, end.traced_peak, ".2f"),
    ]
    for label, a, b, fmt in rows:
        if a is None or b is None:
            continue
        print(f"| {label} | {a:{fmt}} | {b:{fmt}} | {100 * _growth(a, b):+.2f} % |")
    return max(_growth(start.rss, end.rss), _growth(start.peak_rss, end.peak_rss))


def _timed(run: Callable[[], int], trace: bool) -> tuple[Memory, Memory, int, float]:
    if trace:
        tracemalloc.reset_peak()
    start = measure()
    t0 = time.perf_counter()
    steps = run()
    seconds = time.perf_counter() - t0
    return start, measure(), steps, seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--user-steps", type=int, default=1_000_000, help="RecUser-v0 user steps")
    parser.add_argument("--num-envs", type=int, default=64, help="N of the RecUser-v0 vector env")
    parser.add_argument("--search-steps", type=int, default=100_000, help="RecSearch-v0 steps")
    parser.add_argument(
        "--completions", type=int, default=1280, help="distinct RecSearch-v0 completions"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=10_000,
        help="warm-up steps of each env before the start (more than RecSearch-v0's query cache "
        "holds, so that it is full)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of users, items, completions")
    parser.add_argument("--tracemalloc", action="store_true", help="also trace Python memory")
    parser.add_argument(
        "--max-growth", type=float, default=0.05, help="largest RSS growth allowed (fraction)"
    )
    args = parser.parse_args(argv)

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, numpy {np.__version__}, "
        f"gymnasium {gym.__version__}; tracemalloc {'on' if args.tracemalloc else 'off'}"
    )
    if args.tracemalloc:
        tracemalloc.start()
    total = time.perf_counter()
    growth = {}
    runs = {
        f"RecUser-v0 (le='fake', num_envs={args.num_envs})": lambda: run_user(
            args.num_envs, args.user_steps, args.warmup, args.seed
        ),
        f"RecSearch-v0 (reset + step, {args.completions} completions)": lambda: run_search(
            args.search_steps, args.warmup, args.completions, args.seed
        ),
    }
    for name, build in runs.items():
        start, end, steps, seconds = _timed(build(), args.tracemalloc)
        growth[name] = report(name, start, end, steps, seconds)
    print(f"\nwall time {time.perf_counter() - total:.1f} s (warm-ups included)")
    worst = max(growth.values())
    verdict = "flat" if worst < args.max_growth else "GROWS"
    limit = f"limit {100 * args.max_growth:.0f} %"
    print(f"largest RSS growth {100 * worst:+.2f} % ({limit}): {verdict}")
    return 0 if worst < args.max_growth else 1


if __name__ == "__main__":
    sys.exit(main())
