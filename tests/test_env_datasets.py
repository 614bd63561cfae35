"""Envs on the user's own data (``dataset=``): a RecBole-style interaction log and item table as
CSV or parquet, and the Amazon Reviews 2023 loader's files, written in their real layouts."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

import recgym  # noqa: F401 (registers the envs)
from recgym.envs.sequential import ITEM_PROMPT
from recgym.error import RecGymError, UnknownNameError
from recgym.rewards import format_answer

N_USERS, N_EVENTS = 8, 7
GENRES = ["jazz", "rock", "folk", "blues", "soul"]


def _write_log(folder: Path, suffix: str) -> dict[str, str]:
    """Users who each play one genre's albums in order; every album's text names its genre."""
    items = pd.DataFrame(
        {
            "album_id": [f"a{i}" for i in range(15)],
            "title": [f"Album {i} {GENRES[i % 5]} record" for i in range(15)],
            "label": [f"label{i % 3}" for i in range(15)],
        }
    )
    rows = []
    for u in range(N_USERS):
        genre_items = [i for i in range(15) if i % 5 == u % 5]
        for t in range(N_EVENTS):
            rows.append((f"user{u}", f"a{genre_items[t % 3]}" if t < 6 else "a14", 1000 * t + u))
    log = pd.DataFrame(rows, columns=["user_id", "album_id", "timestamp"])
    paths = {"interactions": folder / f"log{suffix}", "items": folder / f"albums{suffix}"}
    for frame, path in ((log, paths["interactions"]), (items, paths["items"])):
        if suffix == ".csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
    return {**{k: str(v) for k, v in paths.items()}, "item_col": "album_id"}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_recseq_on_your_own_log(tmp_path: Path, suffix: str) -> None:
    kwargs = _write_log(tmp_path, suffix)
    env = gym.make("RecSeq-v0", split="test", dataset="generic", dataset_kwargs=kwargs)
    inner = env.unwrapped
    assert inner.num_episodes("test") == N_USERS  # type: ignore[attr-defined]
    prompt, _ = env.reset(seed=0, options={"index": 0})
    assert prompt.startswith(ITEM_PROMPT.split("{history}")[0]) and "Album" in prompt
    assert "movie" not in prompt
    # The history's genre retrieves the held-out album better than an unrelated word.
    genre = GENRES[0]  # user0 plays jazz albums: a0, a5, a10; the target is a14 (soul)
    _, good, *_ = env.step(format_answer("soul record"))
    env.reset(seed=0, options={"index": 0})
    _, bad, *_ = env.step(format_answer(f"{genre} nothing"))
    assert np.isfinite(good) and good > bad
    version = inner.data_version  # type: ignore[attr-defined]
    again = gym.make("RecSeq-v0", split="test", dataset="generic", dataset_kwargs=kwargs)
    assert again.unwrapped.data_version == version  # type: ignore[attr-defined]
    default = gym.make("RecSeq-v0", split="test").unwrapped
    assert default.data_version != version  # type: ignore[attr-defined]


def test_recseq_on_amazon_reviews_2023(tmp_path: Path) -> None:
    meta, reviews = [], []
    for i in range(12):
        meta.append({"parent_asin": f"P{i}", "title": f"Soap {i}", "main_category": "Beauty"})
    for u in range(6):
        for t in range(6):
            reviews.append(
                {
                    "rating": 5.0,
                    "title": "ok",
                    "text": "fine",
                    "asin": f"P{(u + t) % 12}v",
                    "parent_asin": f"P{(u + t) % 12}",
                    "user_id": f"U{u}",
                    "timestamp": 1_600_000_000_000 + 1000 * t,
                }
            )
    with gzip.open(tmp_path / "reviews.jsonl.gz", "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in reviews)
    (tmp_path / "meta.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))
    env = gym.make(
        "RecSeq-v0",
        split="validation",
        dataset="amazon-reviews-2023",
        dataset_kwargs={
            "reviews": str(tmp_path / "reviews.jsonl.gz"),
            "meta": str(tmp_path / "meta.jsonl"),
        },
    )
    prompt, _ = env.reset(seed=0)
    assert "Soap" in prompt
    _, reward, terminated, *_ = env.step(format_answer("Soap"))
    assert terminated and np.isfinite(reward)


def test_bad_datasets_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="no dataset named 'movielens'"):
        gym.make("RecSeq-v0", dataset="movielens")
    kwargs = _write_log(tmp_path, ".csv")
    short = pd.read_csv(kwargs["interactions"]).groupby("user_id").head(1)  # one event a user
    short.to_csv(kwargs["interactions"], index=False)
    env = gym.make("RecSeq-v0", dataset="generic", dataset_kwargs=kwargs)
    with pytest.raises(RecGymError, match="empty split"):
        env.reset(seed=0)


def _write_recbole(folder: Path) -> Path:
    """ml-100k as RecBole ships it, in miniature: typed headers, tab-separated."""
    data = folder / "tiny-ml"
    data.mkdir()
    items = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"]
    for i in range(12):
        items.append(f"{i + 1}\tFilm {i} {GENRES[i % 5]}\t{1990 + i}\t{GENRES[i % 5].title()}")
    (data / "tiny-ml.item").write_text("\n".join(items) + "\n")
    inter = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for u in range(6):
        for t in range(6):
            inter.append(f"{u + 1}\t{(u + t) % 12 + 1}\t{1 + t % 5}\t{881250949 + 10 * t}")
    (data / "tiny-ml.inter").write_text("\n".join(inter) + "\n")
    return data


def test_recbole_atomic_files(tmp_path: Path) -> None:
    from recgym.data import load_dataset

    folder = _write_recbole(tmp_path)
    data = load_dataset("recbole", path=folder)
    assert data.name == "tiny-ml" and data.items.text_fields == (
        "movie_title",
        "release_year",
        "class",
    )
    assert data.items.texts()[0] == "Film 0 jazz | 1990 | Jazz"
    assert data.interactions is not None and len(data.interactions) == 36
    first = data.interactions.iloc[0]
    assert (first["user_id"], int(first["timestamp"]), float(first["rating"])) == (
        "1",
        881250949,
        1.0,
    )
    env = gym.make("RecSeq-v0", split="test", dataset="recbole", dataset_kwargs={"path": folder})
    prompt, _ = env.reset(seed=0)
    assert "Film" in prompt and "Jazz" in prompt
    _, reward, *_ = env.step(format_answer("Film"))
    assert np.isfinite(reward)


def test_recnext_and_its_popularity_agent_on_your_own_log(tmp_path: Path) -> None:
    from agents import make_agent
    from recgym.envs.next_item import NEXT_ITEM_PROMPT

    kwargs = _write_log(tmp_path, ".csv")
    env = gym.make("RecNext-v0", split="test", dataset="generic", dataset_kwargs=kwargs)
    assert env.action_space.shape == (15,)
    obs, _ = env.reset(seed=0, options={"index": 0})
    assert obs["prompt"].startswith(NEXT_ITEM_PROMPT.split("{history}")[0])
    agent = make_agent("popularity", env)
    assert agent.config() == {"counts": "generic training split"}
    (action,) = agent.act_batch([obs])
    _, reward, *_ = env.step(action)
    # a14 (every user's last album, seen once in training) against the genre albums
    assert 0.0 <= reward <= 1.0 and np.isfinite(reward)
    counts = agent.retriever.counts
    assert counts.shape == (15,) and counts.sum() == N_USERS * (N_EVENTS - 2)


def test_the_runner_takes_a_dataset(tmp_path: Path) -> None:
    import shlex

    from benchmarks.__main__ import _parser, run_spec
    from benchmarks.runner import build_agent, evaluate

    folder = _write_recbole(tmp_path)
    argv = ["run", "--env", "RecSeq-v0", "--agent", "history", "--episodes", "6"]
    argv += ["--dataset", "recbole", "--dataset-kwargs", json.dumps({"path": str(folder)})]
    spec = run_spec(_parser().parse_args(argv))
    assert spec.env_kwargs == {"dataset": "recbole", "dataset_kwargs": {"path": str(folder)}}
    env = gym.make("RecSeq-v0", split="test", **spec.env_kwargs)
    row = evaluate(spec, build_agent("history", env))
    assert row["episodes"] == row["split_episodes"] == 6
    assert row["env_kwargs"]["dataset"] == "recbole"
    again = run_spec(_parser().parse_args(shlex.split(row["command"])[3:]))
    assert again == spec  # the recorded command rebuilds the same evaluation
