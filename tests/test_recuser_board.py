"""RecUser-v0 on the leaderboard (the ``"fake"`` user model): the fixed episodes of
``benchmarks.episodes`` against single envs played by hand, action masks reaching the agents
that take them (random, popularity, SB3), the runner's row and its command, the Markdown table
and the stale-row check."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import recgym  # noqa: F401 (registers the envs)
from agents import make_agent
from agents.baselines.recuser import PopularItemAgent, RandomItemAgent
from benchmarks.episodes import EPISODE_SEED, is_episodic, play_episodes, split_kwargs
from benchmarks.runner import evaluate, load_rows
from benchmarks.store import check_rows
from benchmarks.table import markdown_table
from recgym.agent import act_batch, takes_action_masks
from recgym.evaluation import EvalSpec

REPO = Path(__file__).resolve().parents[1]
N_ITEMS = 20
FAKE: dict[str, Any] = {"le": "fake", "le_kwargs": {"n_items": N_ITEMS}}


class MaskChecker:
    """Records every mask it is given and recommends the lowest allowed item."""

    def __init__(self) -> None:
        self.masks: list[np.ndarray] = []

    def act(self, observation: Any) -> int:
        raise AssertionError("the runner should call act_batch")

    def act_batch(self, observations: list[Any], action_masks: np.ndarray) -> list[int]:
        assert action_masks.shape == (len(observations), N_ITEMS)
        self.masks.append(action_masks)
        return [int(np.flatnonzero(row)[0]) for row in action_masks]


class NoMasks:
    """An agent without the ``action_masks`` keyword: always item 0, seen or not."""

    def act(self, observation: Any) -> int:
        return 0


def _by_hand(agent: PopularItemAgent, episode: int, split: str = "test") -> tuple[float, int]:
    """Episode ``episode`` of the runner, played on a single env one step at a time."""
    env = gym.make("RecUser-v0", users=split, **FAKE)
    obs, info = env.reset(seed=EPISODE_SEED + episode, options={"user": episode})
    total, steps, done = 0.0, 0, False
    while not done:
        action = agent.act(obs, action_mask=info["action_mask"])
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        steps += 1
        done = terminated or truncated
    env.close()
    return total, steps


def test_recuser_is_played_step_by_step_and_text_envs_are_not() -> None:
    assert is_episodic("RecUser-v0")
    assert not is_episodic("RecSeq-v0") and not is_episodic("RecSearch-v0")
    assert split_kwargs("RecUser-v0", "test", FAKE) == {**FAKE, "users": "test"}
    assert split_kwargs("RecSeq-v0", "test", {"k": 5}) == {"split": "test", "k": 5}
    with pytest.raises(ValueError, match="users argument"):
        split_kwargs("RecUser-v0", "test", {**FAKE, "users": "train"})


def test_fixed_episodes_equal_single_envs_and_do_not_depend_on_the_batch() -> None:
    agent = PopularItemAgent(np.arange(N_ITEMS, dtype=np.float64)[::-1].copy())
    whole, _ = play_episodes("RecUser-v0", agent, split="test", episodes=7, env_kwargs=FAKE)
    parts, _ = play_episodes(
        "RecUser-v0", agent, split="test", episodes=7, env_kwargs=FAKE, batch_size=3
    )
    for key in ("return", "length", "taken", "reward"):
        np.testing.assert_allclose(whole[key], parts[key], err_msg=key)
    for j in range(7):
        total, steps = _by_hand(agent, j)
        assert whole["return"][j] == pytest.approx(total)
        assert whole["length"][j] == steps
    assert np.allclose(whole["reward"], whole["return"] / whole["length"])
    assert (whole["taken"] <= whole["length"]).all()


def test_masks_reach_the_agents_that_take_them() -> None:
    checker = MaskChecker()
    assert takes_action_masks(checker) and not takes_action_masks(NoMasks())
    values, _ = play_episodes("RecUser-v0", checker, split="test", episodes=5, env_kwargs=FAKE)
    assert checker.masks and all(m.dtype == bool for m in checker.masks)
    # The mask forbids what is in the history: an agent that follows it is never refused for a
    # seen item, one that ignores it keeps recommending item 0 and earns 0 once it is seen.
    blind, _ = play_episodes("RecUser-v0", NoMasks(), split="test", episodes=5, env_kwargs=FAKE)
    assert any(m.sum(axis=1).min() < N_ITEMS for m in checker.masks)  # taken items drop out
    assert (blind["taken"] <= 1).all() and (values["taken"] >= 0).all()
    with pytest.raises(ValueError, match="one row per observation"):
        act_batch(checker, [None, None], np.ones((3, N_ITEMS), dtype=bool))


def test_random_and_popular_items_respect_the_mask() -> None:
    masks = np.zeros((50, N_ITEMS), dtype=bool)
    masks[:, [3, 7, 11]] = True
    random_agent = RandomItemAgent(N_ITEMS, seed=0)
    picks = random_agent.act_batch([None] * 50, masks)
    assert set(picks) == {3, 7, 11}
    random_agent.reset(seed=0)
    assert random_agent.act_batch([None] * 50, masks) == picks  # reset re-seeds
    popular = PopularItemAgent(np.arange(N_ITEMS, dtype=np.float64))
    assert popular.act_batch([None] * 50, masks) == [11] * 50
    assert popular.act_batch([None]) == [N_ITEMS - 1]  # no mask: any item
    with pytest.raises(ValueError, match=r"allow no action in rows \[0\]"):
        random_agent.act_batch([None], np.zeros((1, N_ITEMS), dtype=bool))
    with pytest.raises(ValueError, match="shape"):
        popular.act_batch([None], np.ones((1, N_ITEMS + 1), dtype=bool))


def test_popular_item_counts_the_training_users() -> None:
    from recgym.envs.users import logged_users

    env = gym.make("RecUser-v0", users="test", **FAKE)
    agent = make_agent("popular-item", env)
    counts = np.bincount(np.concatenate(logged_users("fake", FAKE["le_kwargs"], "train")))
    np.testing.assert_array_equal(agent.counts[: len(counts)], counts)  # type: ignore[attr-defined]
    assert make_agent("random-item", env).config() == {"n_items": N_ITEMS}  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="Discrete"):
        RandomItemAgent.from_env(gym.make("RecSeq-v0", split="test"))
    env.close()


@pytest.mark.parametrize("algo", ["DQN", "PPO"])
def test_sb3_agent_acts_within_the_mask(algo: str) -> None:
    from stable_baselines3 import DQN, PPO

    from agents.sb3 import SB3Agent

    env = gym.make("RecUser-v0", **FAKE)
    cls = DQN if algo == "DQN" else PPO
    model = cls("MlpPolicy", env, seed=0, device="cpu")
    obs = [env.observation_space.sample() for _ in range(64)]
    rng = np.random.default_rng(0)
    masks = rng.random((64, N_ITEMS)) < 0.2
    masks[np.arange(64), rng.integers(N_ITEMS, size=64)] = True  # at least one allowed item
    greedy = SB3Agent.from_model(model)
    picks = greedy.act_batch(obs, action_masks=masks)
    assert all(masks[i, a] for i, a in enumerate(picks))
    # With every item allowed, the masked choice is the model's own greedy action.
    free = greedy.act_batch(obs, action_masks=np.ones((64, N_ITEMS), dtype=bool))
    assert free == [int(a) for a in greedy.act_batch(obs)]
    if algo == "PPO":  # sampling stays inside the mask too
        sampled = SB3Agent.from_model(model, deterministic=False).act_batch(obs, masks)
        assert all(masks[i, a] for i, a in enumerate(sampled))
    with pytest.raises(ValueError, match="allow no action in rows"):
        greedy.act_batch(obs[:1], action_masks=np.zeros((1, N_ITEMS), dtype=bool))
    env.close()


@pytest.fixture(scope="module")
def popular_row() -> dict[str, Any]:
    env = gym.make("RecUser-v0", **FAKE)
    agent = make_agent("popular-item", env)
    env.close()
    return evaluate(
        EvalSpec(
            "RecUser-v0",
            "popular-item",
            split="test",
            episodes=12,
            seeds=[0, 1],
            env_kwargs=FAKE,
            batch_size=5,
        ),
        agent,
    )


def test_row_of_an_interactive_env(popular_row: dict[str, Any]) -> None:
    row = popular_row
    assert row["env_id"] == "RecUser-v0" and row["env_version"] == "v0"
    assert set(row["metrics"]) == {"reward", "return", "length", "taken"}
    assert row["k"] is None and row["reward"] == "rm-probability"
    assert row["episodes"] == 12 and row["seeds"] == [0, 1]
    assert row["env_kwargs"]["users"] == "test" and row["env_kwargs"]["le"] == "fake"
    assert row["env_kwargs"]["patience"] == 3 and row["env_kwargs"]["observation"] == "state"
    # A deterministic agent on fixed episodes: both seeds give the same mean.
    means = row["metrics"]["return"]["seed_means"]
    assert means[0] == means[1]
    values, env = play_episodes(
        "RecUser-v0",
        PopularItemAgent.from_env(gym.make("RecUser-v0", **FAKE)),
        split="test",
        episodes=12,
        env_kwargs=FAKE,
    )
    assert row["metrics"]["return"]["mean"] == pytest.approx(values["return"].mean())
    assert row["data_version"] == env.batch.data_version
    table = markdown_table([row])
    assert "### RecUser-v0" in table and "reward=rm-probability" in table and "k=" not in table
    # SB3 rows are told apart by their algorithm (module path dropped).
    sb3_row = {**row, "agent": "sb3", "agent_config": {"algo": "sb3_contrib:MaskablePPO"}}
    assert "| sb3 (MaskablePPO) |" in markdown_table([sb3_row])


def test_stale_check_and_command_of_an_interactive_row(
    popular_row: dict[str, Any], tmp_path: Path
) -> None:
    (fresh,) = check_rows([popular_row])
    assert not fresh.get("stale")
    (changed,) = check_rows([{**popular_row, "data_version": "0" * 12}])
    assert changed["stale"] and "differs from the current data" in changed["stale"][0]
    args = shlex.split(popular_row["command"])
    assert args[:4] == ["python", "-m", "benchmarks", "run"]
    results = tmp_path / "again.jsonl"
    out = subprocess.run(
        [sys.executable, *args[1:], "--out", str(results), "--quiet"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "RecUser-v0" in out.stdout
    (again,) = load_rows(results)
    for key, stats in popular_row["metrics"].items():
        assert again["metrics"][key]["mean"] == pytest.approx(stats["mean"], abs=1e-12), key
