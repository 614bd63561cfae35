"""The item-embedding SB3 policies (``agents.sb3.policies``) on ``RecUser-v0(le="fake")``.

The learning sanity checks train PPO and DQN from random embeddings for a few thousand steps
on the fake user model (~10 s in all on 2 cores) and require held-out returns far above the
untrained policy's and random-item's: they fail if the item head stops learning (an optimizer
that misses its parameters, scores that ignore the state, a mask that hides the wrong items).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("stable_baselines3")
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3 import A2C, DQN, PPO

import recgym  # noqa: F401  (registers the env ids)
from agents.baselines.recuser import RandomItemAgent, SMGreedyAgent
from agents.sb3 import SB3Agent, save_for_evaluation
from agents.sb3.policies import (
    MASKED,
    ItemDQNPolicy,
    ItemPolicy,
    MaskableItemPolicy,
    item_policy,
    item_policy_kwargs,
)
from agents.sb3.vec_env import make_recuser_vec_env
from benchmarks.studies.recuser_sb3 import algo_kwargs, evaluate
from recgym.agent import reset_agent

REPO = Path(__file__).resolve().parents[1]
N_ITEMS = 200
FAKE: dict[str, Any] = {"le": "fake", "le_kwargs": {"n_items": N_ITEMS}}
DICT: dict[str, Any] = {**FAKE, "observation": "dict", "max_history": 64}
EPISODES = 64


def _test_return(agent: Any, **env_kwargs: Any) -> float:
    return float(evaluate(agent, EPISODES, **env_kwargs)["return"].mean())


def _model(cls: type, seed: int = 0, init: str = "random", **kwargs: Any) -> Any:
    env = make_recuser_vec_env(16, seed=seed, users="train", **DICT)
    return cls(
        item_policy(cls.__name__),
        env,
        policy_kwargs=item_policy_kwargs(env, init),
        seed=seed,
        device="cpu",
        **kwargs,
    )


def test_item_policy_picks_the_class_for_each_algorithm() -> None:
    assert item_policy("PPO") is ItemPolicy and item_policy("A2C") is ItemPolicy
    assert item_policy("DQN") is ItemDQNPolicy and item_policy("sb3_contrib:QRDQN") is ItemDQNPolicy
    assert item_policy("sb3_contrib:MaskablePPO") is MaskableItemPolicy
    env = make_recuser_vec_env(2, **DICT)
    with pytest.raises(ValueError, match="init must be one of"):
        item_policy_kwargs(env, "sm")
    with pytest.raises(ValueError, match="RecUser-v0 env or RecUserVecEnv"):
        item_policy_kwargs(object(), "le")
    with pytest.raises(ValueError, match="Discrete item action space"):
        PPO(ItemPolicy, "Pendulum-v1")


@pytest.mark.parametrize("cls", [PPO, A2C, DQN, MaskablePPO])
def test_le_init_scores_items_as_the_state_model(cls: type) -> None:
    """With the LE's item vectors, the untrained policy's scores are the SM's (times the
    scale), seen items masked, so it acts as sm-greedy does."""
    model = _model(cls, init="le")
    env = gym.make("RecUser-v0", users="test", **DICT)
    obs, _ = env.reset(seed=3)
    tensor, _ = model.policy.obs_to_tensor(obs)
    with torch.no_grad():
        net = model.q_net if cls is DQN else model.policy
        scores = (
            net(tensor) if cls is DQN else net.get_distribution(tensor).distribution.logits
        ).numpy()[0]
    sm = 10.0 * env.unwrapped.model.item_vectors() @ obs["state"]
    seen = np.zeros(N_ITEMS, dtype=bool)
    seen[obs["history"][obs["history"] >= 0]] = True
    if cls is DQN:
        np.testing.assert_allclose(scores[~seen], sm[~seen], rtol=1e-5, atol=1e-4)
    else:  # logits of a softmax: equal up to a constant
        diff = scores[~seen] - sm[~seen]
        np.testing.assert_allclose(diff, diff[0], atol=1e-3)
    assert (scores[seen] < MASKED / 2).all() and seen.any()
    agent = SB3Agent.from_model(model)
    assert _test_return(agent, **DICT) == pytest.approx(
        _test_return(SMGreedyAgent.from_env(env), **FAKE)
    )


@pytest.mark.parametrize(
    ("cls", "kwargs", "steps"),
    [
        (PPO, {"learning_rate": 3e-3, "n_steps": 64, "batch_size": 256}, 20_000),
        # The study's own DQN settings (gamma 0.9, lr 1e-3, 2 updates per vector step).
        (DQN, {**algo_kwargs("DQN", 16), "learning_starts": 1_000}, 6_000),
    ],
)
def test_item_policy_learns_from_random_embeddings(
    cls: type, kwargs: dict[str, Any], steps: int
) -> None:
    model = _model(cls, **kwargs)
    before = _test_return(SB3Agent.from_model(model), **DICT)
    model.learn(steps)
    after = _test_return(SB3Agent.from_model(model), **DICT)
    random_agent = RandomItemAgent.from_env(gym.make("RecUser-v0", **FAKE))
    reset_agent(random_agent, 0)
    chance = _test_return(random_agent, **FAKE)
    # Measured: untrained ~0.7-0.8 and random-item ~0.9; trained PPO ~3.3, DQN ~3.0 (the
    # SM's own greedy choice, which knows the fake's geometry, gets ~9.3).
    assert before < 1.5 and chance < 1.5
    assert after > 2.0 + max(before, chance)


def test_a_saved_item_policy_loads_and_plays_the_same(tmp_path: Any) -> None:
    model = _model(MaskablePPO, init="le", n_steps=16, batch_size=64)
    model.learn(512)
    model.save(tmp_path / "model.zip")
    env = gym.make("RecUser-v0", **DICT)
    loaded = SB3Agent.from_env(env, algo="sb3_contrib:MaskablePPO", path=tmp_path / "model.zip")
    assert isinstance(loaded.model.policy, MaskableItemPolicy)
    assert _test_return(loaded, **DICT) == _test_return(SB3Agent.from_model(model), **DICT)
    a, b = loaded.model.policy.state_dict(), model.policy.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_zip_saved_for_evaluation_is_small_and_plays_the_same(tmp_path: Any) -> None:
    model = _model(PPO, init="le", n_steps=16, batch_size=64)
    model.learn(512)
    model.save(tmp_path / "full.zip")
    path = save_for_evaluation(model, tmp_path / "small")
    assert path.name == "small.zip" and model.policy.optimizer.state  # the model keeps its own
    assert path.stat().st_size < 0.6 * (tmp_path / "full.zip").stat().st_size
    loaded = SB3Agent(path, "PPO")
    assert _test_return(loaded, **DICT) == _test_return(SB3Agent.from_model(model), **DICT)
    # The zip names the LE its embeddings started from, not a copy of its vectors.
    assert loaded.model.policy_kwargs["le"] == "fake"
    assert "item_vectors" not in loaded.model.policy_kwargs


def test_the_first_recommender_tutorial_runs_and_its_zip_plays_in_the_runner(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import runpy

    from benchmarks.runner import build_agent
    from benchmarks.runner import evaluate as run_row
    from recgym.evaluation import EvalSpec

    example = runpy.run_path(str(REPO / "docs" / "examples" / "first_recommender.py"))
    zip_path = tmp_path / "first.zip"
    argv = ["--le", "fake", "--steps", "4096", "--envs", "8", "--episodes", "32"]
    returns = example["main"]([*argv, "--save", str(zip_path)])
    # Measured on the fake: popular-item 0.8, the SM-started policy 7.8 before training and
    # 7.6 after 4k steps (learning itself is checked from random embeddings above).
    assert min(returns["trained"], returns["untrained"]) > returns["popular-item"] + 2.0
    out = capsys.readouterr().out
    assert "evaluate it with:" in out and zip_path.is_file()
    kwargs = {"algo": "sb3_contrib:MaskablePPO", "path": str(zip_path)}
    env_kwargs = {"le": "fake", "observation": "dict", "max_history": 256}
    spec = EvalSpec("RecUser-v0", "sb3", kwargs, episodes=32, env_kwargs=env_kwargs)
    env = gym.make("RecUser-v0", **env_kwargs)
    row = run_row(spec, build_agent("sb3", env, kwargs))
    assert row["metrics"]["return"]["mean"] == pytest.approx(returns["trained"])


def test_a_seed_path_plays_the_model_of_each_training_seed(tmp_path: Any) -> None:
    from benchmarks.runner import evaluate as run_row
    from recgym.evaluation import EvalSpec

    alone = []
    for seed in (0, 1):
        model = _model(PPO, seed=seed, n_steps=16, batch_size=64)
        model.learn(256)
        save_for_evaluation(model, tmp_path / f"ppo-seed{seed}.zip")
        alone.append(_test_return(SB3Agent.from_model(model), **DICT))
    assert alone[0] != alone[1]
    path = str(tmp_path / "ppo-seed{seed}.zip")
    agent = SB3Agent.from_env(gym.make("RecUser-v0", **DICT), algo="PPO", path=path)
    spec = EvalSpec("RecUser-v0", "sb3", episodes=EPISODES, seeds=(0, 1), env_kwargs=DICT)
    row = run_row(spec, agent)
    np.testing.assert_allclose(row["metrics"]["return"]["seed_means"], alone)
    assert agent.config()["path"] == path
    with pytest.raises(FileNotFoundError, match="ppo-seed2"):
        agent.reset(seed=2)
