"""``pretrained_rl4rec(algo, variant)``: a trained SQN / SA2C model from the on-disk cache,
trained on first use (as :func:`recgym.models.seqrec.pretrained` does for the plain backbones).

Training keeps a checkpoint beside the cache entry (``<entry>.checkpoint``, one per epoch): a
process killed while it trains resumes there when it asks for the model again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agents.rl4rec.config import RL4RecConfig, variant_config
from agents.rl4rec.train import RL4RecRecommender, train_rl4rec
from recgym.data.cache import cache_dir, install_dir
from recgym.models.seqrec import default_config
from recgym.utils import atomic
from recgym.utils.files import verify_dir

__all__ = ["CACHE_VERSION", "pretrained_rl4rec", "rl4rec_config", "rl4rec_dir"]

CACHE_VERSION = 1
"""Part of every cache key: bump it when the model's code or training changes."""


def rl4rec_config(
    algo: str = "sqn",
    variant: str = "rating",
    *,
    backbone: str = "gru4rec",
    seed: int = 0,
    max_len: int = 100,
    backbone_kwargs: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> RL4RecConfig:
    """The configuration of one (algorithm, variant): the ablation's cell
    (:func:`agents.rl4rec.variant_config`) on ``backbone`` with ``seed`` and ``max_len``;
    ``backbone_kwargs`` change other :class:`recgym.models.seqrec.SeqRecConfig` fields (``d``,
    ``max_epochs``...), ``overrides`` other :class:`RL4RecConfig` fields (``q_weight``...).

    Raises:
        UnknownNameError: an unknown variant or backbone.
        TypeError: an override is not a field.
    """
    base = default_config(
        backbone, **{**dict(backbone_kwargs or {}), "seed": seed, "max_len": max_len}
    )
    return variant_config(variant, algo, backbone=base, **overrides)


def rl4rec_dir(config: RL4RecConfig, dataset: str = "ml-100k") -> Path:
    """``<cache>/rl4rec/<dataset>/<algo>-s<seed>-<key>``, ``key`` digesting the cache version,
    the dataset and the whole configuration. Not created."""
    blob = json.dumps(
        {"version": CACHE_VERSION, "dataset": dataset, "config": dataclasses.asdict(config)},
        sort_keys=True,
    )
    key = hashlib.sha256(blob.encode()).hexdigest()[:12]
    name = f"{config.algo}-s{config.backbone.seed}-{key}"
    return cache_dir("rl4rec", dataset, create=False) / name


def pretrained_rl4rec(
    algo: str = "sqn",
    variant: str = "rating",
    *,
    dataset: str = "ml-100k",
    device: str | None = None,
    progress: bool = True,
    retrain: bool = False,
    **config_kwargs: Any,
) -> RL4RecRecommender:
    """SQN or SA2C (``algo``) in ablation ``variant`` (:data:`agents.rl4rec.VARIANTS`),
    trained on ``dataset`` on first use (about 4 minutes on one CPU thread for the defaults;
    an LE variant runs the LE first) and loaded from the cache afterwards.

    Args:
        algo: ``"sqn"`` or ``"sa2c"`` (``variant="base"`` is the CE-only backbone).
        variant: ``"rating"``, ``"base"``, ``"rm"``, ``"sm"``, ``"lea"`` or ``"all"``.
        dataset: an embedded dataset with ratings.
        device: where to train and put the model (default CPU).
        progress: show training progress.
        retrain: train again even if cached, and replace the cached model.
        **config_kwargs: the arguments of :func:`rl4rec_config` (``seed``, ``backbone``,
            ``backbone_kwargs``, ``q_weight``...).
    """
    config = rl4rec_config(algo, variant, **config_kwargs)
    path = rl4rec_dir(config, dataset)
    if not retrain and verify_dir(path, remedy="training it again", adopt=True):
        return RL4RecRecommender.load(path, device=device)
    from filelock import FileLock  # a dependency of torch

    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = path.with_name(path.name + ".checkpoint")
    # One process trains (and writes the checkpoint); another one waits, then loads.
    with FileLock(str(path) + ".lock"):
        if not retrain and verify_dir(path, adopt=True):  # another process installed it
            return RL4RecRecommender.load(path, device=device)
        rec = train_rl4rec(
            config, dataset=dataset, device=device, progress=progress, checkpoint=checkpoint
        )
        install_dir(path, rec.save, replace=True)  # replaces a damaged copy
        atomic.remove_dir(checkpoint)
    return rec
