"""``RecSeq-v0``: sequential recommendation by describing the next item (Rec-R1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from recgym.envs.one_step import SPLITS, dataset_key, leave_one_out_examples
from recgym.envs.spaces import to_charset
from recgym.envs.text import RetrievalTextEnv, SplitEpisodes, TextTask

__all__ = ["ITEM_PROMPT", "SEQ_PROMPT", "RecSeqEnv", "history_prompt"]

SEQ_PROMPT = (
    "You are a movie recommendation assistant. A user watched these movies, oldest first, "
    "between triple backticks:\n\n```\n{history}\n```\n\n"
    "Describe the movie the user will watch next as a search query for a BM25 keyword search "
    "engine over the movie catalog (each movie is described by its title, year and genres). "
    "Show your reasoning inside <think> </think> tags, then give the final query as JSON inside "
    '<answer> </answer> tags, for example: <answer>{{"query": "..."}}</answer>'
)
"""The observation template on MovieLens-100k; ``{history}`` lists one movie per line."""

ITEM_PROMPT = (
    "You are a recommendation assistant. A user interacted with these items, oldest first, "
    "between triple backticks:\n\n```\n{history}\n```\n\n"
    "Describe the item the user will pick next as a search query for a BM25 keyword search "
    "engine over the catalog (each item is described by its text). "
    "Show your reasoning inside <think> </think> tags, then give the final query as JSON inside "
    '<answer> </answer> tags, for example: <answer>{{"query": "..."}}</answer>'
)
"""The observation template on any other dataset; ``{history}`` lists one item per line."""


class RecSeqEnv(RetrievalTextEnv):
    """Sequential recommendation by text, after Rec-R1's sequential task (arXiv 2503.24289).

    ## Description
    The prompt lists a user's last movies (title, year, genres) from MovieLens-100k; the policy
    (an LLM) describes the next movie as a search query; a frozen BM25 retriever ranks the
    catalog's movies (rendered as ``"Title (year) | genres"``), leaving out the movies the user
    has already watched; the reward is the NDCG@K of the held-out next movie. One step per
    episode.

    Episodes come from a leave-one-out split by time (users with ≥ 5 ratings): *train*
    episodes are every (user, position) pair of the training part of each sequence, with the
    events before it as history; *validation* is each user's second-to-last movie, *test* the
    last (history: everything before it).

    ## Observation Space
    ``Text``: the user turn of the prompt, with the history between triple backticks, one
    movie per line (``"3. Title (year) | genres"``).

    ## Action Space
    ``Text``: the LLM's completion; the same format rules as ``RecSearch-v0``
    (:func:`recgym.rewards.parse_completion`): any string or UTF-8 bytes (empty, megabytes long
    or with invalid code points) gets a reward; anything else raises ``TypeError``.

    ## Rewards
    ``reward="rec-r1"`` (default): −2 if the format is broken, else 0.1 + NDCG@K if NDCG@K > 0,
    else 0. ``reward="ndcg"``: NDCG@K, 0 if broken. Same ``info`` keys as ``RecSearch-v0``.

    ## Starting State
    ``reset(options={"split": s, "index": i})`` starts episode ``i`` of split ``s``; without an
    index, one is drawn from the env's seeded generator.

    ## Episode End
    Terminated after one step.

    ## Arguments
    - ``split``: ``"train"`` (default), ``"validation"`` or ``"test"``.
    - ``dataset``: a registered dataset with interactions and item texts: ``"ml-100k"``
      (default, embedded), ``"amazon-reviews-2023"``, or ``"generic"`` (your own interaction
      log and item table, CSV or parquet; see the datasets guide). Another dataset gets a
      prompt about *items* instead of movies.
    - ``dataset_kwargs``: the dataset loader's arguments (``{"interactions": "log.csv",
      "items": "items.csv"}``).
    - ``history_len``: items shown in the prompt (default 10, as in Rec-R1).
    - ``k``: the reward's NDCG cut-off (default 5000, Rec-R1's training depth for sequential
      recommendation: deeper than the catalog, so every matching movie counts).
    - ``reward``: ``"rec-r1"`` (default) or ``"ndcg"``.
    - ``max_query_tokens``, ``backend``, ``render_mode``: as in ``RecSearch-v0``.

    ## Version History
    - v0: initial version.
    - v0 (issue 28): ``score`` given something that is not a batch raises a ``TypeError`` that
      says so; the tie rule of the leave-one-out split (equal timestamps keep the file order)
      is now explicit in code, with the same episodes. No reward changed.
    - v0 (issue 26): ``dataset`` and ``dataset_kwargs`` (default MovieLens-100k: the same
      episodes, prompts and rewards as before).
    """

    default_k = 5000

    def __init__(
        self,
        *,
        split: str = "train",
        dataset: str = "ml-100k",
        dataset_kwargs: dict[str, Any] | None = None,
        history_len: int = 10,
        k: int | None = None,
        reward: str = "rec-r1",
        max_query_tokens: int = 1024,
        backend: str = "bm25s",
        render_mode: str | None = None,
    ) -> None:
        super().__init__(
            split=split,
            k=k,
            reward=reward,
            max_query_tokens=max_query_tokens,
            backend=backend,
            render_mode=render_mode,
        )
        if history_len < 1:
            raise ValueError(f"history_len must be >= 1; got {history_len}")
        from recgym.data import dataset_spec

        dataset_spec(dataset)  # an unknown name fails here, not at the first reset
        self.dataset = dataset
        self.dataset_kwargs = dict(dataset_kwargs or {})
        self.history_len = int(history_len)

    def _task_key(self) -> tuple[Any, ...]:
        data = dataset_key(self.dataset, self.dataset_kwargs)
        return (*super()._task_key(), self.history_len, *data)

    def _build_task(self) -> TextTask:
        data, examples = leave_one_out_examples(self.dataset, self.dataset_kwargs)
        texts = [to_charset(t) for t in data.items.texts()]
        template = SEQ_PROMPT if self.dataset == "ml-100k" else ITEM_PROMPT
        splits: dict[str, SplitEpisodes] = {
            name: _Histories(*examples[name], texts, self.history_len, template) for name in SPLITS
        }
        return self._make_task(texts, data.items.item_ids, texts, splits)


@dataclass
class _Histories(SplitEpisodes):
    """Next-item episodes: a user's history (item indices, oldest first) and the next item."""

    users: np.ndarray
    histories: list[np.ndarray]
    next_items: np.ndarray
    texts: list[str]
    shown: int
    template: str = SEQ_PROMPT

    def __len__(self) -> int:
        return len(self.next_items)

    def prompt(self, i: int) -> str:
        return history_prompt(self.histories[i][-self.shown :], self.texts, self.template)

    def targets(self, i: int) -> np.ndarray:
        return self.next_items[i : i + 1]

    def exclude(self, i: int) -> np.ndarray:
        return self.histories[i]

    def describe(self, i: int) -> dict[str, Any]:
        return {"user_id": str(self.users[i]), "history": self.histories[i].tolist()}


def history_prompt(history: np.ndarray, texts: list[str], template: str = SEQ_PROMPT) -> str:
    """The observation for a history of item indices (all shown, oldest first)."""
    lines = "\n".join(f"{n}. {texts[i]}" for n, i in enumerate(history, 1))
    return template.format(history=lines)
