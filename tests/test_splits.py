"""Leave-one-out by time: correctness, ties, the minimum-history filter, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recgym.data.splits import leave_one_out


def _log(rows: list[tuple[str, int, int]]) -> pd.DataFrame:
    users, items, times = zip(*rows, strict=True)
    return pd.DataFrame(
        {"user_id": users, "item_idx": items, "timestamp": times, "rating": np.ones(len(rows))}
    )


LOG = _log(
    [
        ("u1", 10, 5),
        ("u1", 11, 1),
        ("u1", 12, 3),
        ("u1", 13, 4),
        ("u1", 14, 2),
        ("u2", 20, 1),
        ("u2", 21, 1),
        ("u2", 22, 1),
        ("u2", 23, 1),
        ("u2", 24, 1),  # all tied
        ("u3", 30, 1),
        ("u3", 31, 2),  # too short
    ]
)


def test_last_is_test_second_last_is_validation() -> None:
    split = leave_one_out(LOG, min_history=5)
    # u1 in time order: 11 (t1), 14 (t2), 12 (t3), 13 (t4), 10 (t5)
    assert split.test.set_index("user_id").loc["u1", "item_idx"] == 10
    assert split.validation.set_index("user_id").loc["u1", "item_idx"] == 13
    train_u1 = split.train[split.train["user_id"] == "u1"]["item_idx"].tolist()
    assert train_u1 == [11, 14, 12]


def test_ties_keep_input_order_and_short_users_are_dropped() -> None:
    split = leave_one_out(LOG, min_history=5)
    assert split.test.set_index("user_id").loc["u2", "item_idx"] == 24
    assert split.validation.set_index("user_id").loc["u2", "item_idx"] == 23
    assert "u3" not in set(split.train["user_id"]) | set(split.test["user_id"])
    assert set(leave_one_out(LOG, min_history=3).test["user_id"]) == {"u1", "u2"}


def test_every_event_lands_in_exactly_one_part() -> None:
    split = leave_one_out(LOG, min_history=3)
    parts = pd.concat([split.train, split.validation, split.test])
    kept = LOG[LOG["user_id"] != "u3"]
    assert sorted(parts["item_idx"]) == sorted(kept["item_idx"])


def test_deterministic_under_row_shuffle_without_ties() -> None:
    shuffled = LOG[LOG["user_id"] == "u1"].sample(frac=1.0, random_state=0)
    a = leave_one_out(LOG[LOG["user_id"] == "u1"], min_history=5)
    b = leave_one_out(shuffled, min_history=5)
    assert a.test["item_idx"].tolist() == b.test["item_idx"].tolist()
    assert a.train["item_idx"].tolist() == b.train["item_idx"].tolist()


def test_examples_give_histories_in_time_order() -> None:
    split = leave_one_out(LOG, min_history=5)
    users, hists, targets = split.examples("test")
    i = list(users).index("u1")
    assert hists[i].tolist() == [11, 14, 12, 13] and targets[i] == 10
    users, hists, targets = split.examples("validation")
    i = list(users).index("u1")
    assert hists[i].tolist() == [11, 14, 12] and targets[i] == 13
    users, hists, targets = split.examples("train")
    assert [h.tolist() for h, u in zip(hists, users, strict=True) if u == "u1"] == [[11], [11, 14]]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="min_history"):
        leave_one_out(LOG, min_history=2)
    with pytest.raises(ValueError, match="lack columns"):
        leave_one_out(LOG.drop(columns="timestamp"))


def test_movielens_ties_keep_the_file_order_and_todays_targets() -> None:
    """415 of 943 MovieLens-100k users rated their last two movies in the same second: the
    row order of u.data decides their targets. The rule is explicit in code and the targets
    (and the envs' data versions) are those the leaderboard rows were scored on."""
    import hashlib

    from recgym.data import load_dataset
    from recgym.envs.next_item import RecNextEnv

    data = load_dataset("ml-100k", progress=False)
    assert data.interactions is not None
    split = leave_one_out(data.interactions)
    last = split.test.set_index("user_id")["timestamp"]
    before = split.validation.set_index("user_id")["timestamp"].loc[last.index]
    assert int((last == before).sum()) == 415

    def digest(name: str) -> str:
        targets = split.examples(name)[2]  # type: ignore[arg-type]
        return hashlib.sha256(np.asarray(targets, dtype=np.int64).tobytes()).hexdigest()[:16]

    assert digest("validation") == "f5cde9a7160b0226"
    assert digest("test") == "fd1cd7d7de3facc0"
    assert RecNextEnv().data_version == "cf5904292b743032"  # RecSeq-v0 shares these episodes
    # The row order is what decides: reversed rows flip exactly the tied users' targets.
    flipped = leave_one_out(data.interactions.iloc[::-1])
    assert int((flipped.examples("test")[2] != split.examples("test")[2]).sum()) == 415
