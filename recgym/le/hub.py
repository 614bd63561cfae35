"""Trained LEs by name: :data:`CONFIGS`, cached under ``<cache>/le/``, trained on first use.

Training keeps a checkpoint beside the cache entry (``<entry>.checkpoint``, see
:func:`recgym.le.train.train_le`): a load killed while it trains resumes there when started
again, and the checkpoint goes once the entry is installed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from recgym.data.cache import cache_dir, install_dir
from recgym.error import UnknownNameError
from recgym.le.train import LEConfig
from recgym.utils import atomic
from recgym.utils.files import verify_dir

__all__ = ["CACHE_VERSION", "CONFIGS", "checkpoint_dir", "le_dir", "load"]

CACHE_VERSION = 1
"""Part of every cache key: bump it when the LE's code or training changes."""

CONFIGS: dict[str, LEConfig] = {
    # Trains in about 25 minutes on 2 CPU cores (100 users, window 10).
    "ml-100k-smollm2": LEConfig(),
    # The GPU configuration: a larger user subset, a longer window, more passes.
    "ml-100k-smollm2-large": LEConfig(
        users=300, window=20, item_epochs=2, sm_epochs=3, rm_epochs=3, batch_size=32
    ),
}
"""Registered LEs: name → configuration (SmolLM2-135M on MovieLens-100k)."""


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
    retrain: bool = False,
    checkpoint_minutes: float = 5.0,
) -> Any:
    """The LE called ``name`` (a key of :data:`CONFIGS`) or saved in folder ``name``.

    A registered LE not in the cache is trained first (:func:`recgym.le.train.train_le`, with
    a checkpoint every ``checkpoint_minutes`` that a killed load resumes from) and saved with a
    manifest of its files' sha256, so later loads take seconds; a cached LE with a missing,
    truncated or corrupted file is reported (a :class:`~recgym.error.CacheWarning` naming it)
    and trained again.

    Raises:
        UnknownNameError: ``name`` is neither registered nor a folder.
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
    config = CONFIGS[name]
    target = le_dir(config, name)
    checkpoint = checkpoint_dir(target)
    if retrain or not verify_dir(target, remedy="training it again", adopt=True):
        from filelock import FileLock  # a dependency of transformers, which training needs

        from recgym.le.train import train_le

        target.parent.mkdir(parents=True, exist_ok=True)
        # One process trains (and writes the checkpoint); another one waits, then loads.
        with FileLock(str(target) + ".lock"):
            if retrain or not verify_dir(target, adopt=True):  # another process installed it
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
    return LLMEnvironment.load(target, device=device, progress=progress)


def checkpoint_dir(target: Path) -> Path:
    """Where the training of the cache entry ``target`` keeps its checkpoint."""
    return target.with_name(target.name + ".checkpoint")


def main(argv: list[str] | None = None) -> None:
    """``python -m recgym.le.hub NAME``: train (or load) a registered LE and print its
    held-out metrics as JSON."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("name", choices=sorted(CONFIGS), help="registered LE")
    parser.add_argument("--device", default=None, help="cpu, cuda... (default: cuda if any)")
    parser.add_argument("--retrain", action="store_true", help="train even if cached")
    parser.add_argument(
        "--checkpoint-minutes",
        type=float,
        default=5.0,
        help="minutes between two checkpoints of the training, which a killed run started "
        "again resumes from (default: 5; 0: after every step)",
    )
    args = parser.parse_args(argv)
    le = load(
        args.name,
        device=args.device,
        retrain=args.retrain,
        checkpoint_minutes=args.checkpoint_minutes,
    )
    print(json.dumps({"name": args.name, "folder": le.name, **le.metrics}, indent=2))


if __name__ == "__main__":
    main()
