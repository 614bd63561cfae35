"""RecSearch-v0 on the seeds' own benchmarks (ESCI, Amazon-C4) read from local files."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from test_loaders import _write_c4, _write_esci

import recgym  # noqa: F401
from recgym.envs.search import _split_queries
from recgym.error import RecGymError
from recgym.rewards import format_answer


def test_esci_from_local_files(tmp_path: Path) -> None:
    env = gym.make(
        "RecSearch-v0",
        dataset="esci",
        dataset_kwargs={"path": str(tmp_path)},
        split="test",
        reward="ndcg",
        k=10,
    )
    _write_esci(tmp_path)
    base = env.unwrapped
    assert [base.num_episodes(s) for s in ("train", "validation", "test")] == [1, 0, 1]
    obs, info = env.reset(options={"index": 0})
    assert "```\nlamp\n```" in obs and "Amazon" in obs
    _, reward, terminated, _, info = env.step(format_answer("desk lamp"))
    assert terminated and reward == pytest.approx(1.0)  # P4 "Desk Lamp" ranked first
    assert info["retrieved"][0] == "P4"
    result = base.score([format_answer("red shoe acme")], 0, "train")
    assert result.ndcg[0] == pytest.approx(1.0)  # the Exact product P1
    with pytest.raises(RecGymError, match="no episodes"):
        env.reset(options={"split": "validation"})


def test_amazon_c4_single_test_split_is_cut(tmp_path: Path) -> None:
    _write_c4(tmp_path)
    env = gym.make("RecSearch-v0", dataset="amazon-c4", dataset_kwargs={"path": str(tmp_path)})
    base = env.unwrapped
    sizes = [base.num_episodes(s) for s in ("train", "validation", "test")]
    assert sum(sizes) == 2 and sizes[1] == sizes[2] == 1  # at least one query each
    env.reset(options={"split": "test", "index": 0})
    target = base.task.splits["test"].targets(0)
    query = base.task.documents[int(target[0])]
    _, reward, *_ = env.step(format_answer(query))
    assert reward == pytest.approx(1.1)  # rec-r1: 0.1 + NDCG 1


def test_split_queries_is_leak_free_and_deterministic() -> None:
    queries = pd.DataFrame(
        {
            "query_id": [str(i) for i in range(100)],
            "query": ["q"] * 100,
            "split": ["train"] * 80 + ["test"] * 20,
        }
    )
    a, b = _split_queries(queries), _split_queries(queries)
    assert a["split"].tolist() == b["split"].tolist()
    counts = a["split"].value_counts()
    assert (counts["train"], counts["validation"], counts["test"]) == (72, 8, 20)
    # the published test split is untouched; validation comes from train only
    assert (a["split"].to_numpy()[80:] == "test").all()
    only_test = _split_queries(queries.assign(split="test"))
    assert only_test["split"].value_counts().to_dict() == {
        "train": 80,
        "validation": 10,
        "test": 10,
    }
    assert np.array_equal(queries["query_id"], a["query_id"])


def test_clothing_requests_that_the_raw_data_repeats_are_counted() -> None:
    """A held-out review row is never in a document, but the raw data holds a few reviews
    twice and the other copy stays: the figures in ``item_documents``' docstring."""
    from recgym.data import load_dataset
    from recgym.data.clothing import item_documents, review_texts, search_requests
    from recgym.envs.search import RecSearchEnv

    data = load_dataset("clothing-reviews", progress=False)
    assert data.reviews is not None
    requests = search_requests(data)
    texts = review_texts(data.reviews)
    held = np.zeros(len(texts), dtype=bool)
    held[requests["review_id"].to_numpy()] = True
    docs = item_documents(data, held)
    kept = texts[~held]
    copies = requests["query"].isin(set(kept[kept != ""])).to_numpy()
    position = requests.groupby("split", sort=False).cumcount().to_numpy()
    assert list(zip(requests["split"][copies], position[copies], strict=True)) == [
        ("train", 586),
        ("train", 1573),
        ("test", 693),
    ]
    assert all(any(q in doc for doc in docs) for q in requests["query"][copies])
    # Only a repeated review is found in its target's document, never a held-out row itself.
    in_target = np.array(
        [q in docs[i] for q, i in zip(requests["query"], requests["item_idx"], strict=True)]
    )
    assert np.flatnonzero(in_target).tolist() == [np.flatnonzero(copies)[-1]]  # test 693
    env = RecSearchEnv(split="test")
    _, info = env.reset(options={"index": 693})
    (target,) = env.task.splits["test"].targets(693)
    assert info["request"] in env.task.documents[target]
    env.close()
