"""Trained LEs by name: :data:`CONFIGS`; the shipped default, and the explicit training command.

The default LE (:data:`DEFAULT`) ships trained with the project (``recgym/le/shipped/<name>/``),
its files checked against the sha256 digests of :data:`SHIPPED` on every load; it never trains.
Every other registered LE trains only through the explicit command
``python -m recgym.le.hub NAME`` (a progress bar, a time estimate first, a checkpoint every few
minutes that a killed run resumes from) and is then cached under ``<cache>/le/``; loading one
that is neither shipped nor cached is an error that names the command.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from recgym.data.cache import cache_dir, install_dir
from recgym.error import ModelLoadError, UnknownNameError
from recgym.le.base import DEFAULT_LE
from recgym.le.train import LEConfig
from recgym.utils import atomic
from recgym.utils.files import sha256_file, verify_dir
from recgym.utils.shipped import add_training_arguments, check_shipped, use_threads
from recgym.utils.shipped import ship as ship_files

__all__ = [
    "CACHE_VERSION",
    "CONFIGS",
    "DEFAULT",
    "MINUTES",
    "SHIPPED",
    "checkpoint_dir",
    "le_dir",
    "load",
    "shipped_dir",
]

CACHE_VERSION = 1
"""Part of every cache key: bump it when the LE's code or training changes."""

DEFAULT = DEFAULT_LE
"""The LE of ``RecUser-v0`` and of the LE studies by default (shipped trained)."""

CONFIGS: dict[str, LEConfig] = {
    # The shipped default: every user's training events, SmolLM2's first 8 layers, item tokens
    # from the item text plus SASRec's item embeddings, half the RM's negatives popular ones.
    DEFAULT: LEConfig(
        users=None,
        eval_users=943,
        test_users=200,
        layers=8,
        window=20,
        item_init="text+sasrec",
        item_epochs=0,
        sm_epochs=2,
        rm_epochs=2,
        popular_negatives=0.5,
    ),
    # The first LE (100 users, the whole base, window 10): its figures are in docs/guides/le.md.
    "ml-100k-smollm2": LEConfig(),
    # A larger user subset, a longer window, more passes: a GPU configuration.
    "ml-100k-smollm2-large": LEConfig(
        users=300, window=20, item_epochs=2, sm_epochs=3, rm_epochs=3, batch_size=32
    ),
}
"""Registered LEs: name → configuration (SmolLM2-135M on MovieLens-100k)."""

MINUTES: dict[str, float] = {DEFAULT: 30.0, "ml-100k-smollm2": 20.0, "ml-100k-smollm2-large": 120.0}
"""About how many minutes each registered LE trains on 2 CPU cores (printed before training)."""

SHIPPED: dict[str, dict[str, str]] = {
    DEFAULT: {
        "le.json": "91733c72dfaca8954995b1252a8dddc5c78f171894e277a076b95ccab15ed851",
        "le.safetensors": "f522130501d0ae07e452af5d78cd209fcc20a9626c90460f2616581163eecc37",
        "users.npz": "0bc634340af712d2659eaeb6d0f8143b909539a66c6e20b7eab5f3320c6eb8be",
    },
}
"""The LEs that ship trained: name → the sha256 of each of its files in :func:`shipped_dir`."""


def shipped_dir(name: str) -> Path:
    """Where the shipped LE ``name`` lives inside the package."""
    return Path(__file__).with_name("shipped") / name


def _check_shipped(name: str) -> Path:
    """The shipped LE's folder, its files checked against :data:`SHIPPED`."""
    return check_shipped(
        shipped_dir(name),
        SHIPPED[name],
        f"shipped LE {name!r}",
        f"train the LE with `python -m recgym.le.hub {name} --retrain`",
    )


def le_dir(config: LEConfig, name: str) -> Path:
    """``<cache>/le/<name>-<key>``, ``key`` digesting the configuration and the cache version."""
    blob = json.dumps(
        {"version": CACHE_VERSION, "config": dataclasses.asdict(config)}, sort_keys=True
    )
    key = hashlib.sha256(blob.encode()).hexdigest()[:12]
    return cache_dir("le", create=False) / f"{name}-{key}"


