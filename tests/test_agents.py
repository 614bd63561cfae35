"""Baseline and zero-shot agents on the Rec-R1 text envs."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import recgym  # noqa: F401  (registers the env ids)
from agents import AGENTS, HistoryAgent, RandomWordsAgent, RawQueryAgent, make_agent
from agents.llm.zero_shot import ZeroShotLLMAgent, policy_messages
from recgym.agent import Agent, act_batch, reset_agent
from recgym.envs.text import SYSTEM_PROMPT, fenced_block
from recgym.llm import load
from recgym.rewards import parse_completion


@pytest.fixture(scope="module")
def search() -> gym.Env:
    return gym.make("RecSearch-v0", split="test")


@pytest.fixture(scope="module")
def seq() -> gym.Env:
    return gym.make("RecSeq-v0", split="test")


def test_raw_query_sends_the_request_unchanged(search: gym.Env) -> None:
    obs, info = search.reset(seed=1)
    action = RawQueryAgent().act(obs)
    assert parse_completion(action).query == info["request"]
    _, reward, *_ = search.step(action)
    assert reward >= 0  # well-formed: never the format penalty


def test_history_agent_joins_the_shown_titles(seq: gym.Env) -> None:
    obs, info = seq.reset(options={"index": 3})
    base = seq.unwrapped
    shown = [base.task.item_titles[i] for i in info["history"][-base.history_len :]]
    assert parse_completion(HistoryAgent().act(obs)).query == " ; ".join(shown)
    assert parse_completion(HistoryAgent(last=2).act(obs)).query == " ; ".join(shown[-2:])


def test_baselines_beat_random_words_on_their_env(search: gym.Env, seq: gym.Env) -> None:
    for env, agent in ((search, RawQueryAgent()), (seq, HistoryAgent())):
        base = env.unwrapped
        idx = list(range(100))
        obs = base.observations(idx, "test")
        informed = base.score(act_batch(agent, obs), idx, "test").metrics["ndcg@100"].mean()
        rand = RandomWordsAgent.from_env(env, seed=0)
        random = base.score(act_batch(rand, obs), idx, "test").metrics["ndcg@100"].mean()
        assert informed > random + 0.02


def test_random_words_are_seeded_and_from_the_catalog(seq: gym.Env) -> None:
    agent = RandomWordsAgent.from_env(seq, n_words=5, seed=3)
    first = [agent.act("") for _ in range(4)]
    reset_agent(agent, 3)
    assert [agent.act("") for _ in range(4)] == first
    words = parse_completion(first[0]).query.split()  # type: ignore[union-attr]
    assert len(words) == 5 and set(words) <= set(agent.vocabulary)
    with pytest.raises(ValueError, match="non-empty"):
        RandomWordsAgent([], n_words=3)


def test_every_registered_agent_satisfies_the_protocol(seq: gym.Env) -> None:
    for name in AGENTS:
        if name == "verbalizer":
            continue  # needs a causal LM's logits: tests/test_verbalizer.py builds a tiny one
        if name == "sb3":
            continue  # needs a saved model: tests/test_sb3_agent.py trains one
        if name in ("grpo", "rloo", "rs-sft", "dpo"):
            continue  # needs a trained adapter: tests/test_grpo.py and test_dpo.py train one
        if name in ("rec-head", "recpo"):
            continue  # RecNext-v0 and a torch model: tests/test_recpo.py builds both
        if name in ("random-item", "popular-item"):
            continue  # RecUser-v0's item actions: tests/test_recuser_board.py builds both
        if name in ("sm-greedy", "rm-greedy"):
            continue  # RecUser-v0's user model: tests/test_recuser_greedy.py builds both
        kwargs: dict[str, Any] = {"model": "fake"} if name == "zero-shot" else {}
        if name == "seqrec":  # a tiny model trains in seconds (the default in ~2 min)
            kwargs = {"model": "gru4rec", "max_epochs": 1, "d": 16, "layers": 1}
        if name == "rl4rec":  # the same tiny backbone under SQN
            kwargs = {"backbone_kwargs": {"max_epochs": 1, "d": 16, "layers": 1}}
        agent = make_agent(name, seq, **kwargs)
        assert isinstance(agent, Agent)
        assert isinstance(agent.config(), dict)  # type: ignore[attr-defined]
    with pytest.raises(KeyError, match="known agents"):
        make_agent("no-such-agent", seq)


def test_zero_shot_sends_system_prompt_and_observation() -> None:
    llm = load("fake", mode="wellformed")
    agent = ZeroShotLLMAgent(llm, max_new_tokens=256)
    assert policy_messages("hello", SYSTEM_PROMPT) == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "hello"},
    ]
    out = agent.act("find a red dress")
    assert parse_completion(out).ok


def test_zero_shot_prefix_is_a_prefill_and_part_of_the_action() -> None:
    prefix = '<answer>{"query": "'
    assert policy_messages("hi", None, prefix)[-1] == {"role": "assistant", "content": prefix}
    agent = ZeroShotLLMAgent(
        load("fake", responses=['red dress"}</answer>']), response_prefix=prefix
    )
    out = agent.act("find a red dress")
    assert out == prefix + 'red dress"}</answer>'
    assert parse_completion(out).query == "red dress"
    assert agent.config()["response_prefix"] == prefix


def test_zero_shot_sampling_is_seeded_and_batch_independent(seq: gym.Env) -> None:
    obs = seq.unwrapped.observations(list(range(12)), "test")
    agent = ZeroShotLLMAgent(load("fake", mode="mixed"), temperature=0.6, batch_size=5)
    agent.reset(seed=7)
    whole = agent.act_batch(obs)
    agent.reset(seed=7)
    pieces = agent.act_batch(obs[:4]) + agent.act_batch(obs[4:])
    assert whole == pieces
    agent.reset(seed=8)
    assert agent.act_batch(obs) != whole
    # mixed mode: some answers are broken on purpose, and they score -2, not an exception
    result = seq.unwrapped.score(whole, list(range(12)), "test")
    assert set(np.unique(result.rewards[~result.format_ok])) <= {-2.0}


def test_fenced_block_requires_a_block() -> None:
    assert fenced_block("a\n```\nx\ny\n```\nb") == "x\ny"
    with pytest.raises(ValueError, match="fenced"):
        fenced_block("no block here")


@pytest.mark.slow
def test_zero_shot_smollm2_completes_search_prompts(search: gym.Env) -> None:
    """The real embedded model on CPU: every completion gets a reward in the documented range."""
    agent = ZeroShotLLMAgent("smollm2-135m", max_new_tokens=24, batch_size=4, seed=0)
    obs = search.unwrapped.observations([0, 1, 2, 3], "test")
    result = search.unwrapped.score(agent.act_batch(obs), [0, 1, 2, 3], "test")
    assert ((result.rewards == -2) | ((result.rewards >= 0) & (result.rewards <= 1.1))).all()


def test_action_masks_are_checked_in_one_place() -> None:
    from recgym.agent import check_action_masks

    masks = check_action_masks([[1, 0, 1], [0, 1, 0]], 2, 3)
    assert masks.dtype == bool and masks.tolist() == [[True, False, True], [False, True, False]]
    assert check_action_masks(np.zeros((2, 5)), 2).shape == (2, 5)  # any number of actions
    with pytest.raises(ValueError, match=r"shape \(3, 3\).*got \(2, 3\)"):
        check_action_masks(masks, 3, 3)
    with pytest.raises(ValueError, match=r"shape \(2, n_actions\).*got \(6,\)"):
        check_action_masks(np.ones(6), 2)
    with pytest.raises(ValueError, match=r"allow no action in rows \[1\]"):
        check_action_masks([[1, 0], [0, 0]], 2, 2, need_allowed=True)
