"""The Rec-R1 text envs (``RecSearch-v0``, ``RecSeq-v0``): the Gymnasium API, seeding, options,
rendering, spec round trips, pickling, vectorisation, rewards and metrics checked by hand, the
batched scorer against one-by-one steps, and the search task's data."""

from __future__ import annotations

import pickle
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import recgym
from recgym.envs.text import EVAL_METRICS, RetrievalTextEnv, SplitEpisodes, fenced_block
from recgym.error import RecGymError
from recgym.metrics import ndcg_at_k, recall_at_k
from recgym.rewards import FORMAT_PENALTY, format_answer

ENV_IDS = ["RecSearch-v0", "RecSeq-v0"]  # the Rec-R1 text envs
NOWHERE = "xqzjv wqpfzk blorptang"  # words in no document of either catalog
BROKEN = [
    "",
    "no tags at all",
    '<answer>{"query": "dress"}',
    '<answer>{"query": 5}</answer>',
    '<answer>{"keywords": "dress"}</answer>',
    "<answer>not json</answer>",
    '<answer>{"query": "dress"}</answer><think>late</think>',
    b"\xff\xfe",
]


def unwrapped(env: gym.Env[Any, Any]) -> RetrievalTextEnv:
    inner = env.unwrapped
    assert isinstance(inner, RetrievalTextEnv)
    return inner


def request_of(env: gym.Env[Any, Any], split: str, index: int) -> str:
    """The text between the prompt's triple backticks (the request, or the history)."""
    return fenced_block(unwrapped(env).observations([index], split)[0])


@pytest.fixture(params=ENV_IDS)
def env_id(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def env(env_id: str) -> gym.Env[Any, Any]:
    return gym.make(env_id, render_mode="ansi")


# --------------------------------------------------------------------------- the Gymnasium API


def test_registered_ids() -> None:
    assert set(recgym.ENVS) == {
        "RecSearch-v0",
        "RecSeq-v0",
        "RecRank-v0",
        "RecNext-v0",
        "RecPref-v0",
        "RecUser-v0",  # numeric, multi-step: tests/test_recuser.py checks it (le="fake")
    }
    assert all(env_id in gym.registry for env_id in recgym.ENVS)


def test_check_env(env_id: str) -> None:
    env = gym.make(env_id, render_mode="ansi")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=False)
    assert not [str(w.message) for w in caught]


