"""The base of the Rec-R1 text envs: one prompt, one completion, a BM25 retrieval, one reward.

:class:`RetrievalTextEnv` adds to :class:`~recgym.envs.one_step.OneStepEnv` the batched scorer
(parse, retrieve, NDCG, reward) and ``render``; a subclass only builds its :class:`TextTask`
(prompts, targets, a retriever) in :meth:`_build_task`.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from recgym.envs.one_step import OneStepEnv, episode_index, score_rows
from recgym.envs.spaces import describe, prompt_space, text_action_space
from recgym.metrics import metrics_at_k, ndcg_at_k
from recgym.retrieval import BM25Retriever
from recgym.rewards import RewardSpec, get_reward, parse_completion
from recgym.utils.moved import moved_names

__all__ = [
    "EVAL_METRICS",
    "SYSTEM_PROMPT",
    "RetrievalTextEnv",
    "ScoreBatch",
    "SplitEpisodes",
    "TextTask",
    "fenced_block",
]

# Moved out of this module (they serve every one-step env, not only the BM25 text envs).
__getattr__ = moved_names(
    __name__,
    {
        **dict.fromkeys(["SPLITS", "reset_episode", "split_name"], "recgym.envs.one_step"),
        **dict.fromkeys(
            ["MAX_ACTION_CHARS", "MAX_PROMPT_CHARS", "TEXT_CHARSET", "to_charset"],
            "recgym.envs.spaces",
        ),
    },
)

SYSTEM_PROMPT = (
    "You are a helpful AI assistant. You first think about the reasoning process in the mind "
    "and then provide the user with the answer."
)
"""Rec-R1's system prompt; LLM policies send it before the env's observation."""

EVAL_METRICS: tuple[tuple[str, int], ...] = (
    ("ndcg", 10),
    ("ndcg", 100),
    ("recall", 10),
    ("recall", 50),
    ("recall", 100),
)
"""The metrics in ``info["metrics"]``: Rec-R1's evaluation cut-offs (NDCG@10/100, R@10/50/100)."""


def fenced_block(prompt: str) -> str:
    """The text between the first pair of triple backticks of a prompt (the user's request or
    history in every text env's observation), without surrounding newlines."""
    parts = prompt.split("```")
    if len(parts) < 3:
        raise ValueError("the prompt has no ``` fenced block")
    return parts[1].strip("\n")


class SplitEpisodes(ABC):
    """The episodes of one split: a subclass says what episode ``i`` shows and rewards."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of episodes."""

    @abstractmethod
    def prompt(self, i: int) -> str:
        """The observation of episode ``i``."""

    @abstractmethod
    def targets(self, i: int) -> np.ndarray:
        """The relevant item indices of episode ``i``."""

    def exclude(self, i: int) -> np.ndarray:
        """Item indices never retrieved for episode ``i`` (e.g. the user's history)."""
        return np.empty(0, dtype=np.int64)

    def describe(self, i: int) -> dict[str, Any]:
        """A short description of episode ``i`` for ``info``."""
        return {}


@dataclass
class TextTask:
    """What a text env is built from.

    Attributes:
        retriever: BM25 over the catalog's documents.
        documents: the indexed text of each item index.
        item_titles: a short text per item index, for rendering.
        splits: the episodes of ``"train"``, ``"validation"`` and ``"test"``.
        data_version: a digest of the data the task was built from (for leaderboard rows).
    """

    retriever: BM25Retriever
    documents: Sequence[str]
    item_titles: Sequence[str]
    splits: dict[str, SplitEpisodes]
    data_version: str = ""


@dataclass
class ScoreBatch:
    """Scores of a batch of completions.

    Attributes:
        rewards: ``(B,)`` rewards.
        ndcg: ``(B,)`` NDCG@K at the env's reward cut-off K.
        format_ok: ``(B,)`` whether each completion passed the format gate.
        errors: per completion, ``""`` or why the format is broken.
        queries: the parsed queries (``None`` where the format is broken).
        metrics: ``"ndcg@10"``-style keys to ``(B,)`` arrays (0 where the format is broken).
        retrieved: ``(B, depth)`` retrieved item indices, ``-1``-padded.
    """

    rewards: np.ndarray
    ndcg: np.ndarray
    format_ok: np.ndarray
    errors: list[str]
    queries: list[str | None]
    metrics: dict[str, np.ndarray]
    retrieved: np.ndarray


