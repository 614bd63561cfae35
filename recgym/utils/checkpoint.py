"""A training state in a folder: written atomically, checked against its configuration on resume.

The trainers that keep their progress as one dict (the LE's stages, SQN / SA2C epochs, the
studies' runs) save it with :func:`save_state` and read it back with :func:`load_state`: the
folder is swapped in whole (:func:`recgym.utils.atomic.replace_dir`), so a killed run leaves the
previous state; a state saved by a run of another configuration is refused with the fields that
differ. torch is imported only when a state is saved or loaded.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from recgym.utils import atomic

__all__ = ["STATE_FILE", "check_config", "load_state", "note_resume", "save_state"]

STATE_FILE = "state.pt"
"""The file of a state folder that holds the state (``torch.save``)."""


def _plain(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` as JSON reads it back (tuples as lists), so that saved and new compare."""
    return dict(json.loads(json.dumps(dict(config))))


def note_resume(what: str) -> None:
    """Say on stderr that a run resumes (``what``: from where), as a killed run started again
    does: the one line that tells it from a fresh run."""
    print(f"recgym: resuming {what}", file=sys.stderr, flush=True)


def check_config(
    folder: str | Path, saved: Mapping[str, Any], config: Mapping[str, Any], what: str
) -> None:
    """Refuse to resume a state saved with another configuration.

    Raises:
        ValueError: a key of ``saved`` or ``config`` differs; the message names them.
    """
    saved, now = _plain(saved), _plain(config)
    changed = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k))
    if changed:
        raise ValueError(
            f"{folder} holds an unfinished {what} with another configuration "
            f"({', '.join(changed)} differ); run it again with the same settings to resume, "
            "or delete that folder to start over"
        )


def save_state(
    folder: str | Path,
    state: Mapping[str, Any],
    config: Mapping[str, Any],
    files: Callable[[Path], object] | None = None,
) -> Path:
    """Replace ``folder`` by one holding ``state`` and ``config`` (``state.pt``) and what
    ``files(staging)`` writes beside it. Returns ``folder``."""
    import torch

    def write(staging: Path) -> None:
        if files is not None:
            files(staging)
        torch.save({**state, "config": _plain(config)}, staging / STATE_FILE)

    return atomic.replace_dir(folder, write)


def load_state(
    folder: str | Path, config: Mapping[str, Any], what: str, map_location: Any = None
) -> dict[str, Any] | None:
    """The state that :func:`save_state` put in ``folder`` (``None`` when there is none),
    without its ``config``.

    Args:
        folder: the state folder.
        config: the configuration of the run about to resume.
        what: what the state is of, for the error (``"LE training"``).
        map_location: ``torch.load``'s (e.g. ``"cpu"``).

    Raises:
        ValueError: the state was saved with another configuration (:func:`check_config`).
    """
    folder = Path(folder)
    if not atomic.complete_dir(folder) or not (folder / STATE_FILE).is_file():
        return None
    import torch

    state: dict[str, Any] = torch.load(
        folder / STATE_FILE, weights_only=False, map_location=map_location
    )
    check_config(folder, state.pop("config"), config, what)
    return state