def test_make_with_the_passive_checker_warns_nothing(env_id: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make(env_id, render_mode="ansi")
        obs, _ = env.reset(seed=3)
        assert env.observation_space.contains(obs)
        obs, reward, terminated, truncated, _ = env.step(format_answer("love it"))
        assert isinstance(obs, str) and isinstance(reward, float)
        assert terminated is True and truncated is False
        assert isinstance(env.render(), str)
        env.close()


def test_episode_is_one_step_and_info_has_every_key(env: gym.Env[Any, Any]) -> None:
    _, info = env.reset(seed=0)
    assert {"split", "index"} <= set(info) and info["split"] == "train"
    _, _, terminated, truncated, info = env.step(format_answer("comfortable"))
    assert terminated and not truncated
    assert set(info) >= {"rewards", "metrics", "retrieved", "query", "format_error"}
    assert set(info["rewards"]) == {"format", "ndcg"}
    assert set(info["metrics"]) == {f"{m}@{k}" for m, k in EVAL_METRICS}
    assert info["query"] == "comfortable" and info["format_error"] == ""
    assert len(info["retrieved"]) <= 10


def test_stepping_twice_without_reset_raises(env: gym.Env[Any, Any]) -> None:
    inner = unwrapped(env)
    with pytest.raises(RecGymError, match="reset"):
        inner.step(format_answer("x"))  # never reset
    env.reset(seed=0)
    env.step(format_answer("x"))
    with pytest.raises(RecGymError, match="reset"):
        env.step(format_answer("x"))
    with pytest.raises(RecGymError, match="reset"):
        inner.step(format_answer("x"))
    env.reset(seed=0)
    env.step(format_answer("x"))  # a reset starts a new episode


# --------------------------------------------------------------------------- seeding and options


def _rollout(env_id: str, seed: int, actions: list[str]) -> list[tuple[str, int, float]]:
    env = gym.make(env_id)
    out = []
    for n, action in enumerate(actions):
        obs, info = env.reset(seed=seed if n == 0 else None)
        _, reward, *_ = env.step(action)
        out.append((obs, info["index"], reward))
    return out


def test_same_seed_same_episodes_and_rewards(env_id: str) -> None:
    actions = [format_answer("love the fit"), format_answer("drama comedy"), "broken"] * 2
    first = _rollout(env_id, 123, actions)
    assert first == _rollout(env_id, 123, actions)
    assert [i for _, i, _ in first] != [i for _, i, _ in _rollout(env_id, 124, actions)]
    assert len({i for _, i, _ in first}) > 1  # episodes are drawn, not repeated


def test_options_pick_the_episode(env: gym.Env[Any, Any]) -> None:
    inner = unwrapped(env)
    for split in ("train", "validation", "test"):
        last = inner.num_episodes(split) - 1
        for index in (0, last):
            obs, info = env.reset(seed=0, options={"split": split, "index": index})
            assert (info["split"], info["index"]) == (split, index)
            assert obs == inner.observations([index], split)[0]
    obs, info = env.reset(options={"index": np.int64(7)})
    assert (info["split"], info["index"]) == ("train", 7)
    _, info = env.reset(seed=5, options={"split": "test"})
    assert info["split"] == "test" and 0 <= info["index"] < inner.num_episodes("test")
    assert len(set(inner.observations(range(20), "test"))) > 1


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"idx": 3}, ValueError, "unknown reset options"),
        ({"split": "dev"}, ValueError, "split must be one of"),
        ({"index": -1}, IndexError, "outside"),
        ({"index": 10**9}, IndexError, "outside"),
        ({"index": "3"}, TypeError, "must be an int"),
        ({"index": 1.0}, TypeError, "must be an int"),
        ({"index": True}, TypeError, "must be an int"),
    ],
)
def test_bad_options_raise_clear_errors(
    env: gym.Env[Any, Any], options: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        env.reset(options=options)


def test_bad_constructor_arguments_raise(env_id: str) -> None:
    with pytest.raises(ValueError, match="split"):
        gym.make(env_id, split="dev")
    with pytest.raises(ValueError, match="k must be"):
        gym.make(env_id, k=0)
    with pytest.raises(recgym.error.UnknownNameError, match="reward"):
        gym.make(env_id, reward="mrr")
    with (
        pytest.warns(UserWarning, match="render_mode"),  # Gymnasium's own warning first
        pytest.raises(ValueError, match="render_mode"),
    ):
        gym.make(env_id, render_mode="human")


@pytest.mark.parametrize(
    ("env_id", "kwargs", "match"),
    [
        ("RecSearch-v0", {"dataset": "clothing"}, "no dataset named 'clothing'"),
        ("RecRank-v0", {"retriever": "bert4rec"}, "no retriever named 'bert4rec'"),
        ("RecPref-v0", {"recommender": "bert4rec"}, "no seqrec model named 'bert4rec'"),
    ],
)
def test_unknown_names_fail_in_make(env_id: str, kwargs: dict[str, Any], match: str) -> None:
    """A misspelt dataset, retriever or judge fails in ``gym.make`` (which loads nothing),
    not at the first ``reset`` after minutes of loading."""
    with pytest.raises(recgym.error.UnknownNameError, match=match):
        gym.make(env_id, **kwargs)


def test_scorer_argument_errors(env: gym.Env[Any, Any]) -> None:
    inner = unwrapped(env)
    inner.close()
    with pytest.raises(RecGymError, match="reset"):
        inner.score([format_answer("x")])  # no current episode
    with pytest.raises(TypeError, match="batch"):
        inner.score(format_answer("x"), 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="indices"):
        inner.score(["a", "b"], [0])
    with pytest.raises(IndexError):
        inner.score(["a"], [10**9])
    with pytest.raises(ValueError, match="split"):
        inner.score(["a"], 0, split="dev")
    assert inner.score([], []).rewards.shape == (0,)


# --------------------------------------------------------------------------- render, spec, pickle


def test_render_ansi_shows_completion_and_top_titles(env: gym.Env[Any, Any]) -> None:
    inner = unwrapped(env)
    obs, _ = env.reset(options={"split": "validation", "index": 4})
    before = env.render()
    assert isinstance(before, str) and obs in before and "COMPLETION" not in before
    completion = format_answer(request_of(env, "validation", 4), reasoning="use the request")
    _, reward, *_ = env.step(completion)
    text = env.render()
    assert isinstance(text, str)
    assert completion[:2000] in text and f"{reward:.4f}" in text
    top = inner.score([completion], 4, "validation").retrieved[0, :5]
    assert (top >= 0).all()
    for item in top:
        assert inner.task.item_titles[item] in text
    targets = inner.task.splits["validation"].targets(4)
    assert all(inner.task.item_titles[t] in text.split("TARGET:")[1] for t in targets)
    assert gym.make(env.spec.id).unwrapped.render() is None  # type: ignore[union-attr]


@pytest.mark.parametrize("action", ["broken", format_answer(NOWHERE)])
def test_render_lists_no_titles_when_nothing_is_retrieved(
    env: gym.Env[Any, Any], action: str
) -> None:
    # Regression: the -1 padding of an empty ranking was rendered as the catalog's last title.
    env.reset(seed=0)
    env.step(action)
    text = env.render()
    assert isinstance(text, str)
    shown = text.split("TOP RETRIEVED:")[1].split("TARGET:")[0]
    assert shown.strip() == "(nothing)"


def test_spec_round_trip(env_id: str) -> None:
    extra = {"history_len": 5} if env_id == "RecSeq-v0" else {}
    env = gym.make(env_id, split="validation", k=50, reward="ndcg", **extra)
    assert env.spec is not None
    assert env.spec.kwargs == {"split": "validation", "k": 50, "reward": "ndcg", **extra}
    again = gym.make(env.spec)
    assert again.spec == env.spec
    for attr in ("split", "k", "reward_spec", *extra):
        assert getattr(again.unwrapped, attr) == getattr(env.unwrapped, attr)
    for seed in (0, 1, 2):
        obs, info = env.reset(seed=seed)
        obs_again, info_again = again.reset(seed=seed)
        assert (obs, info["index"]) == (obs_again, info_again["index"])
        action = format_answer(request_of(env, "validation", info["index"]))
        assert env.step(action)[1] == again.step(action)[1]


def test_pickle_after_use(env: gym.Env[Any, Any]) -> None:
    env.reset(seed=11)
    action = format_answer("love this")
    _, reward, *_ = env.step(action)
    for obj in (env, env.unwrapped):
        # The built task lives in a per-process cache, not on the env: a pickle holds the
        # arguments, the RNG and the episode state only.
        clone = pickle.loads(pickle.dumps(obj))
        with pytest.raises(RecGymError):
            clone.step(action)  # the episode was over when pickled
        assert clone.reset(seed=11) == env.reset(seed=11)
        assert clone.step(action)[1] == env.step(action)[1] == reward
        assert clone.np_random.random() == env.np_random.random()


def test_make_vec_sync(env_id: str) -> None:
    envs = gym.make_vec(env_id, num_envs=2, vectorization_mode="sync")
    obs, info = envs.reset(seed=[4, 5])
    assert isinstance(obs, tuple) and len(obs) == 2 and all(isinstance(o, str) for o in obs)
    actions = (format_answer(fenced_block(obs[0])), "<answer>broken")
    obs, rewards, terminated, truncated, info = envs.step(actions)
    assert rewards.shape == (2,) and terminated.shape == (2,) and truncated.shape == (2,)
    assert terminated.all() and not truncated.any()
    assert rewards[1] == FORMAT_PENALTY and rewards[0] >= 0
    assert info["format_error"][1] == "no_answer"
    envs.step(actions)  # autoreset: the sub-envs reset themselves after the terminal step
    envs.close()


# --------------------------------------------------------------------------- rewards


def test_ndcg_reward_range(env_id: str) -> None:
    env = gym.make(env_id, reward="ndcg")
    inner = unwrapped(env)
    assert (inner.reward_spec.low, inner.reward_spec.high) == (0.0, 1.0)
    rewards = []
    for seed in range(6):
        _, info = env.reset(seed=seed)
        good = format_answer(request_of(env, "train", info["index"]))
        for action in (good, *BROKEN[:3]):
            env.reset(options={"index": info["index"]})
            _, reward, _, _, step_info = env.step(action)
            assert 0.0 <= reward <= 1.0
            assert reward == step_info["rewards"]["ndcg"]
            if action is not good:
                assert reward == 0.0 and step_info["rewards"]["format"] == 0.0
            rewards.append(reward)
    assert max(rewards) > 0


def test_own_reasoning_is_not_penalised_but_broken_format_is(env_id: str) -> None:
    for reward_name, penalty in (("rec-r1", -2.0), ("ndcg", 0.0)):
        env = gym.make(env_id, reward=reward_name)
        _, info = env.reset(options={"split": "validation", "index": 2})
        request = request_of(env, "validation", 2)
        thinking = f"<think>The user wants something like: {request[:200]}</think>\n"
        _, reward, _, _, info = env.step(thinking + format_answer(request))
        assert reward >= 0 and info["format_error"] == "" and info["rewards"]["format"] == 0.0
        for broken in BROKEN:
            env.reset(options={"split": "validation", "index": 2})
            _, reward, _, _, info = env.step(broken)
            assert reward == penalty, broken
            assert info["format_error"] and info["query"] is None
            assert info["rewards"] == {"format": penalty, "ndcg": 0.0}
            assert all(v == 0 for v in info["metrics"].values()) and info["retrieved"] == []


def test_metrics_agree_with_recgym_metrics(env_id: str) -> None:
    inner = unwrapped(gym.make(env_id))
    split, indices = "validation", [0, 1, 2, 3, 5, 8, 13, 21]
    completions = [format_answer(request_of(inner, split, i)) for i in indices]
    completions[-1] = "<answer>broken"
    result = inner.score(completions, indices, split)
    episodes = inner.task.splits[split]
    targets = [episodes.targets(i) for i in indices]
    ranked = result.retrieved
    assert ranked.shape == (len(indices), max(inner.k, 100))
    np.testing.assert_allclose(result.ndcg, ndcg_at_k(ranked, targets, inner.k))
    for name, cut in EVAL_METRICS:
        fn = ndcg_at_k if name == "ndcg" else recall_at_k
        np.testing.assert_allclose(result.metrics[f"{name}@{cut}"], fn(ranked, targets, cut))
    spec = inner.reward_spec
    np.testing.assert_allclose(result.rewards, spec(result.ndcg, result.format_ok))
    assert (ranked[-1] == -1).all() and result.rewards[-1] == FORMAT_PENALTY
    assert result.ndcg[:-1].max() > 0
    # ... and the same numbers come out of step()'s info.
    for j, index in enumerate(indices):
        inner.reset(options={"split": split, "index": index})
        _, reward, _, _, info = inner.step(completions[j])
        assert reward == result.rewards[j]
        assert info["rewards"]["ndcg"] == result.ndcg[j]
        assert info["metrics"] == {key: float(v[j]) for key, v in result.metrics.items()}
        top = ranked[j, :10]
        assert info["retrieved"] == inner.task.retriever.to_item_ids(top[top >= 0]).tolist()


def test_query_in_no_document_scores_zero(env_id: str) -> None:
    env = gym.make(env_id)
    for split, index in (("train", 0), ("test", 9)):
        env.reset(options={"split": split, "index": index})
        _, reward, _, _, info = env.step(format_answer(NOWHERE))
        assert reward == 0.0 and info["format_error"] == ""
        assert info["retrieved"] == [] and info["rewards"] == {"format": 0.0, "ndcg": 0.0}
        assert all(value == 0.0 for value in info["metrics"].values())
        env.reset(options={"split": split, "index": index})
        assert env.step(format_answer(""))[1] == 0.0  # the empty query retrieves nothing


def test_recseq_target_title_as_query_ranks_the_target_first() -> None:
    inner = unwrapped(gym.make("RecSeq-v0"))
    episodes, titles = inner.task.splits["test"], inner.task.item_titles
    indices = list(range(20))
    targets = [int(episodes.targets(i)[0]) for i in indices]
    result = inner.score([format_answer(titles[t]) for t in targets], indices, "test")
    pairs = zip(result.retrieved.tolist(), targets, strict=True)
    ranks = [row.index(t) if t in row else None for row, t in pairs]
    assert all(r is not None and r < 10 for r in ranks), ranks
    assert sum(r == 0 for r in ranks) >= 15, ranks  # a few titles are shared by other movies
    assert (result.ndcg > 0).all() and (result.metrics["recall@10"] == 1).all()
    np.testing.assert_allclose(result.rewards, 0.1 + result.ndcg)
    rank0 = [j for j, r in enumerate(ranks) if r == 0]
    np.testing.assert_allclose(result.ndcg[rank0], 1.0)
    np.testing.assert_allclose(result.rewards[rank0], 1.1)


def test_recsearch_target_document_as_query_ranks_the_target_first() -> None:
    inner = unwrapped(gym.make("RecSearch-v0"))
    episodes = inner.task.splits["validation"]
    target = int(episodes.targets(0)[0])
    document = inner.task.documents[target]
    assert len(document) > 65_536  # past the parser's limit: use its first few hundred words
    result = inner.score([format_answer(document[:3000])], 0, "validation")
    assert result.retrieved[0, 0] == target
    assert result.rewards[0] == pytest.approx(1.1)


def test_recseq_history_is_never_retrieved_but_the_target_can_be(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inner = unwrapped(gym.make("RecSeq-v0"))
    episodes, titles = inner.task.splits["validation"], inner.task.item_titles
    for index in range(10):
        history = episodes.exclude(index)
        assert len(history) >= 4
        target = int(episodes.targets(index)[0])
        assert target not in history
        # The whole history as the query: every history movie matches, none may come back.
        query = " ".join(titles[i] for i in history[-10:])
        ranked = inner.score([format_answer(query)], index, "validation").retrieved[0]
        assert (ranked >= 0).sum() > 100  # genres alone match most of the catalog
        assert not np.isin(ranked, history).any()
    # Even if an episode excluded its own target, the target would still be retrievable.
    index = 0
    target = int(episodes.targets(index)[0])
    history = episodes.exclude(index)
    monkeypatch.setattr(
        type(episodes), "exclude", lambda self, i: np.append(history, target), raising=True
    )
    ranked = inner.score([format_answer(titles[target])], index, "validation").retrieved[0]
    assert target in ranked[:10] and not np.isin(ranked, history).any()


# --------------------------------------------------------------------------- the batched scorer


def _mixed_completions(inner: RetrievalTextEnv, split: str, indices: list[int]) -> list[Any]:
    """Fake-LLM completions (half well-formed), raw-request answers and broken ones."""
    llm = recgym.llm.load("fake", mode="mixed")
    prompts = inner.observations(indices, split)
    fake = [g.text for g in llm.generate(prompts, max_new_tokens=512, temperature=1.0, seed=0)]
    raw = [format_answer(fenced_block(p)) for p in prompts]
    out: list[Any] = []
    for j in range(len(indices)):
        kind = j % 3
        out.append(fake[j] if kind == 0 else raw[j] if kind == 1 else BROKEN[j % len(BROKEN)])
    return out


def test_batched_scorer_equals_step_by_step(env_id: str) -> None:
    inner = unwrapped(gym.make(env_id))
    split = "train"
    rng = np.random.default_rng(0)
    episodes = rng.choice(inner.num_episodes(split), size=6, replace=False).tolist()
    indices = [episodes[j % 6] for j in range(30)]
    completions = _mixed_completions(inner, split, indices)
    assert 5 < sum(inner.score(completions, indices, split).format_ok) < 30
    inner.task.retriever.cache_clear()
    batch = inner.score(completions, indices, split)
    assert batch.rewards.max() > 0 and batch.rewards.min() == FORMAT_PENALTY
    for j, (index, completion) in enumerate(zip(indices, completions, strict=True)):
        inner.task.retriever.cache_clear()
        inner.reset(options={"split": split, "index": index})
        _, reward, _, _, info = inner.step(completion)
        assert reward == batch.rewards[j], j
        assert info["rewards"]["ndcg"] == batch.ndcg[j]
        assert info["metrics"] == {key: float(v[j]) for key, v in batch.metrics.items()}
        assert info["query"] == batch.queries[j] and info["format_error"] == batch.errors[j]
        top = batch.retrieved[j, :10]
        assert info["retrieved"] == inner.task.retriever.to_item_ids(top[top >= 0]).tolist()


def test_group_scoring_equals_scoring_each(env_id: str) -> None:
    inner = unwrapped(gym.make(env_id))
    split, index = "validation", 17
    request = request_of(inner, split, index)
    words = request.split()
    rng = np.random.default_rng(1)
    group = [format_answer(" ".join(w for w in words if rng.random() > 0.3)) for _ in range(10)]
    group += [format_answer(request), "<think>x</think>", format_answer(NOWHERE)]
    together = inner.score(group, index, split)
    assert np.array_equal(
        together.retrieved, inner.score(group, [index] * len(group), split).retrieved
    )
    for j, completion in enumerate(group):
        inner.task.retriever.cache_clear()
        alone = inner.score([completion], index, split)
        assert alone.rewards[0] == together.rewards[j]
        assert np.array_equal(alone.retrieved[0], together.retrieved[j])
        for key, values in together.metrics.items():
            assert alone.metrics[key][0] == values[j]
    # Without indices the current episode is scored.
    inner.reset(options={"split": split, "index": index})
    np.testing.assert_array_equal(inner.score(group).rewards, together.rewards)


# --------------------------------------------------------------------------- the search data


@pytest.fixture(scope="module")
def search() -> RetrievalTextEnv:
    return unwrapped(gym.make("RecSearch-v0"))


def test_search_split_sizes(search: RetrievalTextEnv) -> None:
    sizes = {split: search.num_episodes(split) for split in ("train", "validation", "test")}
    assert sizes == {"train": 4000, "validation": 500, "test": 1000}


def test_search_requests_never_appear_in_any_document(search: RetrievalTextEnv) -> None:
    corpus = "\x00".join(search.task.documents)
    assert len(search.task.documents) == len(search.task.retriever)
    rng = np.random.default_rng(0)
    for split in ("train", "validation", "test"):
        episodes = search.task.splits[split]
        for index in rng.choice(len(episodes), size=60, replace=False):
            request = episodes.describe(int(index))["request"]
            assert len(request.split()) >= 10
            assert request not in corpus, (split, index)


def test_search_splits_are_deterministic_and_disjoint(search: RetrievalTextEnv) -> None:
    from recgym.data import load_dataset
    from recgym.data.clothing import search_requests

    data = load_dataset("clothing-reviews", progress=False)
    first, second = search_requests(data), search_requests(data)
    assert first.equals(second)
    ids = {}
    for split in ("train", "validation", "test"):
        episodes = search.task.splits[split]
        ids[split] = [episodes.describe(i)["query_id"] for i in range(len(episodes))]
        expected = first.loc[first["split"] == split, "review_id"].astype(str).tolist()
        assert ids[split] == expected
        assert len(set(ids[split])) == len(ids[split])
    assert not set(ids["train"]) & set(ids["validation"])
    assert not set(ids["train"]) & set(ids["test"])
    assert not set(ids["validation"]) & set(ids["test"])
    # Every request's garment keeps reviews of its own, so no target is unfindable.
    for split in ("train", "validation", "test"):
        episodes = search.task.splits[split]
        for i in range(0, len(episodes), 97):
            (target,) = episodes.targets(i)
            assert len(search.task.documents[target].split()) > 5


class _Episodes(SplitEpisodes):
    """Two fixed episodes with the given targets (a stand-in for a split of a real dataset)."""

    def __init__(self, targets: list[int]) -> None:
        self._targets = targets

    def __len__(self) -> int:
        return len(self._targets)

    def prompt(self, i: int) -> str:
        return f"request {i}"

    def targets(self, i: int) -> np.ndarray:
        return np.array([self._targets[i]])


def test_data_version_covers_the_splits_and_targets() -> None:
    """RecSeq-v0's digest once covered only the documents: moving test targets (ties broken
    another way) left it unchanged and old rows looked fresh."""
    env = gym.make("RecSeq-v0").unwrapped
    docs, ids, titles = ["red shirt", "blue jeans", "green hat"], [10, 11, 12], ["a", "b", "c"]

    def version(test_targets: list[int], train_targets: tuple[int, ...] = (0, 1)) -> str:
        splits = {"train": _Episodes(list(train_targets)), "test": _Episodes(test_targets)}
        return str(env._make_task(docs, ids, titles, splits).data_version)  # type: ignore[attr-defined]

    base = version([0, 1])
    assert version([0, 1]) == base  # a digest, not a counter
    assert version([1, 0]) != base  # the same items, other targets
    assert version([0, 1], train_targets=(1, 1)) != base
    assert version([0, 1, 2]) != base