def load(
    name: str,
    *,
    device: str | None = None,
    progress: bool = True,
    train: bool = False,
    retrain: bool = False,
    checkpoint_minutes: float = 5.0,
) -> Any:
    """The LE called ``name`` (a key of :data:`CONFIGS`) or saved in folder ``name``.

    A shipped LE (:data:`SHIPPED`) loads from the package after its files' digests are checked.
    Another registered LE loads from the cache, where its files are checked against the sha256
    manifest written with them; one that is not there trains only when asked (``train``:
    :func:`recgym.le.train.train_le`, with a checkpoint every ``checkpoint_minutes`` that a
    killed run resumes from), and is then cached.

    Args:
        name: a registered name or a folder written by ``LLMEnvironment.save()``.
        device: where to run it (default: CUDA when available).
        progress: show progress bars.
        train: train a registered, unshipped LE that is not cached (the explicit command
            ``python -m recgym.le.hub NAME`` does; ``gym.make`` never does).
        retrain: train again into the cache even if shipped or cached.
        checkpoint_minutes: minutes between two training checkpoints.

    Raises:
        UnknownNameError: ``name`` is neither registered nor a folder.
        ModelLoadError: a shipped file is damaged, or the LE is not trained and ``train`` is
            off (the message names the command that trains it).
    """
    from recgym.le.model import LLMEnvironment

    path = Path(name).expanduser()
    if name not in CONFIGS:
        if path.is_dir():
            return LLMEnvironment.load(path, device=device, progress=progress)
        raise UnknownNameError(
            f"unknown LE {name!r}: pass one of {', '.join(['fake', *CONFIGS])} or a folder "
            "written by LLMEnvironment.save()"
        )
    if name in SHIPPED and not retrain:
        return LLMEnvironment.load(_check_shipped(name), device=device, progress=progress)
    config = CONFIGS[name]
    target = le_dir(config, name)
    if retrain or not verify_dir(target, remedy="training it again", adopt=True):
        if not (train or retrain):
            raise ModelLoadError(
                f"LE {name!r} is not trained on this machine, and recgym never trains one behind "
                f"your back: train it with `python -m recgym.le.hub {name}` (about "
                f"{MINUTES.get(name, 60):.0f} minutes on 2 CPU cores, checkpointed and resumable), "
                f"or use the shipped default {DEFAULT!r}"
            )
        _train(name, config, target, device, progress, retrain, checkpoint_minutes)
    return LLMEnvironment.load(target, device=device, progress=progress)


