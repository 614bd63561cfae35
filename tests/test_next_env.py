"""RecNext-v0: spaces, the NDCG and fused rewards, history masking, batching, agents."""

from __future__ import annotations

import math
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import recgym  # noqa: F401 (registers the env ids)
from agents import make_agent
from benchmarks.runner import evaluate
from recgym.envs.next_item import RecNextEnv, fused_reward
from recgym.evaluation import EvalSpec

TINY = {"max_epochs": 1, "d": 16, "layers": 1}


@pytest.fixture(scope="module")
def env() -> RecNextEnv:
    return RecNextEnv(split="test", render_mode="ansi")


def _episode(env: RecNextEnv, i: int, split: str = "test") -> tuple[np.ndarray, int]:
    episodes = env.task.splits[split]
    return episodes.histories[i], int(episodes.targets[i])


def _ranked_scores(env: RecNextEnv, order: np.ndarray) -> np.ndarray:
    """Scores in (-1, 1] that rank the items of ``order`` first to last."""
    scores = np.empty(env.n_items, dtype=np.float64)
    scores[order] = 1.0 - np.arange(env.n_items) / env.n_items
    return scores


def test_passes_the_gymnasium_and_sb3_checkers() -> None:
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning fails the test
        check_env(gym.make("RecNext-v0").unwrapped)
        sb3_check_env(gym.wrappers.FilterObservation(gym.make("RecNext-v0"), ["history"]))


def test_observation_holds_the_history(env: RecNextEnv) -> None:
    obs, info = env.reset(options={"split": "test", "index": 5})
    hist, _ = _episode(env, 5)
    assert info["index"] == 5 and env.observation_space.contains(obs)
    padded = obs["history"]
    assert padded.shape == (200,) and (padded[: 200 - len(hist)] == -1).all()
    assert padded[200 - len(hist[-200:]) :].tolist() == hist[-200:].tolist()
    lines = obs["prompt"].split("oldest first:\n")[1].splitlines()
    assert len(lines) == min(20, len(hist))
    assert lines[-1] == f"{len(lines)}. {env.task.texts[hist[-1]]}"


def test_ndcg_reward_is_the_rank_of_the_target_with_history_masked(env: RecNextEnv) -> None:
    hist, target = _episode(env, 0)
    # The history first, then 3 unseen items, then the target: it ranks 4th once the history
    # is masked (0-based rank 3).
    unseen = [i for i in range(env.n_items) if i not in set(hist) and i != target]
    order = np.array([*hist, *unseen[:3], target, *unseen[3:]])
    batch = env.score([_ranked_scores(env, order)], 0, "test")
    assert batch.ranks[0] == 3
    assert batch.rewards[0] == pytest.approx(1 / math.log2(5))
    assert batch.metrics["ndcg@5"][0] == pytest.approx(1 / math.log2(5))
    assert batch.metrics["hit@5"][0] == 1.0 and batch.metrics["hit@10"][0] == 1.0
    # Beyond k the reward is 0.
    far = RecNextEnv(split="test", k=3)
    assert far.score([_ranked_scores(env, order)], 0, "test").rewards[0] == 0.0


def test_ties_and_nan_rank_against_the_target(env: RecNextEnv) -> None:
    hist, target = _episode(env, 0)
    flat = env.score([np.zeros(env.n_items)], 0, "test")
    assert flat.ranks[0] == env.n_items - len(set(hist) - {target}) - 1  # the worst rank
    assert flat.rewards[0] == 0.0
    scores = np.full(env.n_items, np.nan)
    scores[target] = 0.0
    best = env.score([scores], 0, "test")
    assert best.ranks[0] == 0 and best.rewards[0] == 1.0
    scores[target] = np.nan
    assert env.score([scores], 0, "test").ranks[0] == flat.ranks[0]


def test_fused_reward_matches_its_definition() -> None:
    env = RecNextEnv(split="test", reward="fused", k=1000, beta=0.9, tau=0.5)
    hist, target = _episode(env, 1)
    rng = np.random.default_rng(0)
    scores = rng.uniform(-1, 1, env.n_items)
    scores[hist[0]] = 5.0  # a masked history item must take no probability mass
    batch = env.score([scores], 1, "test")
    keep = np.ones(env.n_items, dtype=bool)
    keep[hist] = False
    keep[target] = True
    logits = scores[keep] / 0.5
    p = math.exp(scores[target] / 0.5 - logits.max()) / np.exp(logits - logits.max()).sum()
    rank = int((scores[keep] >= scores[target]).sum() - 1)
    ndcg = 1 / math.log2(rank + 2) if rank < 1000 else 0.0
    assert batch.metrics["p_target"][0] == pytest.approx(p)
    assert batch.rewards[0] == pytest.approx(0.9 * ndcg + 0.1 * p)
    # The NDCG reward logs the same softmax term but does not add it.
    plain = RecNextEnv(split="test", tau=0.5).score([scores], 1, "test")
    assert plain.metrics["p_target"][0] == pytest.approx(p)
    assert plain.rewards[0] == pytest.approx(ndcg)


