"""``pretrained(name)``: a trained retriever: shipped with the package, cached, or trained.

The retrievers of ``RecRank-v0`` for MovieLens-100k (:data:`SHIPPED`: LRURec, the env's
default, SASRec and GRU4Rec, each with its default configuration and seed 0) ship trained in
``recgym/models/seqrec/shipped/`` (0.6-1 MB each), their files checked against sha256
digests on every load: ``gym.make("RecRank-v0")`` never trains. Any other configuration trains
on first use, with a progress bar and a one-line estimate first, and is cached. The shipped
files are made by ``python -m recgym.models.seqrec NAME --retrain --ship`` (each folder's
``COMMAND.md`` says how, on which machine).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from recgym.data.cache import cache_dir, install_dir
from recgym.models.seqrec.config import default_config
from recgym.models.seqrec.retriever import SeqRecRetriever
from recgym.models.seqrec.train import train_seqrec
from recgym.utils.files import sha256_file, verify_dir
from recgym.utils.shipped import add_training_arguments, check_shipped, use_threads
from recgym.utils.shipped import ship as ship_files

__all__ = [
    "CACHE_VERSION",
    "MINUTES",
    "SHIPPED",
    "SHIPPED_DATASET",
    "SHIPPED_SEED",
    "pretrained",
    "pretrained_dir",
    "shipped_dir",
]

CACHE_VERSION = 1
"""Part of every cache key: bump it when a model's code or the training pipeline changes, so
that entries trained by older code are not loaded."""


SHIPPED_DATASET = "ml-100k"
"""The dataset of the shipped retrievers."""
SHIPPED_SEED = 0
"""The training seed of the shipped retrievers."""
SHIPPED: dict[str, dict[str, str]] = {
    "lrurec": {
        "model.safetensors": "3ac5cf2696e81cb010cad2181efbe1996cd7dbd50da0bbc741fc6445a0830fc7",
        "seqrec.json": "896163147df6d4b4e38761f7458f5520f846f425de804751c79c1f69be1554f8",
    },
    "sasrec": {
        "model.safetensors": "be781a66bace5e51e50f4b057f7a80afd3e2f200d2bbf2fc9c2c9794d866db80",
        "seqrec.json": "73686cc5853867bc44fc4656bc2cf636e9e735580352605e2ecaa75511a503bc",
    },
    "gru4rec": {
        "model.safetensors": "36598879a992807a60c73f2fe8bb81faabebbc5a8afab9421a9999483d1fb48e",
        "seqrec.json": "9b815fb0823b26032d377c2497e921db28ca2f9c1b5287055fecbb10652a5839",
    },
}
"""The retrievers that ship trained (:data:`SHIPPED_DATASET`, :data:`SHIPPED_SEED`, the default
configuration): name → the sha256 of each file in :func:`shipped_dir`."""
MINUTES: dict[str, float] = {"lrurec": 6.0, "sasrec": 6.0, "gru4rec": 3.0}
"""About how many minutes each model's default configuration trains on 2 CPU cores."""
_FILES = ("model.safetensors", "seqrec.json")


def shipped_dir(name: str) -> Path:
    """Where the shipped retriever ``name`` lives inside the package."""
    return Path(__file__).with_name("shipped") / f"{SHIPPED_DATASET}-{name}-s{SHIPPED_SEED}"


