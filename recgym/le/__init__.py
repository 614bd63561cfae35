"""LLM as environment (LE): simulated users made of an LLM's state and reward models.

:func:`load_user_model` resolves a name to a :class:`UserModel`: ``"fake"`` (the numpy test
double) or a trained LE, by registered name or by folder (see :mod:`recgym.le.hub`; a
registered LE that is not cached yet is trained on first use). Importing this package imports
neither torch nor transformers.
"""

from __future__ import annotations

from typing import Any

from recgym.le.base import UserModel
from recgym.le.fake import FakeUserModel

__all__ = ["FakeUserModel", "UserModel", "load_user_model"]


def load_user_model(name: str = "ml-100k-smollm2", **kw: Any) -> UserModel:
    """The user model called ``name``.

    Args:
        name: ``"fake"`` (:class:`FakeUserModel`, ``kw`` are its arguments), a registered LE
            name (:data:`recgym.le.hub.CONFIGS`), or a folder written by
            :meth:`recgym.le.model.LLMEnvironment.save`.
        **kw: for a real LE, ``device`` and ``progress``.
    """
    if name == "fake":
        return FakeUserModel(**kw)
    from recgym.le.hub import load

    return load(name, **kw)
