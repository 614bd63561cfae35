"""The one configuration dataclass of the sequential recommenders, and each model's defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from recgym.error import UnknownNameError

__all__ = ["DEFAULTS", "SeqRecConfig", "check_fields", "default_config"]


@dataclass(frozen=True)
class SeqRecConfig:
    """Architecture and training settings of one next-item model (JSON via ``asdict``).

    With each model's defaults (:data:`DEFAULTS`, through :func:`default_config`) an epoch
    over MovieLens-100k (training plus validation) takes 2.5 s (GRU4Rec) to 3.7 s (SASRec,
    LRURec) on 2 free CPU cores, so a run of at most 40 epochs takes at most 2.5 minutes
    (about twice that when another process shares the cores).
    """

    model: str = "lrurec"
    """Registry name of the architecture: ``"sasrec"``, ``"gru4rec"`` or ``"lrurec"``."""
    d: int = 64
    """Item embedding size (and hidden size of SASRec and LRURec)."""
    layers: int = 2
    """Transformer blocks (SASRec), GRU layers (GRU4Rec) or LRU blocks (LRURec)."""
    heads: int = 2
    """Attention heads (SASRec only)."""
    rnn_hidden: int = 128
    """GRU hidden size (GRU4Rec only)."""
    dropout: float = 0.2
    """Dropout on embeddings and inside blocks."""
    lr: float = 1e-3
    """AdamW learning rate."""
    weight_decay: float = 0.01
    """AdamW weight decay, applied to matrices and embeddings only (not biases, norms, λ)."""
    batch_size: int = 64
    """Training sequences per step."""
    max_len: int = 200
    """Most recent items a model sees; longer sequences keep their last ``max_len`` items."""
    max_epochs: int = 40
    """Upper bound on passes over the training sequences."""
    patience: int = 10
    """Stop after this many epochs in a row without a better validation NDCG@10."""
    grad_clip: float = 5.0
    """Clip the global gradient norm to this value."""
    seed: int = 0
    """Seed of weight initialisation, dropout and batch order."""

    def __post_init__(self) -> None:
        for name in ("d", "layers", "heads", "rnn_hidden", "batch_size", "max_len", "max_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.patience < 0:
            raise ValueError(f"patience must be >= 0, got {self.patience}")
        if self.d % self.heads:
            raise ValueError(f"d ({self.d}) must be divisible by heads ({self.heads})")


DEFAULTS: dict[str, dict[str, Any]] = {
    "sasrec": {"model": "sasrec", "dropout": 0.2, "lr": 1e-3},
    # RecBole's GRU4Rec: embedding 64, one GRU layer of 128, dropout 0.3. At RecBole's lr of
    # 1e-3 it sat at popularity level for 11 epochs and still rose at epoch 50; 3e-3 peaks
    # near epoch 30 (1e-2 peaks higher on validation at 16, then overfits).
    "gru4rec": {"model": "gru4rec", "layers": 1, "dropout": 0.3, "lr": 3e-3},
    "lrurec": {"model": "lrurec", "dropout": 0.2, "lr": 1e-3},
}
"""Per-model overrides of the :class:`SeqRecConfig` defaults."""


def default_config(name: str, **overrides: Any) -> SeqRecConfig:
    """The default configuration of model ``name``, with ``overrides`` applied.

    Args:
        name: a key of :data:`DEFAULTS`.
        **overrides: :class:`SeqRecConfig` fields to change (``model`` included).

    Returns:
        The configuration.

    Raises:
        UnknownNameError: ``name`` is not a known model.
        TypeError: an override is not a field of :class:`SeqRecConfig`.
    """
    if name not in DEFAULTS:
        raise UnknownNameError(f"no seqrec model named {name!r}; known: {', '.join(DEFAULTS)}")
    check_fields(SeqRecConfig, overrides)
    return SeqRecConfig(**{**DEFAULTS[name], **overrides})


def check_fields(cls: type, overrides: Any) -> None:
    """Raise ``TypeError`` naming every key of ``overrides`` that is not a field of the
    dataclass ``cls``, and listing the fields."""
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(
            f"unknown {cls.__name__} fields {unknown}; the fields are: {', '.join(sorted(fields))}"
        )
