"""MkDocs hook: env pages generated from env docstrings, and files included from the repository.

``mkdocs.yml`` lists this file under ``hooks:``. On every page, :func:`on_page_markdown`
replaces two kinds of marker, each alone on its line:

- ``<!-- recgym-env: RecSeq-v0 -->``: the docstring of the class behind
  ``gymnasium.spec("RecSeq-v0").entry_point``, as Markdown (:func:`docstring_markdown`),
  after a table of the registration spec. The docstring must have every heading of
  :data:`REQUIRED_HEADINGS`; a missing heading or an unknown id fails the build.
- ``<!-- recgym-include: benchmarks/results/leaderboard.md -->``: the text of a file, the path
  taken from the repository root (the folder of ``mkdocs.yml``). A ``.md`` file is included
  as it is, any other file as a code block. A relative link of an included file that points at
  no file of the site is rewritten to the file in the repository (``repo_url``).

:func:`on_files` adds the repository files named in ``extra.recgym_files`` of ``mkdocs.yml``
(``{site path: path from the repository root}``) to the site, e.g. the leaderboard's HTML page.
"""

from __future__ import annotations

import importlib
import inspect
import json
import posixpath
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

__all__ = [
    "REQUIRED_HEADINGS",
    "EnvDocError",
    "docstring_markdown",
    "env_class",
    "env_markdown",
    "include_markdown",
    "on_files",
    "on_page_markdown",
]

REQUIRED_HEADINGS = (
    "Description",
    "Observation Space",
    "Action Space",
    "Rewards",
    "Episode End",
    "Arguments",
    "Version History",
)
"""The Gymnasium docstring headings (``## Name``) every env docstring must have."""

ENV_MARKER = re.compile(r"^[ \t]*<!--\s*recgym-env:\s*(\S+)\s*-->[ \t]*$", re.MULTILINE)
INCLUDE_MARKER = re.compile(r"^[ \t]*<!--\s*recgym-include:\s*(\S+)\s*-->[ \t]*$", re.MULTILINE)

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_ROLE = re.compile(r":[a-z]+(?::[a-z]+)*:`(~?)([^`]+)`")
_LITERAL = re.compile(r"``(.+?)``")
_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s")
_LINK = re.compile(r"(!?\[[^\]]*\])\(([^)\s]+)\)")
_LANGUAGES = {".py": "python", ".toml": "toml", ".yml": "yaml", ".yaml": "yaml", ".json": "json"}


class EnvDocError(PluginError):
    """An env page cannot be generated: unknown id, no docstring, or a heading is missing."""


# ----- env pages ------------------------------------------------------------------------------


def env_class(env_id: str) -> type:
    """The class behind ``gymnasium.spec(env_id).entry_point`` (``recgym`` imported first).

    Raises:
        EnvDocError: ``env_id`` is not registered, or its entry point is not a class.
    """
    import gymnasium as gym

    import recgym  # registers the ids

    try:
        spec = gym.spec(env_id)
    except gym.error.Error as exc:
        known = ", ".join(sorted(recgym.ENVS))
        raise EnvDocError(
            f"a docs page asks for env id {env_id!r}, which is not registered ({exc}); "
            f"recgym registers: {known}"
        ) from None
    entry = spec.entry_point
    if isinstance(entry, str):
        module, _, name = entry.partition(":")
        entry = getattr(importlib.import_module(module), name)
    if not inspect.isclass(entry):
        raise EnvDocError(
            f"the entry point of {env_id!r} is {spec.entry_point!r}, not a class; an env page "
            "is generated from a class docstring"
        )
    return entry


def _code(text: str) -> str:
    """``text`` as a Markdown code span (wider fences when it holds backticks)."""
    if "`" not in text:
        return f"`{text}`"
    fence = "`" * (max(len(run) for run in re.findall(r"`+", text)) + 1)
    return f"{fence} {text} {fence}"


def _role(match: re.Match[str]) -> str:
    target = match.group(2)
    return _code(target.rsplit(".", 1)[-1] if match.group(1) else target)


def docstring_markdown(doc: str | None, env_id: str, owner: str = "the env class") -> str:
    """An env docstring as Markdown.

    reST literals (````x````) and roles (``:func:`x```) become code spans, and a blank line is
    put before every list and heading that follows text directly (Python-Markdown needs it).

    Args:
        doc: the docstring (as in ``__doc__``; indentation is removed).
        env_id: the env id, for error messages.
        owner: what the docstring belongs to, for error messages.

    Raises:
        EnvDocError: the docstring is empty or lacks a heading of :data:`REQUIRED_HEADINGS`.
    """
    text = inspect.cleandoc(doc or "")
    if not text:
        raise EnvDocError(f"{env_id}: {owner} has no docstring to generate its page from")
    found = {m.group(2) for ln in text.splitlines() if (m := _HEADING.match(ln)) and m[1] == "##"}
    missing = [h for h in REQUIRED_HEADINGS if h not in found]
    if missing:
        raise EnvDocError(
            f"{env_id}: the docstring of {owner} lacks the required heading(s) "
            + ", ".join(f"'## {h}'" for h in missing)
            + "; every env docstring needs "
            + ", ".join(f"'## {h}'" for h in REQUIRED_HEADINGS)
        )
    out: list[str] = []
    in_list = False
    for line in text.splitlines():
        line = _LITERAL.sub(lambda m: _code(m.group(1)), _ROLE.sub(_role, line))
        is_item, is_heading = bool(_ITEM.match(line)), bool(_HEADING.match(line))
        if out and out[-1].strip() and (is_heading or (is_item and not in_list)):
            out.append("")
        if not line.strip() or is_heading:
            in_list = False
        elif is_item:
            in_list = True
        out.append(line)
    return "\n".join(out)


