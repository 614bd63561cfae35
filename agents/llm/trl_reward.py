"""TRL interop: any recgym text env as a ``GRPOTrainer`` prompt dataset and reward function.

:func:`prompt_dataset` turns a split of a text env (``RecSearch-v0``, ``RecSeq-v0``, any
:class:`~recgym.envs.text.RetrievalTextEnv`) into a conversational dataset, and
:func:`reward_function` scores the trainer's completions with the env's batched scorer::

    import gymnasium as gym
    from trl import GRPOConfig, GRPOTrainer

    import recgym  # noqa: F401 (registers the env ids)
    from agents.llm.trl_reward import prompt_dataset, reward_function

    env = gym.make("RecSeq-v0")
    trainer = GRPOTrainer(
        model="HuggingFaceTB/SmolLM2-135M-Instruct",
        reward_funcs=reward_function(env),
        train_dataset=prompt_dataset(env, "train"),
        args=GRPOConfig(output_dir="out"),
    )
    trainer.train()

Written against TRL 1.16.0, whose ``GRPOTrainer`` calls a (sync) reward function as
``f(prompts=..., completions=..., completion_ids=..., trainer_state=..., log_extra=...,
log_metric=..., **columns)``, where ``columns`` holds every dataset column but ``prompt``
(here ``index`` and ``split``), one value per completion. With a conversational dataset each
completion is a list of messages: ``[{"role": "assistant", "content": ...}]``, and when the
tokenizer has a response schema (Qwen3) the ``<think>`` block is moved to a
``reasoning_content`` field, which :func:`completion_text` puts back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, runtime_checkable

import numpy as np

from agents.llm.zero_shot import policy_messages
from recgym.envs.text import EVAL_METRICS, SPLITS, SYSTEM_PROMPT, ScoreBatch

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = [
    "METRICS",
    "EnvReward",
    "TextScorer",
    "completion_text",
    "prompt_dataset",
    "reward_function",
]

METRICS: tuple[str, ...] = ("reward", "ndcg", *(f"{name}@{k}" for name, k in EVAL_METRICS))
"""What a reward function can return: the env's reward (with its format penalty), NDCG at the
env's ``k``, or one of ``ScoreBatch.metrics`` (0 where the format is broken)."""

Completion: TypeAlias = str | Sequence[Mapping[str, Any]] | Mapping[str, Any]
"""A completion as TRL passes it: text, or (conversational) a list of messages."""


@runtime_checkable
class TextScorer(Protocol):
    """What the functions here need of an env (:class:`~recgym.envs.text.RetrievalTextEnv`,
    ``RecPref-v0``'s :class:`~recgym.envs.preference.RecPrefEnv`)."""

    split: str

    def num_episodes(self, split: str | None = None) -> int:
        """Number of episodes in ``split``."""
        ...

    def observations(self, indices: Sequence[int], split: str | None = None) -> list[Any]:
        """The observations of the given episodes of ``split``."""
        ...

    def score(
        self,
        completions: Sequence[str | bytes],
        indices: Sequence[int] | int | None = None,
        split: str | None = None,
    ) -> ScoreBatch:
        """Score many completions with one retrieval call."""
        ...


def _scorer(env: Any) -> TextScorer:
    """The unwrapped env, checked to be a batched text scorer."""
    base = getattr(env, "unwrapped", env)
    if not isinstance(base, TextScorer):
        raise TypeError(
            "expected a recgym text env with batched score() and observations() (RecSearch-v0, "
            f"RecSeq-v0, RecPref-v0: a RetrievalTextEnv or the like); got {type(base).__name__}. "
            'Pass the env from gym.make("RecSeq-v0") (wrappers are fine) or its .unwrapped'
        )
    return base


def _env_name(env: Any, base: TextScorer) -> str:
    """A short lower-case name of the env: ``"recseq"`` for ``RecSeq-v0``."""
    spec = getattr(env, "spec", None) or getattr(base, "spec", None)
    if spec is not None:
        return str(spec.id).split("/")[-1].split("-v")[0].lower()
    return type(base).__name__.lower().removesuffix("env")


