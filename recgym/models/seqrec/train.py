"""Training: full-softmax next-item cross-entropy at every position, early stopping on
validation NDCG@10, and :func:`train_seqrec`, which trains and evaluates on a leave-one-out
split of a dataset.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from tqdm.auto import tqdm

from recgym.data import LeaveOneOutSplit, leave_one_out, list_datasets, load_dataset
from recgym.error import UnknownNameError
from recgym.models.seqrec.config import SeqRecConfig
from recgym.models.seqrec.models import SeqRecModel, build_model, pad_batch
from recgym.models.seqrec.retriever import SeqRecRetriever
from recgym.utils.checkpoint import load_state, note_resume, save_state

__all__ = ["FitResult", "data_version", "fit", "load_split", "train_seqrec"]


@dataclass
class FitResult:
    """What :func:`fit` did.

    Attributes:
        epochs: epochs run.
        best_epoch: 1-based epoch whose weights were kept (the last one without validation).
        best_score: the validation score of that epoch (``nan`` without validation).
        seconds: wall-clock training time, validation included.
        history: per epoch: ``epoch``, mean training ``loss`` and, with validation, ``score``.
    """

    epochs: int
    best_epoch: int
    best_score: float
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


def _optimizer(model: nn.Module, config: SeqRecConfig) -> torch.optim.Optimizer:
    # Decay only matrices and embeddings: decaying biases, norms or the LRU's λ parameters
    # (1-D) would pull them towards values with no meaning (e.g. |λ| = exp(-1)).
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr)


def _batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    # Random batches of similar lengths: shuffle, sort by length (stable, so ties stay
    # shuffled), cut, then shuffle the batch order. Less padding, every sequence once. The
    # loss is a mean over a batch's positions, so short-history users weigh more than with
    # random batches, closer to the per-user average the metrics take.
    order = rng.permutation(len(lengths))
    order = order[np.argsort(lengths[order], kind="stable")]
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _targets(sequences: list[np.ndarray], width: int) -> np.ndarray:
    out = np.full((len(sequences), width), -1, dtype=np.int64)
    for row, seq in enumerate(sequences):
        out[row, : len(seq) - 1] = seq[1:]
    return out


def fit(
    model: SeqRecModel,
    sequences: Sequence[np.ndarray],
    config: SeqRecConfig,
    *,
    validate: Callable[[SeqRecModel], float] | None = None,
    progress: bool = False,
    checkpoint: str | Path | None = None,
) -> FitResult:
    """Train ``model`` in place on item sequences (0-based item indices, oldest first).

    Every position of a sequence's last ``max_len + 1`` items predicts the next item, with a
    softmax over the whole catalog. After each epoch ``validate(model)`` (higher is better)
    decides early stopping: training ends after ``config.patience`` epochs without
    improvement, and the best epoch's weights are put back.

    Args:
        model: the model to train (from :func:`recgym.models.seqrec.models.build_model`).
        sequences: training sequences; those shorter than 2 items are skipped.
        config: optimiser, batch and stopping settings (``seed`` seeds dropout and batches).
        validate: a score of the model in eval mode, or ``None`` to train ``max_epochs``.
        progress: show a progress bar over epochs.
        checkpoint: a folder to save the training state into after every epoch (atomically,
            :mod:`recgym.utils.checkpoint`) and to resume from: a run started again with it
            ends as an uninterrupted one would. The caller deletes it. ``None``: none.

    Returns:
        What happened, epoch by epoch.

    Raises:
        ValueError: no sequence has 2 items or more, or ``checkpoint`` holds the state of
            another configuration.
    """
    kept = [np.asarray(s, dtype=np.int64)[-(config.max_len + 1) :] for s in sequences]
    kept = [s for s in kept if len(s) >= 2]
    if not kept:
        raise ValueError("fit needs at least one sequence of 2 items or more")
    lengths = np.array([len(s) for s in kept])
    device = model.item_emb.weight.device
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    optimizer = _optimizer(model, config)
    best_state, best_epoch, best_score = None, 0, -np.inf
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    first, stopped = 1, False
    saved = None
    if checkpoint is not None:
        saved = load_state(checkpoint, dataclasses.asdict(config), "seqrec training", device)
    if saved is not None:
        note_resume(f"the {config.model} training in {checkpoint} after epoch {saved['epoch']}")
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        rng.bit_generator.state = saved["rng"]
        torch.set_rng_state(saved["torch_rng"])
        history, best_state = saved["history"], saved["best_state"]
        best_epoch, best_score = saved["best_epoch"], saved["best_score"]
        first, stopped = saved["epoch"] + 1, saved["stopped"]
        start -= saved["seconds"]  # the seconds count the runs before the resume
    bar = tqdm(total=config.max_epochs, desc=config.model, unit="epoch") if progress else None
    # A run stopped early at its last saved epoch has no epoch left.
    for epoch in range(first, config.max_epochs + 1) if not stopped else ():
        model.train()
        losses = []
        for rows in _batches(lengths, config.batch_size, rng):
            items, _ = pad_batch([kept[i][:-1] for i in rows], config.max_len)
            # Targets are the inputs shifted back by one step, -1 where the input is a pad.
            targets = torch.from_numpy(_targets([kept[i] for i in rows], items.shape[1]))
            items, targets = items.to(device), targets.to(device)
            valid = targets >= 0
            # Logits only at real positions: the softmax over all items is most of the cost.
            logits = model.item_logits(model.encode(items)[valid])
            loss = F.cross_entropy(logits, targets[valid])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            losses.append(loss.item())
        record = {"epoch": float(epoch), "loss": float(np.mean(losses))}
        if validate is not None:
            model.eval()
            record["score"] = float(validate(model))
            if record["score"] > best_score:
                best_score, best_epoch = record["score"], epoch
                best_state = copy.deepcopy(model.state_dict())
        history.append(record)
        if bar is not None:
            bar.update(1)
            bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if k != "epoch"})
        # Stop once `patience` epochs in a row failed to improve (patience 0: at the first).
        stopped = validate is not None and epoch - best_epoch >= max(config.patience, 1)
        if checkpoint is not None:
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "history": history,
                "best_state": best_state,
                "best_epoch": best_epoch,
                "best_score": best_score,
                "epoch": epoch,
                "stopped": stopped,
                "seconds": time.perf_counter() - start,
            }
            save_state(checkpoint, state, dataclasses.asdict(config))
        if stopped:
            break
    if bar is not None:
        bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return FitResult(
        epochs=len(history),
        best_epoch=best_epoch if validate is not None else len(history),
        best_score=float(best_score) if validate is not None else float("nan"),
        seconds=time.perf_counter() - start,
        history=history,
    )


def load_split(
    dataset: str = "ml-100k", *, users: int | None = None, progress: bool = True
) -> tuple[LeaveOneOutSplit, int]:
    """The leave-one-out split of an embedded dataset with interactions, and its item count.

    Args:
        dataset: a name of :func:`recgym.data.load_dataset` whose data is fetched, not read
            from local files (e.g. ``"ml-100k"``).
        users: keep only the first ``users`` users (user ids sorted as strings).
        progress: show download progress.

    Raises:
        UnknownNameError: ``dataset`` is not an embedded dataset (the message lists them).
        ValueError: the dataset has no interactions, or ``users < 1``.
    """
    embedded = sorted(spec.name for spec in list_datasets() if spec.artifact is not None)
    if dataset not in embedded:
        raise UnknownNameError(
            f"train_seqrec needs an embedded dataset with interactions; got {dataset!r}, "
            f"embedded datasets: {', '.join(embedded)}"
        )
    data = load_dataset(dataset, progress=progress)
    if data.interactions is None:
        raise ValueError(f"dataset {dataset!r} has no interactions to train a next-item model on")
    split = leave_one_out(data.interactions)
    if users is not None:
        if users < 1:
            raise ValueError(f"users must be >= 1 or None, got {users}")
        keep = sorted(split.train["user_id"].astype(str).unique())[:users]
        split = LeaveOneOutSplit(
            *(
                f[f["user_id"].astype(str).isin(keep)].reset_index(drop=True)
                for f in (split.train, split.validation, split.test)
            )
        )
    return split, len(data.items)


def data_version(split: LeaveOneOutSplit) -> str:
    """16 hex digits of SHA-256 over the users and items of the train, validation and test sets."""
    digest = hashlib.sha256()
    for frame in (split.train, split.validation, split.test):
        digest.update("\0".join(frame["user_id"].astype(str)).encode())
        digest.update(frame["item_idx"].to_numpy(dtype=np.int64).tobytes())
    return digest.hexdigest()[:16]


def train_seqrec(
    config: SeqRecConfig,
    *,
    dataset: str = "ml-100k",
    progress: bool = True,
    users: int | None = None,
    device: str | torch.device | None = None,
) -> SeqRecRetriever:
    """Train ``config.model`` on a dataset's leave-one-out split and evaluate it.

    Training sequences are each user's training events in time order; early stopping watches
    validation NDCG@10 of the full-catalog ranking (history excluded). With the defaults of
    :func:`recgym.models.seqrec.config.default_config`, each model trains on MovieLens-100k in at
    most 2.5 minutes on 2 free CPU cores (40 epochs at most, early stopping after 10 without
    improvement).

    Args:
        config: the model and its training settings.
        dataset: an embedded dataset with interactions (see :func:`load_split`).
        progress: show a progress bar over epochs.
        users: train and evaluate on the first ``users`` users only (for quick tests).
        device: where to train (default CPU).

    Returns:
        The best epoch's model, with ``metrics``: ``validation/{ndcg,recall,hit}@10``,
        ``test/{ndcg,recall,hit}@10``, ``best_epoch``, ``epochs``, ``train_seconds``,
        ``train_users``.
    """
    split, n_items = load_split(dataset, users=users, progress=progress)
    _, val_hist, val_target = split.examples("validation")
    _, test_hist, test_target = split.examples("test")
    model = build_model(config, n_items).to(torch.device(device or "cpu"))

    def validate(m: SeqRecModel) -> float:
        return SeqRecRetriever(m).evaluate(val_hist, val_target)["ndcg@10"]

    result = fit(model, val_hist, config, validate=validate, progress=progress)
    retriever = SeqRecRetriever(model, data_version=data_version(split))
    metrics = {f"validation/{k}": v for k, v in retriever.evaluate(val_hist, val_target).items()}
    metrics |= {f"test/{k}": v for k, v in retriever.evaluate(test_hist, test_target).items()}
    metrics |= {
        "best_epoch": float(result.best_epoch),
        "epochs": float(result.epochs),
        "train_seconds": round(result.seconds, 2),
        "train_users": float(len(val_hist)),
    }
    retriever.metrics = metrics
    retriever.history = [
        {"epoch": r["epoch"], "loss": r["loss"], "validation/ndcg@10": r["score"]}
        for r in result.history
    ]
    return retriever