def env_markdown(env_id: str) -> str:
    """The Markdown that replaces an env marker: the spec table, then the docstring."""
    import gymnasium as gym

    cls = env_class(env_id)
    spec = gym.spec(env_id)
    entry = spec.entry_point if isinstance(spec.entry_point, str) else cls.__qualname__
    kwargs = json.dumps(spec.kwargs, sort_keys=True, default=repr)
    rows = [
        ("id", _code(spec.id)),
        ("entry point", _code(entry)),
        ("max_episode_steps", _code(repr(spec.max_episode_steps))),
        ("kwargs", _code(kwargs)),
    ]
    table = ["| spec | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    make = f'Make it with `gym.make("{env_id}")` after `import recgym` (which registers the id).'
    body = docstring_markdown(cls.__doc__, env_id, f"{cls.__module__}.{cls.__qualname__}")
    summary, sep, rest = body.partition("\n## ")
    return "\n".join([summary.strip(), "", *table, "", make, "", (sep + rest).strip(), ""])


# ----- included files -------------------------------------------------------------------------


def _link_target(
    target: str,
    source: Path,
    root: Path,
    repo_url: str | None,
    page_dir: str,
    site: Collection[str],
) -> str:
    """A relative link of an included file: kept if it names a file of the site (from the
    including page's folder), else pointed at the file in the repository."""
    if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target, re.IGNORECASE):
        return target
    path, _, anchor = target.partition("#")
    if posixpath.normpath(posixpath.join(page_dir, path)) in site:
        return target
    try:
        relative = (source.parent / path).resolve().relative_to(root).as_posix()
    except ValueError:
        return target
    if not repo_url:
        return target
    return f"{repo_url.rstrip('/')}/blob/main/{relative}" + (f"#{anchor}" if anchor else "")


def include_markdown(
    root: Path,
    relative: str,
    repo_url: str | None = None,
    *,
    page_dir: str = "",
    site: Collection[str] = (),
) -> str:
    """The Markdown that replaces an include marker: the file at ``root / relative``.

    Args:
        root: the repository root.
        relative: the included file, from ``root``.
        repo_url: where relative links that leave the site point to (``{repo_url}/blob/main/``).
        page_dir: the including page's folder in the docs (``""``: the top).
        site: the source paths of the site's files (``File.src_uri``).

    Raises:
        PluginError: the file does not exist.
    """
    root = Path(root).resolve()
    path = (root / relative).resolve()
    if not path.is_file():
        raise PluginError(
            f"a docs page includes {relative!r}, but {path} is not a file (include paths are "
            "relative to the folder of mkdocs.yml)"
        )
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".md":
        fence = "`" * max([3, *(len(run) + 1 for run in re.findall(r"`{3,}", text))])
        return f"{fence}{_LANGUAGES.get(path.suffix, '')}\n{text.rstrip()}\n{fence}"
    return _LINK.sub(
        lambda m: (
            m.group(1) + f"({_link_target(m.group(2), path, root, repo_url, page_dir, site)})"
        ),
        text,
    )


# ----- the hook -------------------------------------------------------------------------------


def _root(config: Any) -> Path:
    return Path(config.config_file_path).resolve().parent


def on_files(files: Files, *, config: Any) -> Files:
    """MkDocs event: add the files of ``extra.recgym_files`` (``{site path: repository path}``).

    Raises:
        PluginError: a listed file does not exist.
    """
    for dest, source in (config.extra.get("recgym_files") or {}).items():
        path = _root(config) / source
        if not path.is_file():
            raise PluginError(
                f"mkdocs.yml extra.recgym_files puts {source!r} at {dest!r}, but {path} is not a "
                "file (paths are relative to the folder of mkdocs.yml)"
            )
        files.append(File.generated(config, dest, abs_src_path=str(path)))
    return files


def on_page_markdown(markdown: str, *, page: Any, config: Any, files: Files, **_: Any) -> str:
    """MkDocs event: replace the env and include markers of a page."""
    page_dir = posixpath.dirname(page.file.src_uri)
    site = {f.src_uri for f in files}
    markdown = ENV_MARKER.sub(lambda m: env_markdown(m.group(1)), markdown)
    return INCLUDE_MARKER.sub(
        lambda m: include_markdown(
            _root(config), m.group(1), config.repo_url, page_dir=page_dir, site=site
        ),
        markdown,
    )
