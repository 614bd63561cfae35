"""Griffe extension: the reST roles of recgym's docstrings as cross-references in the API pages.

recgym's docstrings are Google style with reST roles (``:class:`~recgym.llm.LLM```,
``:func:`load```). mkdocstrings renders docstrings as Markdown, where a role would show as
``:class:`` followed by a code span. ``mkdocs.yml`` lists this file under the Python handler's
``extensions``; once a package is loaded, :class:`RolesAsCrossrefs` rewrites every role of every
docstring into an optional autorefs link (``<autoref identifier="..." optional>``): a link where
the target has an API page, plain code where it has none (no warning either way, so
``mkdocs build --strict`` does not depend on which names have pages).

The target is resolved in the docstring owner's scope (``reset`` in a class docstring is that
class's method; ``LLM`` in a module that imports it is where it was imported from), and a
leading ``~`` shows only the last part of the path, as in Sphinx.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

__all__ = ["ROLE", "RolesAsCrossrefs", "resolve", "rewrite_roles"]

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


class RolesAsCrossrefs(griffe.Extension):
    """Rewrite the reST roles of every docstring once the object tree is complete."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Griffe event: runs for every object of a fully loaded package but the package."""
        _rewrite(obj)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Griffe event: the package itself (``on_object`` skips it)."""
        _rewrite(pkg)


def _rewrite(obj: griffe.Object) -> None:
    if obj.docstring is not None and ":" in obj.docstring.value:
        obj.docstring.value = rewrite_roles(obj.docstring.value, obj)