def test_fused_reward_is_finite_on_degenerate_scores() -> None:
    targets = np.array([0, 1])
    scores = np.array([[-np.inf, 0.0, 1.0], [np.nan, np.nan, np.nan]])
    reward, ndcg, p = fused_reward(
        scores, targets, [np.array([2]), np.array([], dtype=np.int64)], k=3, beta=0.5, tau=0.1
    )
    assert np.isfinite(reward).all() and np.isfinite(p).all()
    assert ndcg[0] == pytest.approx(1 / math.log2(3))  # item 2 masked, item 1 ahead


def test_step_takes_reasoning_and_rejects_bad_shapes(env: RecNextEnv) -> None:
    env.reset(options={"index": 2})
    scores = np.random.default_rng(1).uniform(-1, 1, env.n_items).astype(np.float32)
    _, reward, terminated, truncated, info = env.step(
        {"scores": scores, "reasoning": "likes 90s dramas"}
    )
    assert terminated and not truncated and info["reasoning"] == "likes 90s dramas"
    assert reward == pytest.approx(env.score([scores], 2, "test").rewards[0])
    assert "TARGET RANK" in (env.render() or "")
    env.reset(options={"index": 2})
    with pytest.raises(ValueError, match=r"one score per item, shape \(1682,\)"):
        env.step(np.zeros(10))
    with pytest.raises(ValueError, match="'scores'"):
        env.step({"reasoning": "no scores"})


def test_batched_score_equals_steps(env: RecNextEnv) -> None:
    rng = np.random.default_rng(2)
    actions = rng.uniform(-1, 1, (6, env.n_items))
    batch = env.score(actions, list(range(6)), "test")
    for i in range(6):
        env.reset(options={"index": i})
        _, reward, *_ = env.step(actions[i])
        assert reward == pytest.approx(batch.rewards[i])


def test_seqrec_agent_scores_are_the_models_own_evaluation(env: RecNextEnv) -> None:
    agent: Any = make_agent("seqrec", env, model="gru4rec", **TINY)
    row = evaluate(
        EvalSpec(
            "RecNext-v0",
            "seqrec",
            agent_kwargs={"model": "gru4rec", **TINY},
            episodes=300,
            batch_size=100,
        ),
        agent,
    )
    episodes = env.task.splits["test"]
    hist, targets = episodes.histories[:300], episodes.targets[:300]
    expected = agent.retriever.evaluate(hist, targets, k=10)
    assert row["metrics"]["ndcg@10"]["mean"] == pytest.approx(expected["ndcg@10"], abs=1e-9)
    assert row["metrics"]["hit@10"]["mean"] == pytest.approx(expected["hit@10"], abs=1e-9)
    assert row["agent_config"]["model"] == "gru4rec" and row["reward"] == "ndcg"


def test_rl4rec_agent_scores_are_the_models_own_evaluation(env: RecNextEnv) -> None:
    from agents.rl4rec import RL4RecRecommender, rl4rec_config, rl4rec_dir

    kwargs: dict[str, Any] = {"algo": "sqn", "backbone_kwargs": TINY, "q_weight": 0.5}
    agent: Any = make_agent("rl4rec", env, **kwargs)
    rec = agent.retriever
    assert rec.config.q_weight == 0.5 and rec.config.backbone.d == 16
    row = evaluate(EvalSpec("RecNext-v0", "rl4rec", agent_kwargs=kwargs, episodes=943), agent)
    assert row["metrics"]["ndcg@10"]["mean"] == pytest.approx(rec.metrics["test/ndcg@10"], abs=1e-6)
    assert row["metrics"]["hit@10"]["mean"] == pytest.approx(rec.metrics["test/hit@10"], abs=1e-6)
    assert row["agent_config"]["model"] == "sqn-rating"
    # The second build loads the cached model: the same scores and metrics.
    path = rl4rec_dir(rl4rec_config("sqn", "rating", backbone_kwargs=TINY, q_weight=0.5))
    again = RL4RecRecommender.load(path)
    histories = env.task.splits["test"].histories[:50]
    np.testing.assert_array_equal(again.score(histories), rec.score(histories))
    assert again.metrics == rec.metrics and again.config == rec.config


def test_popularity_agent_beats_random_scores(env: RecNextEnv) -> None:
    agent = make_agent("popularity", env)
    pop = evaluate(EvalSpec("RecNext-v0", "popularity", episodes=943), agent)
    rng = np.random.default_rng(0)
    random = env.score(rng.uniform(-1, 1, (943, env.n_items)), list(range(943)), "test")
    assert pop["metrics"]["ndcg@10"]["mean"] > 3 * random.metrics["ndcg@10"].mean()
    assert pop["metrics"]["ndcg@10"]["mean"] > 0.03
