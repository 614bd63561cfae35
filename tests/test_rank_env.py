"""``RecRank-v0``: the Gymnasium API, candidates from the retriever and LlamaRec's training
candidates, rewards and both metric families checked against the retriever's own ranking."""

from __future__ import annotations

import pickle
import re
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import recgym  # noqa: F401 (registers the env ids)
from agents.baselines.ranking import RandomOrderAgent, RetrieverOrderAgent
from recgym.envs.rank import LETTERS, RecRankEnv, ranks_from_scores
from recgym.error import RecGymError
from recgym.metrics import ndcg_at_k, recall_at_k
from recgym.models.popularity import PopularityRetriever


@pytest.fixture(scope="module")
def pop() -> PopularityRetriever:
    return PopularityRetriever.movielens()


@pytest.fixture
def env(pop: PopularityRetriever) -> gym.Env[Any, Any]:
    return gym.make("RecRank-v0", retriever=pop, render_mode="ansi")


def inner(env: gym.Env[Any, Any]) -> RecRankEnv:
    unwrapped = env.unwrapped
    assert isinstance(unwrapped, RecRankEnv)
    return unwrapped


def test_check_env_passes_without_warnings(pop: PopularityRetriever) -> None:
    env = gym.make("RecRank-v0", retriever=pop, render_mode="ansi")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=False)
    assert not [str(w.message) for w in caught]


def test_reset_step_and_render(env: gym.Env[Any, Any]) -> None:
    obs, info = env.reset(seed=0, options={"split": "test", "index": 7})
    assert env.observation_space.contains(obs)
    assert info["retriever"] == "popularity" and info["index"] == 7
    _, reward, terminated, truncated, info = env.step(np.zeros(20, np.float32))
    assert terminated and not truncated and isinstance(reward, float)
    assert set(info["metrics"]) >= {"cand/ndcg@10", "cand/hit", "full/ndcg@10", "full/recall@50"}
    assert "REWARD (NDCG@10)" in (env.render() or "")
    with pytest.raises(RecGymError, match="call reset"):
        env.step(np.zeros(20, np.float32))


def test_seeded_resets_draw_the_same_episodes(pop: PopularityRetriever) -> None:
    def draws(seed: int) -> list[int]:
        env = gym.make("RecRank-v0", retriever=pop, split="validation")
        env.reset(seed=seed)
        return [env.reset()[1]["index"] for _ in range(5)]

    assert draws(3) == draws(3) != draws(4)


def test_test_candidates_are_the_retrievers_top_20(
    env: gym.Env[Any, Any], pop: PopularityRetriever
) -> None:
    e = inner(env)
    split = e.task.splits["test"]
    idx = [0, 100, 942]
    expected, _ = pop.retrieve([split.histories[i] for i in idx], 20)
    got = np.stack([e.candidates(i, "test") for i in idx])
    np.testing.assert_array_equal(got, expected)
    for i, row in zip(idx, got, strict=True):
        assert not np.isin(row, split.histories[i]).any()


def test_retriever_order_scores_the_retrievers_full_ranking(
    env: gym.Env[Any, Any], pop: PopularityRetriever
) -> None:
    e = inner(env)
    split = e.task.splits["test"]
    n = e.num_episodes("test")
    agent = RetrieverOrderAgent()
    result = e.score(
        [agent.act(o) for o in e.observations(range(n), "test")], list(range(n)), "test"
    )
    top50, _ = pop.retrieve(split.histories, 50)
    np.testing.assert_allclose(result.rewards, ndcg_at_k(top50, split.targets, 10))
    for k in (10, 20, 50):
        np.testing.assert_allclose(
            result.metrics[f"full/ndcg@{k}"], ndcg_at_k(top50, split.targets, k)
        )
        np.testing.assert_allclose(
            result.metrics[f"full/recall@{k}"], recall_at_k(top50, split.targets, k)
        )
    np.testing.assert_allclose(result.metrics["cand/hit"], recall_at_k(top50, split.targets, 20))
    # For K <= 20 the among-candidates and full-ranking figures coincide on retriever candidates.
    np.testing.assert_allclose(result.metrics["cand/ndcg@10"], result.metrics["full/ndcg@10"])


