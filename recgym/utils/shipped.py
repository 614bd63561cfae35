"""Models that ship trained inside the package: their files checked against recorded digests.

What defines an env (a user model, a retriever, a judge) ships with recgym so that ``gym.make``
never trains. Each such model is a folder of files whose sha256 digests are recorded in the
code (the module that loads it), and a ``COMMAND.md`` saying how the files were made.
:func:`check_shipped` verifies a folder before it is loaded; :func:`ship` copies a freshly
trained model into the package and returns the digests to record.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from recgym.error import ModelLoadError
from recgym.utils.files import sha256_file

__all__ = ["add_training_arguments", "check_shipped", "ship", "use_threads"]


def check_shipped(folder: Path, digests: Mapping[str, str], what: str, remedy: str) -> Path:
    """``folder``, once every file of ``digests`` (a path relative to it → sha256) matches.

    Args:
        folder: the shipped model's folder inside the package.
        digests: the recorded digests.
        what: the model, for the message (``"shipped retriever 'lrurec'"``).
        remedy: what the user can do instead, for the message (a training command).

    Raises:
        ModelLoadError: a file is missing or its digest differs (the package is damaged or the
            files were replaced without updating the recorded digests).
    """
    for file, expected in digests.items():
        path = folder / file
        got = sha256_file(path) if path.is_file() else "missing"
        if got != expected:
            raise ModelLoadError(
                f"{what}: {path} has sha256 {got}, expected {expected}; reinstall recgym, or "
                f"{remedy}"
            )
    return folder


def ship(source: Path, folder: Path, files: Iterable[str], command: str | None) -> dict[str, str]:
    """Copy ``files`` (paths relative to ``source``) into ``folder`` with ``COMMAND.md`` (how
    they were made; ``None``: none, for files shipped beside a model that has one) and return
    their digests, to record in the loading module."""
    digests = {}
    for file in files:
        (folder / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / file, folder / file)
        digests[file] = sha256_file(folder / file)
    if command is not None:
        (folder / "COMMAND.md").write_text(command)
    return digests


def add_training_arguments(parser: argparse.ArgumentParser, where: str, table: str) -> None:
    """The options every ``python -m ... --retrain --ship`` command of a shipped model takes:
    ``--retrain``, ``--threads`` and ``--ship`` (into the package folder ``where``, digests to
    record in ``table``)."""
    parser.add_argument("--retrain", action="store_true", help="train even if shipped or cached")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's choice); float sums, and so the weights' "
        "bits, depend on it: a shipped model's COMMAND.md records its own",
    )
    parser.add_argument(
        "--ship",
        action="store_true",
        help=f"copy the trained model into the package ({where}) and print the digests to "
        f"record in {table} (maintainers)",
    )


def use_threads(threads: int | None) -> None:
    """Set torch's CPU threads for a training command (``None``: leave torch's choice)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
