"""``pretrained(name)``: a trained retriever from the on-disk cache, trained on first use."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from recgym.data.cache import cache_dir, install_dir
from recgym.models.seqrec.config import default_config
from recgym.models.seqrec.retriever import SeqRecRetriever
from recgym.models.seqrec.train import train_seqrec
from recgym.utils.files import verify_dir

__all__ = ["CACHE_VERSION", "pretrained", "pretrained_dir"]

CACHE_VERSION = 1
"""Part of every cache key: bump it when a model's code or the training pipeline changes, so
that entries trained by older code are not loaded."""


def pretrained_dir(name: str, *, dataset: str = "ml-100k", seed: int = 0, **overrides: Any) -> Path:
    """The cache directory of a configuration: ``<cache>/seqrec/<dataset>/<name>-s<seed>-<key>``,
    where ``key`` digests :data:`CACHE_VERSION`, the dataset and the whole configuration
    (overrides included). Not created.

    Raises:
        UnknownNameError: ``name`` is not a known model.
        TypeError: an override is not a :class:`SeqRecConfig` field.
    """
    config = default_config(name, **{**overrides, "seed": seed})
    blob = json.dumps(
        {"version": CACHE_VERSION, "dataset": dataset, "config": dataclasses.asdict(config)},
        sort_keys=True,
    )
    key = hashlib.sha256(blob.encode()).hexdigest()[:12]
    return cache_dir("seqrec", dataset, create=False) / f"{config.model}-s{seed}-{key}"


def pretrained(
    name: str = "lrurec",
    *,
    dataset: str = "ml-100k",
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
    retrain: bool = False,
    **overrides: Any,
) -> SeqRecRetriever:
    """Model ``name`` trained on ``dataset`` with its default configuration (plus overrides).

    The first call trains (2-3 minutes on 2 CPU cores for the defaults) and saves into the
    cache (:func:`pretrained_dir`), with a manifest of the files' sha256; later calls with the
    same arguments check the files against it and load them. A missing, truncated or corrupted
    file is reported (a :class:`~recgym.error.CacheWarning` naming it) and the model trained
    again.

    Args:
        name: ``"sasrec"``, ``"gru4rec"`` or ``"lrurec"``.
        dataset: an embedded dataset with interactions, e.g. ``"ml-100k"``.
        seed: the training seed (part of the cache key).
        device: where to put the model (``"cpu"``, ``"cuda"``); default CPU. Training runs
            there too.
        progress: show training progress.
        retrain: train again even if the cache holds the model, and replace it.
        **overrides: :class:`recgym.models.seqrec.SeqRecConfig` fields to change.

    Returns:
        The retriever, with its validation and test metrics.

    Raises:
        UnknownNameError: ``name`` is not a known model (the message lists them).
        TypeError: an override is not a config field (the message lists the fields).
    """
    path = pretrained_dir(name, dataset=dataset, seed=seed, **overrides)
    if not retrain and verify_dir(path, remedy="training it again", adopt=True):
        return SeqRecRetriever.load(path, device=device)
    config = default_config(name, **{**overrides, "seed": seed})
    retriever = train_seqrec(config, dataset=dataset, progress=progress, device=device)
    install_dir(path, retriever.save, replace=True)  # replaces a damaged copy
    return retriever
