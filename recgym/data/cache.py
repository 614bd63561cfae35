"""The on-disk cache: where fetched artifacts and built models live, and how their integrity is
checked.

Every cache entry is a folder put in place whole by :func:`install_dir`, with a manifest of its
files' sha256 (:func:`recgym.utils.files.write_manifest`) written into it before it appears;
loaders check an entry with :func:`recgym.utils.files.verify_dir` before they use it, and a
missing, truncated or corrupted file is reported (a :class:`~recgym.error.CacheWarning` naming
it) and fetched or built again, never loaded.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from recgym.utils.files import file_digest, sha256_file, write_manifest

__all__ = [
    "cache_dir",
    "file_digest",
    "install_dir",
    "is_verified",
    "mark_verified",
    "sha256_file",
]


def cache_dir(*parts: str, create: bool = True) -> Path:
    """Return ``$RECGYM_CACHE/<parts...>`` (default ``~/.cache/recgym``), creating it if asked."""
    root = Path(os.environ.get("RECGYM_CACHE") or Path.home() / ".cache" / "recgym")
    path = root.joinpath(*parts).expanduser()
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def install_dir(
    path: Path,
    write: Callable[[Path], object],
    *,
    replace: bool = False,
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Put a cache entry (a folder) at ``path`` atomically: ``write(staging)`` fills a new
    folder beside it, its manifest (the sha256 of every file, and ``meta``) is written, and the
    folder is renamed to ``path``, so an interrupted write never looks like an entry and a
    later corruption is caught by :func:`recgym.utils.files.verify_dir`.

    ``replace`` puts this copy in place of an existing entry (moved aside first and then
    deleted, so a reader sees the old entry or the new one, never a half-deleted one);
    otherwise, if another process installed ``path`` meanwhile, its copy is kept and the
    staging folder dropped."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        write(staging)
        write_manifest(staging, **dict(meta or {}))
        staging.chmod(0o755)  # mkdtemp's folder is owner-only; a cache is meant to be shared
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old: Path | None = None
    if replace and path.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}-", suffix=".old", dir=path.parent))
        os.replace(path, old / "entry")
    try:
        os.replace(staging, path)
    except OSError:  # another process installed it meanwhile: keep that copy
        shutil.rmtree(staging, ignore_errors=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return path


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def mark_verified(path: Path, sha256: str) -> None:
    """Record that ``path`` was hashed to ``sha256`` at its current size and mtime.

    Re-hashing a 100 MB model on every load costs a second; the stamp lets later loads skip it
    until the file changes (a truncated or rewritten file changes size or mtime). The per-file
    stamp of older versions: cache folders now carry one manifest
    (:func:`recgym.utils.files.write_manifest`), and stamps are read only to adopt folders
    fetched before.
    """
    st = path.stat()
    stamp = {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    _stamp_path(path).write_text(json.dumps(stamp))


def is_verified(path: Path, sha256: str | None) -> bool:
    """True if ``path`` exists and has digest ``sha256`` (stamp fast path, else a full hash).

    With ``sha256=None`` (a file whose publisher gives no digest) the file is checked against
    the digest recorded when it was first fetched, so later corruption is still caught.
    """
    if not path.is_file():
        return False
    st = path.stat()
    stamp_file = _stamp_path(path)
    stamp: dict[str, object] = {}
    if stamp_file.is_file():
        try:
            stamp = json.loads(stamp_file.read_text())
        except (OSError, ValueError):
            stamp = {}
    expected = sha256 or stamp.get("sha256")
    if expected is None:
        return False
    if (
        stamp.get("sha256") == expected
        and stamp.get("size") == st.st_size
        and stamp.get("mtime_ns") == st.st_mtime_ns
    ):
        return True
    if sha256_file(path) != expected:
        return False
    mark_verified(path, str(expected))
    return True
