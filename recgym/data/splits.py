"""Leave-one-out splits by time: per user, the last event is test, the one before validation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from recgym.data.catalog import INTERACTION_COLUMNS
from recgym.error import DataFormatError

__all__ = ["LeaveOneOutSplit", "SplitName", "leave_one_out"]

SplitName = Literal["train", "validation", "test"]


@dataclass(frozen=True)
class LeaveOneOutSplit:
    """Interactions split per user by time.

    Attributes:
        train: every event of a kept user but the last two.
        validation: each kept user's second-to-last event.
        test: each kept user's last event.
    """

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame

    def examples(self, split: SplitName) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """Next-item examples of a split: ``(user_ids, histories, targets)``.

        For ``"validation"`` the history is the user's training events; for ``"test"`` it is
        training plus the validation event; for ``"train"`` every training event after the
        first is a target with the events before it as history. Histories are item indices in
        time order.
        """
        if split == "train":
            users, hists, targets = [], [], []
            for user, seq in self._sequences(self.train).items():
                for t in range(1, len(seq)):
                    users.append(user)
                    hists.append(seq[:t])
                    targets.append(seq[t])
            return np.array(users, dtype=object), hists, np.array(targets, dtype=np.int64)
        if split not in ("validation", "test"):
            raise ValueError(f"split must be 'train', 'validation' or 'test', got {split!r}")
        parts = [self.train] if split == "validation" else [self.train, self.validation]
        seqs = self._sequences(pd.concat(parts))
        target = getattr(self, split)
        users = target["user_id"].to_numpy()
        return users, [seqs[u] for u in users], target["item_idx"].to_numpy(dtype=np.int64)

    @staticmethod
    def _sequences(frame: pd.DataFrame) -> dict[str, np.ndarray]:
        ordered = frame.sort_values(["user_id", "_order"], kind="stable")
        return {
            str(u): g["item_idx"].to_numpy(dtype=np.int64)
            for u, g in ordered.groupby("user_id", sort=False)
        }


def leave_one_out(interactions: pd.DataFrame, *, min_history: int = 5) -> LeaveOneOutSplit:
    """Split interactions leave-one-out by time per user, deterministically.

    Each user's events are ordered by timestamp, and **ties keep the row order of**
    ``interactions``: the sort's last key is the row position, so the loader's order decides
    (the same on every run and every machine); ``_order`` numbers the events in that order.
    Ties matter: in MovieLens-100k, 415 of the 943 users rated their last two movies in the
    same second, so the file order of ``u.data`` decides which of them is the test target and
    which the validation one.

    Args:
        interactions: a frame with :data:`recgym.data.catalog.INTERACTION_COLUMNS`.
        min_history: users with fewer events are dropped (at least 3, so that every kept user
            has one training event).

    Returns:
        The split; every frame keeps the input columns plus ``_order`` (position in time).
    """
    if min_history < 3:
        raise ValueError(f"min_history must be >= 3 (train, validation, test), got {min_history}")
    missing = [c for c in INTERACTION_COLUMNS if c not in interactions.columns]
    if missing:
        raise DataFormatError(
            f"interactions lack columns {missing}; have {list(interactions.columns)}"
        )
    frame = interactions.reset_index(drop=True)
    frame = frame.assign(_row=np.arange(len(frame)))
    # The row position breaks ties in time: the order does not rest on the sort being stable.
    frame = frame.sort_values(["user_id", "timestamp", "_row"], kind="stable", ignore_index=True)
    counts = frame.groupby("user_id", sort=False)["item_idx"].transform("size")
    frame = frame[counts >= min_history].drop(columns="_row").reset_index(drop=True)
    frame["_order"] = frame.groupby("user_id", sort=False).cumcount()
    from_end = frame.groupby("user_id", sort=False)["_order"].transform("max") - frame["_order"]
    return LeaveOneOutSplit(
        train=frame[from_end >= 2].reset_index(drop=True),
        validation=frame[from_end == 1].reset_index(drop=True),
        test=frame[from_end == 0].reset_index(drop=True),
    )
