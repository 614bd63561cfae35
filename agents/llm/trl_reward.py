"""TRL interop: any recgym text env as a ``GRPOTrainer`` prompt dataset and reward function.

:func:`prompt_dataset` turns a split of a text env (``RecSearch-v0``, ``RecSeq-v0``,
``RecPref-v0``: any env :func:`~agents.llm.text_env.text_scorer` accepts) into a conversational
dataset, and
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
(here ``index``, ``split`` and, with a prefill, ``response_prefix``), one value per
completion. With a conversational dataset each
completion is a list of messages: ``[{"role": "assistant", "content": ...}]``, and when the
tokenizer has a response schema (Qwen3) the ``<think>`` block is moved to a
``reasoning_content`` field, which :func:`completion_text` puts back.

A prefill (``response_prefix``, the trainer's ``--response-prefix``: the start of every reply,
which SmolLM2-135M needs to write the answer format at all) does not fit TRL 1.16's
conversational prompts: ``GRPOTrainer`` always renders them with a generation prompt, so a
final assistant turn would be closed, not continued. With ``response_prefix`` the dataset's
prompts are therefore *text*, rendered by the tokenizer's chat template with the assistant turn
left open, and a ``response_prefix`` column tells the reward function what to put back in front
of each completion before the env scores it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from agents.llm.text_env import TextScorer, TextScores, env_name, text_scorer
from agents.llm.zero_shot import policy_messages
from recgym.envs.one_step import SPLITS
from recgym.envs.text import EVAL_METRICS, SYSTEM_PROMPT

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = [
    "METRICS",
    "EnvReward",
    "completion_text",
    "prompt_dataset",
    "reward_function",
]

METRICS: tuple[str, ...] = ("reward", "ndcg", *(f"{name}@{k}" for name, k in EVAL_METRICS))
"""What a reward function can return for ``RecSeq-v0`` and ``RecSearch-v0``: the env's reward
(with its format penalty), NDCG at the env's ``k``, or one of ``ScoreBatch.metrics`` (0 where
the format is broken). Other envs have other ``metrics`` keys (``RecPref-v0``: ``"hit@1"``,
``"p_target"``...), which :func:`reward_function` accepts too."""

Completion: TypeAlias = str | Sequence[Mapping[str, Any]] | Mapping[str, Any]
"""A completion as TRL passes it: text, or (conversational) a list of messages."""


def prompt_dataset(
    env: Any,
    split: str = "train",
    indices: Sequence[int] | None = None,
    system_prompt: str | None = SYSTEM_PROMPT,
    *,
    response_prefix: str = "",
    tokenizer: Any = None,
) -> Dataset:
    """A prompt dataset of a split of a text env, for TRL's trainers.

    Each row is one episode: ``prompt`` is the conversation an LLM policy completes (the
    system turn, if any, then the observation as the user turn, as
    :class:`~agents.llm.zero_shot.ZeroShotLLMAgent` sends it), ``index`` the episode's index
    and ``split`` its split; :func:`reward_function` reads the last two.

    With ``response_prefix`` the conversation ends with that text as an open assistant turn,
    rendered to a string by ``tokenizer``'s chat template (TRL would close a conversational
    one; see the module docstring), and a ``response_prefix`` column lets the reward function
    score the prefix and the completion together, as the env sees the agent's action.

    Args:
        env: a recgym text env (``gym.make`` result or unwrapped).
        split: ``"train"``, ``"validation"`` or ``"test"``.
        indices: the episodes, in order (default: all episodes of the split).
        system_prompt: the system turn (``None`` for none); default Rec-R1's.
        response_prefix: the start of every reply (default none: conversational prompts).
        tokenizer: the policy's tokenizer (anything with transformers'
            ``apply_chat_template``); needed with ``response_prefix`` only.

    Returns:
        A :class:`datasets.Dataset` with columns ``prompt``, ``index`` and ``split`` (and
        ``response_prefix`` with a prefill).
    """
    from datasets import Dataset  # the optional "trl" extra; the reward function needs none

    scorer = text_scorer(env)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
    if response_prefix and not callable(getattr(tokenizer, "apply_chat_template", None)):
        raise ValueError(
            "response_prefix needs the policy's tokenizer (tokenizer=AutoTokenizer."
            "from_pretrained(...)) to render the prompts with the reply left open; got "
            f"{type(tokenizer).__name__}"
        )
    rows = list(range(scorer.num_episodes(split))) if indices is None else [int(i) for i in indices]
    observations = scorer.observations(rows, split)
    if observations and not isinstance(observations[0], str):
        raise TypeError(
            f"{type(scorer).__name__} observations are {type(observations[0]).__name__}, not "
            "text: prompt_dataset needs a text env such as RecSeq-v0 or RecSearch-v0"
        )
    prompts: list[Any] = [policy_messages(o, system_prompt, response_prefix) for o in observations]
    if not response_prefix:
        return Dataset.from_dict({"prompt": prompts, "index": rows, "split": [split] * len(rows)})
    texts = [
        tokenizer.apply_chat_template(
            p, tokenize=False, add_generation_prompt=False, continue_final_message=True
        )
        for p in prompts
    ]
    return Dataset.from_dict(
        {
            "prompt": texts,
            "index": rows,
            "split": [split] * len(rows),
            "response_prefix": [response_prefix] * len(rows),
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
        response_prefix: Sequence[str] | str | None = None,
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
            log_extra: TRL's completions-table logger: the parsed queries (envs without
                queries: the scored texts) go to ``<name>/query``.
            response_prefix: each completion's prefill (the dataset's ``response_prefix``
                column), or one for all: put back in front of the completion, since the env
                scores the whole reply.
            **kwargs: the trainer's other arguments (``prompts``, ``trainer_state``, ...),
                ignored.

        Returns:
            One float per completion (never ``None``; typed as TRL's ``RewardFunc`` wants).
        """
        n = len(completions)
        texts = [completion_text(c) for c in completions]
        if response_prefix is not None:
            prefixes = (
                [response_prefix] * n
                if isinstance(response_prefix, str)
                else [str(p) for p in response_prefix]
            )
            if len(prefixes) != n:
                raise ValueError(f"got {len(prefixes)} response prefixes for {n} completions")
            texts = [p + t for p, t in zip(prefixes, texts, strict=True)]
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
            # RecPref-v0's action is the text itself: it parses no query out of it.
            parsed = getattr(batch, "queries", None) or [texts[j] for j in where]
            for j, query in zip(where, parsed, strict=True):
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

    def _values(self, batch: TextScores) -> np.ndarray:
        """The chosen metric of a scored batch."""
        return np.asarray(_metric_values(batch, self.metric), dtype=float)