class RetrievalTextEnv(OneStepEnv[str, str]):
    """Base class of the one-step text envs scored by BM25 retrieval (see the subclasses).

    Subclasses set :attr:`default_k` and implement :meth:`_build_task` (with
    :meth:`_make_task`) and :meth:`_task_key` (extending this class's key).
    """

    default_k: ClassVar[int] = 100
    top_in_info: ClassVar[int] = 10

    def __init__(
        self,
        *,
        split: str = "train",
        k: int | None = None,
        reward: str = "rec-r1",
        max_query_tokens: int = 1024,
        backend: str = "bm25s",
        render_mode: str | None = None,
    ) -> None:
        super().__init__(split=split, render_mode=render_mode)
        self.k = int(k if k is not None else self.default_k)
        if self.k < 1:
            raise ValueError(f"k must be >= 1; got {k}")
        self.reward_spec: RewardSpec = get_reward(reward)
        self.reward = self.reward_spec.name
        self.max_query_tokens = int(max_query_tokens)
        self.backend = backend
        self.observation_space = prompt_space()
        self.action_space = text_action_space()

    # ----- the task -------------------------------------------------------------------------

    def _task_key(self) -> tuple[Any, ...]:
        """The retriever's settings; subclasses add their data arguments."""
        return (self.max_query_tokens, self.backend)

    def _build_task(self) -> TextTask:
        """Load the data and build prompts, targets and the retriever."""
        raise NotImplementedError

    def _make_task(
        self,
        documents: Sequence[str],
        item_ids: Iterable[Any],
        item_titles: Sequence[str],
        splits: dict[str, SplitEpisodes],
    ) -> TextTask:
        """A task with BM25 (pyserini's k1=1.2, b=0.75, this env's backend and query cap) over
        ``documents``, and a data version digested from them and from every split's episodes
        (prompt, targets and excluded items, in order): a change of split or targets with the
        same documents still makes the rows it did not score stale."""
        retriever = BM25Retriever(
            documents, list(item_ids), backend=self.backend, max_query_tokens=self.max_query_tokens
        )
        digest = hashlib.sha256("\x00".join(documents).encode())
        for name in sorted(splits):
            episodes = splits[name]
            digest.update(f"\x01{name}:{len(episodes)}".encode())
            for i in range(len(episodes)):
                digest.update(episodes.prompt(i).encode() + b"\x00")
                digest.update(np.asarray(episodes.targets(i), dtype=np.int64).tobytes() + b"\x00")
                digest.update(np.asarray(episodes.exclude(i), dtype=np.int64).tobytes() + b"\x02")
        data_version = digest.hexdigest()[:16]
        return TextTask(retriever, documents, item_titles, splits, data_version=data_version)

    def observation(self, index: int, split: str | None = None) -> str:
        """The prompt of episode ``index`` of ``split`` (default: the env's split)."""
        episodes = self._split(split)
        return episodes.prompt(episode_index(index, len(episodes)))

    def _info(self, split: str, index: int) -> dict[str, Any]:
        return {"split": split, "index": index, **self._split(split).describe(index)}

    # ----- scoring --------------------------------------------------------------------------

    def score(
        self,
        completions: Sequence[str | bytes],
        indices: Sequence[int] | int | None = None,
        split: str | None = None,
    ) -> ScoreBatch:
        """Score many completions with one retrieval call.

        Args:
            completions: the LLM completions (actions).
            indices: the episode of each completion, or one index for all of them (a GRPO
                group); default: the current episode.
            split: the split of ``indices`` (default: the current episode's split, or the
                env's split).

        Returns:
            Rewards, NDCG@K, format flags, parsed queries, metrics and retrieved items.

        Raises:
            TypeError: ``completions`` is not a batch, or a completion is not a str or bytes.
        """
        if isinstance(completions, (str, bytes, Mapping)) or not hasattr(completions, "__len__"):
            raise TypeError(
                "score() takes a batch: wrap a single completion as [completion]; got "
                f"{describe(completions)}"
            )
        n = len(completions)
        split, rows = score_rows(indices, split, n, self._episode, self.num_episodes, "completions")
        episodes = self._split(split)
        parsed = [parse_completion(c) for c in completions]
        ok = np.array([p.ok for p in parsed], dtype=bool)
        depth = max(self.k, *(k for _, k in EVAL_METRICS))
        retrieved = np.full((n, depth), -1, dtype=np.int64)
        targets = [episodes.targets(i) for i in rows]
        valid = np.flatnonzero(ok)
        if len(valid):
            excluded = [_without(episodes.exclude(rows[j]), targets[j]) for j in valid]
            queries = [parsed[j].query or "" for j in valid]
            ids, _ = self.task.retriever.retrieve(queries, depth, exclude=excluded)
            retrieved[valid] = ids
        ndcg = ndcg_at_k(retrieved, targets, self.k) if n else np.zeros(0)
        metrics: dict[str, np.ndarray] = {}
        for name, cut in EVAL_METRICS:
            metrics.update(metrics_at_k(retrieved, targets, (cut,), (name,)) if n else {})
        return ScoreBatch(
            rewards=self.reward_spec(ndcg, ok),
            ndcg=np.where(ok, ndcg, 0.0),
            format_ok=ok,
            errors=[p.error for p in parsed],
            queries=[p.query for p in parsed],
            metrics=metrics,
            retrieved=retrieved,
        )

    # ----- the Gymnasium API ----------------------------------------------------------------

    def _step_info(self, result: ScoreBatch, action: str | bytes) -> dict[str, Any]:
        top = result.retrieved[0, : self.top_in_info]
        return {
            "query": result.queries[0],
            "format_error": result.errors[0],
            "rewards": {
                "format": 0.0 if result.format_ok[0] else self.reward_spec.low,
                "ndcg": float(result.ndcg[0]),
            },
            "retrieved": self.task.retriever.to_item_ids(top[top >= 0]).tolist(),
        }

    def _render_state(
        self, result: ScoreBatch, action: str | bytes, split: str, index: int
    ) -> dict[str, Any]:
        return {
            "completion": action if isinstance(action, str) else action.decode("utf-8", "replace"),
            "ranked": result.retrieved[0, : self.top_in_info],
            "targets": self._split(split).targets(index),
        }

    def render(self) -> str | None:
        """``"ansi"``: the prompt, the completion, the reward and the top retrieved titles."""
        if self.render_mode != "ansi" or self._episode is None:
            return None
        split, index = self._episode
        lines = [
            f"[{type(self).__name__} {split} #{index}]",
            "PROMPT:",
            self._split(split).prompt(index),
        ]
        if self._last is None:
            return "\n".join(lines) + "\n"
        last, titles = self._last, self.task.item_titles
        error = last["format_error"]
        targets = set(last["targets"].tolist())
        lines += [
            "COMPLETION:",
            last["completion"][:2000],
            f"QUERY: {last['query']!r}" + (f" (format error: {error})" if error else ""),
            f"REWARD: {last['reward']:.4f}  NDCG@{self.k}: {last['rewards']['ndcg']:.4f}",
            "TOP RETRIEVED:",
        ]
        ranked = last["ranked"][:5]
        for rank, item in enumerate(ranked[ranked >= 0], 1):  # -1 pads a short list
            mark = "*" if int(item) in targets else " "
            lines.append(f" {mark}{rank:>2}. {titles[int(item)]}")
        if not (ranked >= 0).any():
            lines.append("   (nothing)")
        lines.append("TARGET: " + "; ".join(titles[t] for t in sorted(targets)))
        return "\n".join(lines) + "\n"


def _without(items: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``items`` minus ``keep`` (a target is never excluded from retrieval)."""
    return items[~np.isin(items, keep)] if len(items) else items
