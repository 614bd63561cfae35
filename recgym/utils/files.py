"""Files that no reader, killed writer or later corruption can pass off as whole.

- :func:`write_atomic` replaces a file's content in one rename.
- A *manifest* (:data:`MANIFEST`, written last into a folder by :func:`write_manifest`) lists
  the sha256, size and modification time of each of the folder's files; :func:`verify_dir`
  checks the files against it before the folder is used, and warns, naming the file, when one
  is missing, truncated or changed. Every folder of recgym's cache carries one (fetched
  artifacts, converted and trained models: see :func:`recgym.data.cache.install_dir`).

Checking a file re-hashes it only when its size or modification time differs from the
manifest's record, or when it was modified in the same clock tick as the manifest was written
(git's "racy clean" rule): any write to a file moves its modification time, so a truncated,
rewritten or edited file is always re-hashed, while an unchanged 500 MB model is not re-read
on every load. ``verify_dir(..., full=True)`` re-hashes everything (bit rot on disk does not
move modification times).

Nothing here imports pandas or torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recgym.error import CacheWarning

__all__ = [
    "MANIFEST",
    "file_digest",
    "read_manifest",
    "sha256_file",
    "verify_dir",
    "write_atomic",
    "write_manifest",
]

MANIFEST = ".recgym-complete.json"
"""The manifest's file name. Written last into a folder, so its presence also means that the
folder is complete (older recgym versions wrote it with file sizes only)."""

_CHUNK = 1 << 20


def write_atomic(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Replace ``path``'s content with ``data`` atomically; returns the path.

    The bytes go to a temporary file in the same folder (so the rename never crosses file
    systems), are flushed to disk, and the file is renamed over ``path``: a reader sees the old
    content or the new one, never a mix, and a process killed mid-write leaves ``path`` as it
    was (and at worst a hidden ``.<name>.*.tmp`` beside it). The file keeps the mode of the one
    it replaces; a new one is ``0o644`` (not ``mkstemp``'s owner-only ``0o600``: results and
    caches are meant to be shared). Folders are created as needed; text is written as UTF-8.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def file_digest(path: str | os.PathLike[str], algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks so large model files do not fill memory."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file (:func:`file_digest`)."""
    return file_digest(path)


@dataclass(frozen=True)
class _Record:
    sha256: str
    size: int
    mtime_ns: int


def _record(path: Path, sha256: str | None = None) -> _Record:
    st = path.stat()
    return _Record(sha256 if sha256 is not None else sha256_file(path), st.st_size, st.st_mtime_ns)


def write_manifest(
    folder: str | os.PathLike[str], files: Iterable[str] | None = None, **meta: Any
) -> dict[str, Any]:
    """Hash the files of ``folder`` and write its :data:`MANIFEST` (atomically); returns it.

    The manifest is a JSON object: ``files`` maps each file (relative, ``/``-separated) to its
    size in bytes (all that older recgym versions wrote, and read, so they still accept the
    folder), ``sha256`` to its digest and ``mtime_ns`` to its modification time; ``meta`` sits
    beside them.

    Args:
        folder: the folder, complete.
        files: the files to list; default every file under it (the manifest and hidden
            ``.tmp`` files excepted).
        **meta: JSON values stored beside the file list (what the folder was built from).
    """
    folder = Path(folder)
    if files is None:
        files = sorted(
            p.relative_to(folder).as_posix()
            for p in folder.rglob("*")
            if p.is_file() and p.name != MANIFEST and not p.name.endswith(".tmp")
        )
    return _write_manifest(folder, {name: _record(folder / name) for name in files}, meta)


