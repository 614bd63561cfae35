"""The greedy ``RecUser-v0`` agents on the ``"fake"`` user model: ``sm-greedy`` (argmax of the
SM's state-item similarity) and the privileged ``rm-greedy`` (argmax of the RM's reward for the
true history), checked against brute force; ``candidate_rewards`` against per-item
``rewards``; the users' histories reaching the agents that take them."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import recgym  # noqa: F401 (registers the envs)
from agents import AGENTS, make_agent
from agents.baselines.recuser import RMGreedyAgent, SMGreedyAgent
from benchmarks.episodes import play_episodes
from benchmarks.runner import evaluate
from recgym.agent import act_batch, takes_action_masks, takes_histories
from recgym.evaluation import EvalSpec
from recgym.le import FakeUserModel

N_ITEMS = 30
FAKE: dict[str, Any] = {"le": "fake", "le_kwargs": {"n_items": N_ITEMS}}


def _rows(obs: Any, n: int) -> list[Any]:
    if isinstance(obs, dict):
        return [{key: value[i] for key, value in obs.items()} for i in range(n)]
    return list(obs)


def _states(obs: Any) -> np.ndarray:
    return np.asarray(obs["state"] if isinstance(obs, dict) else obs, dtype=np.float64)


def _steps(observation: str, n: int = 8, steps: int = 6) -> Any:
    """``(observations, masks, histories, model)`` of a vector env along a few steps of random
    unseen items (users restart as they leave)."""
    env = gym.make_vec("RecUser-v0", num_envs=n, observation=observation, **FAKE)
    obs, _ = env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        masks = env.unwrapped.action_masks()
        yield _rows(obs, n), masks, env.unwrapped.histories(), env.unwrapped.model
        actions = np.array([rng.choice(np.flatnonzero(row)) for row in masks])
        obs, *_ = env.step(actions)
    env.close()


@pytest.mark.parametrize("observation", ["state", "dict"])
def test_sm_greedy_is_the_argmax_of_state_times_vectors_among_unseen_items(
    observation: str,
) -> None:
    env = gym.make("RecUser-v0", observation=observation, **FAKE)
    agent = make_agent("sm-greedy", env)
    assert isinstance(agent, SMGreedyAgent) and takes_action_masks(agent)
    assert not takes_histories(agent)  # honest: the observation is all it reads
    assert agent.config() == {"item_vectors": "LE fake SM"}
    for observations, masks, histories, model in _steps(observation):
        vectors = model.item_vectors().astype(np.float64)
        picks = act_batch(agent, observations, masks, histories)
        for obs, mask, history, pick in zip(observations, masks, histories, picks, strict=True):
            unseen = [j for j in range(N_ITEMS) if j not in set(history.tolist())]
            assert mask[unseen].all() and mask.sum() == len(unseen)
            scores = [float(_states(obs) @ vectors[j]) for j in unseen]
            assert pick == unseen[int(np.argmax(scores))]
            assert pick not in history
    env.close()


def test_rm_greedy_is_the_argmax_of_the_rewards_among_unseen_items() -> None:
    env = gym.make("RecUser-v0", **FAKE)
    agent = make_agent("rm-greedy", env)
    assert isinstance(agent, RMGreedyAgent) and takes_histories(agent)
    assert agent.config() == {"user_model": "LE fake RM", "candidates": "all"}
    seen_any = False
    for observations, masks, histories, model in _steps("state"):
        picks = act_batch(agent, observations, masks, histories)
        for mask, history, pick in zip(masks, histories, picks, strict=True):
            unseen = np.flatnonzero(mask)
            seen_any |= len(unseen) < N_ITEMS
            rewards = [float(model.rewards([history], np.array([j]))[0]) for j in unseen]
            assert pick == unseen[int(np.argmax(rewards))] and pick not in history
    assert seen_any
    # A single env: the history from env.unwrapped.history(), the mask from the info.
    obs, info = env.reset(seed=1)
    history = env.unwrapped.history()  # type: ignore[attr-defined]
    assert history.dtype == np.int64 and len(history) == info["history_len"]
    pick = agent.act(obs, action_mask=info["action_mask"], history=history)
    assert pick == agent.act_batch([obs], info["action_mask"][None].astype(bool), [history])[0]
    env.close()


def test_rm_greedy_prefilter_scores_the_top_k_by_sm_score() -> None:
    env = gym.make("RecUser-v0", **FAKE)
    sm = make_agent("sm-greedy", env)
    top1 = make_agent("rm-greedy", env, candidates=1)
    top5 = make_agent("rm-greedy", env, candidates=5)
    assert top5.config() == {"user_model": "LE fake RM", "candidates": 5}  # type: ignore[attr-defined]
    for observations, masks, histories, model in _steps("state", steps=3):
        # K=1: the RM sees only the SM's best item.
        assert act_batch(top1, observations, masks, histories) == act_batch(sm, observations, masks)
        picks = act_batch(top5, observations, masks, histories)
        scores = np.where(masks, sm.scores(observations), -np.inf)  # type: ignore[attr-defined]
        for row, history, pick in zip(scores, histories, picks, strict=True):
            best5 = np.argsort(-row, kind="stable")[:5]
            rewards = model.rewards([history] * 5, best5)
            assert pick == best5[int(np.argmax(rewards))]
    with pytest.raises(ValueError, match="candidates must be None"):
        RMGreedyAgent(FakeUserModel(), candidates=0)
    env.close()


def test_rm_greedy_without_histories_says_how_to_get_them() -> None:
    env = gym.make("RecUser-v0", **FAKE)
    agent = make_agent("rm-greedy", env)
    obs, info = env.reset(seed=0)
    with pytest.raises(ValueError, match=r"needs each user's full current history.*histories="):
        agent.act(obs, action_mask=info["action_mask"])
    with pytest.raises(ValueError, match="needs each user's full current history"):
        act_batch(agent, [obs], info["action_mask"][None])
    with pytest.raises(ValueError, match="one history per observation"):
        act_batch(agent, [obs], None, [np.array([1]), np.array([2])])
    with pytest.raises(ValueError, match="RecUser-v0 env"):
        SMGreedyAgent.from_env(gym.make("RecSeq-v0", split="test"))
    with pytest.raises(ValueError, match="SM states of length 16"):
        make_agent("sm-greedy", env).act(np.zeros(3, dtype=np.float32))
    env.close()


def test_greedy_agents_beat_random_on_the_fixed_episodes() -> None:
    env = gym.make("RecUser-v0", **FAKE)
    means = {}
    for name in ("random-item", "sm-greedy", "rm-greedy"):
        values, _ = play_episodes(
            "RecUser-v0", make_agent(name, env), split="test", episodes=32, env_kwargs=FAKE
        )
        means[name] = values["reward"].mean()
    assert means["rm-greedy"] > means["random-item"] + 0.1, means
    assert means["sm-greedy"] > means["random-item"] + 0.1, means
    # The runner: histories reach rm-greedy (it raises without them), its config is recorded.
    row = evaluate(
        EvalSpec("RecUser-v0", "rm-greedy", split="test", episodes=32, env_kwargs=FAKE),
        make_agent("rm-greedy", env),
    )
    assert row["agent_config"] == {"user_model": "LE fake RM", "candidates": "all"}
    assert row["metrics"]["reward"]["mean"] == pytest.approx(means["rm-greedy"])
    assert {"sm-greedy", "rm-greedy"} <= set(AGENTS)
    env.close()


def test_histories_are_the_users_current_histories() -> None:
    env = gym.make_vec("RecUser-v0", num_envs=4, observation="dict", max_history=64, **FAKE)
    env.reset(seed=0)
    before = env.unwrapped.histories()
    rng = np.random.default_rng(1)
    for _ in range(5):
        masks = env.unwrapped.action_masks()
        actions = np.array([rng.choice(np.flatnonzero(row)) for row in masks])
        obs, _, terminated, truncated, info = env.step(actions)
        after = env.unwrapped.histories()
        for i, history in enumerate(after):
            assert history.dtype == np.int64
            padded = obs["history"][i]
            np.testing.assert_array_equal(history, padded[padded >= 0])
            if info["accepted"][i] and not (terminated[i] or truncated[i]):
                np.testing.assert_array_equal(history, np.append(before[i], actions[i]))
        before = after
    env.close()


def test_fake_candidate_rewards_equal_per_item_rewards() -> None:
    model = FakeUserModel(n_items=N_ITEMS)
    rng = np.random.default_rng(0)
    histories = [rng.integers(N_ITEMS, size=n) for n in (0, 1, 4, 12, 25)]
    candidates = rng.integers(N_ITEMS, size=(5, 7))
    out = model.candidate_rewards(histories, candidates)
    assert out.shape == (5, 7) and out.dtype == np.float64
    for i, history in enumerate(histories):
        for j, item in enumerate(candidates[i]):
            assert out[i, j] == model.rewards([history], np.array([item]))[0]
    assert model.candidate_rewards(histories, np.zeros((5, 0), dtype=np.int64)).shape == (5, 0)
    with pytest.raises(ValueError, match=r"must be a \(5, k\) int array.*got shape \(5,\)"):
        model.candidate_rewards(histories, candidates[:, 0])
    with pytest.raises(ValueError, match=r"\(5, k\).*got shape \(4, 7\)"):
        model.candidate_rewards(histories, candidates[:4])
    with pytest.raises(ValueError, match=r"int array"):
        model.candidate_rewards(histories, candidates.astype(np.float64))
    with pytest.raises(ValueError, match=rf"in 0\.\.{N_ITEMS - 1}"):
        model.candidate_rewards(histories, candidates + N_ITEMS)
