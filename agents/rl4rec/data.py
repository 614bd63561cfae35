"""The data of an SQN / SA2C run: logged training sequences, evaluation examples, LE inputs.

:class:`RL4RecData` holds a leave-one-out split as offline RL data; :func:`le_inputs` runs an
LE over it once (SM states, RM rewards, LEA proposals: all deterministic) and keeps the result
in memory, so the seeds and variants of an ablation share one LE pass.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recgym.data import LeaveOneOutSplit
from recgym.le import UserModel, load_user_model
from recgym.models.seqrec.train import data_version, load_split
from recgym.utils import atomic
from recgym.wrappers import LEAWrapper, LEView, LoggedSequences

__all__ = ["LEInputs", "RL4RecData", "le_inputs"]


@dataclass(frozen=True)
class RL4RecData:
    """A leave-one-out split as offline RL data, users in the same order everywhere.

    Attributes:
        logged: each user's training events with rating rewards (1.0 for a rating >= 4, else
            0.2).
        validation: ``(histories, targets)``: the training sequences and the validation items.
        test: ``(histories, targets)``: training plus validation item, and the test items.
        n_items: the catalog size.
        version: a digest of the split (:func:`recgym.models.seqrec.train.data_version`).
    """

    logged: LoggedSequences
    validation: tuple[list[np.ndarray], np.ndarray]
    test: tuple[list[np.ndarray], np.ndarray]
    n_items: int
    version: str

    @classmethod
    def from_split(cls, split: LeaveOneOutSplit, n_items: int) -> RL4RecData:
        """The data of ``split`` (its frames need a ``rating`` column)."""
        logged = LoggedSequences.from_frame(split.train, n_items)
        evaluation = []
        for name in ("validation", "test"):
            users, histories, targets = split.examples(name)
            if [str(u) for u in users] != list(logged.users):
                raise ValueError(f"the {name} users are not the training users, in order")
            evaluation.append((histories, targets))
        return cls(logged, evaluation[0], evaluation[1], int(n_items), data_version(split))

    @classmethod
    def load(
        cls, dataset: str = "ml-100k", *, users: int | None = None, progress: bool = False
    ) -> RL4RecData:
        """The data of an embedded dataset (:func:`recgym.models.seqrec.train.load_split`)."""
        split, n_items = load_split(dataset, users=users, progress=progress)
        return cls.from_split(split, n_items)


@dataclass(frozen=True)
class LEInputs:
    """What an LE says about one :class:`RL4RecData`, in the data's user order.

    Attributes:
        le: the LE's name.
        train_states: per user ``(len(seq), state_dim)`` SM states after every training prefix.
        validation_states: ``(U, state_dim)`` after each validation history.
        test_states: ``(U, state_dim)`` after each test history.
        rm_rewards: per user ``(len(seq) - 1,)`` RM rewards of the logged next items.
        lea: the LEA proposals (``None`` when not asked for).
        seconds: wall-clock time of the LE passes.
        user_model: the LE itself (it gives the SM states of new histories).
    """

    le: str
    train_states: list[np.ndarray]
    validation_states: np.ndarray
    test_states: np.ndarray
    rm_rewards: list[np.ndarray]
    lea: LEAWrapper | None
    seconds: float
    user_model: UserModel


_BASE: dict[tuple[Any, ...], LEInputs] = {}
_LEA: dict[tuple[Any, ...], LEAWrapper] = {}


def le_inputs(
    data: RL4RecData,
    user_model: UserModel | str,
    *,
    lea_k: int = 0,
    lea_ce_weight: float = 0.1,
    lea_q_weight: float = 0.5,
    lea_rank: str = "sm",
    lea_pool: int = 0,
    le_kwargs: dict[str, Any] | None = None,
    cache: bool = True,
    store: str | Path | None = None,
) -> LEInputs:
    """Run the LE over ``data``: one SM and one RM pass per user, plus LEA's RM pass.

    The SM pass runs along each test history (training sequence plus validation item), so one
    pass gives the training states and both evaluation states. An LE given by name is run
    once per data version and arguments: the SM/RM results and each LEA setting are kept in
    memory (``cache=False`` skips that), so every seed and variant of an ablation shares them.

    Args:
        data: the run's data.
        user_model: the LE, or its :func:`recgym.le.load_user_model` name.
        lea_k: LEA proposals per transition (0: none).
        lea_ce_weight: LEA's cross-entropy weight per proposal.
        lea_q_weight: LEA's Q-learning weight per proposal.
        lea_rank: ``"sm"`` or ``"rm"`` (see :class:`recgym.wrappers.LEAWrapper`).
        lea_pool: with ``lea_rank="rm"``, the SM candidates the RM ranks (0: ``4 * lea_k``).
        le_kwargs: arguments of ``load_user_model`` when ``user_model`` is a name.
        cache: read and write the in-memory cache (only for an LE given by name).
        store: a folder to keep the passes' results in (``.npz`` files named by a digest of
            the LE, its arguments, the data version and the LEA settings) and to read them
            back from instead of running the LE again: a study resumed after a kill skips its
            LE passes. ``seconds`` stays the time the passes took when they ran.
    """
    kwargs = dict(le_kwargs or {})
    named = isinstance(user_model, str) and cache
    key = (
        user_model if isinstance(user_model, str) else user_model.name,
        repr(sorted(kwargs.items())),
        data.version,
    )
    lea_key = (*key, lea_k, lea_ce_weight, lea_q_weight, lea_rank, lea_pool)
    if named and key in _BASE and (lea_k == 0 or lea_key in _LEA):
        return dataclasses.replace(_BASE[key], lea=_LEA.get(lea_key) if lea_k else None)
    model = load_user_model(user_model, **kwargs) if isinstance(user_model, str) else user_model
    folder = None if store is None else Path(store)
    if named and key in _BASE:
        base = _BASE[key]
    elif folder is not None and (folder / _file("le", key)).is_file():
        base = _read_base(folder / _file("le", key), model, data)
        if named:
            _BASE[key] = base
    else:
        start = time.perf_counter()
        view = LEView(model, data.n_items)
        sequences = data.logged.sequences
        along = view.states_along(data.test[0])
        train_states = [s[: len(seq)] for s, seq in zip(along, sequences, strict=True)]
        base = LEInputs(
            le=model.name,
            train_states=train_states,
            validation_states=np.stack([s[-1] for s in train_states]),
            test_states=np.stack([s[-1] for s in along]),
            rm_rewards=view.rewards_along(sequences),
            lea=None,
            seconds=time.perf_counter() - start,
            user_model=model,
        )
        if named:
            _BASE[key] = base
        if folder is not None:
            _write_base(folder / _file("le", key), base)
    if lea_k == 0:
        return base
    settings: dict[str, Any] = {
        "k": lea_k,
        "ce_weight": lea_ce_weight,
        "q_weight": lea_q_weight,
        "rank": lea_rank,
        "pool": lea_pool or None,
    }
    path = None if folder is None else folder / _file("lea", lea_key)
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as found:
            proposals = _unpack(found["proposals"], found["lengths"])
            rewards = _unpack(found["proposal_rewards"], found["lengths"])
            seconds = float(found["seconds"])
        lea = LEAWrapper.from_proposals(data.logged, model, proposals, rewards, **settings)
    else:
        start = time.perf_counter()
        lea = LEAWrapper(data.logged, model, states=base.train_states, **settings)
        seconds = time.perf_counter() - start
        if path is not None:
            flat, lengths = _pack(lea.proposals)
            _write_npz(
                path,
                proposals=flat,
                lengths=lengths,
                proposal_rewards=_pack(lea.proposal_rewards)[0],
                seconds=np.float64(seconds),
            )
    if named:
        _LEA[lea_key] = lea
    return dataclasses.replace(base, lea=lea, seconds=base.seconds + seconds)


def _file(kind: str, key: tuple[Any, ...]) -> str:
    """The store's file name of an LE result keyed ``key``."""
    return f"{kind}-{hashlib.sha256(repr(key).encode()).hexdigest()[:16]}.npz"


