"""Memory over long runs: a million RecUser-v0 steps and 100,000 RecSearch-v0 steps stay flat.

For each env the script warms up (builds the task, loads the user model, fills every bounded
cache, such as the BM25 query LRU), measures the process's memory, plays the long run in
``--checkpoints`` even parts, measuring after each, and prints the start and end measurements
and the growth (end / start - 1) side by side, then the RSS at every checkpoint (a leak grows
with the steps; allocator slack settles):

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

The exit status is 1 when a growth exceeds ``--max-growth`` (default 5 %). Figures on a 2-core
CPU: ``benchmarks/results/perf-cpu/long-run-memory.txt``. Run::

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


def run_user(num_envs: int, warmup: int, seed: int) -> Callable[[int], int]:
    """Build and warm up the RecUser-v0 vector env; returns ``play(n)``, which plays ``n`` user
    steps in whole steps of the vector env (a remainder waits for the next call) and returns
    how many it played."""
    env = gym.make_vec("RecUser-v0", num_envs=num_envs, le="fake")
    env.reset(seed=seed)
    n_items = int(env.single_action_space.n)  # type: ignore[attr-defined]
    rng = np.random.default_rng(seed)

    owed = [0]  # user steps asked for but not yet played (less than one vector step)

    def play(n: int) -> int:
        vector_steps, owed[0] = divmod(owed[0] + n, num_envs)
        for _ in range(vector_steps):
            env.step(rng.integers(n_items, size=num_envs))
        return vector_steps * num_envs

    play(warmup)
    return play


def run_search(warmup: int, pool: int, seed: int) -> Callable[[int], int]:
    """Build and warm up RecSearch-v0; returns ``play(n)``, which plays ``n`` episodes (one
    reset and one step each) and returns ``n``."""
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
    return play


def _growth(start: float, end: float) -> float:
    return end / start - 1 if start > 0 else 0.0


def report(name: str, marks: Sequence[Memory], steps: int, seconds: float) -> float:
    """Print start, end and growth of each measurement, and the RSS at every checkpoint;
    returns the largest RSS growth (current or peak)."""
    start, end = marks[0], marks[-1]
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
    # A leak grows with the steps; allocator slack settles: the checkpoints tell them apart.
    trend = " ".join(f"{m.rss:.1f}" for m in marks)
    print(f"RSS at the start and after each of {len(marks) - 1} even parts (MiB): {trend}")
    return max(_growth(start.rss, end.rss), _growth(start.peak_rss, end.peak_rss))


def _timed(
    play: Callable[[int], int], steps: int, checkpoints: int, trace: bool
) -> tuple[list[Memory], int, float]:
    """Measure, then play ``steps`` in ``checkpoints`` even parts, measuring after each."""
    if trace:
        tracemalloc.reset_peak()
    marks = [measure()]
    played, seconds = 0, 0.0
    parts = max(1, min(checkpoints, steps))
    for part in range(parts):
        t0 = time.perf_counter()
        played += play(steps * (part + 1) // parts - steps * part // parts)
        seconds += time.perf_counter() - t0
        marks.append(measure())
    return marks, played, seconds


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
    parser.add_argument(
        "--checkpoints", type=int, default=10, help="memory measured after each of these parts"
    )
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
        f"RecUser-v0 (le='fake', num_envs={args.num_envs})": (
            lambda: run_user(args.num_envs, args.warmup, args.seed),
            args.user_steps,
        ),
        f"RecSearch-v0 (reset + step, {args.completions} completions)": (
            lambda: run_search(args.warmup, args.completions, args.seed),
            args.search_steps,
        ),
    }
    for name, (build, steps) in runs.items():
        marks, played, seconds = _timed(build(), steps, args.checkpoints, args.tracemalloc)
        growth[name] = report(name, marks, played, seconds)
    print(f"\nwall time {time.perf_counter() - total:.1f} s (warm-ups included)")
    worst = max(growth.values())
    verdict = "flat" if worst < args.max_growth else "GROWS"
    limit = f"limit {100 * args.max_growth:.0f} %"
    print(f"largest RSS growth {100 * worst:+.2f} % ({limit}): {verdict}")
    return 0 if worst < args.max_growth else 1


if __name__ == "__main__":
    sys.exit(main())
