"""``RecNext-v0``: next-item prediction over the whole catalog, after R²ec (arXiv 2505.16994).

The agent scores every MovieLens-100k movie for a user's next one; the reward is the NDCG of
the held-out movie under those scores with the user's history masked, or R²ec's fused reward
(NDCG plus the target's softmax probability). Any full-ranking recommender plays it as is
(popularity, SASRec, GRU4Rec, LRURec), so it is also the plain full-ranking leaderboard; a
reasoning LLM with a recommendation head (R²ec) scores items from its hidden state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from recgym.envs.one_step import (
    SPLITS,
    OneStepEnv,
    dataset_key,
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
from recgym.metrics import metrics_at_rank, target_ranks

__all__ = [
    "NEXT_ITEM_PROMPT",
    "NEXT_PROMPT",
    "NextScores",
    "RecNextEnv",
    "fuse",
    "fused_reward",
    "next_prompt",
    "target_probability",
]

NEXT_PROMPT = (
    "Analyze in depth the movies I watched, then recommend the movie I will watch next. Reason "
    "step by step, then write <answer> and describe the movie.\n\n"
    "My movies, oldest first:\n{history}"
)
"""The observation's prompt, after R²ec's user prompt (one item per line, oldest first);
``{history}`` holds ``"N. Title (Year) | genres"`` lines."""

NEXT_ITEM_PROMPT = (
    "Analyze in depth the items I picked, then recommend the item I will pick next. Reason "
    "step by step, then write <answer> and describe the item.\n\n"
    "My items, oldest first:\n{history}"
)
"""The prompt on a dataset other than MovieLens-100k (one item text per line)."""

METRIC_KS = (5, 10, 20, 50)
"""Cut-offs of ``info["metrics"]``: ``"ndcg@10"``, ``"hit@5"``... (R²ec reports Hit/NDCG@5,
10, 20)."""


def next_prompt(history: Sequence[str], template: str = NEXT_PROMPT) -> str:
    """The prompt for a history of item texts (oldest first)."""
    return template.format(history="\n".join(f"{n}. {t}" for n, t in enumerate(history, 1)))


def target_probability(
    scores: np.ndarray, targets: np.ndarray, histories: Sequence[np.ndarray], tau: float
) -> np.ndarray:
    """``(B,)`` probability of each row's target under a softmax of ``scores / tau`` over the
    items not in the row's history (the target excepted), in ``[0, 1]`` for any float scores.

    NaN scores get no mass (nor does ``-inf``; a row with nothing else gets ``p = 0``).
    ``+inf`` is the largest score: the row's ``+inf`` items share the whole mass equally, as in
    the softmax's limit. Finite scores too large to divide by ``tau`` (``1e307 / 0.02``) are
    shifted by the row's largest before the division, which gives the same softmax.
    """
    s = np.where(np.isnan(scores), -np.inf, np.asarray(scores, dtype=np.float64))
    with np.errstate(over="ignore"):  # an overflow gives +inf: that row is redone below
        logits = s / tau
    for i, items in enumerate(histories):
        logits[i, items[items != targets[i]]] = -np.inf
    top = logits.max(axis=1, keepdims=True)
    overflow = np.flatnonzero(np.isposinf(top[:, 0]))
    top = np.where(np.isfinite(top), top, 0.0)  # an all -inf row: p = 0, not NaN
    with np.errstate(over="ignore", invalid="ignore"):  # only in the overflow rows, redone
        weights = np.exp(logits - top)
        total = weights.sum(axis=1)
        rows = np.arange(len(s))
        p = np.divide(weights[rows, targets], total, out=np.zeros(len(s)), where=total > 0)
    # The rows above are v0's formula untouched (every finite reward stays bit-identical); only
    # rows whose largest logit is +inf, which used to give NaN, are computed apart.
    for row in overflow.tolist():
        p[row] = _overflow_probability(s[row], int(targets[row]), histories[row], tau)
    return p


def _overflow_probability(s: np.ndarray, target: int, history: np.ndarray, tau: float) -> float:
    """The target's softmax probability in a row whose largest ``s / tau`` is ``+inf``."""
    s = s.copy()
    s[history[history != target]] = -np.inf
    top = s.max()
    if np.isposinf(top):
        return float(s[target] == top) / float((s == top).sum())
    with np.errstate(over="ignore"):  # a difference below -1.8e308 is -inf: weight 0
        weights = np.exp((s - top) / tau)
    return float(weights[target] / weights.sum())  # the top item's weight is 1