def _train(
    name: str,
    config: LEConfig,
    target: Path,
    device: str | None,
    progress: bool,
    retrain: bool,
    checkpoint_minutes: float,
) -> None:
    """Train ``name`` into its cache entry ``target`` (once, under a file lock)."""
    import sys

    from filelock import FileLock  # a dependency of transformers, which training needs

    from recgym.le.train import train_le

    checkpoint = checkpoint_dir(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # One process trains (and writes the checkpoint); another one waits, then loads.
    with FileLock(str(target) + ".lock"):
        if retrain or not verify_dir(target, adopt=True):  # another process installed it
            print(
                f"recgym: training LE {name!r} (about {MINUTES.get(name, 60):.0f} minutes on 2 CPU "
                f"cores; a checkpoint every {checkpoint_minutes:g} minutes in {checkpoint}: "
                "a killed run started again resumes there)",
                file=sys.stderr,
                flush=True,
            )
            le = train_le(
                config,
                device=device,
                progress=progress,
                checkpoint=checkpoint,
                checkpoint_minutes=checkpoint_minutes,
            )
            install_dir(
                target,
                lambda folder: le.save(folder, dataclasses.asdict(config)),
                replace=True,
            )
        atomic.remove_dir(checkpoint)  # also one that a kill after the install left


def ship(name: str, source: Path, command: str) -> dict[str, str]:
    """Copy the trained LE in ``source`` into :func:`shipped_dir` with ``COMMAND.md`` (how it was
    made) and return the digests to record in :data:`SHIPPED`."""
    files = ("le.json", "le.safetensors", "users.npz")
    return ship_files(source, shipped_dir(name), files, command)


def checkpoint_dir(target: Path) -> Path:
    """Where the training of the cache entry ``target`` keeps its checkpoint."""
    return target.with_name(target.name + ".checkpoint")


def main(argv: list[str] | None = None) -> None:
    """``python -m recgym.le.hub NAME``: train (or load) a registered LE and print its held-out
    metrics as JSON."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m recgym.le.hub",
        description="Train (or load) a registered LE and print its held-out metrics as JSON. "
        "A shipped LE loads from the package unless --retrain.",
    )
    parser.add_argument("name", choices=sorted(CONFIGS), help="registered LE")
    parser.add_argument("--device", default=None, help="cpu, cuda... (default: cuda if any)")
    parser.add_argument(
        "--checkpoint-minutes",
        type=float,
        default=5.0,
        help="minutes between two checkpoints of the training, which a killed run started "
        "again resumes from (default: 5; 0: after every step)",
    )
    add_training_arguments(parser, "recgym/le/shipped/NAME", "recgym.le.hub.SHIPPED")
    args = parser.parse_args(argv)
    use_threads(args.threads)
    le = load(
        args.name,
        device=args.device,
        train=True,
        retrain=args.retrain,
        checkpoint_minutes=args.checkpoint_minutes,
    )
    out: dict[str, Any] = {"name": args.name, "folder": le.name, **le.metrics}
    if args.name in SHIPPED and args.retrain:
        # Whether this training reproduced the shipped weights, bit for bit.
        weights = sha256_file(Path(le.name) / "le.safetensors")
        out["reproduces_shipped"] = weights == SHIPPED[args.name]["le.safetensors"]
    if args.ship:
        out["shipped"] = ship(args.name, Path(le.name), _provenance(args, le.metrics))
    print(json.dumps(out, indent=2))


def _sasrec_note(config: LEConfig) -> str:
    """For SASRec-initialised item tokens: the SASRec cache entry the run used (trained on
    first use by ``recgym.models.seqrec.pretrained``, in the run's process unless cached)."""
    if "sasrec" not in config.item_init:
        return ""
    from recgym.models.seqrec.hub import pretrained_dir
    from recgym.utils.files import read_manifest

    folder = pretrained_dir("sasrec", dataset=config.dataset, seed=config.seed)
    manifest = read_manifest(folder) or {}
    digest = manifest.get("sha256", {}).get("model.safetensors", "not cached")
    return (
        f"- item tokens from SASRec: `{folder.name}` (`model.safetensors` sha256 {digest}); "
        "the same SASRec weights are needed to reproduce these bits\n"
    )


def _provenance(args: Any, metrics: dict[str, float]) -> str:
    """``COMMAND.md`` of a shipped LE: the command, the machine and the training time."""
    import os
    import platform

    import peft
    import torch
    import transformers

    command = f"python -m recgym.le.hub {args.name} --retrain --ship" + (
        f" --device {args.device}" if args.device else ""
    )
    if args.threads is not None:
        command += f" --threads {args.threads}"
    return (
        f"# How the shipped LE {args.name!r} was made\n\n"
        f"```bash\n{command}\n```\n\n"
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}\n"
        f"- device: {args.device or ('cuda' if torch.cuda.is_available() else 'cpu')}, "
        f"torch threads {torch.get_num_threads()}\n"
        f"- torch {torch.__version__}, transformers {transformers.__version__}, "
        f"peft {peft.__version__}\n"
        f"- training: {metrics.get('minutes/total', float('nan')):.1f} minutes\n"
        + _sasrec_note(CONFIGS[args.name])
        + "\n"
        "Run on the same hardware and versions, the command reproduces these files bit for bit "
        "(it prints `reproduces_shipped`); float sums differ across CPUs and thread counts.\n"
    )


if __name__ == "__main__":
    main()
