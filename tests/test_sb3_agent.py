"""Trained stable-baselines3 models through the benchmark runner (``--agent sb3``).

A PPO model is trained for 256 steps on ``RecRank-v0``'s numeric observation keys (popularity
retriever: no training, ~1 s to build), saved, and evaluated on the unfiltered test split by
name through ``build_agent`` / ``evaluate`` and the command line (~10 s in all on 2 cores).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.wrappers import FilterObservation

pytest.importorskip("stable_baselines3")
from stable_baselines3 import PPO

import recgym  # noqa: F401  (registers the env ids)
from agents.sb3 import SB3Agent
from benchmarks.runner import build_agent, evaluate, load_rows
from recgym.error import ModelLoadError, UnknownNameError
from recgym.evaluation import EvalSpec

REPO = Path(__file__).resolve().parents[1]
KEYS = ["candidates", "history"]
ENV_KWARGS: dict[str, Any] = {"retriever": "popularity"}
EPISODES = 40


class Recorder:
    """Passes an agent through, keeping every action it returns."""

    def __init__(self, agent: SB3Agent) -> None:
        self.agent = agent
        self.actions: list[np.ndarray] = []

    def act_batch(self, observations: Sequence[Any]) -> list[Any]:
        actions = self.agent.act_batch(observations)
        self.actions += actions
        return actions

    def act(self, observation: Any) -> Any:
        return self.act_batch([observation])[0]

    def config(self) -> dict[str, Any]:
        return self.agent.config()


def _filtered(split: str) -> gym.Env:
    return FilterObservation(gym.make("RecRank-v0", split=split, **ENV_KWARGS), KEYS)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[PPO, Path]:
    """A PPO model trained briefly on the filtered train split, and its saved .zip."""
    env = _filtered("train")
    model = PPO(
        "MultiInputPolicy", env, n_steps=64, batch_size=32, n_epochs=2, seed=0, device="cpu"
    )
    model.learn(256)
    path = tmp_path_factory.mktemp("sb3") / "ppo.zip"
    model.save(path)
    return model, path


@pytest.fixture(scope="module")
def test_env() -> gym.Env:
    return gym.make("RecRank-v0", split="test", **ENV_KWARGS)


def _stacked(split: str, indices: list[int]) -> dict[str, np.ndarray]:
    """The filtered observations of ``indices`` as the training wrapper makes them, stacked."""
    filtered, base = _filtered(split), gym.make("RecRank-v0", split=split, **ENV_KWARGS)
    obs = [filtered.observation(o) for o in base.unwrapped.observations(indices, split)]
    return {key: np.stack([o[key] for o in obs]) for key in KEYS}


def test_runner_row_replays_the_saved_model(saved: tuple[PPO, Path], test_env: gym.Env) -> None:
    model, path = saved
    kwargs = {"algo": "PPO", "path": str(path)}
    agent = build_agent("sb3", test_env, kwargs)
    assert isinstance(agent, SB3Agent) and agent.model is not model  # loaded from the file
    recorder = Recorder(agent)
    row = evaluate(
        EvalSpec(
            "RecRank-v0",
            "sb3",
            agent_kwargs=kwargs,
            env_kwargs=ENV_KWARGS,
            episodes=EPISODES,
            batch_size=16,
        ),
        recorder,
    )
    assert row["agent_config"] == {
        "algo": "PPO",
        "path": str(path),
        "deterministic": True,
        "policy": "MultiInputActorCriticPolicy",
    }
    assert row["env_kwargs"]["retriever"] == "popularity" and row["episodes"] == EPISODES
    assert '"algo": "PPO"' in row["command"] and str(path) in row["command"]
    for key, stats in row["metrics"].items():
        assert math.isfinite(stats["mean"]) and math.isfinite(stats["ci95"]), key

    # The actions are the trained model's deterministic predictions on the filtered
    # observations, batch by batch (the runner's batches of 16).
    indices = list(range(EPISODES))
    obs = _stacked("test", indices)
    expected = np.concatenate(
        [
            model.predict({k: v[lo : lo + 16] for k, v in obs.items()}, deterministic=True)[0]
            for lo in range(0, EPISODES, 16)
        ]
    )
    actions = np.stack(recorder.actions)
    assert actions.shape == (EPISODES, 20)
    np.testing.assert_array_equal(actions, expected)
    assert len(np.unique(actions.round(4), axis=0)) > 1  # the observations reach the policy
    # ... and the row's metrics are those actions' scores.
    scores = test_env.unwrapped.score(expected, indices, "test")
    assert row["metrics"]["reward"]["mean"] == pytest.approx(scores.rewards.mean(), abs=1e-12)
    for key, values in scores.metrics.items():
        assert row["metrics"][key]["mean"] == pytest.approx(values.mean(), abs=1e-12), key


def test_single_and_batched_actions_agree(saved: tuple[PPO, Path], test_env: gym.Env) -> None:
    model, path = saved
    agent = SB3Agent(path, "ppo", device="cpu")  # .zip found, name in any case
    base = test_env.unwrapped
    observations = base.observations([0, 1, 2], "test")
    batched = np.stack(agent.act_batch(observations))
    single = np.stack([agent.act(o) for o in observations])
    np.testing.assert_allclose(batched, single, atol=1e-6)
    assert all(test_env.action_space.contains(a) for a in batched)
    assert agent.act_batch([]) == []
    assert SB3Agent(path.with_suffix(""), "PPO").config()["path"] == str(path.with_suffix(""))
    wrapped = SB3Agent.from_model(model)
    np.testing.assert_allclose(np.stack(wrapped.act_batch(observations)), batched, atol=1e-6)
    assert wrapped.config() == {
        "algo": "PPO",
        "path": None,
        "deterministic": True,
        "policy": "MultiInputActorCriticPolicy",
    }
    by_module = SB3Agent(path, "stable_baselines3:PPO")
    assert by_module.config()["algo"] == "stable_baselines3:PPO"


def test_sampling_is_seeded_by_reset(saved: tuple[PPO, Path], test_env: gym.Env) -> None:
    _, path = saved
    agent = build_agent("sb3", test_env, {"algo": "PPO", "path": str(path), "deterministic": False})
    observations = test_env.unwrapped.observations(list(range(8)), "test")
    agent.reset(seed=3)
    first = np.stack(agent.act_batch(observations))
    agent.reset(seed=3)
    again = np.stack(agent.act_batch(observations))
    agent.reset(seed=4)
    other = np.stack(agent.act_batch(observations))
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    assert agent.config()["deterministic"] is False


def test_clear_errors(saved: tuple[PPO, Path], test_env: gym.Env, tmp_path: Path) -> None:
    model, path = saved
    with pytest.raises(TypeError, match="needs path and algo"):
        build_agent("sb3", test_env, {})
    with pytest.raises(FileNotFoundError, match=r"model\.save"):
        build_agent("sb3", test_env, {"algo": "PPO", "path": str(tmp_path / "nothing.zip")})
    with pytest.raises(UnknownNameError, match="did you mean 'PPO'"):
        build_agent("sb3", test_env, {"algo": "PPOO", "path": str(path)})
    with pytest.raises(UnknownNameError, match=r"module\.path:Class"):
        SB3Agent(path, "no_such_module:PPO")
    with pytest.raises(TypeError, match="not a stable-baselines3 algorithm"):
        SB3Agent(path, "numpy:ndarray")
    with pytest.raises(ModelLoadError, match="could not load"):
        SB3Agent(path, "DQN")  # a PPO file read as DQN
    with pytest.raises(TypeError, match="expected a stable-baselines3 algorithm"):
        SB3Agent.from_model(object())  # type: ignore[arg-type]

    agent = SB3Agent.from_model(model)
    obs = test_env.unwrapped.observation(0, "test")
    with pytest.raises(
        ValueError, match=r"no \['history'\].*reads keys \['candidates', 'history'\]"
    ):
        agent.act({"prompt": obs["prompt"], "candidates": obs["candidates"]})
    with pytest.raises(ValueError, match=r"'candidates' with shape \(20,\).*shape \(10,\)"):
        agent.act({**obs, "candidates": obs["candidates"][:10]})
    # A mismatched env fails when the agent is built, before any episode is played.
    with pytest.raises(ValueError, match="Dict observation with keys"):
        build_agent("sb3", gym.make("RecSeq-v0", split="test"), {"algo": "PPO", "path": str(path)})
    small = gym.make("RecRank-v0", split="test", n_candidates=10, **ENV_KWARGS)
    with pytest.raises(ValueError, match="'candidates' with shape"):
        build_agent("sb3", small, {"algo": "PPO", "path": str(path)})


def test_command_line_end_to_end(saved: tuple[PPO, Path], tmp_path: Path) -> None:
    _, path = saved
    out = tmp_path / "rows.jsonl"
    args = [
        sys.executable,
        "-m",
        "benchmarks",
        "run",
        "--env",
        "RecRank-v0",
        "--env-kwargs",
        json.dumps(ENV_KWARGS),
        "--agent",
        "sb3",
        "--agent-kwargs",
        json.dumps({"algo": "PPO", "path": str(path)}),
        "--episodes",
        "20",
        "--out",
        str(out),
        "--quiet",
    ]
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # The table names an SB3 row by its algorithm and policy.
    assert "| sb3 (PPO, MultiInputActorCriticPolicy) |" in done.stdout
    (row,) = load_rows(out)
    assert row["agent_config"]["path"] == str(path) and row["episodes"] == 20


def test_import_agents_stays_light() -> None:
    code = (
        "import sys, agents\n"
        "assert 'sb3' in agents.AGENTS\n"
        "heavy = [m for m in ('torch', 'stable_baselines3') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)
