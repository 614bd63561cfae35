"""The spaces recgym's envs share: text limits and charset, padded id histories, and the
checks that turn a batch of score actions into a matrix (or say what was wrong with it)."""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

__all__ = [
    "MAX_ACTION_CHARS",
    "MAX_PROMPT_CHARS",
    "TEXT_CHARSET",
    "describe",
    "history_space",
    "padded_history",
    "prompt_space",
    "score_matrix",
    "text_action_space",
    "to_charset",
    "valid_unicode",
]

# Text spaces: every character of the Basic Multilingual Plane but the surrogates. Prompts are
# mapped into it (rarer characters become U+FFFD); actions may hold any character at all.
TEXT_CHARSET = frozenset(chr(c) for c in range(0x10000) if not 0xD800 <= c < 0xE000)
MAX_PROMPT_CHARS = 32_768
"""Longest observation (characters)."""
MAX_ACTION_CHARS = 16_384
"""Longest action the action space samples; longer strings are still accepted by ``step``."""


def to_charset(text: str) -> str:
    """``text`` with characters outside :data:`TEXT_CHARSET` replaced by U+FFFD."""
    return (
        text
        if text.isascii()
        else "".join(
            c if c <= "\uffff" and not "\ud800" <= c <= "\udfff" else "\ufffd" for c in text
        )
    )


def valid_unicode(text: str) -> str:
    """``text`` as a string that encodes to UTF-8: a surrogate pair becomes the character it
    stands for (as a JSON decoder reads it) and a lone surrogate becomes U+FFFD. A text that
    already encodes is returned as it is."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Only surrogates fail to encode; UTF-16 joins the pairs and replaces the lone ones.
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def prompt_space() -> spaces.Text:
    """The space of a prompt observation (:data:`MAX_PROMPT_CHARS`, :data:`TEXT_CHARSET`)."""
    return spaces.Text(MAX_PROMPT_CHARS, min_length=0, charset=TEXT_CHARSET)


def text_action_space() -> spaces.Text:
    """The space of a text action (samples up to :data:`MAX_ACTION_CHARS` characters)."""
    return spaces.Text(MAX_ACTION_CHARS, min_length=0, charset=TEXT_CHARSET)


def history_space(n_items: int, length: int) -> spaces.Box:
    """The space of :func:`padded_history` arrays: item indices, -1 for padding."""
    return spaces.Box(-1, n_items - 1, (length,), np.int64)


def padded_history(history: Sequence[int] | np.ndarray, length: int) -> np.ndarray:
    """The last ``length`` item indices of ``history`` (oldest first), left-padded with -1."""
    if length < 1:
        raise ValueError(f"a history array holds at least one item; got length {length}")
    padded = np.full(length, -1, dtype=np.int64)
    recent = np.asarray(history, dtype=np.int64)[-length:]
    padded[length - len(recent) :] = recent
    return padded


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60


def describe(value: Any) -> str:
    """A short description of ``value`` for an error message: its type and a cut ``repr``
    (an array: its shape and dtype), never the whole of a megabyte action."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    shape = ""
    if isinstance(value, (list, tuple)):
        try:
            shape = f" of shape {np.shape(value)}"
        except (TypeError, ValueError):  # a ragged list
            shape = " (ragged)"
    return f"{type(value).__name__}{shape} {_SHORT.repr(value)}"


def _score_row(action: Any, n: int, expected: str, where: str) -> np.ndarray:
    """One action as an ``(n,)`` float64 vector, or the error that says what came."""
    if action is None or isinstance(action, (str, bytes, Mapping)):
        raise TypeError(f"{where}must be {expected}; got {describe(action)}")
    try:
        arr = np.asarray(action)
        if arr.dtype.kind == "O":  # a list mixing numbers (None is NaN, as numpy reads it)
            arr = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):  # ragged lists, objects that are no number
        raise TypeError(f"{where}must be {expected}; got {describe(action)}") from None
    if arr.dtype.kind not in "biuf":  # strings, complex numbers, dates...
        raise TypeError(f"{where}must be {expected}; got {describe(action)}")
    if arr.shape != (n,):
        raise ValueError(f"{where}must be {expected}; got {describe(action)}")
    return arr.astype(np.float64, copy=False)


def score_matrix(
    actions: Any, n: int, what: str, unwrap: Callable[[Any], Any] | None = None
) -> np.ndarray:
    """A batch of score actions (one float per ``what``) as a ``(B, n)`` float64 matrix.

    ``actions`` is a ``(B, n)`` array, one ``(n,)`` array, or a sequence of ``(n,)`` score
    vectors (``OneStepEnv.step`` passes a batch of one, so its errors name no position).
    Numbers of any real dtype are accepted as they are: NaN and infinities are left to the
    env's ranking rules. ``unwrap`` maps each action to its scores first (a dict action).

    Raises:
        TypeError: the batch is not a sequence or array, or an action is not numbers (None,
            a str, a dict, complex numbers...).
        ValueError: an action does not hold ``n`` scores, or there are no actions.
    """
    expected = f"{n} float scores, one per {what} (Box({n}))"
    if isinstance(actions, np.ndarray) and actions.ndim >= 2:
        if actions.ndim != 2 or actions.shape[1] != n:
            raise ValueError(f"actions must be a (batch, {n}) array; got shape {actions.shape}")
        rows: list[Any] = list(actions)
    elif isinstance(actions, np.ndarray):  # one action (or a scalar, refused below)
        rows = [actions]
    elif (
        actions is None
        or isinstance(actions, (str, bytes, Mapping))
        or not hasattr(actions, "__iter__")
    ):
        raise TypeError(
            f"score() takes a batch: a (batch, {n}) array or a list of actions of {expected}; "
            f"got {describe(actions)}"
        )
    else:
        rows = list(actions)
    if not rows:
        raise ValueError("no actions to score")
    one = len(rows) == 1
    vectors = []
    for i, action in enumerate(rows):
        where = "an action " if one else f"actions[{i}] "
        vectors.append(_score_row(action if unwrap is None else unwrap(action), n, expected, where))
    return np.stack(vectors)
