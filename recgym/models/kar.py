"""A knowledge-augmented sequential recommender (KAR-style): the judge of ``RecPref-v0``.

KAR (Xi et al., 2023) feeds an LLM's text about a user, embedded by a frozen text encoder and
mapped by a *hybrid-expert adaptor*, into a classical recommender. Here the recommender is a
seqrec backbone (SASRec by default) and the text shifts its user state:

    state'(history, text) = state(history) + adaptor(encoder(text))       (no text: + 0)

scored against the backbone's item embeddings. The adaptor's output layers start at zero, so
before training, and for the empty text always, the model *is* the plain backbone: the
``RecPref-v0`` reward of "no text" is the backbone's.

Training, in two stages, with no leak of a target into what predicts it:

1. the backbone trains on every user's training events **except the last** (early stopping on
   predicting that last event), so the ``train`` episodes of ``RecPref-v0`` are held out;
2. the embedded LLM writes one text per user from the ``train`` episode's prompt (greedy,
   cached), and the adaptor alone trains to predict each user's last training event from the
   frozen backbone state plus the text (full-catalog softmax, history masked), early-stopped
   on a held-out tenth of the users.

:func:`pretrained_kar` trains on first use and caches the result (safetensors and JSON, with a
manifest of their sha256 checked on every load), like :func:`recgym.models.seqrec.pretrained`.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import sys
import time
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from recgym.data.cache import cache_dir, install_dir
from recgym.error import CacheWarning
from recgym.models.seqrec.config import default_config
from recgym.models.seqrec.models import build_model
from recgym.models.seqrec.retriever import (
    SeqRecRetriever,
    evaluate_scores,
    read_module,
    write_module,
)
from recgym.models.seqrec.train import fit
from recgym.utils.files import sha256_file, verify_dir, write_atomic
from recgym.utils.shipped import add_training_arguments, check_shipped, use_threads
from recgym.utils.shipped import ship as ship_files

__all__ = [
    "KAR_CACHE_VERSION",
    "SHIPPED_KAR",
    "KARAdaptor",
    "KARConfig",
    "KARRecommender",
    "kar_shipped_dir",
    "pretrained_kar",
    "train_kar",
    "write_texts",
]

KAR_CACHE_VERSION = 1
"""Part of every cache key: bump it when the model or its training changes."""

SHIPPED_KAR: dict[str, str] = {
    "adaptor.safetensors": "d4b3d8fa065a0191041f38d05e314ae869f775c6df1964afcd333b60680938ac",
    "backbone/model.safetensors": (
        "68c6093f2515860f2c831d095be32aab44a4ed2d0e74750a63ba775516b37614"
    ),
    "backbone/seqrec.json": "9796229a6f775653d7782faea55a497a4c874e75a448e2b938dab3250e8b6d0c",
    "kar.json": "728c6c76b8f4c3b7bc6cae10d7de5e0fb099a78d6a228743bbc6a9f800e470a5",
    "texts/smollm2-135m-9a56b5ba4053.json": (
        "b179bf83453c098c9e2a9b9753662ed643783d0bf9a92195b72b683773d4053c"
    ),
}
"""The judge that ships trained (:class:`KARConfig`'s defaults): the sha256 of each file in
:func:`kar_shipped_dir` (the model as :meth:`KARRecommender.save` writes it, and the SmolLM2
texts it learned from, so a retrain needs no LLM)."""

_WEIGHTS, _META = "adaptor.safetensors", "kar.json"


@dataclass(frozen=True)
class KARConfig:
    """How the judge of ``RecPref-v0`` is built and trained."""

    backbone: str = "sasrec"
    """The seqrec model (``"sasrec"``, ``"gru4rec"``, ``"lrurec"``) with its defaults."""
    backbone_overrides: dict[str, Any] = field(default_factory=dict)
    """:class:`~recgym.models.seqrec.SeqRecConfig` fields to change (e.g. ``{"max_epochs": 2}``)."""
    text_llm: str = "smollm2-135m"
    """The LLM that writes the training texts (:func:`recgym.llm.load`)."""
    encoder: str = "all-minilm-l6-v2"
    """The frozen text encoder (:func:`recgym.llm.encoder.load_encoder`)."""
    history_len: int = 10
    """Rated movies in the prompt the training texts are written from (``RecPref-v0``'s)."""
    max_new_tokens: int = 80
    """Length budget of a training text in tokens."""
    text_batch_size: int = 16
    """Prompts per generation batch."""
    experts: int = 4
    """Experts of the hybrid-expert adaptor."""
    hidden: int = 128
    """Hidden width of each expert."""
    dropout: float = 0.1
    """Dropout inside the experts."""
    lr: float = 1e-3
    """AdamW learning rate of the adaptor."""
    weight_decay: float = 0.01
    """AdamW weight decay of the adaptor."""
    batch_size: int = 64
    """Users per adaptor step."""
    max_epochs: int = 200
    """Upper bound on adaptor epochs."""
    patience: int = 20
    """Stop after this many epochs without a better held-out NDCG@10."""
    holdout: float = 0.1
    """Share of users whose texts only decide early stopping."""
    seed: int = 0
    """Seed of the backbone, the adaptor, the holdout and the batches."""

    def __post_init__(self) -> None:
        for name in ("history_len", "max_new_tokens", "text_batch_size", "experts", "hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if not 0.0 < self.holdout < 1.0:
            raise ValueError(f"holdout must be in (0, 1); got {self.holdout}")


class KARAdaptor(nn.Module):
    """KAR's hybrid-expert adaptor: a softmax gate mixes small MLP experts of the text
    embedding into a vector of the backbone's state size. Output layers start at zero."""

    def __init__(self, text_dim: int, d: int, experts: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.gate = nn.Linear(text_dim, experts)
        mlps = [
            nn.Sequential(
                nn.Linear(text_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, d)
            )
            for _ in range(experts)
        ]
        for mlp in mlps:
            last = mlp[-1]
            assert isinstance(last, nn.Linear)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        self.experts = nn.ModuleList(mlps)

    def forward(self, text: Tensor) -> Tensor:
        """``(B, d)`` shift of the user state from ``(B, text_dim)`` text embeddings."""
        weights = torch.softmax(self.gate(text), dim=-1)  # (B, E)
        outputs = torch.stack([expert(text) for expert in self.experts], dim=1)  # (B, E, d)
        return (weights.unsqueeze(-1) * outputs).sum(dim=1)


class KARRecommender:
    """A seqrec backbone whose user state an adaptor shifts by a text's embedding.

    Attributes:
        backbone: the frozen sequential recommender.
        adaptor: the trained :class:`KARAdaptor`.
        config: how it was built.
        metrics: held-out results of training (``plain/ndcg@10``, ``text/ndcg@10``...).
    """

    def __init__(
        self,
        backbone: SeqRecRetriever,
        adaptor: KARAdaptor,
        config: KARConfig,
        *,
        metrics: dict[str, float] | None = None,
        encoder: Any = None,
    ) -> None:
        self.backbone = backbone
        self.adaptor = adaptor.eval()
        self.config = config
        self.metrics = dict(metrics or {})
        self._encoder = encoder
        self._states: OrderedDict[bytes, Tensor] = OrderedDict()
        self._version: str | None = None

    @property
    def encoder(self) -> Any:
        """The text encoder (loaded on first use)."""
        if self._encoder is None:
            from recgym.llm.encoder import load_encoder

            self._encoder = load_encoder(self.config.encoder, progress=False)
        return self._encoder

    def __repr__(self) -> str:
        return f"KARRecommender({self.config.backbone!r}, text_llm={self.config.text_llm!r})"

    @property
    def version(self) -> str:
        """A digest of the weights (backbone and adaptor, 12 hex digits): ``RecPref-v0``'s
        leaderboard rows record it through the env's ``data_version``."""
        if self._version is None:
            digest = hashlib.sha256()
            for module in (self.backbone.model, self.adaptor):
                for name, tensor in sorted(module.state_dict().items()):
                    digest.update(name.encode())
                    digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy())
            self._version = digest.hexdigest()[:12]
        return self._version

    # ----- scoring --------------------------------------------------------------------------

    def states(self, histories: Sequence[np.ndarray]) -> Tensor:
        """``(B, d)`` backbone user states; each distinct history is computed once and kept in
        a bounded cache (the N texts of one user share it)."""
        keys = [np.asarray(h, dtype=np.int64).tobytes() for h in histories]
        missing = list(dict.fromkeys(k for k in keys if k not in self._states))
        if missing:
            seqs = [np.frombuffer(k, dtype=np.int64) for k in missing]
            for key, state in zip(missing, self.backbone.states(seqs), strict=True):
                self._states[key] = state
        states = torch.stack([self._states[k] for k in keys])
        for key in keys:
            self._states.move_to_end(key)
        while len(self._states) > 16_384:
            self._states.popitem(last=False)
        return states

    def shifted_states(self, histories: Sequence[np.ndarray], texts: Sequence[str]) -> Tensor:
        """``(B, d)`` user states shifted by each text (an empty text shifts nothing)."""
        states = self.states(histories)
        has_text = [bool(t.strip()) for t in texts]
        if any(has_text):
            rows = [i for i, h in enumerate(has_text) if h]
            emb = self.encoder.encode([texts[i] for i in rows])
            with torch.inference_mode():
                shift = self.adaptor(torch.as_tensor(emb, device=states.device))
            states = states.clone()
            states[rows] += shift
        return states

    def score_items(self, histories: Sequence[np.ndarray], texts: Sequence[str]) -> np.ndarray:
        """``(B, n_items)`` scores of every item (history items are not masked)."""
        with torch.inference_mode():
            logits = self.backbone.model.item_logits(self.shifted_states(histories, texts))
        return logits.float().cpu().numpy()

    def score_candidates(
        self, histories: Sequence[np.ndarray], texts: Sequence[str], candidates: np.ndarray
    ) -> np.ndarray:
        """``(B, C)`` scores of each row's candidate items given its history and text."""
        scores = self.score_items(histories, texts)
        return np.take_along_axis(scores, np.asarray(candidates, dtype=np.int64), axis=1)

    # ----- files ----------------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write the backbone (its own folder), the adaptor (safetensors) and the JSON."""
        meta = {
            "config": dataclasses.asdict(self.config),
            "text_dim": int(self.adaptor.gate.in_features),
            "metrics": self.metrics,
        }
        path = write_module(directory, self.adaptor, meta, _META, _WEIGHTS)
        self.backbone.save(path / "backbone")
        return path

    @classmethod
    def load(cls, directory: str | Path, device: str | None = None) -> KARRecommender:
        """Load what :meth:`save` wrote (onto ``device``, default CPU)."""
        meta, state = read_module(directory, _META, _WEIGHTS)
        config = KARConfig(**meta["config"])
        backbone = SeqRecRetriever.load(Path(directory) / "backbone", device=device)
        adaptor = _adaptor(config, int(meta["text_dim"]), backbone.config.d)
        adaptor.load_state_dict(state)
        adaptor.to(backbone.device)
        return cls(backbone, adaptor, config, metrics=meta["metrics"])


def _adaptor(config: KARConfig, text_dim: int, d: int) -> KARAdaptor:
    torch.manual_seed(config.seed)
    return KARAdaptor(text_dim, d, config.experts, config.hidden, config.dropout)


# ----- training texts ---------------------------------------------------------------------------


def write_texts(
    llm: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int,
    cache: Path | None = None,
    progress: bool = True,
) -> list[str]:
    """Greedy completions of ``prompts`` by ``llm`` (a :class:`recgym.llm.LLM`), in batches.

    With ``cache``, texts written so far are kept in that JSON file after every batch (with
    their sha256, replaced atomically), so an interrupted run continues where it stopped; a
    cache file that cannot be read or fails its digest is reported (a
    :class:`~recgym.error.CacheWarning`) and the texts written again.
    """
    from tqdm.auto import tqdm

    done = _read_texts(cache)[: len(prompts)] if cache is not None else []
    bar = tqdm(total=len(prompts), initial=len(done), desc="preference texts", disable=not progress)
    for lo in range(len(done), len(prompts), batch_size):
        batch = list(prompts[lo : lo + batch_size])
        gens = llm.generate(batch, max_new_tokens=max_new_tokens, temperature=0.0)
        done += [g.text.strip() for g in gens]
        bar.update(len(batch))
        if cache is not None:
            write_atomic(cache, json.dumps({"texts": done, "sha256": _texts_digest(done)}))
    bar.close()
    return done


def _texts_digest(texts: list[str]) -> str:
    return hashlib.sha256(json.dumps(texts).encode()).hexdigest()


def _read_texts(cache: Path) -> list[str]:
    """The texts of a cache file of :func:`write_texts`; ``[]`` when there is none, or (with a
    :class:`~recgym.error.CacheWarning`) when it cannot be read or fails its digest. A file
    written before digests were kept has none to check."""
    if not cache.is_file():
        return []
    try:
        record = json.loads(cache.read_text(encoding="utf-8"))
        texts = record["texts"]
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise ValueError("texts is not a list of strings")
        if record.get("sha256", _texts_digest(texts)) != _texts_digest(texts):
            raise ValueError("its sha256 does not match its texts")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        warnings.warn(
            f"recgym: cached file {cache} is damaged ({type(exc).__name__}: {exc}); writing "
            "the texts again",
            CacheWarning,
            stacklevel=3,
        )
        return []
    return texts


def _texts_name(config: KARConfig, prompts: list[str], data_version: str) -> str:
    """The file name of the training texts of ``config`` (cached by LLM, prompts, length)."""
    blob = json.dumps([config.text_llm, config.max_new_tokens, data_version, prompts])
    key = hashlib.sha256(blob.encode()).hexdigest()[:12]
    return f"{Path(config.text_llm).name}-{key}.json"


def _training_prompts(config: KARConfig) -> tuple[list[str], str]:
    """The ``train`` episode prompts the texts are written from, and the task's data digest."""
    from recgym.envs.preference import build_pref_task

    task = build_pref_task()
    n = len(task.splits["train"])
    return [task.prompt("train", i, config.history_len) for i in range(n)], task.data_version


def _training_texts(
    config: KARConfig, prompts: list[str], data_version: str, progress: bool
) -> list[str]:
    """The LLM's text for every ``train`` episode prompt (cached by LLM, prompts and length)."""
    import recgym.llm

    cache = cache_dir("kar", "texts") / _texts_name(config, prompts, data_version)
    texts = _read_texts(cache)
    if len(texts) == len(prompts):
        return texts
    shipped = kar_shipped_dir() / "texts" / cache.name
    if SHIPPED_KAR and shipped.is_file():  # the shipped judge's texts: no LLM needed
        texts = _read_texts(_check_shipped_kar() / "texts" / cache.name)
        if len(texts) == len(prompts):
            return texts
    llm = recgym.llm.load(config.text_llm, progress=progress)
    return write_texts(
        llm,
        prompts,
        max_new_tokens=config.max_new_tokens,
        batch_size=config.text_batch_size,
        cache=cache,
        progress=progress,
    )


# ----- training -----------------------------------------------------------------------------


def train_kar(
    config: KARConfig,
    *,
    device: str | None = None,
    progress: bool = True,
    encoder: Any = None,
) -> KARRecommender:
    """Train the backbone and the adaptor on MovieLens-100k (see the module docstring).

    Args:
        config: what to build.
        device: where to train (default CPU).
        progress: show progress bars.
        encoder: a text encoder to use instead of loading ``config.encoder``.

    Returns:
        The recommender, with ``metrics``: held-out users' full-catalog NDCG@10 / Recall@10
        with and without their texts, epochs, seconds.
    """
    from recgym.envs.preference import build_pref_task

    t0 = time.perf_counter()
    task = build_pref_task()
    train = task.splits["train"]
    n_items = len(task.texts)
    # 1. The backbone, blind to each user's last training event (the train episode's target).
    bconf = default_config(config.backbone, **{**config.backbone_overrides, "seed": config.seed})
    model = build_model(bconf, n_items).to(torch.device(device or "cpu"))
    backbone = SeqRecRetriever(model)

    def validate(_: Any) -> float:
        return backbone.evaluate(train.histories, train.targets)["ndcg@10"]

    result = fit(model, train.histories, bconf, validate=validate, progress=progress)
    backbone = SeqRecRetriever(model, data_version=task.data_version)
    # 2. The texts and the adaptor.
    prompts, data_version = _training_prompts(config)
    texts = _training_texts(config, prompts, data_version, progress)
    if encoder is None:
        from recgym.llm.encoder import load_encoder

        encoder = load_encoder(config.encoder, device=device, progress=progress)
    emb = torch.as_tensor(encoder.encode(texts), device=backbone.device)
    kar = KARRecommender(
        backbone,
        _adaptor(config, emb.shape[1], bconf.d).to(backbone.device),
        config,
        encoder=encoder,
    )
    states = kar.states(train.histories)
    has_text = torch.tensor([bool(t) for t in texts], device=states.device)
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(train))
    n_hold = max(1, round(config.holdout * len(train)))
    hold, fit_rows = np.sort(order[:n_hold]), order[n_hold:]
    stats = _fit_adaptor(kar, states, emb, has_text, train, fit_rows, hold, rng)
    plain = evaluate_scores(
        kar.backbone.model.item_logits(states[hold]).detach().cpu().numpy(),
        [train.histories[i] for i in hold],
        train.targets[hold],
    )
    shifted = evaluate_scores(
        kar.score_items([train.histories[i] for i in hold], [texts[i] for i in hold]),
        [train.histories[i] for i in hold],
        train.targets[hold],
    )
    kar.metrics = {
        **{f"holdout_plain/{k}": v for k, v in plain.items()},
        **{f"holdout_text/{k}": v for k, v in shifted.items()},
        "holdout_users": float(n_hold),
        "backbone_best_epoch": float(result.best_epoch),
        "backbone_train_ndcg@10": float(result.best_score),
        **stats,
        "empty_texts": float(sum(not t for t in texts)),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return kar


def _fit_adaptor(
    kar: KARRecommender,
    states: Tensor,
    emb: Tensor,
    has_text: Tensor,
    train: Any,
    fit_rows: np.ndarray,
    hold: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, float]:
    """Train ``kar.adaptor`` in place; early stopping on the held-out users' NDCG@10."""
    cfg, adaptor = kar.config, kar.adaptor
    item_logits = kar.backbone.model.item_logits
    targets = torch.as_tensor(train.targets, device=states.device)
    # History items never rank (the target excepted), as in every recgym evaluation.
    mask = torch.zeros(len(train), kar.backbone.n_items, dtype=torch.bool, device=states.device)
    for i, h in enumerate(train.histories):
        mask[i, torch.as_tensor(np.array(h), device=states.device)] = True
    mask[torch.arange(len(train)), targets] = False
    optimizer = torch.optim.AdamW(adaptor.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def logits(rows: np.ndarray) -> Tensor:
        r = torch.as_tensor(rows, device=states.device)
        shift = adaptor(emb[r]) * has_text[r, None]
        out = item_logits(states[r] + shift)
        return out.masked_fill(mask[r], float("-inf"))

    def held_out() -> float:
        adaptor.eval()
        with torch.no_grad():
            scores = logits(hold).cpu().numpy()
        adaptor.train()
        return evaluate_scores(scores, [train.histories[i] for i in hold], train.targets[hold])[
            "ndcg@10"
        ]

    for p in kar.backbone.model.parameters():
        p.requires_grad_(False)
    torch.manual_seed(cfg.seed)
    best, best_epoch, best_state = held_out(), 0, copy.deepcopy(adaptor.state_dict())
    adaptor.train()
    epoch = 0
    for epoch in range(1, cfg.max_epochs + 1):
        perm = rng.permutation(fit_rows)
        for lo in range(0, len(perm), cfg.batch_size):
            rows = perm[lo : lo + cfg.batch_size]
            loss = F.cross_entropy(logits(rows), targets[torch.as_tensor(rows)])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        score = held_out()
        if score > best:
            best, best_epoch, best_state = score, epoch, copy.deepcopy(adaptor.state_dict())
        if epoch - best_epoch >= cfg.patience:
            break
    adaptor.load_state_dict(best_state)
    adaptor.eval()
    return {"adaptor_epochs": float(epoch), "adaptor_best_epoch": float(best_epoch)}


# ----- the cache ----------------------------------------------------------------------------


def kar_dir(config: KARConfig) -> Path:
    """The cache folder of a configuration (not created)."""
    blob = json.dumps(
        {"version": KAR_CACHE_VERSION, "config": dataclasses.asdict(config)}, sort_keys=True
    )
    key = hashlib.sha256(blob.encode()).hexdigest()[:12]
    name = f"{config.backbone}-{Path(config.text_llm).name}-s{config.seed}-{key}"
    return cache_dir("kar", "ml-100k", create=False) / name


def pretrained_kar(
    backbone: str = "sasrec",
    *,
    text_llm: str = "smollm2-135m",
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
    retrain: bool = False,
    **overrides: Any,
) -> KARRecommender:
    """The judge of ``RecPref-v0``: shipped with the package for the default configuration
    (:data:`SHIPPED_KAR`, its files' sha256 checked on every load); any other configuration
    trains on first use (announced on stderr; the texts take longest: about a second per user
    for SmolLM2-135M on 2 CPU cores), then loads from the cache.

    Args:
        backbone: the seqrec model.
        text_llm: the LLM that writes the training texts.
        seed: the training seed (part of the cache key).
        device: where to train and score (default CPU).
        progress: show progress bars.
        retrain: train again and replace the cached copy.
        **overrides: other :class:`KARConfig` fields.
    """
    config = KARConfig(backbone=backbone, text_llm=text_llm, seed=seed, **overrides)
    if SHIPPED_KAR and config == KARConfig() and not retrain:
        return KARRecommender.load(_check_shipped_kar(), device=device)
    path = kar_dir(config)
    if not retrain and verify_dir(path, remedy="training it again", adopt=True):
        return KARRecommender.load(path, device=device)
    print(
        f"recgym: training the KAR judge ({config.backbone}, texts by {config.text_llm}, seed "
        f"{config.seed}): a few minutes on 2 CPU cores, plus about a second per user for the "
        f"texts unless they are cached; then caching it in {path}",
        file=sys.stderr,
        flush=True,
    )
    kar = train_kar(config, device=device, progress=progress)
    install_dir(path, kar.save, replace=True)  # replaces a damaged copy
    return kar


def kar_shipped_dir() -> Path:
    """Where the shipped judge lives inside the package."""
    return Path(__file__).with_name("shipped") / "kar-ml-100k-sasrec-smollm2-135m-s0"


def _check_shipped_kar() -> Path:
    return check_shipped(
        kar_shipped_dir(),
        SHIPPED_KAR,
        "the shipped KAR judge",
        "train it with `python -m recgym.models.kar --retrain`",
    )


def main(argv: list[str] | None = None) -> None:
    """``python -m recgym.models.kar``: train (or load) the judge of ``RecPref-v0`` with its
    default configuration and print its metrics as JSON."""
    import argparse
    import platform

    parser = argparse.ArgumentParser(
        prog="python -m recgym.models.kar",
        description="Train (or load) RecPref-v0's judge (the default configuration) and print "
        "its metrics as JSON. The shipped judge loads from the package unless --retrain.",
    )
    add_training_arguments(parser, "recgym/models/shipped/", "recgym.models.kar.SHIPPED_KAR")
    args = parser.parse_args(argv)
    use_threads(args.threads)
    start = time.perf_counter()
    kar = pretrained_kar(retrain=args.retrain)
    config = KARConfig()
    out: dict[str, Any] = {"folder": str(kar_dir(config)), **kar.metrics, "version": kar.version}
    if SHIPPED_KAR and args.retrain:
        weights = sha256_file(kar_dir(config) / _WEIGHTS)
        out["reproduces_shipped"] = weights == SHIPPED_KAR[_WEIGHTS]
    if args.ship:
        folder = kar_dir(config)
        files = [str(p.relative_to(folder)) for p in sorted(folder.rglob("*")) if p.is_file()]
        files = [f for f in files if not Path(f).name.startswith(".")]  # not the manifest
        command = (
            "# How the shipped KAR judge of RecPref-v0 was made\n\n```bash\n"
            "python -m recgym.models.kar --retrain --ship"
            + (f" --threads {args.threads}" if args.threads is not None else "")
            + f"\n```\n\n- machine: {platform.machine()}, {platform.platform()}\n"
            f"- torch {torch.__version__}, {torch.get_num_threads()} thread(s); "
            f"{time.perf_counter() - start:.0f} s, writing any text not cached yet\n"
            f"- metrics: {json.dumps(kar.metrics, sort_keys=True)}\n"
        )
        shipped = ship_files(folder, kar_shipped_dir(), files, command)
        # The texts it learned from (SmolLM2's, greedy): a retrain needs no LLM.
        name = _texts_name(config, *_training_prompts(config))
        texts = ship_files(cache_dir("kar", "texts"), kar_shipped_dir() / "texts", [name], None)
        out["shipped"] = {**shipped, **{f"texts/{k}": v for k, v in texts.items()}}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