def fuse(
    ranks: np.ndarray, p_target: np.ndarray, k: int, beta: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(beta * NDCG@k + (1 - beta) * p_target, NDCG@k)`` from 0-based target ranks."""
    ndcg = metrics_at_rank(ranks, k, (k,), ("ndcg",))[f"ndcg@{k}"]
    return beta * ndcg + (1.0 - beta) * p_target, ndcg


def fused_reward(
    scores: np.ndarray,
    targets: np.ndarray,
    histories: Sequence[np.ndarray],
    *,
    k: int,
    beta: float,
    tau: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """R²ec's reward ``beta * NDCG@k + (1 - beta) * p(target)`` of full-catalog ``scores``.

    The history items of each row are masked (never ranked, no probability mass), the target
    excepted; ties rank against the target and NaN ranks last. ``p`` is
    :func:`target_probability`: the softmax of ``scores / tau`` over the unmasked items, the
    scores read as cosine similarities.

    Returns:
        ``(reward, ndcg@k, p_target)``, each ``(B,)`` float64.
    """
    p = target_probability(scores, targets, histories, tau)
    reward, ndcg = fuse(target_ranks(scores, targets, histories), p, k, beta)
    return reward, ndcg, p


@dataclass
class _Split:
    users: np.ndarray
    histories: list[np.ndarray]
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)


@dataclass
class NextTask:
    """What ``RecNext-v0`` is built from (shared by envs of one process).

    Attributes:
        texts: ``"Title (Year) | genres"`` per item index.
        item_ids: the dataset's item id per index.
        splits: the leave-one-out episodes per split.
        data_version: digest of the catalog and the episodes (for leaderboard rows).
    """

    texts: list[str]
    item_ids: np.ndarray
    splits: dict[str, _Split]
    data_version: str


@dataclass
class NextScores:
    """A batch of scored actions (the runner's and a trainer's view of ``score``).

    Attributes:
        rewards: ``(B,)`` the env's reward.
        format_ok: ``(B,)`` all True (a score vector has no format to break).
        metrics: ``"ndcg@10"``, ``"hit@5"``... and ``"p_target"``, each ``(B,)``.
        ranks: ``(B,)`` 0-based full-catalog rank of the target (history masked).
        scores: ``(B, n_items)`` the actions' scores as float64, as checked and ranked.
    """

    rewards: np.ndarray
    format_ok: np.ndarray
    metrics: dict[str, np.ndarray]
    ranks: np.ndarray
    scores: np.ndarray


class RecNextEnv(OneStepEnv[dict[str, Any], np.ndarray]):
    """Next-item prediction over the whole MovieLens-100k catalog, after R²ec.

    ## Description
    MovieLens-100k, leave-one-out by time (users with ≥ 5 ratings), as in ``RecSeq-v0`` and
    ``RecRank-v0``: *train* episodes are every position of the training part of each user's
    sequence, *validation* each user's second-to-last movie, *test* the last. The agent scores
    all 1,682 movies; the movies the user has watched are masked; the reward measures where
    the held-out next movie lands. One step per episode.

    Every full-ranking recommender plays it unchanged (``agents.baselines.next_item``: popularity,
    SASRec, GRU4Rec, LRURec), so its test split is the field's plain full-ranking leaderboard.
    R²ec's reasoning recommender reads the prompt, reasons, and scores the items by the
    similarity of its hidden state to item embeddings (``agents.llm.rec_head``; trained by
    RecPO, ``agents.llm.recpo``).

    ## Observation Space
    ``Dict``:

    - ``"prompt"`` (``Text``): R²ec-style instruction and the last ``history_len`` movies,
      oldest first, one ``"N. Title (Year) | genres"`` line each (:data:`NEXT_PROMPT`).
    - ``"history"`` (``Box`` int64, ``(max_history,)``): the most recent item indices, oldest
      first, left-padded with -1.

    ## Action Space
    ``Box(-1, 1, (n_items,), float32)``: a score per item, higher is better. For
    ``reward="ndcg"`` only the order matters, so raw logits are accepted too; for
    ``reward="fused"`` the scores are read as cosine similarities (the softmax is taken over
    ``score / tau``). Any real numbers are accepted (a float, int or bool array or list):
    ties count against the target; NaN ranks last and gets no probability; ``+inf`` is the
    largest score (the ``+inf`` items share the softmax's mass equally) and ``-inf`` the
    smallest number; scores too large to divide by ``tau`` are handled without overflow, so
    the reward is always finite. ``step`` also takes ``{"scores": array, "reasoning": str}``:
    the reasoning is returned in ``info`` for logging and does not change the reward. Anything
    else (a wrong length, ``None``, a string, a dict without ``"scores"``, complex numbers)
    raises ``TypeError`` or ``ValueError`` saying what came and what was expected.

    ## Rewards
    With ``r`` the target's 0-based rank among the items not in the history:

    - ``reward="ndcg"`` (default): NDCG@K = ``1 / log2(r + 2)`` if ``r < k`` else 0.
    - ``reward="fused"``: ``beta * NDCG@K + (1 - beta) * p``, where ``p`` is the target's
      probability under a softmax of ``score / tau`` over the unmasked items (R²ec: K = 1000,
      ``beta`` = 0.95, ``tau`` = 0.02).

    Both rewards lie in ``[0, 1]``. ``info["metrics"]`` has ``ndcg@{5,10,20,50}``,
    ``hit@{5,10,20,50}`` (one target, so hit equals recall) and ``p_target`` (the softmax term,
    at ``tau``), whatever the reward, each in ``[0, 1]``; and ``unmasked/ndcg@K`` and
    ``unmasked/hit@K``: the same ranks with the history *not* masked, the protocol of RecBole's
    sequential evaluation, to compare with numbers published under it (history items a model
    scores high push the target down, so these are lower).

    ## Starting State
    ``reset(options={"split": s, "index": i})`` starts episode ``i`` of split ``s``; without an
    index, one is drawn from the env's seeded generator.

    ## Episode End
    Terminated after one step.

    ## Arguments
    - ``split``: ``"train"`` (default), ``"validation"`` or ``"test"``.
    - ``dataset``, ``dataset_kwargs``: a registered dataset with interactions and item texts
      and its loader's arguments, as in ``RecSeq-v0`` (default MovieLens-100k; another one
      gets a prompt about items). The ``popularity`` agent counts the same dataset's training
      part; the ``seqrec`` agents are trained on MovieLens-100k only.
    - ``reward``: ``"ndcg"`` (default) or ``"fused"``.
    - ``k``: the NDCG cut-off of the reward (default 1000, R²ec's; at most the catalog size,
      to which a larger ``k`` is cut, with the same rewards).
    - ``beta``: the NDCG weight of the fused reward (default 0.95).
    - ``tau``: the softmax temperature of the fused reward and of ``p_target`` (default 0.02).
    - ``history_len``: movies in the prompt (default 20, R²ec's).
    - ``max_history``: length of the padded ``history`` ids (default 200).
    - ``render_mode``: ``None`` or ``"ansi"``.

    ## Version History
    - v0: initial version.
    - v0 (invalid-input fix, issue 28): ``+inf`` scores and scores too large for ``/ tau``
      (``1e307``) used to give a NaN reward and ``p_target``; they now follow the rules above.
      A non-numeric action now raises ``TypeError``. No reward that used to be a number
      changed (tested against the v0 formula), so the id stays ``-v0``.
    - v0 (issue 26): ``info["metrics"]`` also has the unmasked ``unmasked/ndcg@K`` and
      ``unmasked/hit@K``; rewards and the other metrics are unchanged. ``dataset`` and
      ``dataset_kwargs`` (default MovieLens-100k: the same episodes and rewards).
    """

    REWARDS: ClassVar[tuple[str, ...]] = ("ndcg", "fused")

    def __init__(
        self,
        split: str = "train",
        dataset: str = "ml-100k",
        dataset_kwargs: dict[str, Any] | None = None,
        reward: str = "ndcg",
        k: int = 1000,
        beta: float = 0.95,
        tau: float = 0.02,
        history_len: int = 20,
        max_history: int = 200,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(split=split, render_mode=render_mode)
        from recgym.data import dataset_spec

        dataset_spec(dataset)  # an unknown name fails before any data is read
        self.dataset = dataset
        self.dataset_kwargs = dict(dataset_kwargs or {})
        if reward not in self.REWARDS:
            raise ValueError(f"reward must be one of {self.REWARDS}; got {reward!r}")
        if not 0.0 <= beta <= 1.0 or tau <= 0:
            raise ValueError(f"beta must be in [0, 1] and tau > 0; got {beta}, {tau}")
        if history_len < 1 or max_history < 1:
            raise ValueError(
                f"history_len and max_history must be >= 1; got {history_len}, {max_history}"
            )
        self.reward = reward
        self.beta = float(beta) if reward == "fused" else 1.0
        self.tau = float(tau)
        self.history_len = int(history_len)
        self.max_history = int(max_history)
        n_items = len(self.task.texts)
        if k < 1:
            raise ValueError(f"k must be >= 1; got {k}")
        # NDCG@K over a catalog of fewer than K items is NDCG@n_items: the same reward.
        self.k = min(int(k), n_items)
        self.n_items = n_items
        self.observation_space = spaces.Dict(
            {
                "prompt": prompt_space(),
                "history": history_space(n_items, self.max_history),
            }
        )
        # Only the order matters for NDCG; [-1, 1] is the range RL libraries expect.
        self.action_space = spaces.Box(-1.0, 1.0, (n_items,), np.float32)

    # ----- the task -------------------------------------------------------------------------

    def _task_key(self) -> tuple[Any, ...]:
        return dataset_key(self.dataset, self.dataset_kwargs)

    def _build_task(self) -> NextTask:
        data, examples = leave_one_out_examples(self.dataset, self.dataset_kwargs)
        splits = {name: _Split(*examples[name]) for name in SPLITS}
        texts = [to_charset(t) for t in data.items.texts()]  # "Title (year) | genres"
        digest = hashlib.sha256("\x00".join(texts).encode())
        for name in SPLITS:
            digest.update(np.asarray(splits[name].targets, dtype=np.int64).tobytes())
        return NextTask(texts, data.items.item_ids, splits, digest.hexdigest()[:16])

    def target(self, index: int, split: str | None = None) -> int:
        """The held-out item of episode ``index`` (the supervised label)."""
        episodes = self._split(split)
        return int(episodes.targets[episode_index(index, len(episodes))])

    def observation(self, index: int, split: str | None = None) -> dict[str, Any]:
        """The observation of episode ``index`` of ``split``."""
        episodes = self._split(split)
        hist = episodes.histories[episode_index(index, len(episodes))]
        texts = self.task.texts
        template = NEXT_PROMPT if self.dataset == "ml-100k" else NEXT_ITEM_PROMPT
        prompt = next_prompt([texts[j] for j in hist[-self.history_len :]], template)
        return {"prompt": prompt, "history": padded_history(hist, self.max_history)}

    # ----- scoring --------------------------------------------------------------------------

    def score(
        self,
        actions: Sequence[Any] | np.ndarray,
        indices: Sequence[int] | int | None = None,
        split: str | None = None,
    ) -> NextScores:
        """Score many actions at once.

        Args:
            actions: ``(B, n_items)`` scores, or a list of score vectors or of
                ``{"scores": ..., "reasoning": ...}`` dicts.
            indices: the episode of each action, or one index for all (a GRPO group; default:
                the current episode).
            split: the split of ``indices`` (default: the current episode's, or the env's).

        Raises:
            TypeError: an action is not numbers (``None``, a string, complex numbers...).
            ValueError: an action does not have one score per item.
        """
        scores = _score_matrix(actions, self.n_items)
        split, rows = score_rows(
            indices, split, len(scores), self._episode, self.num_episodes, "actions"
        )
        episodes = self._split(split)
        targets = episodes.targets[rows]
        histories = [episodes.histories[i] for i in rows]
        # One rank and one softmax per row serve the reward and the logged metrics (the
        # softmax term is logged whatever the reward).
        ranks = target_ranks(scores, targets, histories)
        p_target = target_probability(scores, targets, histories, self.tau)
        reward, _ = fuse(ranks, p_target, self.k, self.beta)
        metrics = metrics_at_rank(ranks, max(METRIC_KS), METRIC_KS, ("ndcg", "hit"))
        # RecBole's sequential protocol ranks the whole catalog without masking the history:
        # the same figures under it, for comparison with papers (the reward stays masked).
        unmasked = metrics_at_rank(
            target_ranks(scores, targets), max(METRIC_KS), METRIC_KS, ("ndcg", "hit")
        )
        metrics.update({f"unmasked/{key}": value for key, value in unmasked.items()})
        metrics["p_target"] = p_target
        return NextScores(reward, np.ones(len(scores), dtype=bool), metrics, ranks, scores)

    # ----- the Gymnasium API ----------------------------------------------------------------

    def _info(self, split: str, index: int) -> dict[str, Any]:
        return {"split": split, "index": index, "user_id": str(self._split(split).users[index])}

    def _step_info(self, result: NextScores, action: Any) -> dict[str, Any]:
        reasoning = action.get("reasoning") if isinstance(action, Mapping) else None
        return {
            "target_rank": int(result.ranks[0]),
            "reasoning": None if reasoning is None else str(reasoning),
        }

    def _render_state(
        self, result: NextScores, action: Any, split: str, index: int
    ) -> dict[str, Any]:
        scores = result.scores[0]  # the action as score() checked it
        hist = self._split(split).histories[index]
        top = np.argsort(-np.where(np.isnan(scores), -np.inf, scores), kind="stable")
        return {"top": [int(i) for i in top[~np.isin(top, hist)][:10]]}

    def render(self) -> str | None:
        """``"ansi"``: the last movies watched, the agent's top 10 and the target."""
        if self.render_mode != "ansi" or self._episode is None:
            return None
        split, index = self._episode
        episodes, texts = self._split(split), self.task.texts
        target = int(episodes.targets[index])
        lines = [f"[RecNextEnv {split} #{index}] user {episodes.users[index]}"]
        lines += ["HISTORY (latest last):"]
        lines += [f"   {texts[j]}" for j in episodes.histories[index][-5:]]
        if self._last is not None:
            lines.append("AGENT'S TOP 10 (history masked):")
            for rank, item in enumerate(self._last["top"], 1):
                lines.append(f" {'*' if item == target else ' '}{rank:>2}. {texts[item]}")
        lines.append(f"TARGET: {texts[target]}")
        if self._last is not None:
            lines.append(
                f"TARGET RANK: {self._last['target_rank'] + 1}; REWARD ({self.reward}): "
                f"{self._last['reward']:.4f}"
            )
        return "\n".join(lines) + "\n"


def _score_matrix(actions: Sequence[Any] | np.ndarray, n_items: int) -> np.ndarray:
    """Actions as a ``(B, n_items)`` float64 matrix (dict actions give their ``"scores"``)."""
    return score_matrix(actions, n_items, "item", unwrap=_scores_of)


def _scores_of(action: Any) -> Any:
    """A dict action's ``"scores"`` (any other action as it is)."""
    if isinstance(action, Mapping):
        if "scores" not in action:
            raise ValueError(
                "a dict action needs a 'scores' array (and may add 'reasoning'); got keys "
                f"{sorted(map(str, action))[:10]}"
            )
        return action["scores"]
    return action