def test_reward_is_ndcg_of_the_induced_order(env: gym.Env[Any, Any]) -> None:
    e = inner(env)
    i = next(i for i in range(e.num_episodes("test")) if e.label(i, "test") >= 0)
    pos = e.label(i, "test")
    for place in (0, 1, 4, 9, 10, 19):
        order = [p for p in range(20) if p != pos]
        order.insert(place, pos)
        action = np.zeros(20, np.float32)
        action[order] = 1 - np.arange(20) / 20
        reward = e.score([action], i, "test").rewards[0]
        assert reward == pytest.approx(1 / np.log2(place + 2) if place < 10 else 0.0)


def test_ties_and_nan_count_against_the_target() -> None:
    scores = np.array([[0.5, 0.5, 0.5], [np.nan, 1.0, 0.0], [0.0, np.nan, 1.0]])
    np.testing.assert_array_equal(ranks_from_scores(scores, np.array([0, 0, 2])), [2, 2, 0])


def test_missed_target_scores_zero_among_candidates(env: gym.Env[Any, Any]) -> None:
    e = inner(env)
    i = next(i for i in range(e.num_episodes("test")) if e.label(i, "test") < 0)
    result = e.score([np.linspace(1, -1, 20)], i, "test")
    assert result.rewards[0] == 0 and result.metrics["cand/hit"][0] == 0
    assert result.metrics["cand/ndcg@10"][0] == 0


def test_train_candidates_follow_llamarec(env: gym.Env[Any, Any], pop: PopularityRetriever) -> None:
    e = inner(env)
    split = e.task.splits["train"]
    assert e.num_episodes("train") == 97_171
    other = RecRankEnv(retriever=pop)
    labels = []
    for i in (0, 1, 5000, 97_170):
        cands = e.candidates(i, "train")
        assert len(set(cands.tolist())) == 20
        assert (cands == split.targets[i]).sum() == 1
        assert not np.isin(cands, split.histories[i]).any()
        np.testing.assert_array_equal(cands, other.candidates(i, "train"))
        labels.append(e.label(i, "train"))
        assert cands[labels[-1]] == split.targets[i]
    assert len(set(labels)) > 1  # shuffled: the target is not always first


def test_prompt_letters_the_candidates_in_order(env: gym.Env[Any, Any]) -> None:
    e = inner(env)
    obs = e.observation(3, "validation")
    lettered = re.findall(r"^\(([A-Z])\) (.*)$", obs["prompt"], flags=re.M)
    assert [letter for letter, _ in lettered] == list(LETTERS[:20])
    assert [title for _, title in lettered] == [e.task.texts[j] for j in obs["candidates"]]
    hist = e.task.splits["validation"].histories[3]
    numbered = re.findall(r"^\((\d+)\) (.*)$", obs["prompt"], flags=re.M)
    assert [t for _, t in numbered] == [e.task.texts[j] for j in hist[-20:]]
    recent = obs["history"][obs["history"] >= 0]
    np.testing.assert_array_equal(recent, hist[-200:])


def test_batched_score_matches_steps(env: gym.Env[Any, Any]) -> None:
    e = inner(env)
    agent = RandomOrderAgent(seed=1)
    idx = list(range(0, 60, 3))
    actions = [agent.act(o) for o in e.observations(idx, "validation")]
    batched = e.score(actions, idx, "validation").rewards
    stepped = []
    for i, a in zip(idx, actions, strict=True):
        env.reset(options={"split": "validation", "index": i})
        stepped.append(env.step(a)[1])
    np.testing.assert_allclose(batched, stepped)


def test_bad_input_gets_clear_errors(pop: PopularityRetriever) -> None:
    e = RecRankEnv(retriever=pop)
    with pytest.raises(ValueError, match=r"20 float scores, one per candidate .* shape \(19,\)"):
        e.score([np.zeros(19)], 0, "test")
    with pytest.raises(ValueError, match="n_candidates"):
        RecRankEnv(retriever=pop, n_candidates=27)
    with pytest.raises(ValueError, match="k must be"):
        RecRankEnv(retriever=pop, k=21)
    with pytest.raises(ValueError, match="train_candidates"):
        RecRankEnv(retriever=pop, train_candidates="hard")
    with pytest.raises(TypeError, match="retriever must be"):
        RecRankEnv(retriever=42)  # type: ignore[arg-type]
    small = PopularityRetriever([np.arange(10)], 10)
    with pytest.raises(RecGymError, match="scores 10 items"):
        RecRankEnv(retriever=small).num_episodes()


