"""Next-item recommenders in torch (SASRec, GRU4Rec, LRURec) behind a retriever API.

``pretrained("lrurec")`` returns a :class:`SeqRecRetriever` trained on MovieLens-100k (trained
on first use, then loaded from the cache); ``retriever.retrieve(histories, k)`` gives each
history's ``k`` best next items. :func:`train_seqrec` trains any :class:`SeqRecConfig`.
"""

from __future__ import annotations

from recgym.models.seqrec.config import DEFAULTS, SeqRecConfig, default_config
from recgym.models.seqrec.hub import pretrained, pretrained_dir
from recgym.models.seqrec.models import MODELS, GRU4Rec, LRURec, SASRec, SeqRecModel, build_model
from recgym.models.seqrec.retriever import (
    SeqRecRetriever,
    evaluate_scores,
    target_positions,
    top_k,
)
from recgym.models.seqrec.train import FitResult, fit, train_seqrec

__all__ = [
    "DEFAULTS",
    "MODELS",
    "FitResult",
    "GRU4Rec",
    "LRURec",
    "SASRec",
    "SeqRecConfig",
    "SeqRecModel",
    "SeqRecRetriever",
    "build_model",
    "default_config",
    "evaluate_scores",
    "fit",
    "pretrained",
    "pretrained_dir",
    "target_positions",
    "top_k",
    "train_seqrec",
]
