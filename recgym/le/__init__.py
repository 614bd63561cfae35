"""LLM as environment (LE): simulated users made of an LLM's state and reward models.

:func:`load_user_model` resolves a name to a :class:`UserModel`: ``"fake"`` (the numpy test
double) or a trained LE, by registered name or by folder (see :mod:`recgym.le.hub`: the
default, :data:`DEFAULT_LE`, ships trained; another registered LE is trained first by the
explicit command ``python -m recgym.le.hub NAME``). Importing this package imports neither
torch nor transformers.
"""

from __future__ import annotations

from typing import Any

from recgym.le.base import DEFAULT_LE, UserModel
from recgym.le.fake import FakeUserModel

__all__ = ["DEFAULT_LE", "FakeUserModel", "UserModel", "load_user_model"]


def load_user_model(name: str = DEFAULT_LE, **kw: Any) -> UserModel:
    """The user model called ``name``.

    Args:
        name: ``"fake"`` (:class:`FakeUserModel`, ``kw`` are its arguments), a registered LE
            name (:data:`recgym.le.hub.CONFIGS`), or a folder written by
            :meth:`recgym.le.model.LLMEnvironment.save`.
        **kw: for a real LE, ``device`` and ``progress`` (and ``train``, see
            :func:`recgym.le.hub.load`).
    """
    if name == "fake":
        return FakeUserModel(**kw)
    from recgym.le.hub import load

    return load(name, **kw)