def _check_shipped(name: str) -> Path:
    """The shipped retriever's folder, its files checked against :data:`SHIPPED`."""
    return check_shipped(
        shipped_dir(name),
        SHIPPED[name],
        f"shipped retriever {name!r}",
        f"train it with `python -m recgym.models.seqrec {name} --retrain`",
    )


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

    A shipped retriever (:data:`SHIPPED`: MovieLens-100k, seed 0, no overrides) loads from the
    package after its files' digests are checked. Otherwise the first call trains (a few
    minutes on 2 CPU cores for the defaults, announced on stderr first) and saves into the
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
        retrain: train again even if shipped or cached, and replace the cached copy.
        **overrides: :class:`recgym.models.seqrec.SeqRecConfig` fields to change.

    Returns:
        The retriever, with its validation and test metrics.

    Raises:
        UnknownNameError: ``name`` is not a known model (the message lists them).
        TypeError: an override is not a config field (the message lists the fields).
    """
    path = pretrained_dir(name, dataset=dataset, seed=seed, **overrides)
    shipped = name in SHIPPED and (dataset, seed) == (SHIPPED_DATASET, SHIPPED_SEED)
    if shipped and not overrides and not retrain:
        return SeqRecRetriever.load(_check_shipped(name), device=device)
    if not retrain and verify_dir(path, remedy="training it again", adopt=True):
        return SeqRecRetriever.load(path, device=device)
    config = default_config(name, **{**overrides, "seed": seed})
    print(
        f"recgym: training {name} on {dataset} (seed {seed}, up to {config.max_epochs} epochs; "
        f"the default configuration takes about {MINUTES.get(name, 10):.0f} minutes on 2 CPU "
        f"cores), then caching it in {path}",
        file=sys.stderr,
        flush=True,
    )
    retriever = train_seqrec(config, dataset=dataset, progress=progress, device=device)
    install_dir(path, retriever.save, replace=True)  # replaces a damaged copy
    return retriever


def ship(name: str, source: Path, command: str) -> dict[str, str]:
    """Copy the trained retriever in ``source`` into :func:`shipped_dir` with ``COMMAND.md``
    (how it was made) and return the digests to record in :data:`SHIPPED`."""
    return ship_files(source, shipped_dir(name), _FILES, command)


def main(argv: list[str] | None = None) -> None:
    """``python -m recgym.models.seqrec NAME``: train (or load) a retriever and print its
    metrics as JSON."""
    import argparse
    import platform

    import torch

    parser = argparse.ArgumentParser(
        prog="python -m recgym.models.seqrec",
        description="Train (or load) a sequential retriever on a dataset and print its metrics "
        "as JSON. A shipped retriever loads from the package unless --retrain.",
    )
    parser.add_argument("name", choices=sorted(MINUTES), help="the model")
    parser.add_argument("--dataset", default=SHIPPED_DATASET)
    parser.add_argument("--seed", type=int, default=SHIPPED_SEED)
    add_training_arguments(
        parser, "recgym/models/seqrec/shipped/", "recgym.models.seqrec.hub.SHIPPED"
    )
    args = parser.parse_args(argv)
    use_threads(args.threads)
    model = pretrained(args.name, dataset=args.dataset, seed=args.seed, retrain=args.retrain)
    folder = pretrained_dir(args.name, dataset=args.dataset, seed=args.seed)
    out: dict[str, Any] = {"name": args.name, "folder": str(folder), **model.metrics}
    if args.name in SHIPPED and args.retrain:
        # Whether this training reproduced the shipped weights, bit for bit.
        weights = sha256_file(folder / "model.safetensors")
        out["reproduces_shipped"] = weights == SHIPPED[args.name]["model.safetensors"]
    if args.ship:
        command = (
            f"# How the shipped retriever '{args.name}' was made\n\n```bash\n"
            f"python -m recgym.models.seqrec {args.name} --dataset {args.dataset} "
            f"--seed {args.seed} --retrain --ship"
            + (f" --threads {args.threads}" if args.threads is not None else "")
            + f"\n```\n\n- machine: {platform.machine()}, {platform.platform()}\n"
            f"- torch {torch.__version__}, {torch.get_num_threads()} thread(s)\n"
            f"- training: {model.metrics.get('train_seconds', float('nan')):.0f} s, "
            f"test NDCG@10 {model.metrics.get('test/ndcg@10', float('nan')):.4f}\n"
        )
        out["shipped"] = ship(args.name, folder, command)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
