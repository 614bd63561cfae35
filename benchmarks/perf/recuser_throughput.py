"""RecUser-v0 throughput: N users in the batched vector env against N single envs.

:class:`~recgym.envs.user.RecUserVectorEnv` makes one reward-model (RM) and one state-model
(SM) call per step for all N users; N :class:`~recgym.envs.user.RecUserEnv` stepped one by
one make up to one of each per env step. Both play the same seeded policy (a uniformly random
item not yet in the history), restart ended episodes, and are timed after a warm-up step. The
script prints user-steps per second of each, their ratio, and the LE calls each made per step
of all N users, with the device and torch's thread count. Run::

    python -m benchmarks.perf.recuser_throughput --le ml-100k-smollm2 \\
        --le-kwargs '{"device": "cuda"}'
    python -m benchmarks.perf.recuser_throughput --le fake --steps 200   # the numpy double, no LLM
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from recgym.envs.user import RecUserEnv, RecUserVectorEnv
from recgym.envs.users import user_model
from recgym.le import UserModel


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


def pick(masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random item not in the history per row of ``masks`` (``(N, n_items)`` bool)."""
    out = np.empty(len(masks), dtype=np.int64)
    for i, mask in enumerate(masks):
        free = np.flatnonzero(mask)
        out[i] = rng.choice(free) if free.size else rng.integers(mask.size)
    return out


def time_singles(n: int, steps: int, env_kwargs: dict[str, Any], seed: int) -> tuple[float, float]:
    """Seconds for ``steps`` steps of ``n`` single envs stepped one by one, and LE calls per
    step of all ``n``."""
    envs = [RecUserEnv(**env_kwargs) for _ in range(n)]
    for i, env in enumerate(envs):
        env.reset(seed=seed + i)
    rng = np.random.default_rng(seed)

    def one_step() -> None:
        actions = pick(np.stack([env.action_masks() for env in envs]), rng)
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


def time_vector(n: int, steps: int, env_kwargs: dict[str, Any], seed: int) -> tuple[float, float]:
    """Seconds for ``steps`` steps of the vector env of ``n`` users, and LE calls per step."""
    env = RecUserVectorEnv(n, **env_kwargs)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    env.step(pick(env.action_masks(), rng))  # warm-up
    with counting(env.model) as calls:
        start = time.perf_counter()
        for _ in range(steps):
            env.step(pick(env.action_masks(), rng))
        took = time.perf_counter() - start
    return took, sum(calls.values()) / steps


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--le", default="ml-100k-smollm2", help="user model name ('fake': numpy)")
    parser.add_argument(
        "--le-kwargs", default="{}", help='its arguments as JSON, e.g. \'{"device": "cuda"}\''
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 32, 64], help="values of N")
    parser.add_argument("--steps", type=int, default=20, help="timed steps of all N users")
    parser.add_argument("--seed", type=int, default=0, help="seed of users and actions")
    args = parser.parse_args(argv)

    le_kwargs = json.loads(args.le_kwargs)
    env_kwargs = {"le": args.le, "le_kwargs": le_kwargs}
    start = time.perf_counter()
    model = user_model(args.le, le_kwargs)
    loaded = time.perf_counter() - start
    torch = sys.modules.get("torch")  # loaded by an LLM user model, not by the fake
    threads = torch.get_num_threads() if torch is not None else "n/a (torch not loaded)"
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, numpy {np.__version__}"
        + (f", torch {torch.__version__}" if torch is not None else "")
    )
    name = f"{args.le} {json.dumps(le_kwargs)}" if le_kwargs else args.le
    print(
        f"user model: {name} ({model.n_items} items, state_dim "
        f"{model.state_dim}, window {model.window}; loaded in {loaded:.1f} s), device "
        f"{getattr(model, 'device', 'cpu')}, torch threads {threads}"
    )
    print(f"{args.steps} timed steps of all N users (user-steps/s = N * steps / seconds)\n")
    print(
        "|    N | single envs, one by one | vector env, batched | vector / single "
        "| LE calls/step (single -> vector) |"
    )
    print("|---:|---:|---:|---:|---|")
    for n in args.sizes:
        t_single, c_single = time_singles(n, args.steps, env_kwargs, args.seed)
        t_vector, c_vector = time_vector(n, args.steps, env_kwargs, args.seed)
        print(
            f"| {n:>4} | {n * args.steps / t_single:>22.1f} | {n * args.steps / t_vector:>19.1f} "
            f"| {t_single / t_vector:>14.2f}x | {c_single:.1f} -> {c_vector:.1f} |"
        )


if __name__ == "__main__":
    main()
