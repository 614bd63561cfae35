"""Reading helpers shared by the loaders of local files: paths, column checks, tables, jsonl."""

from __future__ import annotations

import gzip
import json
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recgym.error import DataFormatError

__all__ = [
    "JSONL_SUFFIXES",
    "TABLE_SUFFIXES",
    "PathLike",
    "as_text",
    "describe_sources",
    "find_file",
    "iter_jsonl",
    "read_table",
    "require_columns",
    "sort_interactions",
    "table_columns",
    "warn_dropped",
]

PathLike = str | os.PathLike
"""A file or folder path, as ``str`` or :class:`os.PathLike`."""

TABLE_SUFFIXES = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".inter": "atomic",
    ".item": "atomic",
    ".user": "atomic",
}
"""File-name endings read by :func:`read_table`, and the format each one means. ``atomic``:
RecBole's atomic files, tab-separated with a ``name:type`` header (``user_id:token``), whose
columns read as ``name``."""


def _atomic_name(header: str) -> str:
    """``"item_id:token"`` → ``"item_id"`` (RecBole's typed header)."""
    return header.rsplit(":", 1)[0] if ":" in header else header


JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz")
"""File-name endings read by :func:`iter_jsonl` (one JSON object per line, gzip or not)."""


def find_file(
    explicit: PathLike | None,
    folder: PathLike | None,
    names: Sequence[str],
    kwarg: str,
    subfolders: Sequence[str] = ("",),
) -> Path:
    """The file given by ``explicit``, else the first of ``folder/subfolder/name`` that exists.

    Raises:
        TypeError: neither ``explicit`` nor ``folder`` was given.
        DataFormatError: the file does not exist (the message lists every path tried).
    """
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise DataFormatError(f"{kwarg}={str(path)!r}: no such file")
        return path
    if folder is None:
        raise TypeError(f"pass path= (a folder) or {kwarg}= (a file)")
    tried = [Path(folder, sub, name) for sub in subfolders for name in names]
    for path in tried:
        if path.is_file():
            return path
    raise DataFormatError(
        f"no {kwarg} file in {str(folder)!r}; looked for {[str(p) for p in tried]}. "
        f"Pass {kwarg}= with the file's path."
    )


def require_columns(path: PathLike, found: Iterable[str], expected: Sequence[str]) -> None:
    """Raise :class:`DataFormatError` naming the file unless every ``expected`` column is found."""
    found = list(found)
    missing = [c for c in expected if c not in found]
    if missing:
        raise DataFormatError(
            f"{path}: expected columns {list(expected)}; found {found} (missing {missing})"
        )


def _table_format(path: Path) -> str:
    name = path.name.lower()
    for suffix, fmt in TABLE_SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    raise DataFormatError(
        f"{path}: cannot tell the table format from the file name; expected a name ending "
        f"in one of {list(TABLE_SUFFIXES)}"
    )


def table_columns(path: PathLike) -> list[str]:
    """Column names of a CSV or parquet file, read from its header or schema only."""
    path = Path(path)
    fmt = _table_format(path)
    try:
        if fmt == "parquet":
            return list(pq.read_schema(path).names)
        if fmt == "atomic":
            return [_atomic_name(c) for c in pd.read_csv(path, sep="\t", nrows=0).columns]
        return list(pd.read_csv(path, nrows=0).columns)
    except (pa.ArrowException, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataFormatError(f"{path}: not a readable {fmt} file ({exc})") from None


def read_table(
    path: PathLike,
    columns: Sequence[str] | None = None,
    *,
    required: Sequence[str] = (),
    str_columns: Sequence[str] = (),
    where: tuple[str, Any] | None = None,
) -> pd.DataFrame:
    """Read a CSV or parquet file (by extension) after checking its columns.

    Args:
        path: the file.
        columns: the columns to read (all when ``None``); all of them must exist.
        required: columns that must exist even when ``columns`` is ``None``.
        str_columns: columns kept as text (ids such as ``"007"`` must not become ``7``).
        where: ``(column, value)``: keep only rows where the column equals the value (pushed
            down into the parquet reader, so large files are never fully loaded).
    """
    path = Path(path)
    found = table_columns(path)
    require_columns(path, found, [*(columns or ()), *required])
    cols = list(columns) if columns is not None else None
    fmt = _table_format(path)
    if fmt == "parquet":
        filters = [(where[0], "==", where[1])] if where else None
        frame = pd.read_parquet(path, columns=cols, filters=filters)
        frame = frame.astype({c: "str" for c in str_columns})  # missing values stay missing
    elif fmt == "atomic":
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_values=[""])
        typed = list(frame.columns)
        frame.columns = [_atomic_name(c) for c in typed]
        for header, column in zip(typed, frame.columns, strict=True):
            # RecBole's types: float fields are numbers; token and token_seq fields stay text.
            if header.endswith(":float") and column not in str_columns:
                frame[column] = pd.to_numeric(frame[column], errors="coerce")
        frame = frame[cols] if cols is not None else frame
        if where:
            frame = frame[frame[where[0]] == where[1]]
    else:
        frame = pd.read_csv(path, usecols=cols, dtype={c: str for c in str_columns})
        if where:
            frame = frame[frame[where[0]] == where[1]]
    return frame.reset_index(drop=True)