def _write_manifest(
    folder: Path, records: Mapping[str, _Record], meta: Mapping[str, Any]
) -> dict[str, Any]:
    manifest = {
        **{k: v for k, v in meta.items() if k not in _KEYS},
        "files": {name: r.size for name, r in records.items()},
        "sha256": {name: r.sha256 for name, r in records.items()},
        "mtime_ns": {name: r.mtime_ns for name, r in records.items()},
    }
    write_atomic(folder / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


_KEYS = ("files", "sha256", "mtime_ns")


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The folder's manifest, or ``None`` when it has none or it cannot be read as one."""
    try:
        manifest = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        return None
    for key in ("sha256", "mtime_ns"):  # absent from a sizes-only manifest (older recgym)
        if not isinstance(manifest.setdefault(key, {}), dict):
            return None
    return manifest


def _problem(
    path: Path, size: Any, sha256: Any, mtime_ns: Any, racy_ns: int, full: bool
) -> tuple[str | None, bool]:
    """What is wrong with one listed file (``None``: nothing), and whether its record is out of
    date (intact but re-hashed, or listed without a digest by an older recgym)."""
    try:
        st = path.stat()
    except OSError:
        return "is missing", False
    if st.st_size != size:
        return f"has {st.st_size} bytes, expected {size} (truncated or rewritten)", False
    if not isinstance(sha256, str):  # a sizes-only manifest: the size is all there is to check
        return None, True
    stamped = st.st_mtime_ns == mtime_ns and st.st_mtime_ns < racy_ns
    if stamped and not full:
        return None, False
    got = sha256_file(path)
    if got != sha256:
        return f"has sha256 {got}, expected {sha256} (corrupted)", False
    return None, not stamped


def verify_dir(
    folder: str | os.PathLike[str],
    *,
    remedy: str | None = None,
    full: bool = False,
    adopt: bool = False,
) -> bool:
    """True when ``folder`` has a manifest and every file it lists matches its record.

    A folder that does not exist is simply absent (``False``, silently). Otherwise a missing or
    unreadable manifest, or a file that is missing, of another size or of another sha256 makes
    it ``False`` with a :class:`~recgym.error.CacheWarning` naming the folder or the file, and
    ``remedy`` (what the caller does next, e.g. ``"training it again"``); ``remedy=None`` checks
    silently. Files that had to be re-hashed and are intact (copied with new modification
    times) get their records refreshed, so the next check is quick again; a manifest of sizes
    only (older recgym) is checked by size and then given digests.

    Args:
        folder: the folder.
        remedy: what happens to a folder that fails, for the warning; ``None``: no warning.
        full: re-hash every file, even those whose size and modification time are unchanged.
        adopt: a folder without a manifest (written by an older recgym, which always put its
            folders in place whole) is hashed as it is and given one, and passes.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return False
    manifest = read_manifest(folder)
    if manifest is None and adopt and not (folder / MANIFEST).exists():
        with contextlib.suppress(OSError):  # a read-only cache stays as it is
            write_manifest(folder)
        return True
    if manifest is None:
        _warn(remedy, f"{folder} has no readable manifest ({MANIFEST}): an interrupted write")
        return False
    try:
        racy_ns = (folder / MANIFEST).stat().st_mtime_ns
    except OSError:
        racy_ns = 0
    stale = False
    for name, size in manifest["files"].items():
        sha256, mtime_ns = manifest["sha256"].get(name), manifest["mtime_ns"].get(name)
        problem, outdated = _problem(folder / name, size, sha256, mtime_ns, racy_ns, full)
        if problem is not None:
            _warn(remedy, f"cached file {folder / name} {problem}")
            return False
        stale |= outdated
    if stale:  # the digests are known (or, for a sizes-only manifest, computed once here)
        records = {
            name: _record(folder / name, manifest["sha256"].get(name)) for name in manifest["files"]
        }
        with contextlib.suppress(OSError):  # a read-only cache stays as it is
            _write_manifest(folder, records, manifest)
    return True


def _warn(remedy: str | None, message: str) -> None:
    if remedy is not None:
        warnings.warn(f"recgym: {message}; {remedy}", CacheWarning, stacklevel=3)
