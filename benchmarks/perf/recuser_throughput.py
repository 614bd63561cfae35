"""RecUser-v0 throughput: N users in the batched vector env against N single envs, and an LLM
LE's full reads against its incremental ones.

:class:`~recgym.envs.user.RecUserVectorEnv` makes one reward-model (RM) and one state-model
(SM) call per step for all N users; N :class:`~recgym.envs.user.RecUserEnv` stepped one by
one make up to one of each per env step. Both play the same seeded policy (a uniformly random
item not yet in the history), restart ended episodes, and are timed after a warm-up step. The
script prints user-steps per second of each, their ratio, and the LE calls each made per step
of all N users, with the device and torch's thread count.

For an LLM LE a second table steps the vector env twice on the same LE with the same seeds:
reading every window in full (``kv_cache_bytes = 0``) and reading only what changed (the
prefix cache of :mod:`recgym.le.kv`), with the tokens the SM and RM were fed per user-step.
``--untrained`` builds an LE of a given shape without training it (its speed does not depend
on its weights), with synthetic users of MovieLens-like history lengths. ``--cross-episode``
adds incremental reads across episodes (``kv_cross_episode``, how SB3 training reads) against
the exact mode, after ``--warmup`` steps (enough for every user to have started once). Run::

    python -m benchmarks.perf.recuser_throughput --le ml-100k-smollm2 \\
        --le-kwargs '{"device": "cuda"}'
    python -m benchmarks.perf.recuser_throughput --untrained --layers 8 --window 20 \\
        --threads 2 --skip-singles
    python -m benchmarks.perf.recuser_throughput --le ml-100k-smollm2-v2 \\
        --baseline-le ml-100k-smollm2 --sizes 8 64 --skip-singles   # against the first default
    python -m benchmarks.perf.recuser_throughput --sizes 64 --skip-singles --policy popular \
        --env-kwargs '{"n_users": 64}' --warmup 100 --steps 50 --cross-episode
    python -m benchmarks.perf.recuser_throughput --le fake --steps 200   # the numpy double, no LLM
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from recgym.envs.user import RecUserEnv, RecUserVectorEnv
from recgym.envs.users import user_model
from recgym.le import DEFAULT_LE, UserModel


@contextmanager
def counting(model: UserModel) -> Iterator[dict[str, int]]:
    """Count the model's ``rewards`` and ``states`` calls from outside while inside (the
    fake's ``rewards`` calls its own ``states``: not counted)."""
    counts = {"rewards": 0, "states": 0}
    originals = {name: getattr(model, name) for name in counts}
    depth = [0]

    def counted(name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            counts[name] += depth[0] == 0
            depth[0] += 1
            try:
                return originals[name](*args, **kwargs)
            finally:
                depth[0] -= 1

        return call

    for name in counts:
        setattr(model, name, counted(name))
    try:
        yield counts
    finally:
        for name in counts:
            delattr(model, name)  # the instance attribute; the method shows through again


def pick(
    masks: np.ndarray, rng: np.random.Generator, scores: np.ndarray | None = None
) -> np.ndarray:
    """An item not in the history per row of ``masks`` (``(N, n_items)`` bool): a random one,
    or with ``scores`` the best-scored one (ties: the lower index)."""
    out = np.empty(len(masks), dtype=np.int64)
    for i, mask in enumerate(masks):
        free = np.flatnonzero(mask)
        if not free.size:
            out[i] = rng.integers(mask.size)
        elif scores is None:
            out[i] = rng.choice(free)
        else:
            out[i] = free[np.argmax(scores[free])]
    return out


def time_singles(
    n: int, steps: int, env_kwargs: dict[str, Any], seed: int, scores: np.ndarray | None = None
) -> tuple[float, float]:
    """Seconds for ``steps`` steps of ``n`` single envs stepped one by one, and LE calls per
    step of all ``n``."""
    envs = [RecUserEnv(**env_kwargs) for _ in range(n)]
    for i, env in enumerate(envs):
        env.reset(seed=seed + i)
    rng = np.random.default_rng(seed)

    def one_step() -> None:
        actions = pick(np.stack([env.action_masks() for env in envs]), rng, scores)
        for env, action in zip(envs, actions, strict=True):
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()

    one_step()  # warm-up
    with counting(envs[0].model) as calls:
        start = time.perf_counter()
        for _ in range(steps):
            one_step()
        took = time.perf_counter() - start
    return took, sum(calls.values()) / steps


def time_vector(
    n: int, steps: int, env_kwargs: dict[str, Any], seed: int, scores: np.ndarray | None = None
) -> tuple[float, float]:
    """Seconds for ``steps`` steps of the vector env of ``n`` users, and LE calls per step."""
    env = RecUserVectorEnv(n, **env_kwargs)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    env.step(pick(env.action_masks(), rng, scores))  # warm-up
    with counting(env.model) as calls:
        start = time.perf_counter()
        for _ in range(steps):
            env.step(pick(env.action_masks(), rng, scores))
        took = time.perf_counter() - start
    return took, sum(calls.values()) / steps


def time_reads(
    n: int,
    steps: int,
    env_kwargs: dict[str, Any],
    seed: int,
    incremental: bool,
    warmup: int = 3,
    scores: np.ndarray | None = None,
    cross_episode: bool = False,
) -> tuple[float, float]:
    """Seconds for ``steps`` steps of the vector env of ``n`` users on an LLM LE reading in full
    or incrementally (``cross_episode``: across episodes too), and the tokens its SM and RM
    were fed per user-step."""
    env = RecUserVectorEnv(n, **env_kwargs)
    model: Any = env.model
    budget = model.kv_cache_bytes
    model.kv_cache_bytes = budget if incremental else 0
    model.invalidate()  # the other mode's entries do not count
    model.kv_cross_episode = cross_episode
    try:
        env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        for _ in range(warmup):  # incremental: the first steps fill the cache
            env.step(pick(env.action_masks(), rng, scores))
        tokens = model.tokens_fed
        start = time.perf_counter()
        for _ in range(steps):
            env.step(pick(env.action_masks(), rng, scores))
        took = time.perf_counter() - start
        return took, (model.tokens_fed - tokens) / (n * steps)
    finally:
        model.kv_cache_bytes = budget
        model.kv_cross_episode = False


def untrained_le(folder: Path, model: str, layers: int | None, window: int, n_items: int) -> str:
    """Save an untrained LE on ``model`` (``layers`` decoder layers, read ``window``) to
    ``folder`` with synthetic users: 300 per split, histories of 20 to 300 distinct items
    (MovieLens-100k's users rated 20 to 737). Returns the folder, an LE name."""
    import torch

    from recgym.le.model import LLMEnvironment

    torch.manual_seed(0)  # the RM's random head sets how often users take items
    le = LLMEnvironment.build(
        model, n_items=n_items, window=window, layers=layers, device="cpu", progress=False
    )
    rng = np.random.default_rng(0)
    le.users = {
        split: [
            rng.choice(n_items, size=int(rng.integers(20, min(300, n_items) + 1)), replace=False)
            for _ in range(300)
        ]
        for split in ("train", "test")
    }
    return str(le.save(folder))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--le", default=DEFAULT_LE, help="user model name ('fake': numpy)")
    parser.add_argument(
        "--le-kwargs", default="{}", help='its arguments as JSON, e.g. \'{"device": "cuda"}\''
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 32, 64], help="values of N")
    parser.add_argument("--steps", type=int, default=20, help="timed steps of all N users")
    parser.add_argument("--seed", type=int, default=0, help="seed of users and actions")
    parser.add_argument(
        "--env-kwargs", default="{}", help="env arguments as JSON, e.g. '{\"patience\": 5}'"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument(
        "--skip-singles", action="store_true", help="skip the single envs' table (slow on an LLM)"
    )
    parser.add_argument(
        "--untrained",
        action="store_true",
        help="build an untrained LE of --model/--layers/--window/--n-items instead of --le",
    )
    parser.add_argument(
        "--policy",
        choices=("random", "popular"),
        default="random",
        help="the actions: a random unseen item (users leave fast: short episodes, mostly "
        "first reads) or the most popular unseen item (long episodes, as a good agent plays)",
    )
    parser.add_argument(
        "--baseline-le",
        default=None,
        help="also time this LE reading in full (e.g. ml-100k-smollm2, RecUser-v0's earlier "
        "default) against --le reading incrementally, side by side",
    )
    parser.add_argument(
        "--cross-episode",
        action="store_true",
        help="also time incremental reads across episodes (kv_cross_episode, as SB3 training "
        "reads) after --warmup steps that read the users' blocks once",
    )
    parser.add_argument(
        "--warmup", type=int, default=3, help="untimed steps before the incremental timings"
    )
    parser.add_argument("--model", default="smollm2-135m", help="--untrained: the base LLM")
    parser.add_argument("--layers", type=int, default=None, help="--untrained: decoder layers")
    parser.add_argument("--window", type=int, default=10, help="--untrained: the LE's window")
    parser.add_argument("--n-items", type=int, default=1682, help="--untrained: catalog size")
    args = parser.parse_args(argv)

    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        le = args.le
        if args.untrained:
            le = untrained_le(Path(tmp), args.model, args.layers, args.window, args.n_items)
        run(args, le)


def run(args: argparse.Namespace, le: str) -> None:
    """Print the tables for the LE called ``le``."""
    le_kwargs = json.loads(args.le_kwargs)
    env_kwargs = {"le": le, "le_kwargs": le_kwargs, **json.loads(args.env_kwargs)}
    start = time.perf_counter()
    model = user_model(le, le_kwargs)
    loaded = time.perf_counter() - start
    scores = None  # --policy popular: item counts among the LE's train users
    if args.policy == "popular":
        from recgym.envs.users import logged_users

        train = np.concatenate(logged_users(le, le_kwargs, "train"))
        scores = np.bincount(train, minlength=model.n_items).astype(np.float64)
    torch = sys.modules.get("torch")  # loaded by an LLM user model, not by the fake
    threads = torch.get_num_threads() if torch is not None else "n/a (torch not loaded)"
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, numpy {np.__version__}"
        + (f", torch {torch.__version__}" if torch is not None else "")
    )
    name = "untrained " if args.untrained else ""
    name += f"{le} {json.dumps(le_kwargs)}" if le_kwargs else le
    layers = getattr(getattr(model, "extra", {}), "get", lambda _: None)("layers")
    print(
        f"user model: {name} ({model.n_items} items, state_dim "
        f"{model.state_dim}, window {model.window}"
        + (f", {layers} decoder layers" if layers else "")
        + f"; loaded in {loaded:.1f} s), device "
        f"{getattr(model, 'device', 'cpu')}, torch threads {threads}"
    )
    if args.env_kwargs != "{}":
        print(f"env arguments: {args.env_kwargs}")
    print(
        f"{args.steps} timed steps of all N users (user-steps/s = N * steps / seconds); "
        f"actions: the {args.policy} unseen item\n"
    )
    if not args.skip_singles:
        print(
            "|    N | single envs, one by one | vector env, batched | vector / single "
            "| LE calls/step (single -> vector) |"
        )
        print("|---:|---:|---:|---:|---|")
        for n in args.sizes:
            t_single, c_single = time_singles(n, args.steps, env_kwargs, args.seed, scores)
            t_vector, c_vector = time_vector(n, args.steps, env_kwargs, args.seed, scores)
            print(
                f"| {n:>4} | {n * args.steps / t_single:>22.1f} "
                f"| {n * args.steps / t_vector:>19.1f} "
                f"| {t_single / t_vector:>14.2f}x | {c_single:.1f} -> {c_vector:.1f} |"
            )
        print()
    if not hasattr(model, "kv_cache_bytes"):
        return  # no LLM: nothing is read
    print("vector env, user-steps/s: every window read in full vs only what changed")
    print(
        "|    N | full reads | incremental | incremental / full | tokens/user-step (full -> inc.) |"
    )
    print("|---:|---:|---:|---:|---|")
    incremental = {}
    for n in args.sizes:
        t_full, k_full = time_reads(
            n, args.steps, env_kwargs, args.seed, incremental=False, scores=scores
        )
        t_inc, k_inc = time_reads(
            n, args.steps, env_kwargs, args.seed, True, args.warmup, scores=scores
        )
        incremental[n] = t_inc
        print(
            f"| {n:>4} | {n * args.steps / t_full:>10.1f} | {n * args.steps / t_inc:>11.1f} "
            f"| {t_full / t_inc:>17.2f}x | {k_full:.1f} -> {k_inc:.1f} |"
        )
    if args.cross_episode:
        print(
            f"\nvector env, user-steps/s after {args.warmup} warm-up steps: incremental reads "
            "within episodes (evaluation's exact mode) vs across episodes (SB3 training's)"
        )
        print("|    N | within | across | across / within | tokens/user-step (within -> across) |")
        print("|---:|---:|---:|---:|---|")
        for n in args.sizes:
            t_in, k_in = time_reads(
                n, args.steps, env_kwargs, args.seed, True, args.warmup, scores=scores
            )
            t_x, k_x = time_reads(
                n, args.steps, env_kwargs, args.seed, True, args.warmup, scores, True
            )
            print(
                f"| {n:>4} | {n * args.steps / t_in:.1f} | {n * args.steps / t_x:.1f} "
                f"| {t_in / t_x:.2f}x | {k_in:.1f} -> {k_x:.1f} |"
            )
    if args.baseline_le:
        base_kwargs = {**env_kwargs, "le": args.baseline_le}
        base = user_model(args.baseline_le, le_kwargs)
        print(
            f"\nvector env, user-steps/s: {args.baseline_le} reading in full (window "
            f"{base.window}, {getattr(base, 'extra', {}).get('layers') or 'all'} layers) vs {le} "
            "reading incrementally"
        )
        print(f"|    N | {args.baseline_le}, full reads | {le}, incremental | ratio |")
        print("|---:|---:|---:|---:|")
        for n in args.sizes:
            t_base, _ = time_reads(
                n, args.steps, base_kwargs, args.seed, incremental=False, scores=scores
            )
            print(
                f"| {n:>4} | {n * args.steps / t_base:.1f} | {n * args.steps / incremental[n]:.1f} "
                f"| {t_base / incremental[n]:.2f}x |"
            )


if __name__ == "__main__":
    main()