def _pack(arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-user arrays as one array along the first axis, and each one's length."""
    return np.concatenate(list(arrays)), np.array([len(a) for a in arrays], dtype=np.int64)


def _unpack(flat: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """The per-user arrays that :func:`_pack` packed."""
    return np.split(flat, np.cumsum(lengths)[:-1])


def _write_npz(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez`` to ``path``, atomically (a kill mid-write leaves no half file)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    atomic.write_bytes(path, buffer.getvalue())


def _write_base(path: Path, base: LEInputs) -> None:
    states, state_lengths = _pack(base.train_states)
    rewards, reward_lengths = _pack(base.rm_rewards)
    _write_npz(
        path,
        train_states=states,
        state_lengths=state_lengths,
        validation_states=base.validation_states,
        test_states=base.test_states,
        rm_rewards=rewards,
        reward_lengths=reward_lengths,
        seconds=np.float64(base.seconds),
    )


def _read_base(path: Path, model: UserModel, data: RL4RecData) -> LEInputs:
    """The :class:`LEInputs` (no LEA) that :func:`_write_base` kept for ``data``.

    Raises:
        ValueError: the file does not fit ``data`` (another split under the same digest).
    """
    with np.load(path, allow_pickle=False) as found:
        states = _unpack(found["train_states"], found["state_lengths"])
        rewards = _unpack(found["rm_rewards"], found["reward_lengths"])
        lengths = [len(s) for s in data.logged.sequences]
        if [len(s) for s in states] != lengths or len(found["test_states"]) != len(lengths):
            raise ValueError(f"{path} holds LE results of other data; delete it")
        return LEInputs(
            le=model.name,
            train_states=states,
            validation_states=found["validation_states"],
            test_states=found["test_states"],
            rm_rewards=rewards,
            lea=None,
            seconds=float(found["seconds"]),
            user_model=model,
        )
