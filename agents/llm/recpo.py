"""RecPO: RL for a reasoning recommender with a recommendation head on ``RecNext-v0`` (R²ec).

R²ec (arXiv 2505.16994) trains one LLM to reason and to recommend, with no reasoning labels.
The model is described in :mod:`agents.llm.rec_head`: reasoning that ends with ``<answer>``,
the hidden state there scored against item vectors that the same model computes. Each step here:

1. take ``prompts_per_step`` train episodes and sample ``samples_per_prompt`` traces of each
   (R²ec: G = 4, temperature 1.5 to 2). Generation stops at ``<answer>``; a trace cut by the
   budget is read out after an appended marker;
2. read each trace's user vector and score every movie against the item table. R²ec's cached
   table is rebuilt from the current weights at each evaluation, and the rows of the batch's
   targets are re-encoded each step (``item_refresh="all"`` rebuilds it all each step
   instead: see that field for the bias of the first). ``RecNext-v0``'s batched scorer gives
   the rewards: the env's ``reward="fused"`` is R²ec's
   ``beta * NDCG@k + (1 - beta) * p(target)``, and ``reward="ndcg"`` is the NDCG-only ablation;
3. compute group-normalised (GRPO) or leave-one-out (RLOO) advantages, and apply token-level
   PPO-clip on the reasoning tokens (no KL, as R²ec);
4. add R²ec's item loss: the best trace of each group (if its advantage is positive), its user
   vector against the step's distinct targets, in-batch softmax of cosine / ``tau``, weighted
   by that advantage. Gradients reach both the user vector and the target items' encoding.

``reasoning=False`` is the "no reasoning" ablation. The reply is prefilled with ``<answer>``,
the user vector comes straight from the prompt, and only the item loss trains (weight 1 for
every episode).

Everything else is :class:`~agents.llm.grpo.GRPOTrainer`'s (the PPO-clip update) and
:class:`~agents.llm.training.PolicyTrainer`'s: LoRA, validation-only selection by
NDCG@10 (greedy reasoning), the one test evaluation at the end, checkpoints that resume bit for
bit (the item table is saved with them), logs, curves and the summary.

Run ``python -m agents.llm.recpo --help``.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from agents.llm.grpo import GRPOTrainer
from agents.llm.grpo_config import GRPOConfig
from agents.llm.policy_loss import ADVANTAGES, group_advantages
from agents.llm.rec_head import ANSWER, RecHeadAgent
from agents.llm.run_files import config_parser, parse_config
from agents.llm.sampling import Rollout
from recgym.llm import LLM
from recgym.metrics import metrics_at_rank

__all__ = [
    "ITEM_REFRESH",
    "RecPOConfig",
    "RecPORollout",
    "RecPOTrainer",
    "best_traces",
    "main",
    "next_scorer",
    "train_recpo",
]

ITEM_REFRESH = ("targets", "all")

_NEXT_MEMBERS = ("num_episodes", "observations", "score", "target", "task", "reward_name", "k")


@dataclass(frozen=True)
class RecPOConfig(GRPOConfig):
    """The recipe (defaults: R²ec's RecPO, sized for SmolLM2-135M) and the run's bookkeeping.

    The fields shared with :class:`~agents.llm.grpo_config.GRPOConfig` mean the same there and here;
    ``algorithm`` names the recipe, and ``advantage`` picks GRPO or RLOO.
    """

    algorithms: ClassVar[tuple[str, ...]] = ("recpo",)

    algorithm: str = "recpo"
    """``recpo`` (the only value; it names the recipe in the summary and for the runner)."""
    advantage: str = "grpo"
    """``grpo`` (group-normalised, R²ec's default) or ``rloo`` (leave-one-out)."""
    env: str = "RecNext-v0"
    """A registered next-item env with score-vector actions (``RecNext-v0``)."""
    env_kwargs: dict[str, Any] = field(default_factory=lambda: {"reward": "fused"})
    """Extra ``gym.make`` arguments of the env (default: R²ec's fused reward; ``{"reward":
    "ndcg"}`` for the NDCG-only ablation)."""
    reasoning: bool = True
    """Reason before ``<answer>`` (``False``: the no-reasoning ablation, see the module
    docstring)."""
    system_prompt: bool = False
    """Send Rec-R1's system prompt first (``RecNext-v0``'s prompt is self-contained)."""
    samples_per_prompt: int = 4
    """Reasoning traces per episode, G (R²ec: 4; ignored without reasoning)."""
    max_new_tokens: int = 128
    """Reasoning budget in tokens (R²ec: 300 to 640, for 2B to 3B models)."""
    temperature: float = 1.0
    """Sampling temperature of the traces (R²ec: 1.5 to 2.0 with top-k 50 on Gemma-2B; a
    135M model's text falls apart above 1)."""
    eval_temperature: float | None = 0.0
    """Temperature of validation, test and the leaderboard command (0: greedy, as R²ec's
    inference)."""
    lr: float = 5e-5
    """Peak AdamW learning rate (R²ec: 1e-5 with LoRA r 4, alpha 128)."""
    kl_coef: float = 0.0
    """Weight of the k3 KL penalty to the base model (R²ec: none)."""
    item_loss_coef: float = 1.0
    """Weight of the item loss (0: reasoning tokens only)."""
    item_refresh: str = "targets"
    """What a step re-encodes before scoring: ``targets`` (R²ec: the batch's targets, written
    into the table built at the last evaluation) or ``all`` (the whole table, from the current
    weights). With ``targets`` only the target rows are fresh, so weight drift that moves
    users and fresh items together favours the target over the stale rows in the train
    reward; ``all`` has no such bias and costs one table build per step."""
    eval_episodes: int | None = 200
    """Validation episodes (the first ones of the split); ``None``: all."""
    eval_batch_size: int = 16
    """Prompts per evaluation batch, and item prompts per forward pass of the item table."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.advantage not in ADVANTAGES:
            raise ValueError(f"advantage must be one of {ADVANTAGES}; got {self.advantage!r}")
        if self.item_loss_coef < 0:
            raise ValueError(f"item_loss_coef must be >= 0; got {self.item_loss_coef}")
        if not self.reasoning and not self.item_loss_coef:
            raise ValueError("without reasoning only the item loss trains: item_loss_coef > 0")
        if self.item_refresh not in ITEM_REFRESH:
            raise ValueError(
                f"item_refresh must be one of {ITEM_REFRESH}; got {self.item_refresh!r}"
            )
        if self.response_prefix:
            raise ValueError("RecPO's reply is the reasoning itself: leave response_prefix empty")


def next_scorer(env: gym.Env[Any, Any]) -> Any:
    """``env.unwrapped`` if RecPO can train on it: a ``Dict`` observation with a ``"prompt"``,
    a ``Box`` of item scores as the action, and ``num_episodes``, ``observations``, ``score``,
    ``target``, ``task`` (with ``texts``), ``reward_name``, ``k`` and ``tau`` (as
    ``RecNext-v0``).

    Raises:
        TypeError: the env is not such a next-item env.
    """
    inner = env.unwrapped
    members = (*_NEXT_MEMBERS, "tau")
    missing = [m for m in members if inspect.getattr_static(inner, m, None) is None]
    obs = getattr(inner, "observation_space", None)
    spaces_ok = (
        isinstance(obs, spaces.Dict)
        and "prompt" in obs.spaces
        and isinstance(getattr(inner, "action_space", None), spaces.Box)
    )
    if missing or not spaces_ok:
        why = f"it lacks {', '.join(missing)}" if missing else "its spaces do not match"
        raise TypeError(
            "env must be a next-item env like RecNext-v0 (a Dict observation with a 'prompt', "
            f"a Box of item scores as the action, and {', '.join(members)} on env.unwrapped); "
            f"got {type(inner).__name__}, and {why}"
        )
    return inner


def best_traces(advantages: np.ndarray, group_size: int) -> np.ndarray:
    """Item-loss weights: each group's highest advantage on its trace if positive, else 0
    (R²ec relabels the top trace of each group)."""
    groups = np.asarray(advantages, dtype=np.float64).reshape(-1, group_size)
    weights = np.zeros_like(groups)
    best = groups.argmax(axis=1)
    rows = np.arange(len(groups))
    weights[rows, best] = np.maximum(groups[rows, best], 0.0)
    return weights.reshape(-1)


@dataclass
class RecPORollout(Rollout):
    """A step's traces, scored; :class:`~agents.llm.sampling.Rollout` plus what the item loss
    needs.

    Attributes:
        readout_ids: the tokens each user vector is read from (prompt, reasoning, marker).
        targets: ``(N,)`` the held-out item of each row's episode.
        item_weights: ``(N,)`` the item loss's weight of each row (0: not trained on).
    """

    readout_ids: list[list[int]]
    targets: np.ndarray
    item_weights: np.ndarray


def train_recpo(
    config: RecPOConfig, env: gym.Env[Any, Any] | None = None, llm: LLM | None = None
) -> dict[str, Any]:
    """Train a reasoning recommender; shorthand for ``RecPOTrainer(...).train()``."""
    return RecPOTrainer(config, env, llm).train()


class RecPOTrainer(GRPOTrainer):
    """Trains a reasoning recommender with RecPO on a next-item env (see the module docstring).

    Args:
        config: the recipe.
        env: a ``RecNext-v0`` env (default ``gym.make(config.env, **config.env_kwargs)``).
        llm: the model to train (default: ``config.model`` in float32); it samples its own
            traces, since the user vector is read from the sampled tokens.

    Attributes:
        agent: the policy as a :class:`~agents.llm.rec_head.RecHeadAgent`; ``agent.head`` holds
            the item table.
    """

    command_prog: ClassVar[str] = "python -m agents.llm.recpo"
    # Fixed by RecPO, or not read by it.
    command_exclude: ClassVar[tuple[str, ...]] = ("algorithm", "response_prefix", "sft_min_ndcg")

    config: RecPOConfig
    agent: RecHeadAgent

    def __init__(
        self,
        config: RecPOConfig,
        env: gym.Env[Any, Any] | None = None,
        llm: LLM | None = None,
    ) -> None:
        if not isinstance(config, RecPOConfig):
            raise TypeError(f"RecPOTrainer takes a RecPOConfig; got {type(config).__name__}")
        super().__init__(config, env, llm)
        self.head = self.agent.head
        self.tau = float(self.scorer.tau)

    # ----- the parts of PolicyTrainer replaced -------------------------------------------------

    @staticmethod
    def scorer_of(env: gym.Env[Any, Any]) -> Any:
        """The env's batched scorer (:func:`next_scorer`)."""
        return next_scorer(env)

    def make_agent(self) -> RecHeadAgent:
        """The policy evaluation runs: greedy reasoning (``eval_temperature``), then the head."""
        cfg = self.config
        return RecHeadAgent(
            self.llm,
            item_texts=self.scorer.task.texts,
            reasoning=cfg.reasoning,
            max_new_tokens=cfg.max_new_tokens,
            temperature=self.eval_temperature,
            top_p=cfg.top_p,
            batch_size=cfg.eval_batch_size,
        )

    def prompt_of(self, observation: Any) -> str:
        """The observation's ``"prompt"``."""
        return str(observation["prompt"])

    def agent_kwargs(self) -> dict[str, Any]:
        """``--agent-kwargs`` of the ``recpo`` agent for this run."""
        cfg = self.config
        return {
            "model": cfg.model,
            "adapter": str(self.out),
            "reasoning": cfg.reasoning,
            "max_new_tokens": cfg.max_new_tokens,
            "temperature": self.eval_temperature,
            "top_p": cfg.top_p,
            "batch_size": cfg.eval_batch_size,
        }

    @property
    def group_size(self) -> int:
        """Traces per episode: ``samples_per_prompt``, or 1 without reasoning."""
        return self.config.samples_per_prompt if self.config.reasoning else 1

    # ----- rollouts -----------------------------------------------------------------------------

    def rollout(
        self, step: int, indices: Sequence[int], *, first_row: int | None = None
    ) -> RecPORollout:
        """Sample traces of each train episode, read their user vectors, score every item, and
        weigh each row for the policy and the item losses (seeded as
        :meth:`PolicyTrainer.rollout <agents.llm.training.PolicyTrainer.rollout>`)."""
        cfg, head = self.config, self.head
        g = self.group_size
        if cfg.reasoning:
            episodes, prompt_ids, gens = self.sample(
                step, indices, first_row=first_row, stop=[ANSWER]
            )
            completion_ids = [list(gen.token_ids) for gen in gens]
            readouts = [
                p + head.with_answer(c) for p, c in zip(prompt_ids, completion_ids, strict=True)
            ]
            texts = [gen.text for gen in gens]
            ended = [head.has_answer(c) for c in completion_ids]
        else:
            episodes = np.asarray(indices, dtype=np.int64)
            observations = self.scorer.observations([int(i) for i in indices], "train")
            # The reply is prefilled with the marker: the prompt is the readout.
            readouts = [head.prompt_ids(self.prompt_of(o), True) for o in observations]
            prompt_ids, completion_ids = readouts, [[] for _ in readouts]
            texts, ended = [""] * len(readouts), [True] * len(readouts)
        targets = np.asarray(
            [self.scorer.target(int(i), "train") for i in episodes], dtype=np.int64
        )
        self.model.eval()
        with torch.no_grad(), self.autocast():
            if cfg.item_refresh == "all":
                head.refresh(None)
                head.table()  # every row, targets included, from the current weights
            else:
                head.table()  # built from the current weights if an evaluation dropped it
                head.refresh(np.unique(targets).tolist())
            users = head.encode_batches(readouts)
        result = self.scorer.score(head.scores(users), episodes.tolist(), "train")
        rewards = np.asarray(result.rewards, dtype=np.float64)
        if g > 1:
            advantages = group_advantages(rewards, g, cfg.advantage, cfg.advantage_eps)
            item_weights = best_traces(advantages, g)
        else:
            advantages, item_weights = np.zeros(len(rewards)), np.ones(len(rewards))
        metrics = {
            **result.metrics,
            "format_ok": np.asarray(ended, dtype=np.float64),
            "ndcg": metrics_at_rank(result.ranks, self.scorer.k, (self.scorer.k,), ("ndcg",))[
                f"ndcg@{self.scorer.k}"
            ],
        }
        return RecPORollout(
            episodes,
            prompt_ids,
            completion_ids,
            texts,
            rewards,
            advantages,
            metrics,
            readout_ids=readouts,
            targets=targets,
            item_weights=item_weights,
        )

    # ----- the item loss ------------------------------------------------------------------------

    def extra_rows(self, batch: Rollout) -> list[int]:
        """The rows the item loss trains on (positive weight)."""
        if not self.config.item_loss_coef or not isinstance(batch, RecPORollout):
            return []
        return [int(i) for i in np.flatnonzero(batch.item_weights > 0)]

    def extra_backward(self, batch: Rollout, rows: list[int]) -> dict[str, float]:
        """R²ec's item loss on ``rows``: each user vector against the distinct targets of the
        rows (in-batch softmax of cosine / ``tau``), cross-entropy weighted by ``item_weights``,
        averaged over the rows."""
        assert isinstance(batch, RecPORollout)
        items, labels = np.unique(batch.targets[rows], return_inverse=True)
        weights = torch.as_tensor(batch.item_weights[rows], dtype=torch.float32)
        with self.autocast():
            users = self.head.encode([batch.readout_ids[i] for i in rows])
            vectors = self.head.encode_items(items.tolist())
        logits = users @ vectors.T / self.tau
        ce = torch.nn.functional.cross_entropy(
            logits, torch.as_tensor(labels, device=logits.device), reduction="none"
        )
        loss = self.config.item_loss_coef * (weights.to(ce.device) * ce).sum() / len(rows)
        loss.backward()
        return {"loss": float(loss.detach()), "item_ce": float(ce.detach().mean())}

    # ----- evaluation and checkpoints ---------------------------------------------------------

    def evaluate_split(self, split: str, indices: Sequence[int], seed: int) -> dict[str, float]:
        """Rebuild the item table from the current weights, then evaluate (as R²ec)."""
        self.head.refresh(None)
        return super().evaluate_split(split, indices, seed)

    def checkpoint_extra(self, folder: Path) -> None:
        """The item table the next rollouts read (so a resumed run goes on bit for bit), in the
        checkpoint being written."""
        torch.save(self.head.table(), folder / "items.pt")

    def restore_checkpoint(self, state: dict[str, Any]) -> None:
        """The checkpoint, with its item table."""
        super().restore_checkpoint(state)
        path = self.out / "checkpoint" / "items.pt"
        # A checkpoint written before the table was part of the atomic write may lack it: the
        # table is then rebuilt from the checkpoint's weights.
        self.head.set_table(torch.load(path) if path.is_file() else None)

    def summary_extra(self) -> dict[str, Any]:
        return {"reasoning": self.config.reasoning, "advantage": self.config.advantage}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``python -m agents.llm.recpo``: train and print the summary (no history)."""
    parser = config_parser(
        RecPOConfig,
        RecPOTrainer.command_prog,
        __doc__.split("\n")[0],
        exclude=RecPOTrainer.command_exclude,
    )
    summary = train_recpo(parse_config(RecPOConfig, vars(parser.parse_args(argv))))
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2))
    return summary


if __name__ == "__main__":
    main()