def _metric_values(batch: TextScores, metric: str) -> np.ndarray:
    """``metric`` of a scored batch: its rewards, its NDCG at ``k``, or one of its metrics."""
    if metric == "reward":
        return batch.rewards
    if metric == "ndcg":
        return batch.ndcg
    if metric not in batch.metrics:
        raise ValueError(
            f"metric must be one of {('reward', 'ndcg', *sorted(batch.metrics))} for this env; "
            f"got {metric!r}"
        )
    return batch.metrics[metric]


def reward_function(
    env: Any, *, split: str | None = None, metric: str = "reward", name: str | None = None
) -> EnvReward:
    """A TRL ``GRPOTrainer`` reward function that scores completions with a text env.

    It is called (by TRL 1.16) as ``f(completions=..., index=[...], split=[...], **kwargs)``
    with the columns of a :func:`prompt_dataset`, and returns one float per completion.
    Completions may be strings or conversational (the last assistant message is scored); a
    batch is scored with one call of the env's batched ``score`` (one per split if it mixes
    splits). A completion that fails the format gate gets the env's format penalty (the
    ``"rec-r1"`` reward's -2), never an exception. A ``response_prefix`` column (a
    :func:`prompt_dataset` with a prefill) is put back in front of each completion.

    Args:
        env: a recgym text env (``gym.make`` result or unwrapped); its ``reward=`` argument
            decides the ``"reward"`` metric.
        split: the split of the episode indices when the dataset has no ``split`` column
            (default: the env's split); if set, a ``split`` column must agree with it.
        metric: ``"reward"`` (the env's reward, format penalty included), ``"ndcg"`` (NDCG at
            the env's ``k``) or a key of the env's ``metrics`` such as ``"ndcg@10"`` (0 for a
            broken format).
        name: the name TRL logs it under (default ``"<env>_<metric>"``, e.g.
            ``"recseq_reward"``).

    Returns:
        The reward function, a callable :class:`EnvReward`.

    Raises:
        TypeError: ``env`` is not a recgym text env.
        ValueError: ``split`` or ``metric`` is not one the env has.
    """
    scorer = text_scorer(env)
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be None or one of {SPLITS}; got {split!r}")
    if metric not in ("reward", "ndcg"):
        # The metric names are the env's (ScoreBatch's, PrefScores'): ask it, with one empty
        # reply, now rather than after the trainer has loaded the model and sampled a batch.
        _metric_values(scorer.score([""], [0], split or scorer.split), metric)
    return EnvReward(scorer, name or f"{env_name(env)}_{metric}", metric, split)