def prompt_dataset(
    env: Any,
    split: str = "train",
    indices: Sequence[int] | None = None,
    system_prompt: str | None = SYSTEM_PROMPT,
) -> Dataset:
    """A conversational prompt dataset of a split of a text env, for TRL's trainers.

    Each row is one episode: ``prompt`` is the conversation an LLM policy completes (the
    system turn, if any, then the observation as the user turn, as
    :class:`~agents.llm.zero_shot.ZeroShotLLMAgent` sends it), ``index`` the episode's index
    and ``split`` its split; :func:`reward_function` reads the last two.

    Args:
        env: a recgym text env (``gym.make`` result or unwrapped).
        split: ``"train"``, ``"validation"`` or ``"test"``.
        indices: the episodes, in order (default: all episodes of the split).
        system_prompt: the system turn (``None`` for none); default Rec-R1's.

    Returns:
        A :class:`datasets.Dataset` with columns ``prompt``, ``index`` and ``split``.
    """
    from datasets import Dataset  # the optional "trl" extra; the reward function needs none

    scorer = _scorer(env)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
    rows = list(range(scorer.num_episodes(split))) if indices is None else [int(i) for i in indices]
    observations = scorer.observations(rows, split)
    if observations and not isinstance(observations[0], str):
        raise TypeError(
            f"{type(scorer).__name__} observations are {type(observations[0]).__name__}, not "
            "text: prompt_dataset needs a text env such as RecSeq-v0 or RecSearch-v0"
        )
    return Dataset.from_dict(
        {
            "prompt": [policy_messages(o, system_prompt) for o in observations],
            "index": rows,
            "split": [split] * len(rows),
        }
    )


def completion_text(completion: Completion) -> str:
    """The text of a completion: a string as is; for a conversational completion (a list of
    messages, or one message) the content of the last assistant message, with a
    ``reasoning_content``/``thinking`` field put back as a leading ``<think>`` block.
    Anything unreadable gives ``""`` (which the env scores as a broken format)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, bytes):
        return completion.decode("utf-8", "replace")
    messages = [completion] if isinstance(completion, Mapping) else list(completion)
    message = next(
        (
            m
            for m in reversed(messages)
            if isinstance(m, Mapping) and m.get("role", "assistant") == "assistant"
        ),
        None,
    )
    if message is None:
        return ""
    text = _content_text(message.get("content"))
    reasoning = _content_text(message.get("reasoning_content") or message.get("thinking"))
    # TRL's parse_response (tokenizers with a response schema) splits "<think>...</think>" off
    # the content; the env's format gate counts tags, so it must see the text the model wrote.
    return f"<think>\n{reasoning}\n</think>\n\n{text}" if reasoning else text


def _content_text(content: Any) -> str:
    """A message content as text: a string, or the text parts of a multi-part content."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence) and not isinstance(content, bytes):
        return "".join(
            str(part.get("text", "")) if isinstance(part, Mapping) else str(part)
            for part in content
        )
    return ""


