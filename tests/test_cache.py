"""Cache folders' manifests (recgym.utils.files): what a check catches, and what it re-hashes."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import pytest

from recgym.error import CacheWarning
from recgym.utils.files import (
    MANIFEST,
    read_manifest,
    sha256_file,
    verify_dir,
    write_atomic,
    write_manifest,
)

FILES = {"weights.bin": b"\x00\x01" * 500, "sub/meta.json": b'{"d": 8}'}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder of two files with its manifest, the files a second older than the manifest."""
    root = tmp_path / "entry"
    for name, data in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
        _age(root / name, 1)
    write_manifest(root, built_from="test")
    return root


def _age(path: Path, seconds: float) -> None:
    st = path.stat()
    ns = st.st_mtime_ns - int(seconds * 1e9)
    os.utime(path, ns=(ns, ns))


def _flip(path: Path, keep_mtime: bool = False) -> None:
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _quiet_check(folder: Path, **kwargs: object) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return verify_dir(folder, remedy="rebuilding", **kwargs)  # type: ignore[arg-type]


def test_manifest_lists_every_file_with_size_digest_and_meta(folder: Path) -> None:
    manifest = read_manifest(folder)
    assert manifest is not None and manifest["built_from"] == "test"
    # "files" keeps what older versions wrote and read (sizes), so they accept new folders.
    assert manifest["files"] == {name: len(data) for name, data in FILES.items()}
    assert manifest["sha256"] == {name: sha256_file(folder / name) for name in FILES}
    assert _quiet_check(folder)


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "extend"])
def test_a_damaged_file_is_reported_by_name(folder: Path, damage: str) -> None:
    path = folder / "weights.bin"
    if damage == "flip":
        _flip(path)
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:10])
    elif damage == "delete":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes() + b"\n")
    with pytest.warns(CacheWarning, match=r"cached file .*weights\.bin .*; rebuilding"):
        assert not verify_dir(folder, remedy="rebuilding")
    assert not verify_dir(folder)  # remedy=None: the same answer, silently


def test_a_file_changed_in_the_manifests_clock_tick_is_hashed(folder: Path) -> None:
    # A flip that keeps the modification time, which is also the manifest's: "racy clean", so
    # the size-and-time record cannot vouch for the file and it is hashed.
    manifest_ns = (folder / MANIFEST).stat().st_mtime_ns
    path = folder / "weights.bin"
    os.utime(path, ns=(manifest_ns, manifest_ns))
    write_manifest(folder)
    os.utime(folder / MANIFEST, ns=(manifest_ns, manifest_ns))
    _flip(path, keep_mtime=True)
    with pytest.warns(CacheWarning, match="corrupted"):
        assert not verify_dir(folder, remedy="rebuilding")


def test_an_unchanged_stamp_skips_the_hash_unless_full(folder: Path) -> None:
    _flip(folder / "weights.bin", keep_mtime=True)  # bit rot: no write moved the time
    assert _quiet_check(folder)  # the documented trade-off: not re-read on every load
    with pytest.warns(CacheWarning, match="corrupted"):
        assert not verify_dir(folder, remedy="rebuilding", full=True)


def test_a_copied_folder_is_hashed_once_and_restamped(folder: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy, copy_function=shutil.copyfile)  # new modification times
    before = read_manifest(copy)
    assert _quiet_check(copy)
    after = read_manifest(copy)
    assert before is not None and after is not None
    assert after["mtime_ns"] != before["mtime_ns"] and after["sha256"] == before["sha256"]
    assert after["mtime_ns"]["weights.bin"] == (copy / "weights.bin").stat().st_mtime_ns


def test_an_older_sizes_only_manifest_is_checked_by_size_and_given_digests(folder: Path) -> None:
    old = {"source_sha256": "abc", "files": {name: len(data) for name, data in FILES.items()}}
    (folder / MANIFEST).write_text(json.dumps(old))
    assert _quiet_check(folder)
    manifest = read_manifest(folder)
    assert manifest is not None and manifest["source_sha256"] == "abc"
    assert manifest["sha256"]["weights.bin"] == sha256_file(folder / "weights.bin")
    (folder / MANIFEST).write_text(json.dumps(old))
    (folder / "weights.bin").write_bytes(b"short")
    with pytest.warns(CacheWarning, match="has 5 bytes"):
        assert not verify_dir(folder, remedy="rebuilding")


def test_a_folder_without_manifest_is_incomplete_unless_adopted(folder: Path) -> None:
    (folder / MANIFEST).unlink()
    with pytest.warns(CacheWarning, match="no readable manifest"):
        assert not verify_dir(folder, remedy="rebuilding")
    assert _quiet_check(folder, adopt=True)  # an older recgym's folder: hashed as it is
    assert read_manifest(folder) is not None and _quiet_check(folder)
    assert not verify_dir(folder.parent / "absent", remedy="rebuilding")  # absent: no warning


def test_write_atomic_keeps_the_old_content_when_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "f.json"
    write_atomic(path, "old")
    os.chmod(path, 0o640)
    assert write_atomic(path, b"new") == path and path.read_bytes() == b"new"
    assert path.stat().st_mode & 0o777 == 0o640  # the mode of the file it replaced

    def killed(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("os.fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, "half")
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["f.json"]
