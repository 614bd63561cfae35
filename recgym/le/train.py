"""Training an LLM environment: item tokens, then the state model, then the reward model.

:func:`train_le` builds an :class:`~recgym.le.model.LLMEnvironment` from a :class:`LEConfig`
and trains it on a seeded subset of MovieLens-100k users (their *training* events only: no
validation or test event of any user is seen, so the test split stays clean for the
recommenders trained against the LE):

1. **item tokens** — the base LLM (no adapter) regenerates each item's text
   (``"Title (Year) | genres"``) from its item token; only the item embeddings learn. They start
   at the mean embedding of the item's text tokens, centred over the catalog and scaled to a
   token's norm.
2. **state model** — adapter ``"sm"`` with ``sm_head``/``sm_item``, and the item tokens keep
   learning: at every position of every training sequence, full-catalog softmax cross-entropy
   of ``cos(state, item) / tau`` against the next item (the limit of the paper's sampled
   state–action comparison).
3. **reward model** — adapter ``"rm"`` with ``rm_head``: at every position, Bradley–Terry loss
   ``-log sigmoid(score(next item) - score(random unseen item))``.

Then the held-out users (not in the subset) give the evaluation: the RM's pairwise accuracy
(validation item vs a random unseen item), the SM's Recall/NDCG@10 of the validation item over
the full catalog (history masked), popularity on the same users for reference, and the RM's
calibration (halfway between the median positive and median negative score).

Given a ``checkpoint`` folder, training saves its state there every ``checkpoint_minutes``
(between two optimizer steps, and after each stage), written atomically
(:mod:`recgym.utils.checkpoint`); a run started again with the same folder and
configuration resumes from it and ends with the same LE, bit for bit on the same device.
:func:`recgym.le.hub.load` keeps one beside the cache entry it trains.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from recgym.le.model import Job, LLMEnvironment, Windows
from recgym.metrics import metrics_at_rank, target_ranks
from recgym.utils.checkpoint import load_state, note_resume, save_state

__all__ = [
    "ITEM_INITS",
    "LEConfig",
    "LEData",
    "TrainingCheckpoint",
    "evaluate_le",
    "le_data",
    "train_le",
]


ITEM_INITS = ("text", "text+sasrec")
"""How item tokens can start (:attr:`LEConfig.item_init`)."""


@dataclass(frozen=True)
class LEConfig:
    """Everything that defines a trained LE (JSON via ``dataclasses.asdict``)."""

    model: str = "smollm2-135m"
    """Base LLM: a :func:`recgym.llm.load` name or folder."""
    dataset: str = "ml-100k"
    """Embedded dataset with interactions and item texts."""
    users: int | None = 100
    """Training users (a seeded sample; the paper trains its LE on a small subset); ``None``:
    every user with 2+ training events."""
    eval_users: int = 200
    """Users evaluated after training on their validation item: held-out users, or with
    ``users=None`` a seeded sample of all users (the rest of the users are simulated too)."""
    test_users: int = 200
    """With ``users=None``: the users of RecUser-v0's ``"test"`` split (a seeded sample; the
    others are its ``"train"`` users). The LE learns every user's training events either way:
    the split keeps RL agents' evaluation users apart from their training users."""
    max_items: int | None = None
    """Keep only the most-rated items (for tiny configs); ``None`` keeps the whole catalog."""
    layers: int | None = None
    """Decoder layers of the base kept (its first ones); ``None``: all of them."""
    window: int = 10
    """History items the SM and RM read."""
    state_dim: int = 64
    """State and action vector length."""
    tau: float = 0.1
    """Softmax temperature of the SM loss."""
    lora_r: int = 8
    """LoRA rank of each adapter."""
    lora_alpha: int = 16
    """LoRA scaling numerator."""
    item_init: str = "text"
    """How item tokens start: ``"text"`` (the item text's mean token embedding, centred) or
    ``"text+sasrec"`` (plus recgym's SASRec item embedding trained on the same training
    events, through a fixed random projection: collaborative item tokens, as LLaRA and CoLLM
    map a sequential recommender's embeddings into the LLM's token space)."""
    item_epochs: int = 1
    """Passes over the catalog for the item tokens (0: none)."""
    sm_epochs: int = 2
    """Passes over the training sequences for the SM."""
    rm_epochs: int = 2
    """Passes over the training sequences for the RM."""
    item_lr: float = 1e-2
    """Adam learning rate of the item tokens (item stage and SM stage)."""
    lr: float = 5e-4
    """AdamW learning rate of the adapters and heads."""
    popular_negatives: float = 0.0
    """Share of the RM's negatives drawn in proportion to popularity (the rest uniformly), all
    unseen by the user: uniform negatives alone teach the RM to prefer popular items."""
    batch_size: int = 16
    """Windows (SM/RM) or items (item tokens) per step."""
    seed: int = 0
    """Seed of the user sample, negatives, initialisation and batch order."""

    def __post_init__(self) -> None:
        for name in ("eval_users", "test_users", "window", "state_dim", "lora_r", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"LEConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("users", "layers"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"LEConfig.{name} must be >= 1 or None, got {getattr(self, name)}")
        if self.item_init not in ITEM_INITS:
            raise ValueError(
                f"LEConfig.item_init must be one of {ITEM_INITS}, got {self.item_init!r}"
            )
        if self.layers is not None and self.item_epochs:
            raise ValueError(
                "LEConfig.item_epochs must be 0 with layers set: the item stage regenerates the "
                "item's text through the whole LM"
            )
        if not 0.0 <= self.popular_negatives <= 1.0:
            raise ValueError(
                f"LEConfig.popular_negatives must be in [0, 1], got {self.popular_negatives}"
            )
        if self.max_items is not None and self.max_items < 2:
            raise ValueError(f"LEConfig.max_items must be >= 2 or None, got {self.max_items}")
        if self.tau <= 0:
            raise ValueError(f"LEConfig.tau must be > 0, got {self.tau}")


@dataclass
class LEData:
    """The sequences an LE is trained and evaluated on, in LE item indices.

    Attributes:
        item_ids: dataset item index of each LE item.
        texts: each LE item's text.
        train: training users' training sequences.
        heldout: the evaluation users' training sequences: every other user, or with
            ``users=None`` every user (then each one's validation item is still unseen).
        heldout_targets: their validation item (-1 where it is outside the LE's catalog).
        counts: training-event count of each LE item (popularity).
        users: the simulated users of RecUser-v0 by split (``"train"``, ``"test"``): their
            training sequences.
    """

    item_ids: np.ndarray
    texts: list[str]
    train: list[np.ndarray]
    heldout: list[np.ndarray]
    heldout_targets: np.ndarray
    counts: np.ndarray
    users: dict[str, list[np.ndarray]] = dataclasses.field(default_factory=dict)


def le_data(config: LEConfig, progress: bool = True) -> LEData:
    """Split the dataset's users into the LE's training users and the evaluation users."""
    from recgym.data import load_dataset
    from recgym.data.splits import leave_one_out

    data = load_dataset(config.dataset, progress=progress)
    if data.interactions is None:
        raise ValueError(f"dataset {config.dataset!r} has no interactions to train an LE on")
    split = leave_one_out(data.interactions)
    _, histories, targets = split.examples("validation")
    counts = np.bincount(split.train["item_idx"].to_numpy(), minlength=len(data.items))
    if config.max_items is None:
        item_ids = np.arange(len(data.items))
    else:
        item_ids = np.sort(np.argsort(-counts, kind="stable")[: config.max_items])
    to_le = np.full(len(data.items), -1, dtype=np.int64)
    to_le[item_ids] = np.arange(len(item_ids))
    seqs = [to_le[h][to_le[h] >= 0] for h in histories]
    keep = np.array([len(s) >= 2 for s in seqs])
    order = np.random.default_rng(config.seed).permutation(np.flatnonzero(keep))
    if config.users is None:
        # Every user trains the LE; the evaluation is on their validation items, which no
        # training step sees, and RecUser-v0's splits are a seeded partition of the users.
        if config.test_users >= len(order):
            raise ValueError(
                f"LEConfig.test_users={config.test_users} leaves no training users "
                f"({len(order)} users have 2+ events)"
            )
        train_rows = held_rows = np.sort(order)
        env_test = np.sort(order[: config.test_users])
        env_train = np.sort(order[config.test_users :])
    else:
        train_rows = np.sort(order[: config.users])
        held_rows = np.sort(order[config.users :])
        if len(train_rows) < config.users:
            raise ValueError(
                f"LEConfig.users={config.users} but only {len(train_rows)} users have 2+ events"
            )
        env_train, env_test = train_rows, held_rows
    return LEData(
        item_ids=item_ids,
        texts=data.items.texts(item_ids.tolist()),
        train=[seqs[i] for i in train_rows],
        heldout=[seqs[i] for i in held_rows],
        heldout_targets=to_le[targets[held_rows]],
        counts=counts[item_ids],
        users={"train": [seqs[i] for i in env_train], "test": [seqs[i] for i in env_test]},
    )


def _bar(total: int, desc: str, progress: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not progress, leave=False)


def _step(opt: torch.optim.Optimizer, loss: torch.Tensor, bar: Any) -> float:
    """One optimizer step on ``loss``; advances the progress bar and returns the loss."""
    opt.zero_grad()
    loss.backward()
    opt.step()
    bar.update()
    bar.set_postfix(loss=f"{loss.item():.3f}")
    return loss.item()


def _batches(n: int, size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    order = rng.permutation(n)
    for i in range(0, n, size):
        yield order[i : i + size]


class TrainingCheckpoint:
    """Where :func:`train_le` is, saved into ``folder`` now and then, and read back to resume.

    A save holds the LE's trained parts, the current stage's optimizer, its position (pass,
    batch, and the batch-order generator as the pass began), the losses so far, the torch RNG
    and the configuration.

    Args:
        folder: the checkpoint folder (replaced whole at each save).
        config: the run's configuration; a checkpoint of another one is refused.
        minutes: save after an optimizer step once this many minutes passed since the last
            save (0: after every step); a stage's end always saves.

    Raises:
        ValueError: ``folder`` holds a checkpoint of another configuration.
    """

    def __init__(self, folder: str | Path, config: LEConfig, minutes: float = 5.0) -> None:
        self.folder = Path(folder)
        self.config = config
        self.seconds = 60.0 * minutes
        self.le: LLMEnvironment | None = None
        self.history: dict[str, list[float]] = {}
        self.timings: dict[str, float] = {}
        self._last = self._started = time.perf_counter()
        self.saved = load_state(self.folder, dataclasses.asdict(config), "LE training")
        """What the folder held when the run started (``None``: no checkpoint)."""

    def resumes(self, stage: str) -> bool:
        """Whether the run resumes inside ``stage`` (its setup is then the checkpoint's)."""
        return self.saved is not None and (self.saved["position"] or {}).get("stage") == stage

    def restore(self, le: LLMEnvironment) -> None:
        """Load the saved trained parts into ``le``, the finished stages' losses and timings,
        and the torch RNG; remember ``le`` for the next saves."""
        self.le = le
        if self.saved is None:
            return
        position = self.saved["position"]
        where = f"stages done: {', '.join(self.saved['history']) or 'none'}"
        if position is not None:
            where += f"; {position['stage']} pass {position['epoch'] + 1} batch {position['batch']}"
        note_resume(f"the LE training in {self.folder} ({where})")
        le.load_state_dict(self.saved["weights"], strict=False)
        self.history = {k: list(v) for k, v in self.saved["history"].items()}
        self.timings = dict(self.saved["timings"])
        torch.set_rng_state(self.saved["torch_rng"])

    def save(self, position: dict[str, Any] | None = None) -> None:
        """Save now; ``position`` is where inside a stage (``None``: between stages)."""
        assert self.le is not None, "restore(le) first"
        state = {
            "weights": self.le.trained_state(),
            "history": self.history,
            "timings": self.timings,
            "position": position,
            "torch_rng": torch.get_rng_state(),
            "seconds": self.seconds_so_far(),
        }
        save_state(self.folder, state, dataclasses.asdict(self.config))
        self._last = time.perf_counter()

    def seconds_so_far(self) -> float:
        """Seconds of training so far, the runs before the resume included."""
        before = 0.0 if self.saved is None else float(self.saved["seconds"])
        return before + time.perf_counter() - self._started

    def due(self) -> bool:
        """Whether the save interval has passed."""
        return time.perf_counter() - self._last >= self.seconds


def _epochs(
    stage: str,
    n: int,
    epochs: int,
    size: int,
    rng: np.random.Generator,
    opt: torch.optim.Optimizer,
    losses: list[float],
    checkpoint: TrainingCheckpoint | None,
) -> Iterator[np.ndarray]:
    """The batches of ``epochs`` passes over ``n`` rows (a new order per pass from ``rng``).

    The caller takes one optimizer step per batch and appends its loss to ``losses``. With a
    checkpoint, a stage the run resumes inside starts where the save was (the optimizer,
    ``rng`` and ``losses`` restored), and a save is made after a step when one is due.
    """
    first, skip = 0, 0
    if checkpoint is not None and checkpoint.resumes(stage):
        assert checkpoint.saved is not None
        position = checkpoint.saved["position"]
        first, skip = position["epoch"], position["batch"]
        rng.bit_generator.state = position["rng"]
        opt.load_state_dict(position["optimizer"])
        losses[:] = position["losses"]
    for epoch in range(first, epochs):
        # The generator as the pass begins: a resumed pass draws the same order again.
        start = rng.bit_generator.state
        batches = list(_batches(n, size, rng))
        for b in range(skip, len(batches)):
            yield batches[b]
            if checkpoint is not None and checkpoint.due():
                position = {
                    "stage": stage,
                    "epoch": epoch,
                    "batch": b + 1,
                    "rng": start,
                    "optimizer": opt.state_dict(),
                    "losses": list(losses),
                }
                checkpoint.save(position)
        skip = 0


def train_items(
    le: LLMEnvironment,
    texts: list[str],
    config: LEConfig,
    progress: bool = True,
    checkpoint: TrainingCheckpoint | None = None,
) -> list[float]:
    """Stage 1: learn each item token by regenerating the item's text after it."""
    tok = le.tokenizer
    eos = tok.eos_token or ""
    ids = [tok(t + eos, add_special_tokens=False)["input_ids"] for t in texts]
    embed = le.lm.get_input_embeddings()
    dev = le.device
    le.item_emb.requires_grad_(True)
    opt = torch.optim.Adam([le.item_emb], lr=config.item_lr)
    rng = np.random.default_rng(config.seed)
    losses: list[float] = []
    le.train()
    steps = config.item_epochs * math.ceil(len(ids) / config.batch_size)
    batches = _epochs(
        "items", len(ids), config.item_epochs, config.batch_size, rng, opt, losses, checkpoint
    )
    with _bar(steps, "LE item tokens", progress) as bar, le.lm.disable_adapter():
        for rows in batches:
            width = max(len(ids[r]) for r in rows)
            labels = torch.full((len(rows), width), -100, dtype=torch.long)
            for b, r in enumerate(rows):
                labels[b, : len(ids[r])] = torch.tensor(ids[r])
            labels = labels.to(dev)
            text = embed(labels.clamp(min=0))
            tokens = torch.cat([le.item_emb[torch.as_tensor(rows, device=dev)][:, None], text], 1)
            attn = torch.cat([torch.ones_like(labels[:, :1]), (labels >= 0).long()], 1)
            logits = le.lm(
                inputs_embeds=tokens.to(text.dtype), attention_mask=attn, use_cache=False
            ).logits[:, :-1]
            loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten())
            losses.append(_step(opt, loss, bar))
    return losses


def init_items(
    le: LLMEnvironment,
    texts: list[str],
    config: LEConfig,
    progress: bool = True,
) -> None:
    """Set the item tokens' starting values (:attr:`LEConfig.item_init`)."""
    tok = le.tokenizer
    eos = tok.eos_token or ""
    embed = le.lm.get_input_embeddings()
    dev = le.device
    collab = None
    if config.item_init == "text+sasrec":  # trains outside no_grad on its first use
        collab = torch.as_tensor(_sasrec_items(le, config, progress), device=dev)
    with torch.no_grad():
        rows = [tok(t + eos, add_special_tokens=False)["input_ids"] for t in texts]
        means = torch.stack([embed(torch.tensor(r, device=dev)).float().mean(0) for r in rows])
        # Mean text embeddings are nearly parallel (cosine ~0.8 for SmolLM2): items would look
        # alike to the SM and RM. Their deviations from the catalog mean keep the text's
        # information and are as distinct as random tokens; scale them to a token's norm.
        token_norm = embed.weight.float().norm(dim=1).mean()
        tokens = F.normalize(means - means.mean(0), dim=1)
        if collab is not None:
            # A fixed random projection into the token space keeps the embedding's geometry
            # (Johnson-Lindenstrauss); the SM and RM learn to read it, and the tokens go on
            # learning in the SM stage.
            gen = torch.Generator().manual_seed(config.seed)
            proj = torch.randn(collab.shape[1], tokens.shape[1], generator=gen).to(dev)
            centred = collab - collab.mean(0)
            tokens = F.normalize(tokens + F.normalize(centred @ proj, dim=1), dim=1)
        le.item_emb.copy_(tokens * token_norm)


def _sasrec_items(le: LLMEnvironment, config: LEConfig, progress: bool) -> np.ndarray:
    """``(n_items, d)`` item embeddings of recgym's SASRec trained on the dataset's training
    events (:func:`recgym.models.seqrec.hub.pretrained`: cached, trained once in ~2 minutes)."""
    from recgym.models.seqrec.hub import pretrained

    retriever = pretrained("sasrec", dataset=config.dataset, seed=config.seed, progress=progress)
    weight = retriever.model.item_emb.weight.detach().float().cpu().numpy()[1:]  # row 0: pad
    return np.asarray(weight[le.item_ids], dtype=np.float32)


def _windows_of(
    le: LLMEnvironment, seqs: list[np.ndarray], negatives: list[np.ndarray] | None
) -> list[Job]:
    """Training windows over ``seq[:-1]``: SM windows (the target of position ``t`` is
    ``seq[t + 1]``) or RM windows carrying ``(next item, negative)`` pairs."""
    heads = [s[:-1] for s in seqs]
    if negatives is None:
        return le.jobs(heads, [None] * len(seqs), rm=False)
    pairs = [np.stack([s[1:], n], 1) for s, n in zip(seqs, negatives, strict=True)]
    return le.jobs(heads, list(pairs), rm=True)


def _fit(
    le: LLMEnvironment,
    adapter: str,
    jobs: list[Job],
    loss_of: Callable[[torch.Tensor, Windows, list[Job]], torch.Tensor],
    params: list[torch.nn.Parameter],
    config: LEConfig,
    epochs: int,
    progress: bool,
    items: torch.nn.Parameter | None = None,
    checkpoint: TrainingCheckpoint | None = None,
) -> list[float]:
    """Train ``params`` (and, at ``config.item_lr``, the item tokens ``items`` if given; they
    are frozen otherwise)."""
    groups: list[dict[str, Any]] = [{"params": params, "lr": config.lr}]
    if items is not None:
        groups.append({"params": [items], "lr": config.item_lr})
    le.item_emb.requires_grad_(items is not None)
    opt = torch.optim.AdamW(groups, weight_decay=0.0)
    rng = np.random.default_rng(config.seed + 1)
    losses: list[float] = []
    le.train()
    steps = epochs * math.ceil(len(jobs) / config.batch_size)
    batches = _epochs(adapter, len(jobs), epochs, config.batch_size, rng, opt, losses, checkpoint)
    with _bar(steps, f"LE {adapter.upper()}", progress) as bar:
        for rows in batches:
            chunk = [jobs[r] for r in rows]
            batch = le.pack(chunk)
            loss = loss_of(le.hidden(adapter, batch), batch, chunk)
            losses.append(_step(opt, loss, bar))
    le.invalidate()
    return losses


def _adapter_params(le: LLMEnvironment, adapter: str) -> list[torch.nn.Parameter]:
    return [p for n, p in le.lm.named_parameters() if "lora_" in n and f".{adapter}." in n]


def train_sm(
    le: LLMEnvironment,
    seqs: list[np.ndarray],
    config: LEConfig,
    progress: bool = True,
    checkpoint: TrainingCheckpoint | None = None,
) -> list[float]:
    """Stage 2: the state model (next-item softmax over the catalog)."""
    jobs = _windows_of(le, seqs, None)
    dev = le.device

    def loss_of(hidden: torch.Tensor, batch: Windows, chunk: list[Job]) -> torch.Tensor:
        states = le.state_vectors(
            torch.cat([hidden[b, rows.to(dev)] for b, rows in enumerate(batch.history_rows)])
        )
        # Window position p >= out_from is sequence position start + p - out_from.
        target = np.concatenate(
            [seqs[j.seq][j.start + 1 : j.start + 1 + len(j.items) - j.out_from] for j in chunk]
        )
        logits = states @ le.action_vectors().T / le.tau
        return F.cross_entropy(logits, torch.as_tensor(target, device=dev))

    params = [*_adapter_params(le, "sm"), *le.sm_head.parameters(), *le.sm_item.parameters()]
    # The item tokens keep learning here: the item stage updates each token once per pass
    # over the catalog, while every SM step moves all of them through the softmax.
    return _fit(
        le, "sm", jobs, loss_of, params, config, config.sm_epochs, progress, le.item_emb, checkpoint
    )


def train_rm(
    le: LLMEnvironment,
    seqs: list[np.ndarray],
    config: LEConfig,
    rng: np.random.Generator,
    counts: np.ndarray,
    progress: bool = True,
    checkpoint: TrainingCheckpoint | None = None,
) -> list[float]:
    """Stage 3: the reward model (Bradley–Terry over next item vs an unseen item, drawn
    uniformly or, for a :attr:`LEConfig.popular_negatives` share, by popularity ``counts``)."""
    negatives = [
        sample_negatives(s, len(s) - 1, counts, config.popular_negatives, rng) for s in seqs
    ]
    jobs = _windows_of(le, seqs, negatives)
    dev = le.device

    def loss_of(hidden: torch.Tensor, batch: Windows, chunk: list[Job]) -> torch.Tensor:
        rows = [r for r in batch.candidate_rows if r is not None]
        scores = torch.cat(
            [le.scores(hidden[b, r.to(dev)]) for b, r in enumerate(rows)]
        )  # (n, 2): positive, negative
        return -F.logsigmoid(scores[:, 0] - scores[:, 1]).mean()

    params = [*_adapter_params(le, "rm"), *le.rm_head.parameters()]
    return _fit(
        le, "rm", jobs, loss_of, params, config, config.rm_epochs, progress, None, checkpoint
    )


def sample_unseen(seq: np.ndarray, n: int, n_items: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random items outside ``seq`` (with replacement)."""
    seen = np.zeros(n_items, dtype=bool)
    seen[seq] = True
    pool = np.flatnonzero(~seen)
    if not len(pool):
        raise ValueError("a user has seen every item: no negative to sample")
    return pool[rng.integers(len(pool), size=n)]


def sample_negatives(
    seq: np.ndarray, n: int, counts: np.ndarray, popular: float, rng: np.random.Generator
) -> np.ndarray:
    """``n`` items outside ``seq``: each drawn by popularity (``counts + 1``) with probability
    ``popular``, otherwise uniformly (:func:`sample_unseen`)."""
    out = sample_unseen(seq, n, len(counts), rng)
    if popular <= 0.0:
        return out
    by_count = rng.random(n) < popular
    seen = np.zeros(len(counts), dtype=bool)
    seen[seq] = True
    weights = np.where(seen, 0.0, counts.astype(np.float64) + 1.0)
    out[by_count] = rng.choice(len(counts), size=int(by_count.sum()), p=weights / weights.sum())
    return out


@torch.no_grad()
def evaluate_le(le: LLMEnvironment, data: LEData, config: LEConfig) -> dict[str, float]:
    """Held-out quality of the SM and RM, and the RM's calibration (set on ``le``).

    Reads every window in full: incremental reads equal them only up to float noise, and the
    calibration is saved with the weights, which a re-run must reproduce bit for bit."""
    budget = le.kv_cache_bytes
    le.kv_cache_bytes = 0
    try:
        return _evaluate(le, data, config)
    finally:
        le.kv_cache_bytes = budget


def _evaluate(le: LLMEnvironment, data: LEData, config: LEConfig) -> dict[str, float]:
    rng = np.random.default_rng(config.seed + 2)
    keep = np.flatnonzero(data.heldout_targets >= 0)[: config.eval_users]
    hist = [data.heldout[i] for i in keep]
    targets = data.heldout_targets[keep]
    sims = le.states(hist) @ le.item_vectors().T
    ranks = target_ranks(sims, targets, hist)
    sm = metrics_at_rank(ranks, 10, (10,), ("recall", "ndcg"))
    pop = np.broadcast_to(data.counts.astype(np.float64), sims.shape)
    pop_ranks = target_ranks(pop, targets, hist)
    popm = metrics_at_rank(pop_ranks, 10, (10,), ("recall", "ndcg"))
    negs = np.array(
        [
            sample_unseen(np.append(h, t), 1, le.n_items, rng)[0]
            for h, t in zip(hist, targets, strict=True)
        ]
    )
    pos = le.rm_scores(hist, targets)
    neg = le.rm_scores(hist, negs)
    le.calibration.fill_(float(np.median(pos) + np.median(neg)) / 2)
    pop_pairs = data.counts[targets] > data.counts[negs]
    return {
        "heldout_users": float(len(keep)),
        "sm/recall@10": float(sm["recall@10"].mean()),
        "sm/ndcg@10": float(sm["ndcg@10"].mean()),
        "popularity/recall@10": float(popm["recall@10"].mean()),
        "popularity/ndcg@10": float(popm["ndcg@10"].mean()),
        "rm/pairwise_accuracy": float((pos > neg).mean()),
        "popularity/pairwise_accuracy": float(pop_pairs.mean()),
        "rm/calibration": float(le.calibration),
        "rm/reward_positive": float(np.median(_sigmoid(pos - float(le.calibration)))),
        "rm/reward_negative": float(np.median(_sigmoid(neg - float(le.calibration)))),
    }


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def train_le(
    config: LEConfig,
    *,
    device: str | None = None,
    progress: bool = True,
    checkpoint: str | Path | None = None,
    checkpoint_minutes: float = 5.0,
) -> LLMEnvironment:
    """Build and train an LE (see the module docstring); ``le.metrics`` holds the held-out
    evaluation and the training time, ``le.users`` the simulated users (``"train"``: the
    training subset, ``"test"``: the held-out users; their training sequences).

    Args:
        config: what to train.
        device: where (default: CUDA when available).
        progress: show progress bars.
        checkpoint: a folder to save the training state into every ``checkpoint_minutes``
            (and after each stage) and to resume from (:class:`TrainingCheckpoint`); the caller
            deletes it once the LE is saved. ``None``: no checkpoints.
        checkpoint_minutes: minutes between two saves (0: after every optimizer step).

    Raises:
        ValueError: ``checkpoint`` holds the checkpoint of another configuration.
    """
    saver = None
    if checkpoint is not None:
        saver = TrainingCheckpoint(checkpoint, config, checkpoint_minutes)
    # A resumed run's total counts the minutes of the runs before it.
    start = time.perf_counter() - (0.0 if saver is None else saver.seconds_so_far())
    torch.manual_seed(config.seed)
    data = le_data(config, progress)
    le = LLMEnvironment.build(
        config.model,
        n_items=len(data.item_ids),
        state_dim=config.state_dim,
        window=config.window,
        tau=config.tau,
        item_ids=data.item_ids,
        lora_r=config.lora_r,
        lora_alpha=config.lora_alpha,
        layers=config.layers,
        device=device,
        progress=progress,
    )
    le.batch_size = config.batch_size
    init_items(le, data.texts, config, progress)  # a resumed run then loads its checkpoint
    rng = np.random.default_rng(config.seed)
    history: dict[str, list[float]] = {}
    timings: dict[str, float] = {}
    if saver is not None:
        saver.restore(le)
        history, timings = saver.history, saver.timings
    for stage, run in (
        ("items", lambda: train_items(le, data.texts, config, progress, saver)),
        ("sm", lambda: train_sm(le, data.train, config, progress, saver)),
        ("rm", lambda: train_rm(le, data.train, config, rng, data.counts, progress, saver)),
    ):
        if stage in history:  # finished before the run was stopped
            continue
        if stage == "items" and not config.item_epochs:
            continue
        t0 = time.perf_counter()
        history[stage] = run()
        timings[f"minutes/{stage}"] = round((time.perf_counter() - t0) / 60, 2)
        if saver is not None:
            saver.save()
    le.metrics = evaluate_le(le, data, config)
    le.metrics |= timings
    le.metrics |= {f"loss/{k}_first": v[0] for k, v in history.items() if v} | {
        f"loss/{k}_last": float(np.mean(v[-10:])) for k, v in history.items() if v
    }
    le.metrics["minutes/total"] = round((time.perf_counter() - start) / 60, 2)
    le.metrics["train_users"] = float(len(data.train))
    le.users = data.users
    le.extra["config"] = dataclasses.asdict(config)
    le.extra["loss_history"] = history
    return le
