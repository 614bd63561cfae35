"""``RecRank-v0``: rank a sequential retriever's top candidates, after LlamaRec (arXiv 2311.02089).

A sequential recommender (the *retriever*, by default LRURec from :mod:`recgym.models.seqrec`)
proposes 20 candidates for a user's next movie; the agent scores them; the reward is the NDCG
of the target in the induced order. The observation carries LlamaRec's prompt (history titles
numbered, candidates lettered A–T) for LLM rankers and the same facts as ids for numeric ones.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from gymnasium import spaces

from recgym.envs.one_step import (
    SPLITS,
    OneStepEnv,
    episode_index,
    leave_one_out_examples,
    score_rows,
)
from recgym.envs.spaces import (
    history_space,
    padded_history,
    prompt_space,
    score_matrix,
    to_charset,
)
from recgym.error import RecGymError, UnknownNameError
from recgym.metrics import metrics_at_rank, target_ranks

__all__ = [
    "LETTERS",
    "RANK_PROMPT",
    "ItemRetriever",
    "RankScores",
    "RecRankEnv",
    "rank_prompt",
    "ranks_from_scores",
]

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
"""Candidate labels, in candidate order (LlamaRec uses the first 20, A–T)."""

RANK_PROMPT = (
    "### Instruction:\n"
    "Given the user's history of movies in chronological order, recommend the movie from the "
    "candidate pool that the user will watch next. Answer with the index letter of the "
    "candidate only.\n\n"
    "### Input:\n"
    "User history:\n{history}\n\n"
    "Candidate pool:\n{candidates}"
)
"""LlamaRec's ``alpaca_short`` instruction and input, one title per line; a ranker adds the
response header (its chat template's assistant turn, or ``"### Response:"``)."""

MAX_TITLE_CHARS = 120
"""Longest item text in the prompt (LlamaRec cuts titles to 32 tokens; no tokenizer here).

Items are shown as ``"Title (Year)"``, LlamaRec's form: genres would double the prompt's length,
and with it the cost of every ranker forward pass."""

CANDIDATE_KS = (1, 5, 10)
"""Cut-offs of the among-candidates NDCG/Recall in ``info["metrics"]`` (``"cand/ndcg@10"``...)."""
FULL_KS = (10, 20, 50)
"""Cut-offs of the full-ranking-equivalent NDCG/Recall (``"full/ndcg@10"``...), for retriever
candidates."""


@runtime_checkable
class ItemRetriever(Protocol):
    """A sequential recommender proposing candidates (``recgym.models.seqrec.SeqRecRetriever``)."""

    name: str
    n_items: int
    data_version: str

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """``(B, n_items)`` scores of every item as each history's next one."""
        ...

    def retrieve(
        self, histories: Sequence[np.ndarray], k: int, *, exclude_history: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(B, k)`` item indices (best first) and their scores."""
        ...


def rank_prompt(history: Sequence[str], candidates: Sequence[str]) -> str:
    """LlamaRec's prompt: history texts numbered (1)… oldest first, candidates lettered (A)…."""
    if len(candidates) > len(LETTERS):
        raise ValueError(
            f"at most {len(LETTERS)} candidates can be lettered; got {len(candidates)}"
        )

    def cut(text: str) -> str:
        return text if len(text) <= MAX_TITLE_CHARS else text[: MAX_TITLE_CHARS - 3] + "..."

    hist = "\n".join(f"({n}) {cut(t)}" for n, t in enumerate(history, 1))
    cands = "\n".join(f"({LETTERS[n]}) {cut(t)}" for n, t in enumerate(candidates))
    return RANK_PROMPT.format(history=hist, candidates=cands)


def ranks_from_scores(scores: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """0-based rank of candidate ``positions[b]`` under ``scores[b]`` (pessimistic on ties).

    :func:`recgym.metrics.target_ranks` over the candidates: ties count against the target, so
    a constant action earns the worst rank, not the best; NaN scores rank below every number.
    """
    return target_ranks(scores, positions)


def _nan_last(scores: np.ndarray) -> np.ndarray:
    """``scores`` as float64 with NaN replaced by -inf (a NaN score ranks last)."""
    return np.where(np.isnan(scores), -np.inf, np.asarray(scores, dtype=np.float64))


@dataclass
class _Split:
    """The episodes of one split.

    ``candidates`` is ``None`` for random candidates (drawn per episode on demand);
    ``full_rank`` is the retriever's 0-based full-catalog rank of the target (history masked),
    ``-1`` when the candidates are not the retriever's.
    """

    users: np.ndarray
    histories: list[np.ndarray]
    targets: np.ndarray
    candidates: np.ndarray | None
    full_rank: np.ndarray | None
    seed: int

    def __len__(self) -> int:
        return len(self.targets)


@dataclass
class RankTask:
    """What ``RecRank-v0`` is built from (shared by envs with the same arguments).

    Attributes:
        texts: item index → the movie's title and year, as in the prompt.
        item_ids: item index → MovieLens id.
        splits: the episodes of each split.
        retriever_name: the retriever's name.
        data_version: digest of the data, the retriever and the candidate settings.
    """

    texts: list[str]
    item_ids: np.ndarray
    splits: dict[str, _Split]
    retriever_name: str
    data_version: str


@dataclass
class RankScores:
    """Scores of a batch of actions (the runner reads ``rewards``, ``format_ok``, ``metrics``).

    Attributes:
        rewards: ``(B,)`` NDCG@K of the target among the candidates (0 when absent).
        format_ok: ``(B,)`` always True: every finite or NaN score vector is a valid action.
        metrics: ``"cand/..."``, ``"full/..."`` and ``"cand/hit"`` keys to ``(B,)`` arrays.
        ranking: ``(B, C)`` candidate positions in the induced order.
    """

    rewards: np.ndarray
    format_ok: np.ndarray
    metrics: dict[str, np.ndarray]
    ranking: np.ndarray


class RecRankEnv(OneStepEnv[dict[str, Any], np.ndarray]):
    """Rank a sequential retriever's candidates for a user's next movie, after LlamaRec.

    ## Description
    MovieLens-100k, leave-one-out by time (users with ≥ 5 ratings). For a user, a sequential
    recommender (the *retriever*: LRURec by default, trained on the training part of every
    sequence, cached) ranks the whole catalog with the user's history masked and keeps its top
    ``n_candidates`` (20); the agent scores those candidates; the candidates are ordered by
    score and the reward is the NDCG@K of the held-out next movie in that order. One step per
    episode. On *validation* and *test* (one episode per user: the second-to-last and the last
    movie) the candidates are the retriever's, in its order; on *train* (every position of
    every training sequence) they are, as in LlamaRec's ranker training, the target plus
    ``n_candidates - 1`` uniformly random unseen movies, shuffled (``train_candidates``).

    LlamaRec keeps only the users whose target is among the candidates and rescales; here every
    user is an episode and a missed target scores 0, so the mean reward *is* the
    full-ranking NDCG@K for K ≤ ``n_candidates``. ``mean(cand/ndcg@10) / mean(cand/hit)`` gives
    LlamaRec's subset figure.

    ## Observation Space
    ``Dict``:
    - ``"prompt"`` (``Text``): LlamaRec's instruction and input (:func:`rank_prompt`): the last
      ``history_len`` movies numbered (1)…, the candidates lettered (A)…(T).
    - ``"candidates"`` (``Box`` int64, ``(n_candidates,)``): the candidates' item indices in
      letter order.
    - ``"history"`` (``Box`` int64, ``(max_history,)``): the user's most recent item indices,
      oldest first, left-padded with -1.

    ## Action Space
    ``Box(-1, 1, (n_candidates,), float32)``: a score per candidate, higher is better. Only the
    order matters, so scores outside [-1, 1] (raw logits) are accepted too; the space is
    normalised for RL libraries. Any real numbers are accepted (a float, int or bool array or
    list; ``score`` also takes a ``(B, n_candidates)`` array): NaN ranks last, ``-inf`` and
    ``+inf`` are the smallest and largest numbers, and ties count against the target (a
    constant action gets the worst rank). Anything else (a wrong length, ``None``, a string, a
    dict, complex numbers) raises ``ValueError`` or ``TypeError`` saying what came and that
    ``n_candidates`` float scores were expected.

    ## Rewards
    NDCG@K (``k``, default 10) of the target in the induced candidate order, in ``[0, 1]``;
    0 when the retriever missed it. ``info["metrics"]`` has three families, named apart on purpose:
    ``"cand/ndcg@{1,5,10}"``, ``"cand/recall@{1,5,10}"`` (among the candidates, 0 if absent),
    ``"cand/hit"`` (the target is a candidate), and on retriever candidates
    ``"full/ndcg@{10,20,50}"``, ``"full/recall@{10,20,50}"``: the whole catalog ranked as the
    candidates in the agent's order followed by the rest in the retriever's order.

    ## Starting State
    ``reset(options={"split": s, "index": i})`` starts episode ``i`` of split ``s``; without an
    index one is drawn from the env's seeded generator.

    ## Episode End
    Terminated after one step.

    ## Arguments
    - ``split``: ``"train"`` (default), ``"validation"`` or ``"test"``.
    - ``retriever``: a name of ``recgym.models.seqrec.MODELS`` (``"lrurec"`` default, ``"sasrec"``,
      ``"gru4rec"``): all three with seed 0 ship trained with the package (never trained
      on your machine); another one, seed or ``retriever_kwargs`` trains on first use (an
      estimate, then a progress bar) and is cached; ``"popularity"`` (most-rated movies of the
      training part, no training); or any :class:`ItemRetriever`.
    - ``retriever_kwargs``: config overrides for a named retriever (``{"max_epochs": 5}``).
    - ``retriever_seed``: the named retriever's training seed (default 0).
    - ``n_candidates``: candidates per episode (default 20, at most 26).
    - ``history_len``: movies in the prompt (default 20, LlamaRec's).
    - ``max_history``: length of the ``"history"`` id array (default 200).
    - ``train_candidates``: ``"random"`` (default, LlamaRec) or ``"retriever"``.
    - ``k``: the reward's NDCG cut-off (default 10).
    - ``render_mode``: ``None`` or ``"ansi"``.

    ## Version History
    - v0: initial version.
    - v0 (invalid-input fix, issue 28): a malformed action's error now says what was given
      (not the batched shape) and a non-numeric one raises ``TypeError``; no valid action's
      reward changed, so the id stays ``-v0``.
    - v0 (issue 26): the default retriever ships trained (the same weights the cache held), and
      ``data_version`` now digests the episodes (histories, targets, candidates, the retriever's
      full ranks); episodes and rewards are unchanged, rows made before are stale until re-run.
    """

    candidate_seed: ClassVar[int] = 20231104  # random train candidates: same on every machine

    def __init__(
        self,
        *,
        split: str = "train",
        retriever: str | ItemRetriever = "lrurec",
        retriever_kwargs: Mapping[str, Any] | None = None,
        retriever_seed: int = 0,
        n_candidates: int = 20,
        history_len: int = 20,
        max_history: int = 200,
        train_candidates: str = "random",
        k: int = 10,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(split=split, render_mode=render_mode)
        if not 2 <= n_candidates <= len(LETTERS):
            raise ValueError(f"n_candidates must be in 2..{len(LETTERS)}; got {n_candidates}")
        if not 1 <= k <= n_candidates:
            raise ValueError(f"k must be in 1..n_candidates ({n_candidates}); got {k}")
        if history_len < 1 or max_history < 1:
            raise ValueError(
                f"history_len and max_history must be >= 1; got {history_len}, {max_history}"
            )
        if train_candidates not in ("random", "retriever"):
            raise ValueError(
                f"train_candidates must be 'random' or 'retriever'; got {train_candidates!r}"
            )
        if not isinstance(retriever, str) and not isinstance(retriever, ItemRetriever):
            raise TypeError(
                "retriever must be a model name ('lrurec', 'sasrec', 'gru4rec') or an object "
                f"with name, n_items, data_version, score() and retrieve(); got {retriever!r}"
            )
        if isinstance(retriever, str) and retriever != "popularity":
            from recgym.models.seqrec.config import DEFAULTS  # no torch: names only

            if retriever not in DEFAULTS:  # fail in gym.make, not at the first reset
                raise UnknownNameError(
                    f"no retriever named {retriever!r}; choose 'popularity' or one of "
                    f"{', '.join(map(repr, DEFAULTS))}"
                )
        self.retriever = retriever
        self.retriever_kwargs = dict(retriever_kwargs or {})
        self.retriever_seed = int(retriever_seed)
        self.n_candidates = int(n_candidates)
        self.history_len = int(history_len)
        self.max_history = int(max_history)
        self.train_candidates = train_candidates
        self.k = int(k)
        self.reward = "ndcg"
        n_items = self._n_items()
        self.observation_space = spaces.Dict(
            {
                "prompt": prompt_space(),
                "candidates": spaces.Box(0, n_items - 1, (self.n_candidates,), np.int64),
                "history": history_space(n_items, self.max_history),
            }
        )
        # Only the order of the scores matters; [-1, 1] is the range RL libraries expect.
        self.action_space = spaces.Box(-1.0, 1.0, (self.n_candidates,), np.float32)

    @staticmethod
    @functools.cache
    def _n_items() -> int:
        # Cached: parsing MovieLens costs ~0.5 s, and the spaces need only the catalog size.
        from recgym.data import load_dataset

        return len(load_dataset("ml-100k", progress=False).items)

    # ----- the task -------------------------------------------------------------------------

    def _task_key(self) -> tuple[Any, ...]:
        ret = self.retriever if isinstance(self.retriever, str) else id(self.retriever)
        kwargs = json.dumps(self.retriever_kwargs, sort_keys=True, default=str)
        return (ret, kwargs, self.retriever_seed, self.n_candidates, self.train_candidates)

    def _load_retriever(self) -> ItemRetriever:
        if not isinstance(self.retriever, str):
            return self.retriever
        if self.retriever == "popularity":
            from recgym.models.popularity import PopularityRetriever

            return PopularityRetriever.movielens()
        # recgym.models.seqrec imports torch; only a trained retriever needs it.
        from recgym.models.seqrec import pretrained

        # The default (LRURec, seed 0) and the other shipped retrievers load from the package;
        # any other configuration trains once, announced with an estimate and a progress bar.
        model: ItemRetriever = pretrained(
            self.retriever, seed=self.retriever_seed, **self.retriever_kwargs
        )
        return model

    def _build_task(self) -> RankTask:
        data, examples = leave_one_out_examples("ml-100k")
        retriever = self._load_retriever()
        if retriever.n_items != len(data.items):
            raise RecGymError(
                f"retriever {retriever.name!r} scores {retriever.n_items} items; MovieLens-100k "
                f"has {len(data.items)}"
            )
        splits: dict[str, _Split] = {}
        for s, name in enumerate(SPLITS):
            users, histories, targets = examples[name]
            split = _Split(users, histories, targets, None, None, self.candidate_seed + s)
            if name != "train" or self.train_candidates == "retriever":
                split.candidates, split.full_rank = _retrieve(
                    retriever, histories, targets, self.n_candidates
                )
            splits[name] = split
        table = data.items.table
        texts = [
            to_charset(f"{t} ({int(y)})" if y == y else t)  # y != y: no year (NaN)
            for t, y in zip(table["title"], table["year"], strict=True)
        ]
        digest = hashlib.sha256("\x00".join(texts).encode())
        key = self._task_key()
        if not isinstance(self.retriever, str):
            # An object's id() differs in every process: its name and data_version identify it.
            key = ("object", *key[1:])
        digest.update(f"{retriever.name}:{retriever.data_version}:{key}".encode())
        # The episodes themselves: the retriever's weights decide the candidates and their
        # full-catalog ranks, so other weights with the same name make other rows.
        for name in SPLITS:
            split = splits[name]
            digest.update("\x00".join(map(str, split.users)).encode())  # ids: objects
            for part in (split.targets, split.candidates, split.full_rank):
                if part is not None:
                    digest.update(np.ascontiguousarray(part, dtype=np.int64).tobytes() + b"|")
            for history in split.histories:
                digest.update(np.asarray(history, dtype=np.int64).tobytes() + b";")
        return RankTask(texts, data.items.item_ids, splits, retriever.name, digest.hexdigest()[:16])

    def candidates(self, index: int, split: str | None = None) -> np.ndarray:
        """The candidates (item indices, letter order) of episode ``index`` of ``split``."""
        episodes = self._split(split)
        i = episode_index(index, len(episodes))
        if episodes.candidates is not None:
            return episodes.candidates[i]
        return _random_candidates(
            episodes.histories[i],
            int(episodes.targets[i]),
            self.n_candidates,
            len(self.task.texts),
            np.random.default_rng([episodes.seed, i]),
        )

    def label(self, index: int, split: str | None = None) -> int:
        """The target's position among episode ``index``'s candidates (-1 if absent): the
        supervised label for training a ranker (LlamaRec trains on the train split's)."""
        episodes = self._split(split)
        i = episode_index(index, len(episodes))
        found = np.flatnonzero(self.candidates(i, split) == episodes.targets[i])
        return int(found[0]) if len(found) else -1

    def observation(self, index: int, split: str | None = None) -> dict[str, Any]:
        """The observation of episode ``index`` of ``split``."""
        episodes = self._split(split)
        i = episode_index(index, len(episodes))
        cands = self.candidates(i, split)
        hist = episodes.histories[i]
        texts = self.task.texts
        prompt = rank_prompt(
            [texts[j] for j in hist[-self.history_len :]], [texts[j] for j in cands]
        )
        return {
            "prompt": prompt,
            "candidates": cands.astype(np.int64),
            "history": padded_history(hist, self.max_history),
        }

    # ----- scoring --------------------------------------------------------------------------

    def score(
        self,
        actions: Sequence[np.ndarray] | np.ndarray,
        indices: Sequence[int] | int | None = None,
        split: str | None = None,
    ) -> RankScores:
        """Score many actions at once.

        Args:
            actions: ``(B, n_candidates)`` candidate scores, a list of ``(n_candidates,)``
                score vectors, or one ``(n_candidates,)`` array.
            indices: the episode of each action, or one index for all (default: the current
                episode).
            split: the split of ``indices`` (default: the current episode's, or the env's).

        Raises:
            TypeError: an action is not numbers (``None``, a string, a dict...).
            ValueError: an action does not have one score per candidate.
        """
        # Each action is checked before the batch is stacked, so an error names what came.
        scores = score_matrix(actions, self.n_candidates, "candidate")
        n = len(scores)
        split, rows = score_rows(indices, split, n, self._episode, self.num_episodes, "actions")
        episodes = self._split(split)
        cands = np.stack([self.candidates(i, split) for i in rows])
        targets = episodes.targets[rows]
        present = cands == targets[:, None]
        hit = present.any(axis=1)
        position = present.argmax(axis=1)
        rank = np.where(hit, ranks_from_scores(scores, position), self.n_candidates)
        # A ranked list of candidate positions with the target placed at its (pessimistic)
        # rank, so the one metrics module scores it; -1 stands for "not here".
        metrics = {
            f"cand/{key}": v
            for key, v in metrics_at_rank(rank, self.n_candidates, CANDIDATE_KS).items()
        }
        metrics["cand/hit"] = hit.astype(np.float64)
        if episodes.full_rank is not None:
            full = np.where(hit, rank, episodes.full_rank[rows])
            for key, v in metrics_at_rank(full, max(FULL_KS), FULL_KS).items():
                metrics[f"full/{key}"] = v
        reward = metrics_at_rank(rank, self.n_candidates, (self.k,), ("ndcg",))[f"ndcg@{self.k}"]
        order = np.argsort(-_nan_last(scores), axis=1, kind="stable")
        return RankScores(reward, np.ones(n, dtype=bool), metrics, order)

    # ----- the Gymnasium API ----------------------------------------------------------------

    def _info(self, split: str, index: int) -> dict[str, Any]:
        episodes = self._split(split)
        return {
            "split": split,
            "index": index,
            "user_id": str(episodes.users[index]),
            "retriever": self.task.retriever_name,
        }

    def _step_info(self, result: RankScores, action: np.ndarray) -> dict[str, Any]:
        return {"ranking": result.ranking[0].tolist()}

    def render(self) -> str | None:
        """``"ansi"``: the history, the candidates in the agent's order and the target."""
        if self.render_mode != "ansi" or self._episode is None:
            return None
        split, index = self._episode
        episodes, texts = self._split(split), self.task.texts
        cands = self.candidates(index, split)
        target = int(episodes.targets[index])
        lines = [f"[RecRankEnv {split} #{index}] retriever: {self.task.retriever_name}"]
        lines += ["HISTORY (latest last):"]
        lines += [f"   {texts[j]}" for j in episodes.histories[index][-5:]]
        order = range(len(cands)) if self._last is None else self._last["ranking"]
        lines.append("CANDIDATES" + (" (agent's order):" if self._last else " (letter order):"))
        for rank, pos in enumerate(order, 1):
            mark = "*" if int(cands[pos]) == target else " "
            lines.append(f" {mark}{rank:>2}. ({LETTERS[pos]}) {texts[int(cands[pos])]}")
        lines.append(f"TARGET: {texts[target]}")
        if self._last is not None:
            lines.append(f"REWARD (NDCG@{self.k}): {self._last['reward']:.4f}")
        return "\n".join(lines) + "\n"


def _retrieve(
    retriever: ItemRetriever, histories: list[np.ndarray], targets: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """The retriever's top ``n`` per history and the target's 0-based rank in its full order.

    The full order comes from ``retrieve`` itself (not from re-ranking its scores), so its
    tie-breaking decides both the candidates and the ranks beyond them.
    """
    cands, full_rank = [], []
    for lo in range(0, len(histories), 256):
        hist = histories[lo : lo + 256]
        ids, _ = retriever.retrieve(hist, retriever.n_items, exclude_history=True)
        ids = np.asarray(ids, dtype=np.int64)
        cands.append(ids[:, :n])
        found = ids == targets[lo : lo + 256, None]
        full_rank.append(np.where(found.any(axis=1), found.argmax(axis=1), retriever.n_items))
    return np.concatenate(cands), np.concatenate(full_rank)


def _random_candidates(
    history: np.ndarray, target: int, n: int, n_items: int, rng: np.random.Generator
) -> np.ndarray:
    """The target and ``n - 1`` distinct random items the user has not seen, shuffled."""
    seen = np.zeros(n_items, dtype=bool)
    seen[history] = True
    seen[target] = True
    negatives = rng.choice(np.flatnonzero(~seen), size=n - 1, replace=False)
    out = np.concatenate([[target], negatives]).astype(np.int64)
    rng.shuffle(out)
    return out
