"""Reward specs of the text envs: the answer-format gate and the NDCG-based rewards.

An LLM policy's completion is parsed by :func:`parse_completion` (the rules are listed there);
the query it yields is retrieved and the target's NDCG@K turned into a reward by one of the
:data:`REWARDS`:

- ``"rec-r1"`` (Rec-R1's reward, the default): −2 when the format is broken, otherwise
  0.1 + NDCG@K when NDCG@K > 0, else 0. Range {−2, 0} ∪ (0.1, 1.1].
- ``"ndcg"``: NDCG@K, and 0 when the format is broken. Range [0, 1].

Both are computed for a whole batch at once (numpy arrays in, arrays out).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from recgym.error import UnknownNameError

__all__ = [
    "MAX_COMPLETION_CHARS",
    "REWARDS",
    "ParsedAnswer",
    "RewardSpec",
    "format_answer",
    "get_reward",
    "parse_completion",
]

MAX_COMPLETION_CHARS = 65_536
"""Characters of a completion that are parsed; the rest is ignored (no LLM with a 512-token
budget writes more, and it bounds the time a 1 MB action can take)."""

_TAG = re.compile(r"</?(?:think|answer)>")
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


@dataclass(frozen=True)
class ParsedAnswer:
    """What :func:`parse_completion` made of one completion.

    Attributes:
        query: the search query, or ``None`` when the format is broken.
        error: ``""`` when the format is valid, else a short reason (``"no_answer"``,
            ``"tags"``, ``"json"``, ``"no_query"``, ``"query_not_string"``).
    """

    query: str | None
    error: str = ""

    @property
    def ok(self) -> bool:
        """Whether the completion passed the format gate."""
        return self.query is not None


def parse_completion(completion: str | bytes) -> ParsedAnswer:
    """Extract the JSON query from a completion, or say why the format is broken.

    Rules (the format gate of Rec-R1, without its pre-filled ``<think>`` penalty):

    1. Bytes are decoded as UTF-8 (invalid bytes become U+FFFD); only the first
       :data:`MAX_COMPLETION_CHARS` characters are read.
    2. ``<answer>`` and ``</answer>`` appear exactly once each, in that order.
    3. A reasoning block is optional; when the completion has ``<think>`` or ``</think>``, each
       appears exactly once, ``<think>`` first, and ``</think>`` comes before ``<answer>``.
       Text outside the tags is allowed.
    4. The answer, stripped of whitespace and of an optional Markdown code fence, is a JSON
       object with a ``"query"`` key whose value is a string (empty allowed: it retrieves
       nothing).

    Args:
        completion: the model's text after the prompt (not including it).

    Returns:
        The parsed query, or ``query=None`` with the reason.
    """
    if isinstance(completion, bytes):
        completion = completion.decode("utf-8", errors="replace")
    if not isinstance(completion, str):
        raise TypeError(
            f"a completion must be a str (or UTF-8 bytes); got {type(completion).__name__}"
        )
    text = completion[:MAX_COMPLETION_CHARS]
    tags = [(m.group(), m.start(), m.end()) for m in _TAG.finditer(text)]
    names = [t[0] for t in tags]
    if names.count("<answer>") != 1 or names.count("</answer>") != 1:
        return ParsedAnswer(None, "no_answer")
    think = [t for t in tags if "think" in t[0]]
    answer = [t for t in tags if "answer" in t[0]]
    if answer[0][0] != "<answer>":
        return ParsedAnswer(None, "tags")
    if think and ([t[0] for t in think] != ["<think>", "</think>"] or think[1][1] > answer[0][1]):
        return ParsedAnswer(None, "tags")
    body = text[answer[0][2] : answer[1][1]].strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return ParsedAnswer(None, "json")
    if not isinstance(data, dict) or "query" not in data:
        return ParsedAnswer(None, "no_query")
    if not isinstance(data["query"], str):
        return ParsedAnswer(None, "query_not_string")
    return ParsedAnswer(data["query"])


def format_answer(query: str, reasoning: str | None = None) -> str:
    """A well-formed completion for ``query`` (what non-LLM baselines emit)."""
    answer = f"<answer>{json.dumps({'query': query}, ensure_ascii=False)}</answer>"
    return answer if reasoning is None else f"<think>{reasoning}</think>\n{answer}"


RewardFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class RewardSpec:
    """A reward: a function of (NDCG@K, format-ok mask), and its documented range.

    Attributes:
        name: registry name.
        fn: maps ``(ndcg (B,), ok (B,) bool)`` to rewards ``(B,)``.
        low: the smallest possible reward.
        high: the largest possible reward.
        description: one line for the env docs.
    """

    name: str
    fn: RewardFn
    low: float
    high: float
    description: str

    def __call__(self, ndcg: np.ndarray, ok: np.ndarray) -> np.ndarray:
        return np.asarray(self.fn(np.asarray(ndcg, np.float64), np.asarray(ok, bool)), np.float64)


FORMAT_PENALTY = -2.0
"""Rec-R1's reward for a completion that fails the format gate."""


def _rec_r1(ndcg: np.ndarray, ok: np.ndarray) -> np.ndarray:
    return np.where(ok, np.where(ndcg > 0, 0.1 + ndcg, 0.0), FORMAT_PENALTY)


def _ndcg(ndcg: np.ndarray, ok: np.ndarray) -> np.ndarray:
    return np.where(ok, ndcg, 0.0)


REWARDS: dict[str, RewardSpec] = {
    "rec-r1": RewardSpec(
        "rec-r1",
        _rec_r1,
        FORMAT_PENALTY,
        1.1,
        "-2 if the format is broken, else 0.1 + NDCG@K if NDCG@K > 0, else 0 (Rec-R1)",
    ),
    "ndcg": RewardSpec("ndcg", _ndcg, 0.0, 1.0, "NDCG@K; 0 if the format is broken"),
}
"""Reward specs by name."""


def get_reward(name: str) -> RewardSpec:
    """The reward spec registered as ``name``."""
    try:
        return REWARDS[name]
    except KeyError:
        raise UnknownNameError(
            f"no reward named {name!r}; choose from {', '.join(sorted(REWARDS))}"
        ) from None
