"""Training SQN / SA2C on logged sequences, and the trained recommender.

:func:`train_rl4rec` loads a dataset's leave-one-out split, runs the LE once if the
configuration reads it, trains with :func:`fit_rl4rec` (early stopping on validation NDCG@10)
and evaluates on the test split. Every position but the last of a training sequence's last
``max_len`` items is a transition; one batch of sequences is one optimiser step, as in
:func:`recgym.models.seqrec.fit`. Given a ``checkpoint`` folder, training saves its state
there after every epoch (atomically, :mod:`recgym.utils.checkpoint`), and a run started again
with it resumes after the last saved epoch and ends as an uninterrupted run would.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn
from tqdm.auto import tqdm

from agents.rl4rec.config import RL4RecConfig
from agents.rl4rec.data import LEInputs, RL4RecData, le_inputs
from agents.rl4rec.model import (
    RL4RecModel,
    advantage_weights,
    double_q_value,
    sa2c_advantage,
    sample_negatives,
    td_targets,
)
from recgym.le import UserModel, load_user_model
from recgym.models.seqrec.models import build_model, pad_batch
from recgym.models.seqrec.retriever import (
    SeqRecRetriever,
    evaluate_scores,
    read_module,
    target_positions,
    write_module,
)
from recgym.models.seqrec.train import _batches, _optimizer, fit
from recgym.utils.checkpoint import load_state, note_resume, save_state
from recgym.wrappers import LEView, proposal_pool

__all__ = ["RL4RecRecommender", "fit_rl4rec", "train_rl4rec"]

_META = "rl4rec.json"
_FORMAT = 1


class RL4RecRecommender:
    """A trained SQN / SA2C model: scores every item for a history with its CE head.

    Attributes:
        model: the network, in eval mode.
        config: its training configuration.
        metrics: ``validation/*`` and ``test/*`` ndcg, recall and hit at 10, and training facts.
        history: per epoch ``epoch``, ``loss``, ``ce``, ``q`` and ``validation/ndcg@10``.
        user_model: the LE that gives SM states to a model trained with ``le_state``.
        test_positions: after :func:`fit_rl4rec`, per test user (the data's order) the 0-based
            position of the test item in the top 10, ``-1`` outside it: the per-user results
            that paired comparisons read (``None`` for a loaded model).
    """

    def __init__(
        self,
        model: RL4RecModel,
        config: RL4RecConfig,
        *,
        user_model: UserModel | None = None,
        metrics: dict[str, float] | None = None,
        history: list[dict[str, float]] | None = None,
    ) -> None:
        self.model = model.eval()
        self.config = config
        self.n_items = model.n_items
        self.user_model = user_model
        self.metrics = dict(metrics or {})
        self.history = list(history or [])
        self.test_positions: np.ndarray | None = None

    def __repr__(self) -> str:
        ndcg = self.metrics.get("test/ndcg@10")
        tail = f", test/ndcg@10={ndcg:.4f}" if ndcg is not None else ""
        return f"RL4RecRecommender({self.config.algo!r}, {self.config.backbone.model!r}{tail})"

    def score(
        self, histories: Sequence[np.ndarray], le_states: np.ndarray | None = None
    ) -> np.ndarray:
        """CE-head scores ``(B, n_items)`` of every item after each history (not masked).

        Args:
            histories: item indices, oldest first.
            le_states: ``(B, state_dim)`` SM states of the histories, for a model trained with
                ``le_state``; computed with :attr:`user_model` when not given.

        Raises:
            ValueError: the model reads LE states and neither they nor a user model are given.
        """
        hidden = SeqRecRetriever(self.model.backbone).states(histories)
        le = None
        if self.model.le_dim:
            if le_states is None:
                if self.user_model is None:
                    raise ValueError("this model reads LE states: pass le_states or set user_model")
                le_states = LEView(self.user_model, self.n_items).states(histories)
            le = torch.as_tensor(np.asarray(le_states), device=hidden.device)
        with torch.inference_mode():
            logits = self.model.ce_logits(self.model.state(hidden, le))
        return logits.float().cpu().numpy()

    def evaluate(
        self,
        histories: Sequence[np.ndarray],
        targets: np.ndarray,
        le_states: np.ndarray | None = None,
    ) -> dict[str, float]:
        """Mean ``ndcg@10``, ``recall@10`` and ``hit@10`` of the full ranking, history excluded
        (:func:`recgym.models.seqrec.evaluate_scores`)."""
        return evaluate_scores(self.score(histories, le_states), histories, targets, 10)

    def save(self, directory: str | Path) -> Path:
        """Write the weights (safetensors) and the config, metrics and history (JSON) into
        ``directory``, created if missing; returns it. The LE is not saved: a model that reads
        SM states gets it back from ``config.le`` on :meth:`load`."""
        meta = {
            "format": _FORMAT,
            "n_items": self.n_items,
            "le_dim": self.model.le_dim,
            "config": dataclasses.asdict(self.config),
            "metrics": self.metrics,
            "history": self.history,
        }
        return write_module(directory, self.model, meta, _META)

    @classmethod
    def load(
        cls,
        directory: str | Path,
        device: str | torch.device | None = None,
        user_model: UserModel | None = None,
    ) -> RL4RecRecommender:
        """Load what :meth:`save` wrote, onto ``device`` (default CPU). A model that reads SM
        states gets ``user_model``, default ``load_user_model(config.le, **config.le_kwargs)``.

        Raises:
            FileNotFoundError: the directory lacks the weights or the JSON file.
        """
        meta, state = read_module(directory, _META)
        config = RL4RecConfig.from_dict(meta["config"])
        model = RL4RecModel(build_model(config.backbone, int(meta["n_items"])), int(meta["le_dim"]))
        model.load_state_dict(state)
        model.to(torch.device(device) if device is not None else torch.device("cpu"))
        if model.le_dim and user_model is None:
            user_model = load_user_model(config.le, **config.le_kwargs)
        return cls(
            model,
            config,
            user_model=user_model if model.le_dim else None,
            metrics=meta["metrics"],
            history=meta.get("history", []),
        )


@dataclass
class _Sequences:
    """Per training user, the kept transitions and what the loss reads about them."""

    items: list[np.ndarray]
    rewards: list[np.ndarray]
    le_states: list[np.ndarray] | None
    proposals: list[np.ndarray] | None
    proposal_rewards: list[np.ndarray] | None

    def batch(
        self, rows: np.ndarray, device: torch.device, end_is_terminal: bool = True
    ) -> dict[str, Tensor]:
        """One batch: the sequences as input ids; ``valid`` marks their positions (states),
        ``transition`` those of the flattened states that are transitions (all but each
        sequence's last); the other parts are per transition, in row-major order."""
        items, lengths = pad_batch(
            [self.items[i] for i in rows], max(len(self.items[i]) for i in rows)
        )
        steps = lengths.numpy() - 1
        transition = np.ones(int(lengths.sum()), dtype=bool)
        transition[np.cumsum(lengths.numpy()) - 1] = False
        done = np.zeros(int(steps.sum()), dtype=bool)
        done[np.cumsum(steps) - 1] = end_is_terminal
        parts: dict[str, np.ndarray] = {
            "actions": np.concatenate([self.items[i][1:] for i in rows]),
            "rewards": np.concatenate([self.rewards[i] for i in rows]).astype(np.float32),
            "done": done,
            "transition": transition,
        }
        if self.le_states is not None:
            parts["le"] = np.concatenate([self.le_states[i] for i in rows])
        if self.proposals is not None and self.proposal_rewards is not None:
            parts["proposals"] = np.concatenate([self.proposals[i] for i in rows])
            parts["proposal_rewards"] = np.concatenate(
                [self.proposal_rewards[i] for i in rows]
            ).astype(np.float32)
        out = {k: torch.from_numpy(v).to(device) for k, v in parts.items()}
        out["items"] = items.to(device)
        out["valid"] = (torch.arange(items.shape[1]) < lengths[:, None]).to(device)
        return out


def _sequences(config: RL4RecConfig, data: RL4RecData, le: LEInputs | None) -> _Sequences:
    """Each user's last ``max_len`` items (a backbone's input, the last one included so that
    the last transition has a next state) and the matching rewards and LE inputs."""
    keep = [i for i, s in enumerate(data.logged.sequences) if len(s) >= 2]
    rewards = data.logged.rewards
    if config.reward == "le" and le is not None:  # _check_le made sure le is given
        rewards = le.rm_rewards
    seqs = data.logged.sequences
    start = [max(len(seqs[i]) - config.backbone.max_len, 0) for i in keep]
    lea = le.lea if le is not None and config.lea_k > 0 else None
    return _Sequences(
        items=[seqs[i][s:] for i, s in zip(keep, start, strict=True)],
        rewards=[rewards[i][s:] for i, s in zip(keep, start, strict=True)],
        le_states=None
        if le is None or not config.le_state
        else [le.train_states[i][s:] for i, s in zip(keep, start, strict=True)],
        proposals=None
        if lea is None
        else [lea.proposals[i][s:] for i, s in zip(keep, start, strict=True)],
        proposal_rewards=None
        if lea is None
        else [lea.proposal_rewards[i][s:] for i, s in zip(keep, start, strict=True)],
    )


def _check_le(config: RL4RecConfig, le: LEInputs | None) -> None:
    if not config.uses_le:
        return
    if le is None:
        raise ValueError("this configuration reads the LE: pass le (from le_inputs)")
    if config.lea_k > 0:
        lea = le.lea
        pool = proposal_pool(config.lea_k, config.lea_rank, config.lea_pool or None)
        want = (config.lea_k, config.lea_ce_weight, config.lea_q_weight, config.lea_rank, pool)
        got = None if lea is None else (lea.k, lea.ce_weight, lea.q_weight, lea.rank, lea.pool)
        if got != want:
            raise ValueError(
                f"config asks for LEA (k, ce_weight, q_weight, rank, pool) = {want}; le.lea "
                f"has {got}"
            )


def _loss(
    model: RL4RecModel,
    target: RL4RecModel,
    batch: dict[str, Tensor],
    config: RL4RecConfig,
    weighted: bool,
    generator: torch.Generator,
) -> tuple[Tensor, dict[str, float]]:
    """The step's loss and its parts (``ce``, ``q``)."""
    # Every state (M), then the transitions' (N): all but each sequence's last state.
    state_all = model.state(model.backbone.encode(batch["items"])[batch["valid"]], batch.get("le"))
    transition = torch.nonzero(batch["transition"]).squeeze(1)
    state = state_all[transition]
    log_probs = F.log_softmax(model.ce_logits(state), dim=-1)
    actions = batch["actions"]
    ce = -log_probs.gather(1, actions[:, None]).squeeze(1)
    q_all = model.q_values(state_all)
    q = q_all[transition]
    with torch.no_grad():
        t_hidden = target.backbone.encode(batch["items"])[batch["valid"]]
        # The next state of a transition is the next flattened state (same sequence).
        nxt = transition + 1
        q_target = target.q_values(target.state(t_hidden, batch.get("le"))[nxt])
        next_value = double_q_value(q_all.detach()[nxt], q_target)
    done = batch["done"]
    sampled = actions[:, None]
    rewards = batch["rewards"][:, None]
    if config.algo == "sa2c":
        negatives = sample_negatives(actions, model.n_items, config.negatives, generator)
        sampled = torch.cat([sampled, negatives], dim=1)
        rewards = torch.cat([rewards, rewards.new_zeros(negatives.shape)], dim=1)
    q_sampled = q.gather(1, sampled)
    y = td_targets(rewards, next_value, done, config.gamma)
    q_loss = 0.5 * (q_sampled - y).pow(2).sum(1)
    ce_weight = torch.ones_like(ce)
    if weighted:
        ce_weight = advantage_weights(sa2c_advantage(q_sampled)[:, 0], config.adv_clip)
    ce_loss = ce_weight * ce
    if "proposals" in batch:
        found = batch["proposals"] >= 0
        proposals = batch["proposals"].clamp(min=0)
        y_lea = td_targets(batch["proposal_rewards"], next_value, done, config.gamma)
        q_lea = 0.5 * (q.gather(1, proposals) - y_lea).pow(2)
        q_loss = q_loss + config.lea_q_weight * (q_lea * found).sum(1)
        ce_lea = -(log_probs.gather(1, proposals) * found).sum(1)
        ce_loss = ce_loss + config.lea_ce_weight * ce_lea
    loss = ce_loss.mean() + config.q_weight * q_loss.mean()
    return loss, {"ce": float(ce.detach().mean()), "q": float(q_loss.detach().mean())}


def fit_rl4rec(
    config: RL4RecConfig,
    data: RL4RecData,
    le: LEInputs | None = None,
    *,
    device: str | torch.device | None = None,
    progress: bool = False,
    checkpoint: str | Path | None = None,
) -> RL4RecRecommender:
    """Train one configuration on ``data``, early-stopped on validation NDCG@10, and evaluate.

    ``algo="ce"`` trains the backbone with :func:`recgym.models.seqrec.fit` (the plain next-item
    model). SQN and SA2C train both heads on every transition: the CE on the logged item, the
    Q head towards the double-DQN target ``r + γ Q_target(s', argmax_a Q(s', a))`` (``r``
    alone at the end of a sequence, unless ``end_is_terminal`` is off), with a target network
    copied every ``target_update`` steps. SA2C adds
    ``negatives`` sampled actions (reward 0, same next state) and, after ``warmup_epochs``,
    weights each transition's CE by its normalised, clipped advantage; early stopping does not
    end a run during the warm-up. LEA adds each proposal as a CE target and a Q transition
    (:class:`recgym.wrappers.LEAWrapper`).

    Args:
        config: what to train.
        data: the split (:meth:`RL4RecData.load`).
        le: the LE's inputs (:func:`le_inputs`), needed when ``config.uses_le``.
        device: where to train (default CPU).
        progress: show a progress bar over epochs.
        checkpoint: a folder to save the training state into after every epoch and to resume
            from (the caller deletes it when the run is done); ``None``: none.

    Returns:
        The best epoch's model, with ``metrics`` (``validation/*``, ``test/*``,
        ``best_epoch``, ``epochs``, ``train_seconds``, ``train_users``), ``history`` and
        ``test_positions``.

    Raises:
        ValueError: ``checkpoint`` holds the state of another configuration.
    """
    _check_le(config, le)
    dev = torch.device(device or "cpu")
    cfg = config.backbone
    backbone = build_model(cfg, data.n_items)
    le_dim = le.validation_states.shape[1] if le is not None and config.le_state else 0
    model = RL4RecModel(backbone, le_dim).to(dev)
    val_le = le.validation_states if le_dim and le is not None else None
    test_le = le.test_states if le_dim and le is not None else None
    rec = RL4RecRecommender(model, config, user_model=le.user_model if le_dim and le else None)

    def validate(_: nn.Module) -> float:
        return rec.evaluate(*data.validation, le_states=val_le)["ndcg@10"]

    start = time.perf_counter()
    seconds_before = 0.0
    if config.algo == "ce":
        result = fit(
            backbone,
            data.logged.sequences,
            cfg,
            validate=validate,
            progress=progress,
            checkpoint=checkpoint,
        )
        history = [
            {"epoch": r["epoch"], "loss": r["loss"], "validation/ndcg@10": r["score"]}
            for r in result.history
        ]
        best_epoch = result.best_epoch
        # fit's seconds count the runs before a resume; those are the part not timed here.
        seconds_before = max(result.seconds - (time.perf_counter() - start), 0.0)
    else:
        history, best_epoch, seconds_before = _train(
            model,
            config,
            _sequences(config, data, le),
            validate,
            progress,
            None if checkpoint is None else Path(checkpoint),
        )
    seconds = seconds_before + time.perf_counter() - start
    model.eval()
    rec.metrics = {f"validation/{k}": v for k, v in rec.evaluate(*data.validation, val_le).items()}
    test_scores = rec.score(data.test[0], test_le)
    rec.metrics |= {f"test/{k}": v for k, v in evaluate_scores(test_scores, *data.test).items()}
    rec.test_positions = target_positions(test_scores, *data.test)
    rec.metrics |= {
        "best_epoch": float(best_epoch),
        "epochs": float(len(history)),
        "train_seconds": round(seconds, 2),
        "train_users": float(len(data.validation[0])),
    }
    rec.history = history
    return rec


def _train(
    model: RL4RecModel,
    config: RL4RecConfig,
    seqs: _Sequences,
    validate: Callable[[nn.Module], float],
    progress: bool,
    checkpoint: Path | None = None,
) -> tuple[list[dict[str, float]], int, float]:
    """The SQN / SA2C epochs; returns the history, the best epoch (its weights loaded) and the
    seconds that runs before a resume from ``checkpoint`` trained."""
    cfg = config.backbone
    if not seqs.items:
        raise ValueError("fit_rl4rec needs at least one training sequence of 2 items or more")
    dev = model.backbone.item_emb.weight.device
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    generator = torch.Generator(device=dev).manual_seed(cfg.seed)
    optimizer = _optimizer(model, cfg)
    target = copy.deepcopy(model).eval().requires_grad_(False)
    lengths = np.array([len(s) for s in seqs.items])
    history: list[dict[str, float]] = []
    best_state, best_epoch, best_score, steps = None, 0, -np.inf, 0
    warmup = config.warmup_epochs if config.algo == "sa2c" else 0
    first, stopped, started, before = 1, False, time.perf_counter(), 0.0
    saved = None
    if checkpoint is not None:
        saved = load_state(checkpoint, dataclasses.asdict(config), "SQN / SA2C run", dev)
    if saved is not None:
        note_resume(f"the {config.algo} run in {checkpoint} after epoch {saved['epoch']}")
        model.load_state_dict(saved["model"])
        target.load_state_dict(saved["target"])
        optimizer.load_state_dict(saved["optimizer"])
        rng.bit_generator.state = saved["rng"]
        generator.set_state(saved["generator"])
        torch.set_rng_state(saved["torch_rng"])
        history, best_state = saved["history"], saved["best_state"]
        best_epoch, best_score, steps = saved["best_epoch"], saved["best_score"], saved["steps"]
        first, stopped, before = saved["epoch"] + 1, saved["stopped"], saved["seconds"]
    bar = tqdm(total=cfg.max_epochs, desc=config.algo, unit="epoch") if progress else None
    # A run stopped early at its last saved epoch has no epoch left.
    for epoch in range(first, cfg.max_epochs + 1) if not stopped else ():
        model.train()
        parts: dict[str, list[float]] = {"loss": [], "ce": [], "q": []}
        for rows in _batches(lengths, cfg.batch_size, rng):
            batch = seqs.batch(rows, dev, config.end_is_terminal)
            weighted = config.algo == "sa2c" and epoch > warmup
            loss, logged = _loss(model, target, batch, config, weighted, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            steps += 1
            if steps % config.target_update == 0:
                target.load_state_dict(model.state_dict())
            for key, value in (("loss", loss.item()), *logged.items()):
                parts[key].append(value)
        model.eval()
        record = {"epoch": float(epoch), **{k: float(np.mean(v)) for k, v in parts.items()}}
        record["validation/ndcg@10"] = float(validate(model))
        history.append(record)
        if record["validation/ndcg@10"] > best_score:
            best_score, best_epoch = record["validation/ndcg@10"], epoch
            best_state = copy.deepcopy(model.state_dict())
        if bar is not None:
            bar.update(1)
            bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if k != "epoch"})
        # No stop inside SA2C's warm-up: the weighted phase has not been tried yet.
        stopped = epoch > warmup and epoch - max(best_epoch, warmup) >= max(cfg.patience, 1)
        if checkpoint is not None:
            state = {
                "model": model.state_dict(),
                "target": target.state_dict(),
                "optimizer": optimizer.state_dict(),
                "rng": rng.bit_generator.state,
                "generator": generator.get_state(),
                "torch_rng": torch.get_rng_state(),
                "history": history,
                "best_state": best_state,
                "best_epoch": best_epoch,
                "best_score": best_score,
                "steps": steps,
                "epoch": epoch,
                "stopped": stopped,
                "seconds": before + time.perf_counter() - started,
            }
            save_state(checkpoint, state, dataclasses.asdict(config))
        if stopped:
            break
    if bar is not None:
        bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    return history, best_epoch, before


def train_rl4rec(
    config: RL4RecConfig,
    *,
    dataset: str = "ml-100k",
    users: int | None = None,
    user_model: UserModel | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
    checkpoint: str | Path | None = None,
) -> RL4RecRecommender:
    """Load ``dataset``'s leave-one-out split, run the LE if needed, train and evaluate.

    Args:
        config: what to train.
        dataset: an embedded dataset with ratings (see
            :func:`recgym.models.seqrec.train.load_split`).
        users: the first ``users`` users only (quick runs).
        user_model: the LE object; default ``load_user_model(config.le, **config.le_kwargs)``
            (whose passes are cached in memory for later runs on the same data).
        device: where to train (default CPU).
        progress: show progress bars.
        checkpoint: a folder for :func:`fit_rl4rec`'s checkpoints (``None``: none).
    """
    data = RL4RecData.load(dataset, users=users, progress=progress)
    le = None
    if config.uses_le:
        le = le_inputs(
            data,
            user_model if user_model is not None else config.le,
            le_kwargs=config.le_kwargs,
            **config.lea_settings(),
        )
    return fit_rl4rec(config, data, le, device=device, progress=progress, checkpoint=checkpoint)
