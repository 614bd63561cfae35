"""Writing files so that no reader, and no killed writer, ever leaves a half-written one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["write_atomic"]


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
