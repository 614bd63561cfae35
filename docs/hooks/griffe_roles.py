"""Griffe extension: recgym's reST-flavoured docstrings as Markdown for the API pages.

recgym's docstrings are Google style with a few reST habits that mkdocstrings (which renders
docstrings as Markdown) would show literally. ``mkdocs.yml`` lists this file under the Python
handler's ``extensions``; once a package is loaded, :class:`RolesAsCrossrefs` rewrites every
docstring (:func:`rst_to_markdown`):

- a role (``:class:`~recgym.llm.LLM```, ``:func:`load```) becomes an optional autorefs link
  (``<autoref identifier="..." optional>``): a link where the target has an API page, plain
  code where it has none (no warning either way, so ``mkdocs build --strict`` does not depend
  on which names have pages). The target is resolved in the docstring owner's scope (``reset``
  in a class docstring is that class's method; ``LLM`` in a module that imports it is where it
  was imported from), and a leading ``~`` shows only the last part of the path, as in Sphinx;
- an ``Example:`` section becomes ``Examples:``, the section griffe renders as doctest code;
- a doctest block in running text (``>>>`` lines outside an ``Examples:`` section) is fenced
  as ``pycon`` code instead of being read as nested quotes;
- a paragraph that introduces a reST literal block (``text::``) ends in ``:``; the indented
  block itself is already a Markdown code block.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

__all__ = ["ROLE", "RolesAsCrossrefs", "resolve", "rewrite_roles", "rst_to_markdown"]

ROLE = re.compile(r":[a-z]+(?::[a-z]+)*:`(?P<tilde>~?)(?P<body>[^`]+)`")
"""A reST role: ``:kind:`target```, ``:kind:`~target``` or ``:kind:`title <target>```."""

_EXPLICIT = re.compile(r"^(?P<title>.+?)\s*<(?P<target>[^<>]+)>$")


def resolve(obj: griffe.Object, target: str) -> str | None:
    """The full path of ``target`` as seen from ``obj``, or ``None`` if it is unknown.

    The first part of a dotted target is resolved in ``obj``'s scope and its parents'; the rest
    is appended (``LLM.generate`` → ``recgym.llm.base.LLM.generate``). A dotted target that does
    not resolve is taken as a full path (``recgym.metrics.ndcg_at_k``); a bare name that does
    not resolve gets no link (it could otherwise match a heading of any page).
    """
    head, dot, rest = target.partition(".")
    try:
        return obj.resolve(head) + dot + rest
    except (griffe.NameResolutionError, KeyError, AttributeError):
        return target if dot else None


def rewrite_roles(text: str, obj: griffe.Object) -> str:
    """``text`` with each role replaced by an optional autorefs link around a code span."""

    def link(match: re.Match[str]) -> str:
        body = match["body"].strip()
        explicit = _EXPLICIT.match(body)
        if explicit:
            title, target = explicit["title"], explicit["target"]
        else:
            target = body
            title = target.rsplit(".", 1)[-1] if match["tilde"] else target
        code = f"<code>{html.escape(title)}</code>"
        path = resolve(obj, target.rstrip("()"))
        if path is None:
            return code
        return f'<autoref identifier="{html.escape(path, quote=True)}" optional>{code}</autoref>'

    return ROLE.sub(link, text)


_EXAMPLE_HEADER = re.compile(r"^(\s*)Example:\s*$")
_SECTION_HEADER = re.compile(r"^\s*[A-Z][A-Za-z ]*:\s*$")
_DOCTEST = re.compile(r"^(\s*)>>>")
_LITERAL_INTRO = re.compile(r"(\S)::$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def rst_to_markdown(text: str, obj: griffe.Object) -> str:
    """``text`` with its roles, ``Example:`` sections, doctests and literal blocks made Markdown.

    See the module docstring for each rule.
    """
    lines = rewrite_roles(text, obj).split("\n")
    out: list[str] = []
    section_indent: int | None = None  # indentation of the Examples section being read
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() and section_indent is not None and _indent(line) <= section_indent:
            section_indent = None
        header = _EXAMPLE_HEADER.match(line)
        if header:
            line = f"{header[1]}Examples:"
        if _SECTION_HEADER.match(line):
            is_examples = line.strip() == "Examples:"
            section_indent = _indent(line) if is_examples else None
        doctest = _DOCTEST.match(line)
        if doctest and section_indent is None:
            # A doctest in running text: fence it up to the next blank line.
            pad = doctest[1]
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i])
                i += 1
            if out and out[-1].strip():
                out.append("")
            out += [f"{pad}```pycon", *block, f"{pad}```"]
            continue
        following = next((ln for ln in lines[i + 1 :] if ln.strip()), "")
        if _LITERAL_INTRO.search(line) and _indent(following) > _indent(line):
            line = _LITERAL_INTRO.sub(r"\1:", line)
        out.append(line)
        i += 1
    return "\n".join(out)


class RolesAsCrossrefs(griffe.Extension):
    """Rewrite every docstring as Markdown (:func:`rst_to_markdown`) once the tree is complete."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Griffe event: runs for every object of a fully loaded package but the package."""
        _rewrite(obj)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Griffe event: the package itself (``on_object`` skips it)."""
        _rewrite(pkg)


def _rewrite(obj: griffe.Object) -> None:
    if obj.docstring is not None:
        obj.docstring.value = rst_to_markdown(obj.docstring.value, obj)
