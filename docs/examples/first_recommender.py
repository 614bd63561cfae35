"""Train your first recommender on RecUser-v0: MaskablePPO with an item-embedding policy.

The simulated user is the LLM environment shipped with recgym (no download, no training of
the user model). The agent starts from the user model's own item vectors, learns from the
rewards of the training users for a few minutes of CPU, and is then compared with
recommending the most popular item on held-out users::

    python docs/examples/first_recommender.py               # ~3 minutes on 2 CPU cores
    python docs/examples/first_recommender.py --steps 50000 # longer: higher returns
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import gymnasium as gym
from sb3_contrib import MaskablePPO

from agents.baselines.recuser import PopularItemAgent
from agents.sb3 import SB3Agent, make_recuser_vec_env, save_for_evaluation
from agents.sb3.policies import MaskableItemPolicy, item_policy_kwargs
from benchmarks.runner import evaluate
from recgym.evaluation import EvalSpec
from recgym.le import DEFAULT_LE


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Train, evaluate against popular-item on held-out users (before and after training),
    save the model; the mean test returns."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--le", default=DEFAULT_LE, help="the user model ('fake': a test double)")
    parser.add_argument("--steps", type=int, default=20_000, help="training env steps")
    parser.add_argument("--envs", type=int, default=32, help="users simulated together")
    parser.add_argument("--episodes", type=int, default=100, help="held-out test episodes")
    parser.add_argument("--save", default="first_recommender.zip", help="where the model goes")
    args = parser.parse_args(argv)

    # 1. The env: N simulated users from the training split, one batched LLM call per step.
    #    "dict" observations hold the user-model state and the latest items the user has.
    env_kwargs = {"le": args.le, "observation": "dict", "max_history": 256}
    env = make_recuser_vec_env(args.envs, seed=0, users="train", **env_kwargs)

    # 2. The agent: item scores <W state, item embedding> + bias, embeddings started from the
    #    user model's item vectors; MaskablePPO never recommends an item the user has seen.
    model = MaskablePPO(
        MaskableItemPolicy,
        env,
        policy_kwargs=item_policy_kwargs(env, init="le"),
        n_steps=64,
        batch_size=256,
        n_epochs=4,
        learning_rate=1e-3,
        gamma=0.9,
        seed=0,
        device="cpu",
    )

    # 3. Held-out users: the same fixed episodes for every agent (same users, start
    #    histories and acceptance draws), greedy over the items each user has not seen.
    def test_return(name: str, agent: Any) -> float:
        spec = EvalSpec("RecUser-v0", name, episodes=args.episodes, env_kwargs=env_kwargs)
        mean = float(evaluate(spec, agent)["metrics"]["return"]["mean"])
        print(f"{name:>24}: mean return {mean:.2f} over {args.episodes} test users")
        return mean

    popular = PopularItemAgent.from_env(gym.make("RecUser-v0", **env_kwargs))
    returns = {
        "popular-item": test_return("popular-item", popular),
        # Before training, the policy is the user model's own next-item guess (sm-greedy).
        "untrained": test_return("MaskablePPO, untrained", SB3Agent.from_model(model)),
    }
    start = time.perf_counter()
    model.learn(args.steps, progress_bar=False)
    print(f"trained {args.steps} steps in {(time.perf_counter() - start) / 60:.1f} min")
    returns["trained"] = test_return("MaskablePPO, trained", SB3Agent.from_model(model))

    # 4. Save it; the benchmark runner plays the zip like any other agent.
    path = save_for_evaluation(model, args.save)
    print(f"saved {path}; evaluate it with:")
    print(
        "  python -m benchmarks run --env RecUser-v0 --env-kwargs "
        '\'{"observation": "dict", "max_history": 256}\' --agent sb3 --agent-kwargs '
        f'\'{{"algo": "sb3_contrib:MaskablePPO", "path": "{path}"}}\' --split test '
        "--episodes 200 --out my_rows.jsonl"
    )
    return returns


if __name__ == "__main__":
    main()
