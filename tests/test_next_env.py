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


def test_unmasked_metrics_rank_the_history_too(env: RecNextEnv) -> None:
    """RecBole's protocol: the same order, the history not masked, ranks the target after it."""
    histories = env.task.splits["test"].histories
    i = min(range(len(histories)), key=lambda j: len(histories[j]))  # 19 movies
    hist, target = _episode(env, i)
    unseen = [j for j in range(env.n_items) if j not in set(hist) and j != target]
    order = np.array([*hist, *unseen[:3], target, *unseen[3:]])
    batch = env.score([_ranked_scores(env, order)], i, "test")
    rank = len(hist) + 3
    assert batch.ranks[0] == 3 and rank < 50
    assert batch.metrics["unmasked/ndcg@50"][0] == pytest.approx(1 / math.log2(rank + 2))
    assert batch.metrics["unmasked/hit@20"][0] == 0.0 and batch.metrics["hit@5"][0] == 1.0


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
    with pytest.raises(ValueError, match=r"1682 float scores, one per item .* shape \(10,\)"):
        env.step(np.zeros(10))
    with pytest.raises(ValueError, match="'scores'"):
        env.step({"reasoning": "no scores"})


def _v0_target_probability(
    scores: np.ndarray, targets: np.ndarray, histories: list[np.ndarray], tau: float
) -> np.ndarray:
    """v0's softmax term as it shipped (before issue 28), the reference for finite rewards."""
    s = np.where(np.isnan(scores), -np.inf, np.asarray(scores, dtype=np.float64))
    logits = s / tau
    for i, items in enumerate(histories):
        logits[i, items[items != targets[i]]] = -np.inf
    top = logits.max(axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    weights = np.exp(logits - top)
    total = weights.sum(axis=1)
    rows = np.arange(len(s))
    return np.divide(weights[rows, targets], total, out=np.zeros(len(s)), where=total > 0)


@pytest.mark.parametrize("reward", ["ndcg", "fused"])
def test_finite_actions_earn_what_v0_gave_them(reward: str) -> None:
    # The NaN fix must leave every reward that was a number bit-identical.
    from recgym.envs.next_item import fuse
    from recgym.metrics import target_ranks

    env = RecNextEnv(split="test", reward=reward)
    rng = np.random.default_rng(28)
    rows = rng.integers(0, env.num_episodes(), 48).tolist()
    episodes = env.task.splits["test"]
    targets, histories = episodes.targets[rows], [episodes.histories[i] for i in rows]
    n = env.n_items
    batches = [
        rng.uniform(-1, 1, (48, n)).astype(np.float32),  # the action space
        rng.normal(0, 30, (48, n)),  # raw logits
        rng.integers(-2, 3, (48, n)).astype(np.float64),  # many ties
        np.where(rng.random((48, n)) < 0.1, np.nan, rng.uniform(-1, 1, (48, n))),
        np.where(rng.random((48, n)) < 0.1, -np.inf, rng.uniform(-5, 5, (48, n))),
        rng.uniform(-1e305, 1e305, (48, n)) * 1e-2,  # large but divisible by tau
    ]
    for actions in batches:
        result = env.score(actions, rows, "test")
        p = _v0_target_probability(actions, targets, histories, env.tau)
        old, _ = fuse(target_ranks(actions, targets, histories), p, env.k, env.beta)
        assert np.isfinite(old).all()
        np.testing.assert_array_equal(result.metrics["p_target"], p)
        np.testing.assert_array_equal(result.rewards, old)


@pytest.mark.parametrize("reward", ["ndcg", "fused"])
def test_infinite_and_huge_scores_give_finite_rewards(reward: str) -> None:
    env = RecNextEnv(split="test", reward=reward)
    hist, target = _episode(env, 0)
    free = [i for i in range(env.n_items) if i != target and i not in set(hist.tolist())]
    n_free = len(free) + 1  # the items the softmax runs over: the target and the unseen ones

    def scores(fill: float, **at: float) -> np.ndarray:
        out = np.full(env.n_items, fill)
        for where, value in at.items():
            out[target if where == "target" else free[int(where[1:])]] = value
        return out

    cases = [  # scores, p_target, target rank
        (scores(0.0, target=np.inf), 1.0, 0),
        (scores(-np.inf, target=np.inf), 1.0, 0),
        (scores(0.0, target=np.inf, o0=np.inf), 0.5, 1),  # +inf ties share the mass
        (scores(0.0, target=np.inf, o0=np.inf, o1=-np.inf), 0.5, 1),
        (scores(0.0, o0=np.inf), 0.0, n_free - 1),  # ties with the zeros count against it
        (scores(0.0, target=1e307), 1.0, 0),  # 1e307 / 0.02 overflows
        (scores(0.0, target=1e307, o0=1.5e307), 0.0, 1),
        (scores(1e308), 1 / n_free, n_free - 1),  # all tied: uniform, the worst rank
        (scores(-1e308, target=1e308), 1.0, 0),  # the difference overflows
        (scores(np.nan, target=np.inf), 1.0, 0),
        (scores(np.inf), 1 / n_free, n_free - 1),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value encountered" on the way
        result = env.score([c[0] for c in cases], 0, "test")
    np.testing.assert_allclose(result.metrics["p_target"], [c[1] for c in cases], rtol=1e-12)
    np.testing.assert_array_equal(result.ranks, [c[2] for c in cases])
    ndcg = [1 / math.log2(c[2] + 2) if c[2] < env.k else 0.0 for c in cases]
    expected = [env.beta * d + (1 - env.beta) * c[1] for d, c in zip(ndcg, cases, strict=True)]
    np.testing.assert_allclose(result.rewards, expected, rtol=1e-12)
    for metric in result.metrics.values():
        assert np.isfinite(metric).all() and ((metric >= 0) & (metric <= 1)).all()
    env.reset(options={"index": 0})
    _, r, *_ = env.step(cases[0][0])
    assert r == result.rewards[0]


def test_malformed_actions_are_named_as_given(env: RecNextEnv) -> None:
    expected = r"1682 float scores, one per item \(Box\(1682\)\)"
    for action, error, given in [
        (None, TypeError, "NoneType None"),
        ("0.5", TypeError, "str '0.5'"),
        (np.zeros(3), ValueError, r"shape \(3,\)"),
        ({"scores": None}, TypeError, "NoneType"),
        (np.zeros(env.n_items, dtype=complex), TypeError, "complex128"),
    ]:
        env.reset(options={"index": 0})
        with pytest.raises(error, match=f"^an action must be {expected}; got .*{given}"):
            env.step(action)
        with pytest.raises(error, match=f"^actions\\[1\\] must be {expected}"):
            env.score([np.zeros(env.n_items), action], 0, "test")
    with pytest.raises(TypeError, match="takes a batch"):
        env.score("scores", 0, "test")  # type: ignore[arg-type]


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
