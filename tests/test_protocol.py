"""Evaluation protocols: which rows share a table, the canonical one first, unique labels."""

from __future__ import annotations

import inspect
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.registration import load_env_creator

import recgym  # noqa: F401 (registers the envs)
from benchmarks.protocol import default_kwargs, protocol_of, view_kwargs
from benchmarks.table import env_boards, markdown_table, overlaps_best, row_labels
from recgym.envs import ENVS

FAKE = {"le": "fake", "le_kwargs": {"n_items": 20}}


@pytest.mark.parametrize("env_id", sorted(ENVS))
def test_view_kwargs_are_constructor_arguments(env_id: str) -> None:
    params = inspect.signature(_creator(env_id)).parameters
    assert "render_mode" in view_kwargs(env_id)
    assert view_kwargs(env_id) <= set(params), env_id
    assert set(default_kwargs(env_id)) <= set(params)


def _creator(env_id: str) -> Any:
    return load_env_creator(gym.spec(env_id).entry_point)


def _rewards(**kwargs: Any) -> tuple[list[float], list[bool]]:
    """RecUser-v0 on the fake LE: the same 3 users, the same seeded action sequence."""
    env = gym.make("RecUser-v0", **FAKE, **kwargs)
    rewards, ends = [], []
    actions = np.random.default_rng(0)
    for user in range(3):
        env.reset(seed=user, options={"user": user})
        done = False
        while not done:
            _, reward, terminated, truncated, _ = env.step(int(actions.integers(20)))
            rewards.append(float(reward))
            done = terminated or truncated
            ends.append(done)
    return rewards, ends


def test_recuser_view_kwargs_change_no_reward() -> None:
    """What RecUser-v0 declares a view argument must not change a reward or an episode's end
    (else rows with different observations could not share a table)."""
    assert view_kwargs("RecUser-v0") == {"render_mode", "observation", "max_history"}
    base = _rewards()
    assert base == _rewards(observation="dict", max_history=3, render_mode="ansi")
    assert len(set(base[0])) > 1  # the rewards vary: the comparison is not vacuous
    assert base != _rewards(seen_reward=-1.0, patience=1)  # a protocol argument does


def _row(env_id: str = "RecSeq-v0", **fields: Any) -> dict[str, Any]:
    split_arg = "users" if env_id == "RecUser-v0" else "split"
    kwargs = {**default_kwargs(env_id), split_arg: "test"}
    kwargs.update(fields.pop("env_kwargs", {}))
    row = {
        "env_id": env_id,
        "env_kwargs": kwargs,
        "agent": "history",
        "agent_config": {},
        "split": "test",
        "episodes": 943,
        "split_episodes": 943,
        "seeds": [0],
        "metrics": {"ndcg@10": {"mean": 0.04, "ci95": 0.01}},
        "k": 5000,
        "reward": "rec-r1",
        "data_version": "d",
        "command": "python -m benchmarks run ...",
    }
    return {**row, **fields}


def test_protocols_of_rows() -> None:
    canonical = protocol_of(_row())
    assert canonical.canonical and canonical.label.startswith("canonical: test split, all 943")
    # render_mode is a view: the same protocol
    assert protocol_of(_row(env_kwargs={"render_mode": "ansi"})) == canonical
    part = protocol_of(_row(episodes=100))
    assert not part.canonical and part.key != canonical.key and "100 of 943" in part.label
    other = protocol_of(_row(env_kwargs={"history_len": 5}))
    assert not other.canonical and "history_len=5" in other.label
    assert not protocol_of(_row(split="valid")).canonical
    unknown = protocol_of({k: v for k, v in _row().items() if k != "split_episodes"})
    assert not unknown.canonical and unknown.label.startswith("test split, 943 episodes")
    user = _row(
        "RecUser-v0",
        env_kwargs={"le_kwargs": {}},
        episodes=200,
        split_episodes=200,
    )
    assert protocol_of(user).canonical  # le_kwargs {} is the unset default None
    dict_obs = {**user, "env_kwargs": {**user["env_kwargs"], "observation": "dict"}}
    assert protocol_of(dict_obs) == protocol_of(user)


def test_one_table_per_protocol_canonical_first() -> None:
    rows = [
        _row(episodes=100, agent="a"),
        _row(agent="b"),
        _row(agent="c", metrics={"ndcg@10": {"mean": 0.2, "ci95": 0.01}}),
        _row(agent="d", stale=["changed"]),
    ]
    (board,) = env_boards(rows)
    assert [[r["agent"] for r in t.ranked] for t in board.tables] == [["c", "b"], ["a"]]
    assert [r["agent"] for r in board.stale] == ["d"]
    text = markdown_table(rows)
    assert text.index("#### canonical: test split, all 943") < text.index("#### test split, 100")


def test_labels_are_unique_and_say_what_differs() -> None:
    rows = [
        _row(agent="dpo", agent_config={"adapter": "runs/dpo/rounds/1", "batch_size": 8}),
        _row(agent="dpo", agent_config={"adapter": "runs/dpo/rounds/2", "batch_size": 16}),
        _row(agent="zero-shot", seeds=[0, 1, 2]),
        _row(agent="zero-shot", seeds=[0], budget=3.0),
        _row(agent="same"),
        _row(agent="same"),
    ]
    labels = row_labels(rows)
    assert len(set(labels)) == len(labels)
    assert labels[0] == 'dpo [adapter="runs/dpo/rounds/1"]'  # batch size only runs faster
    assert "seeds 0,1,2" in labels[2] and "3 min" in labels[3]
    assert labels[4:] == ["same", "same #2"]
    batch_only = row_labels([_row(agent_config={"batch_size": b}) for b in (8, 16)])
    assert batch_only == ["history [batch_size=8]", "history [batch_size=16]"]


def test_rows_whose_interval_overlaps_the_best_are_marked() -> None:
    def stats(mean: float, ci: float) -> dict[str, Any]:
        return {"metrics": {"m": {"mean": mean, "ci95": ci}}}

    rows = [stats(0.5, 0.05), stats(0.42, 0.04), stats(0.3, 0.05), {"metrics": {}}]
    assert overlaps_best(rows, "m") == ["best", "overlaps", "", ""]


def test_a_trained_rows_training_is_shown_with_its_command() -> None:
    training = {"command": "python -m trainer --steps 9", "log": "runs/log-seed{seed}.json"}
    text = markdown_table([_row(agent="sb3", budget=3.0, training=training), _row()])
    lines = text.splitlines()
    at = lines.index("#   train: python -m trainer --steps 9")
    assert lines[at - 1] == "# sb3" and lines[at + 1] == "#   log: runs/log-seed{seed}.json"
    assert lines[at + 2] == "python -m benchmarks run ..."
    assert "train:" not in markdown_table([_row()])
