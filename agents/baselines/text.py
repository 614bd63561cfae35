"""Baseline agents of the Rec-R1 text envs: no learning, no LLM.

- :class:`RawQueryAgent` (``RecSearch-v0``): the shopper's request, as written, is the query.
- :class:`HistoryAgent` (``RecSeq-v0``): the user's history titles, concatenated, are the query.
- :class:`RandomWordsAgent` (any text env): words drawn uniformly from the catalog's documents.
- :class:`FixedTextAgent` (``RecPref-v0``): the same text for every user; the empty default is
  the "no text" row, the plain recommender.

The first three read the observation only (the text between its triple backticks) and answers in the
envs' format, ``<answer>{"query": "..."}</answer>``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from recgym.envs.text import fenced_block
from recgym.rewards import format_answer

__all__ = ["FixedTextAgent", "HistoryAgent", "RandomWordsAgent", "RawQueryAgent"]

_NUMBERED = re.compile(r"^\s*\d+\.\s*")
_WORD = re.compile(r"[^\W_]+")


class RawQueryAgent:
    """The user's request (the observation's fenced block) sent to the retriever unchanged."""

    def act(self, observation: str) -> str:
        """A well-formed answer whose query is the request."""
        return format_answer(fenced_block(observation))

    def config(self) -> dict[str, Any]:
        """This agent has no settings."""
        return {}


class HistoryAgent:
    """The user's history (the fenced block's lines, without their numbers), concatenated."""

    def __init__(self, last: int | None = None) -> None:
        """Args: last: use only the ``last`` items shown (default: all of them)."""
        self.last = last

    def act(self, observation: str) -> str:
        """A well-formed answer whose query is the history titles joined."""
        lines = [_NUMBERED.sub("", line) for line in fenced_block(observation).splitlines()]
        lines = [line for line in lines if line.strip()]
        if self.last is not None:
            lines = lines[-self.last :]
        return format_answer(" ; ".join(lines))

    def config(self) -> dict[str, Any]:
        """The settings that define this agent."""
        return {"last": self.last}


class RandomWordsAgent:
    """``n_words`` words drawn uniformly (with replacement) from a vocabulary.

    Args:
        vocabulary: the words to draw from.
        n_words: words per query.
        seed: seed of the draws (re-seeded by :meth:`reset`).
    """

    def __init__(self, vocabulary: Sequence[str], n_words: int = 10, seed: int | None = None):
        if len(vocabulary) == 0 or n_words < 1:
            raise ValueError("RandomWordsAgent needs a non-empty vocabulary and n_words >= 1")
        self.vocabulary = np.asarray(sorted(set(vocabulary)), dtype=object)
        self.n_words = int(n_words)
        self.reset(seed)

    @classmethod
    def from_env(cls, env: gym.Env[Any, Any], n_words: int = 10, seed: int | None = None) -> Any:
        """Draw from the lower-cased words of the env's indexed documents."""
        documents = env.unwrapped.task.documents  # type: ignore[attr-defined]
        words = {w.lower() for doc in documents for w in _WORD.findall(doc)}
        return cls(sorted(words), n_words=n_words, seed=seed)

    def reset(self, seed: int | None = None) -> None:
        """Re-seed the draws."""
        self._rng = np.random.default_rng(seed)

    def act(self, observation: str) -> str:
        """A well-formed answer of random words (the observation is ignored)."""
        words = self._rng.choice(self.vocabulary, size=self.n_words)
        return format_answer(" ".join(words))

    def config(self) -> dict[str, Any]:
        """The settings that define this agent."""
        return {"n_words": self.n_words, "vocabulary_size": len(self.vocabulary)}


class FixedTextAgent:
    """The same ``text`` whatever the observation (default ``""``: no text at all)."""

    def __init__(self, text: str = "") -> None:
        self.text = str(text)

    def act(self, observation: Any) -> str:
        """The fixed text."""
        return self.text

    def config(self) -> dict[str, Any]:
        """The settings that define this agent."""
        return {"text": self.text}
