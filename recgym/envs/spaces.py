"""The spaces recgym's envs share: text limits and charset, padded id histories."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from gymnasium import spaces

__all__ = [
    "MAX_ACTION_CHARS",
    "MAX_PROMPT_CHARS",
    "TEXT_CHARSET",
    "history_space",
    "padded_history",
    "prompt_space",
    "text_action_space",
    "to_charset",
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
