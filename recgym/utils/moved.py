"""Old import paths of moved modules, kept working for one release with a deprecation warning.

A package that moved modules calls :func:`alias_modules` with a table ``{old: new}``; importing
an old path then imports the new module, warns once, and binds the *same* module object under
the old name (so ``mock.patch("old.path.name")`` patches the code that runs). The tables are
also the record of the moves: ``docs/layout.md`` lists them.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

__all__ = ["alias_modules", "moved_modules", "moved_names"]

_MOVES: dict[str, str] = {}


class _AliasLoader(importlib.abc.Loader):
    """Loads an old module path as the module it moved to."""

    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new
        self._spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(
            f"{self.old} moved to {self.new}; import it from there (the old path goes away in "
            "the next release)",
            DeprecationWarning,
            stacklevel=_stacklevel(),
        )
        module = importlib.import_module(self.new)
        self._spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the new module is already executed. The import system has just set
        its ``__spec__`` to the old path's; give it back its own."""
        module.__spec__ = self._spec

    def get_code(self, fullname: str) -> Any:
        """The new module's code, so ``python -m old.path`` runs the moved script."""
        warnings.warn(
            f"{self.old} moved to {self.new}; run python -m {self.new}",
            DeprecationWarning,
            stacklevel=2,
        )
        spec = importlib.util.find_spec(self.new)
        loader = spec.loader if spec is not None else None
        get_code = getattr(loader, "get_code", None)
        if get_code is None:
            raise ImportError(f"{self.new} has no code to run", name=fullname)
        return get_code(self.new)


class _AliasFinder(importlib.abc.MetaPathFinder):
    """Finds the old paths of :data:`_MOVES`."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        new = _MOVES.get(fullname)
        if new is None:
            return None
        # The new module's file as the origin: ``python -m old.path`` sets ``sys.argv[0]`` from
        # it (argparse reads its program name there). No ``has_location``: ``__file__`` stays.
        found = importlib.util.find_spec(new)
        origin = found.origin if found is not None else None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(fullname, new), origin=origin)


def _stacklevel() -> int:
    """The stack level of the first frame outside importlib (the ``import`` statement)."""
    frame: Any = sys._getframe(1)
    level = 1
    while frame is not None and (
        frame.f_code.co_filename.startswith("<frozen importlib")
        or frame.f_code.co_filename == __file__
    ):
        frame = frame.f_back
        level += 1
    return level


def alias_modules(moves: Mapping[str, str]) -> None:
    """Make each old module path of ``moves`` import its new module (idempotent).

    Args:
        moves: old dotted module path → new dotted module path.
    """
    _MOVES.update(moves)
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        # First: an old path may share its parent package with a real module of that name.
        sys.meta_path.insert(0, _AliasFinder())


def moved_modules() -> dict[str, str]:
    """Every registered move, old path → new path."""
    return dict(_MOVES)


def moved_names(module: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for names that left ``module`` (which stays).

    Args:
        module: the old module's dotted path (its ``__name__``).
        names: each moved name → the dotted path of the module that now defines it.

    Returns:
        ``__getattr__(name)``: the object from its new module, with a ``DeprecationWarning``;
        an ``AttributeError`` for any other name.
    """

    def module_getattr(name: str) -> Any:
        new = names.get(name)
        if new is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warnings.warn(
            f"{module}.{name} moved to {new}.{name}; import it from there (the old path goes "
            "away in the next release)",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(new), name)

    return module_getattr