def _open_text(path: Path) -> IO[str]:
    # Sniff the gzip magic rather than trust the name: downloads are often renamed.
    with open(path, "rb") as raw:
        magic = raw.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def iter_jsonl(path: PathLike, required: Sequence[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Stream ``(line number, object)`` from a JSON-lines file, gzip-compressed or not.

    Raises:
        DataFormatError: the name has no JSON-lines ending, a line is not a JSON object, or an
            object lacks one of the ``required`` keys (the message names file and line).
    """
    path = Path(path)
    if not path.name.lower().endswith(JSONL_SUFFIXES):
        raise DataFormatError(
            f"{path}: expected a JSON-lines file, named with one of {list(JSONL_SUFFIXES)}"
        )
    try:
        with _open_text(path) as lines:
            for lineno, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataFormatError(f"{path}, line {lineno}: not JSON ({exc.msg})") from None
                if not isinstance(record, dict):
                    raise DataFormatError(f"{path}, line {lineno}: expected a JSON object")
                missing = [k for k in required if k not in record]
                if missing:
                    raise DataFormatError(
                        f"{path}, line {lineno}: expected keys {list(required)}; found "
                        f"{list(record)} (missing {missing})"
                    )
                yield lineno, record
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path}: cannot be read as (gzip) UTF-8 text ({exc})") from None


def as_text(value: Any, sep: str = " ") -> str:
    """A JSON value as one string: ``None`` → ``""``, lists joined by ``sep``, text stripped."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return sep.join(t for t in (as_text(v, sep) for v in value) if t)
    return str(value).strip()


def sort_interactions(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` sorted by (user_id, timestamp), stably, with a fresh index."""
    return frame.sort_values(["user_id", "timestamp"], kind="stable", ignore_index=True)


def describe_sources(*paths: Path) -> str:
    """The files a dataset was read from, for :attr:`Dataset.source`."""
    return ", ".join(str(p) for p in paths)


def warn_dropped(message: str) -> None:
    """Warn about rows a loader dropped (the caller of ``load_dataset`` sees it)."""
    warnings.warn(message, UserWarning, stacklevel=3)


def drop_or_raise(
    frame: pd.DataFrame, bad: pd.Series, what: str, flag: str, drop: bool
) -> pd.DataFrame:
    """Drop the ``bad`` rows of ``frame`` with a warning if ``drop``, else raise.

    Args:
        frame: the rows being loaded.
        bad: boolean mask of the rows that cannot be kept.
        what: what is wrong, for the warning or error (counts, file names, examples).
        flag: the loader argument that allows dropping, named in the error.
        drop: that argument's value.
    """
    if not bad.any():
        return frame
    if not drop:
        raise DataFormatError(f"{what}; pass {flag}=True to drop those rows")
    warnings.warn(f"dropped {what}", UserWarning, stacklevel=4)
    return frame[~bad].reset_index(drop=True)