class EnvReward:
    """A TRL reward function scoring completions with a text env (see :func:`reward_function`).

    Attributes:
        __name__: the name TRL logs the reward under (``rewards/<name>/mean``).
        metric: what it returns (one of :data:`METRICS`).
        split: the split it scores when the batch has no ``split`` column (``None``: the env's).
    """

    def __init__(self, scorer: TextScorer, name: str, metric: str, split: str | None) -> None:
        self.scorer = scorer
        self.__name__ = name
        self.metric = metric
        self.split = split

    def __repr__(self) -> str:
        return f"EnvReward({self.__name__!r}, metric={self.metric!r}, split={self.split!r})"

    def __call__(
        self,
        completions: Sequence[Completion],
        index: Sequence[int] | int,
        split: Sequence[str] | str | None = None,
        *,
        log_metric: Callable[[str, float], None] | None = None,
        log_extra: Callable[[str, list[Any]], None] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        """The metric of each completion of a batch; one ``score`` call per split in it.

        Args:
            completions: strings or conversational completions.
            index: each completion's episode (the dataset's ``index`` column), or one for all.
            split: each completion's split (the ``split`` column), or one for all (default:
                this function's split, else the env's).
            log_metric: TRL's scalar logger: the fraction of well-formed completions is
                logged as ``<name>/format_ok``.
            log_extra: TRL's completions-table logger: the parsed queries go to
                ``<name>/query``.
            **kwargs: the trainer's other arguments (``prompts``, ``trainer_state``, ...),
                ignored.

        Returns:
            One float per completion (never ``None``; typed as TRL's ``RewardFunc`` wants).
        """
        n = len(completions)
        texts = [completion_text(c) for c in completions]
        rows = [int(index)] * n if isinstance(index, (int, np.integer)) else [int(i) for i in index]
        if len(rows) != n:
            raise ValueError(f"got {len(rows)} episode indices for {n} completions")
        splits = self._splits(split, n)
        values = np.zeros(n)
        ok = np.zeros(n, dtype=bool)
        queries: list[str | None] = [None] * n
        for name in dict.fromkeys(splits):  # distinct splits, in order: one batched call each
            where = [j for j in range(n) if splits[j] == name]
            batch = self.scorer.score([texts[j] for j in where], [rows[j] for j in where], name)
            values[where] = self._values(batch)
            ok[where] = batch.format_ok
            for j, query in zip(where, batch.queries, strict=True):
                queries[j] = query
        if log_metric is not None and n:
            log_metric(f"{self.__name__}/format_ok", float(ok.mean()))
        if log_extra is not None:
            log_extra(f"{self.__name__}/query", queries)
        return [float(v) for v in values]  # floats, not numpy scalars (TRL builds a tensor)

    def _splits(self, split: Sequence[str] | str | None, n: int) -> list[str]:
        """The split of each of ``n`` completions."""
        default = self.split if self.split is not None else self.scorer.split
        if split is None:
            return [default] * n
        splits = [split] * n if isinstance(split, str) else [str(s) for s in split]
        if len(splits) != n:
            raise ValueError(f"got {len(splits)} splits for {n} completions")
        if self.split is not None and any(s != self.split for s in splits):
            raise ValueError(
                f"{self.__name__} scores split {self.split!r} but the batch's split column holds "
                f"{sorted(set(splits))}; drop split= to follow the column"
            )
        return splits

    def _values(self, batch: ScoreBatch) -> np.ndarray:
        """The chosen metric of a scored batch."""
        if self.metric == "reward":
            return np.asarray(batch.rewards, dtype=float)
        if self.metric == "ndcg":
            return np.asarray(batch.ndcg, dtype=float)
        return np.asarray(batch.metrics[self.metric], dtype=float)


def reward_function(
    env: Any, *, split: str | None = None, metric: str = "reward", name: str | None = None
) -> EnvReward:
    """A TRL ``GRPOTrainer`` reward function that scores completions with a text env.

    It is called (by TRL 1.16) as ``f(completions=..., index=[...], split=[...], **kwargs)``
    with the columns of a :func:`prompt_dataset`, and returns one float per completion.
    Completions may be strings or conversational (the last assistant message is scored); a
    batch is scored with one call of the env's batched ``score`` (one per split if it mixes
    splits). A completion that fails the format gate gets the env's format penalty (the
    ``"rec-r1"`` reward's -2), never an exception.

    Args:
        env: a recgym text env (``gym.make`` result or unwrapped); its ``reward=`` argument
            decides the ``"reward"`` metric.
        split: the split of the episode indices when the dataset has no ``split`` column
            (default: the env's split); if set, a ``split`` column must agree with it.
        metric: ``"reward"`` (the env's reward, format penalty included), ``"ndcg"`` (NDCG at
            the env's ``k``) or a ``ScoreBatch.metrics`` key such as ``"ndcg@10"`` (0 for a
            broken format).
        name: the name TRL logs it under (default ``"<env>_<metric>"``, e.g.
            ``"recseq_reward"``).

    Returns:
        The reward function, a callable :class:`EnvReward`.
    """
    scorer = _scorer(env)
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}; got {metric!r}")
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be None or one of {SPLITS}; got {split!r}")
    return EnvReward(scorer, name or f"{_env_name(env, scorer)}_{metric}", metric, split)