def test_pickles(env: gym.Env[Any, Any]) -> None:
    env.reset(seed=0, options={"split": "test", "index": 2})
    clone = pickle.loads(pickle.dumps(env))
    a = np.linspace(-1, 1, 20, dtype=np.float32)
    assert clone.step(a)[1] == env.step(a)[1]


def test_runner_makes_a_leaderboard_row(pop: PopularityRetriever) -> None:
    from benchmarks.runner import evaluate
    from benchmarks.table import markdown_table
    from recgym.evaluation import EvalSpec

    row = evaluate(
        EvalSpec(
            "RecRank-v0",
            "retriever-order",
            split="test",
            episodes=943,
            env_kwargs={"retriever": "popularity"},
            batch_size=500,
        ),
        RetrieverOrderAgent(),
    )
    assert row["reward"] == "ndcg" and row["k"] == 10 and row["episodes"] == 943
    split = RecRankEnv(retriever=pop).task.splits["test"]
    top, _ = pop.retrieve(split.histories, 20)
    expected = ndcg_at_k(top, split.targets, 10).mean()
    assert row["metrics"]["full/ndcg@10"]["mean"] == pytest.approx(expected)
    assert row["metrics"]["reward"]["mean"] == pytest.approx(expected)
    assert "| retriever-order |" in markdown_table([row])
    assert '"retriever": "popularity"' in row["command"]


def test_a_named_retriever_is_trained_once_and_proposes_the_candidates() -> None:
    from recgym.models.seqrec import pretrained

    tiny = {"max_epochs": 1, "d": 16, "layers": 1}
    env = RecRankEnv(split="test", retriever="gru4rec", retriever_kwargs=tiny)
    model = pretrained("gru4rec", progress=False, **tiny)  # from the cache the env filled
    split = env.task.splits["test"]
    expected, _ = model.retrieve(split.histories[:5], 20)
    np.testing.assert_array_equal([env.candidates(i, "test") for i in range(5)], expected)
    assert env.task.retriever_name == "gru4rec"


def test_malformed_actions_are_named_as_given(pop: PopularityRetriever) -> None:
    # The action is checked before it gets a batch dimension: a (19,) action is "(19,)", not
    # "(1, 19)", through step and through a batched score alike.
    e = RecRankEnv(retriever=pop, split="test")
    expected = r"20 float scores, one per candidate \(Box\(20\)\)"
    bad: list[tuple[Any, type[Exception], str]] = [
        (np.zeros(19), ValueError, r"shape \(19,\)"),
        (np.zeros((1, 20)), ValueError, r"shape \(1, 20\)"),
        (None, TypeError, "NoneType None"),
        ({"scores": np.zeros(20)}, TypeError, "dict"),
        ("ABCDEFGHIJKLMNOPQRST", TypeError, "str 'ABCDEFGHIJKLMNOPQRST'"),
        (np.zeros(20, dtype=complex), TypeError, "complex128"),
    ]
    for action, error, given in bad:
        e.reset(options={"index": 0})
        with pytest.raises(error, match=f"^an action must be {expected}; got .*{given}"):
            e.step(action)
        with pytest.raises(error, match=f"^actions\\[1\\] must be {expected}; got .*{given}"):
            e.score([np.zeros(20), action], [0, 1])
    with pytest.raises(ValueError, match=r"\(batch, 20\) array; got shape \(3, 19\)"):
        e.score(np.zeros((3, 19)), 0)
    with pytest.raises(TypeError, match="takes a batch"):
        e.score(None, 0)  # type: ignore[arg-type]
    # The episode stays open after a refused action, and integer or bool scores are numbers.
    e.reset(options={"index": 0})
    assert e.step(np.arange(20))[2]
    e.reset(options={"index": 0})
    assert e.step(np.ones(20, dtype=bool))[1] == e.score([np.ones(20)], 0).rewards[0]


def test_data_version_of_a_retriever_object_is_the_same_in_every_process() -> None:
    """Two equal retriever objects (as two processes would build) give one ``data_version``;
    a named retriever's digest is what it always was."""
    from recgym.models.popularity import PopularityRetriever

    versions = {
        RecRankEnv(retriever=PopularityRetriever.movielens()).data_version for _ in range(2)
    }
    assert len(versions) == 1
    # Pinned: it changed once on purpose (issue 26: the digest now covers the episodes and the
    # retriever's candidates), never by accident.
    assert RecRankEnv(retriever="popularity").data_version == "aadc7ad9ad1e01fc"
