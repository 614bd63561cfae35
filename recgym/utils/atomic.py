"""Writes that a kill cannot leave half done: files, folders and checkpoints.

A process killed with SIGKILL (an out-of-memory kill, a preempted job, a lost lease) runs no
``finally`` and no ``atexit``; whatever it was writing stays as it was. Everything here writes
beside the target first and then renames, so a reader sees the old version or the new one,
never a mix:

- :func:`write_text` / :func:`write_bytes`: a file (:func:`recgym.utils.files.write_atomic`);
- :func:`replace_files`: files written into a staging folder, then each moved over its old
  version in a folder that holds other things too (a run folder's best adapter);
- :func:`replace_dir`: a whole folder (a checkpoint), written beside the old one and swapped in;
  :func:`complete_dir` finishes a swap that a kill interrupted and says whether a complete
  folder is there, and :func:`remove_dir` removes one without leaving a partial folder under
  its name.

Staging names start with a dot and contain ``.tmp-``; a kill may leave one behind, which no
reader takes for the real thing and the next write of the same target removes. This protects
against a killed process, not against a power cut (nothing is fsynced). Folder swaps assume
one writer per target, as a run folder has; :func:`recgym.data.cache.install_dir` is the
many-writers variant for cache entries.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from recgym.utils.files import write_atomic

__all__ = [
    "complete_dir",
    "remove_dir",
    "replace_dir",
    "replace_files",
    "write_bytes",
    "write_text",
]


def _staging_prefix(path: Path) -> str:
    return f".{path.name}.tmp-"


def _previous(path: Path) -> Path:
    """Where :func:`replace_dir` keeps the old folder while it swaps the new one in."""
    return path.with_name(f".{path.name}.old")


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`recgym.utils.files.write_atomic`: a
    temporary file beside it, then ``os.replace``); creates the parent folder."""
    return write_atomic(path, data)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, as :func:`write_bytes`."""
    return write_atomic(path, text)


def _clean_staging(path: Path) -> None:
    """Remove the staging leftovers of writes of ``path`` that a kill interrupted."""
    if path.parent.is_dir():
        for stray in path.parent.glob(_staging_prefix(path) + "*"):
            if stray.is_dir() and not stray.is_symlink():
                shutil.rmtree(stray, ignore_errors=True)
            else:
                stray.unlink(missing_ok=True)


def complete_dir(path: str | Path) -> bool:
    """Whether a complete folder written by :func:`replace_dir` is at ``path``.

    A kill between the two renames of a swap leaves no folder at ``path`` and the previous one
    aside: it is put back. A previous folder left beside a complete one (a kill while it was
    being deleted) is deleted.
    """
    path = Path(path)
    previous = _previous(path)
    if previous.exists():
        if path.exists():
            shutil.rmtree(previous, ignore_errors=True)
        else:
            os.replace(previous, path)
    return path.is_dir()


def replace_dir(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Put a new version of the folder ``path`` in place atomically.

    ``write(staging)`` fills a new folder beside ``path``; the old folder (if any) is moved
    aside, the new one renamed to ``path``, then the old one deleted. A kill at any point leaves
    either the old complete folder or the new one, which :func:`complete_dir` finds. An
    exception in ``write`` leaves the old folder untouched and removes the staging folder.
    Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    complete_dir(path)
    _clean_staging(path)
    staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(path), dir=path.parent))
    try:
        write(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    previous = _previous(path)
    if path.exists():
        os.replace(path, previous)
    os.replace(staging, path)
    shutil.rmtree(previous, ignore_errors=True)
    return path


def remove_dir(path: str | Path) -> None:
    """Delete the folder ``path`` (and an interrupted swap's previous version) so that a kill
    midway leaves no partial folder under its name: it is renamed to a staging name first."""
    path = Path(path)
    complete_dir(path)  # a previous version aside is deleted, or put back to be deleted
    if path.exists():
        trash = Path(tempfile.mkdtemp(prefix=_staging_prefix(path), dir=path.parent))
        os.replace(path, trash / path.name)
        shutil.rmtree(trash, ignore_errors=True)
    _clean_staging(path)


def replace_files(folder: str | Path, write: Callable[[Path], object]) -> list[Path]:
    """Write files into ``folder`` (which may hold others) so that each is whole at any time.

    ``write(staging)`` fills a staging folder inside ``folder``; each file it wrote (not its
    subfolders) is then moved over its namesake in ``folder`` (one ``os.replace`` each). A kill
    leaves every file either old or new; files written together may mix versions, so use it
    where they stay consistent (an adapter's weights and its unchanging config). Returns the
    files written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "files"  # the staging prefix of this folder's file writes
    _clean_staging(marker)
    staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(marker), dir=folder))
    try:
        write(staging)
        written = []
        for item in sorted(staging.iterdir()):
            if item.is_file():
                os.replace(item, folder / item.name)
                written.append(folder / item.name)
        return written
    finally:
        shutil.rmtree(staging, ignore_errors=True)
