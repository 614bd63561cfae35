"""Iterative DPO from recommendation rewards for LLM policies on recgym's text envs
(RLRF4Rec / DPO4Rec's recipe).

RLRF4Rec (arXiv 2410.05939) has an LLM write N texts per user prompt and lets the environment
score each; the best and the worst of the N form a (chosen, rejected) pair when their rewards
differ (groups whose texts all score the same are skipped); the LLM is trained on the pairs
with DPO (beta 0.01, LoRA). That is one *round*; two rounds did best (a third overfit), each
sampling with the current policy and training a few epochs on its own pairs. Per round here:

1. take ``users_per_round`` train episodes and sample ``samples_per_prompt`` completions of
   each with :meth:`PolicyTrainer.rollout <agents.llm.training.PolicyTrainer.rollout>` (one
   batched ``score`` call per ``prompts_per_step`` episodes). The seed of a row comes from the
   episode's position in the seeded episode stream, so a round's samples do not depend on what
   ran before it;
2. pair each group's best and worst completion (:func:`preference_pairs`);
3. compute every pair's reference log-probabilities, once;
4. make ``epochs`` passes over the pairs in a seeded order, ``pair_batch_size`` pairs per AdamW
   step, with :func:`agents.llm.policy_loss.dpo_loss` on summed completion log-probs. Each
   round gets a fresh optimizer and linear schedule, because each round of the recipe is one
   DPO training run;
5. validate, keep the adapter if it is the best so far by validation NDCG@10, and checkpoint.

Round 0's validation is the untrained policy. The test split is evaluated once, at the end,
with the best adapter. A killed run, or one stopped by ``max_minutes`` (checked after each
round), resumes bit for bit from the last finished round.

Why a short loss of our own instead of TRL's ``DPOTrainer``: TRL's trainer fits one fixed
dataset of pairs per ``train()`` call, with its own checkpoints and evaluation loop. Every round
would then be a new TRL trainer. Its checkpoints would know nothing of the rounds, the episode
stream or the best-so-far adapter, and its evaluation is a loss on held-out pairs rather than
the env's metric on sampled completions. The loss itself is a few lines. With LoRA the reference
is the same model with its adapter disabled, and its log-probabilities are computed once per
round, since a pair's reference score cannot change within a round. So this trainer reuses the
sampling, scoring, validation, test, checkpoint/resume and summary of
:class:`~agents.llm.training.PolicyTrainer` (one machinery for GRPO, DPO and RecPO) and adds
only the pairing and the loss.

Run ``python -m agents.llm.dpo --help``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from agents.llm.grpo_config import GRPOConfig
from agents.llm.policy_loss import completion_logprobs, dpo_loss
from agents.llm.run_files import config_parser, log_record, parse_config, save_adapter
from agents.llm.sampling import Rollout
from agents.llm.trainer_utils import linear_schedule
from agents.llm.training import PolicyTrainer
from recgym.llm import LLM
from recgym.utils import atomic

__all__ = [
    "GRPO_ONLY",
    "REFERENCES",
    "DPOConfig",
    "DPOTrainer",
    "PreferencePairs",
    "main",
    "preference_pairs",
    "train_dpo",
]

REFERENCES = ("base", "round")

GRPO_ONLY = (
    "max_steps",
    "updates_per_batch",
    "clip_eps",
    "kl_coef",
    "advantage_eps",
    "sft_min_ndcg",
    "eval_every",
)
"""Fields of :class:`~agents.llm.grpo_config.GRPOConfig` that DPO does not read: they keep their
defaults and are not command-line flags."""


@dataclass(frozen=True)
class DPOConfig(GRPOConfig):
    """The recipe (defaults: RLRF4Rec's DPO, sized for SmolLM2-135M) and the run's bookkeeping.

    The fields shared with :class:`~agents.llm.grpo_config.GRPOConfig` mean the same there and here,
    except those in :data:`GRPO_ONLY`, which DPO does not read.
    """

    algorithms: ClassVar[tuple[str, ...]] = ("dpo",)

    algorithm: str = "dpo"
    """``dpo`` (the only value; it names the recipe in the summary and for the runner)."""
    env: str = "RecPref-v0"
    """A registered recgym text env (default ``RecPref-v0``, RLRF4Rec's task)."""
    system_prompt: bool = False
    """Send Rec-R1's system prompt before the observation (``RecPref-v0``'s prompt needs none;
    its judge was trained on texts written without one)."""
    max_new_tokens: int = 80
    """Completion budget in tokens (``RecPref-v0``'s judge read texts of at most 80)."""
    prompts_per_step: int = 8
    """Train episodes per generation and ``score`` call (the samples do not depend on it)."""
    samples_per_prompt: int = 10
    """Completions per episode, N; the best and the worst form a pair (RLRF4Rec: 10)."""
    temperature: float = 1.0
    """Sampling temperature of the rounds (diverse samples make pairs)."""
    eval_temperature: float | None = 0.0
    """Temperature of validation, test and the leaderboard command (0: greedy, one text per
    user as the judge's training texts were written)."""
    lr: float = 5e-5
    """Peak AdamW learning rate of each round (RLRF4Rec: 5e-5)."""
    warmup_steps: int = 0
    """Linear warm-up optimizer steps at the start of each round (then linear decay to 0 at
    the round's end)."""
    micro_batch_size: int = 4
    """Pairs per forward/backward pass, two completions each (gradient accumulation up to
    ``pair_batch_size``)."""
    rounds: int = 2
    """Rounds of sampling then training, T (RLRF4Rec: 2; a third overfit)."""
    users_per_round: int | None = 256
    """Train episodes sampled per round (from the ``train_episodes`` pool, each round taking
    the next ones of its seeded order); ``None``: the whole pool every round."""
    beta: float = 0.01
    """DPO's beta, the strength of the implicit KL to the reference (RLRF4Rec: 0.01)."""
    epochs: int = 3
    """Passes over each round's pairs (RLRF4Rec: 3)."""
    pair_margin: float = 0.0
    """Keep a group's pair only if the best reward exceeds the worst by more than this (0:
    any difference; a tied group never pairs)."""
    pair_batch_size: int = 16
    """Pairs per optimizer step (RLRF4Rec: 2 per device x 8 accumulation steps)."""
    reference: str = "base"
    """DPO's reference: ``base`` (the model with its adapter disabled) or ``round`` (the
    policy as the round starts, like a new DPO run from the last round's model)."""

    def __post_init__(self) -> None:
        if not self.lora:
            raise ValueError(
                "DPO's reference is the model with its adapter disabled: keep lora=True"
            )
        grpo = {f.name: f.default for f in dataclasses.fields(GRPOConfig)}
        changed = [name for name in GRPO_ONLY if getattr(self, name) != grpo[name]]
        if changed:
            raise ValueError(
                f"{', '.join(changed)}: GRPO settings that DPO does not read (a DPO run is "
                "`rounds` rounds of `epochs` passes over its pairs); leave them at their defaults"
            )
        super().__post_init__()
        for name in ("rounds", "epochs", "pair_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if self.users_per_round is not None and self.users_per_round < 1:
            raise ValueError(f"users_per_round must be >= 1 or None; got {self.users_per_round}")
        if self.beta <= 0 or self.pair_margin < 0:
            raise ValueError(
                f"need beta > 0 and pair_margin >= 0; got {self.beta}, {self.pair_margin}"
            )
        if self.reference not in REFERENCES:
            raise ValueError(f"reference must be one of {REFERENCES}; got {self.reference!r}")


def preference_pairs(
    rewards: np.ndarray, group_size: int, margin: float = 0.0
) -> list[tuple[int, int]]:
    """``(chosen, rejected)`` indices: the best and the worst completion of each group.

    ``rewards`` holds consecutive groups of ``group_size``. A group gives a pair only when its
    best reward exceeds its worst by more than ``margin``, so a group whose rewards are all
    equal never does. Among equal rewards the first completion is taken.
    """
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2 to compare completions; got {group_size}")
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 1 or len(r) % group_size:
        raise ValueError(f"rewards must be a flat array of groups of {group_size}; got {r.shape}")
    pairs = []
    for start in range(0, len(r), group_size):
        group = r[start : start + group_size]
        best, worst = int(np.argmax(group)), int(np.argmin(group))
        if group[best] - group[worst] > margin:
            pairs.append((start + best, start + worst))
    return pairs


@dataclass
class PreferencePairs:
    """One round's (chosen, rejected) pairs.

    Attributes:
        episodes: the train episode of each pair.
        prompt_ids: the tokens of each pair's rendered prompt (with the response prefix).
        chosen_ids: the tokens of the chosen (best) completion.
        rejected_ids: the tokens of the rejected (worst) completion.
        chosen_rewards: the env's reward of the chosen completion.
        rejected_rewards: the env's reward of the rejected completion.
    """

    episodes: list[int] = field(default_factory=list)
    prompt_ids: list[list[int]] = field(default_factory=list)
    chosen_ids: list[list[int]] = field(default_factory=list)
    rejected_ids: list[list[int]] = field(default_factory=list)
    chosen_rewards: list[float] = field(default_factory=list)
    rejected_rewards: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.episodes)

    def add(self, batch: Rollout) -> None:
        """Append the pairs that :class:`DPOTrainer` marked in ``batch.advantages`` (+1 chosen,
        -1 rejected, one of each per paired group)."""
        chosen = np.flatnonzero(batch.advantages > 0)
        rejected = np.flatnonzero(batch.advantages < 0)
        for c, r in zip(chosen.tolist(), rejected.tolist(), strict=True):
            self.episodes.append(int(batch.episodes[c]))
            self.prompt_ids.append(batch.prompt_ids[c])
            self.chosen_ids.append(batch.completion_ids[c])
            self.rejected_ids.append(batch.completion_ids[r])
            self.chosen_rewards.append(float(batch.rewards[c]))
            self.rejected_rewards.append(float(batch.rewards[r]))


def train_dpo(
    config: DPOConfig,
    env: gym.Env[Any, Any] | None = None,
    llm: LLM | None = None,
    generator: LLM | None = None,
) -> dict[str, Any]:
    """Train an LLM policy by iterative DPO; shorthand for ``DPOTrainer(...).train()``."""
    return DPOTrainer(config, env, llm, generator).train()


class DPOTrainer(PolicyTrainer):
    """Trains an LLM policy by iterative DPO on a recgym text env (see the module docstring).

    Takes the arguments of :class:`~agents.llm.training.PolicyTrainer`, with a
    :class:`DPOConfig`. ``run["step"]`` counts finished rounds: :meth:`train` runs ``rounds``
    rounds (or until ``max_minutes``) and validates after each; the summary's ``history``
    holds the validation after each round (round 0 = the untrained policy), ``best_step`` is
    the best round, and it adds ``updates`` (optimizer steps) and ``pairs`` (per round).
    """

    command_prog: ClassVar[str] = "python -m agents.llm.dpo"
    command_exclude: ClassVar[tuple[str, ...]] = ("algorithm", "lora", *GRPO_ONLY)  # fixed

    unit: ClassVar[str] = "round"
    config: DPOConfig

    def __init__(
        self,
        config: DPOConfig,
        env: gym.Env[Any, Any] | None = None,
        llm: LLM | None = None,
        generator: LLM | None = None,
    ) -> None:
        if not isinstance(config, DPOConfig):
            raise TypeError(f"DPOTrainer takes a DPOConfig; got {type(config).__name__}")
        super().__init__(config, env, llm, generator)
        self.run.update({"updates": 0, "pairs": []})

    # ----- the hooks of PolicyTrainer -----------------------------------------------------------

    @property
    def total_steps(self) -> int:
        """``rounds``."""
        return self.config.rounds

    def train_step(self) -> dict[str, Any]:
        """One :meth:`train_round`; the progress bar shows its number of pairs."""
        return {"pairs": int(self.train_round()["pairs"])}

    def validation_due(self) -> bool:
        """After every round."""
        return True

    def evaluate(self) -> None:
        """Validate (keeping the best adapter); after a round, also keep its adapter
        (:meth:`save_round`)."""
        super().evaluate()
        if self.run["step"] > 0:
            self.save_round()

    def save_round(self) -> Path:
        """Keep this round's adapter in ``rounds/<round>/`` with a small ``training.json``, so
        each round can have its own leaderboard row (``--agent dpo``), not only the best one."""
        run = self.run
        summary = {
            "algorithm": self.config.algorithm,
            "round": run["step"],
            "best_step": run["step"],
            "best_metric": run["history"][-1][self.config.select_metric],
            "steps": run["step"],
            "train_minutes": round(self.minutes(), 3),
            "device": self.device_name,
            "seed": self.config.seed,
            "config": dataclasses.asdict(self.config),
        }

        def write(folder: Path) -> None:
            save_adapter(self.model, folder)
            (folder / "training.json").write_text(json.dumps(summary, indent=2) + "\n")

        # Swapped in whole: a kill mid-write leaves no half-written round folder.
        return atomic.replace_dir(self.out / "rounds" / str(run["step"]), write)

    def train_round(self) -> dict[str, float]:
        """Sample, pair and train one round; returns (and logs) the sampling statistics.

        Logs one record for the round's samples (reward, format rate, NDCG, ``pairs``,
        ``tied_groups``, ``reward_gap``: the mean best-minus-worst reward of the pairs) and one
        per optimizer step (:func:`~agents.llm.policy_loss.dpo_loss`'s loss and statistics).
        """
        cfg, run = self.config, self.run
        rnd = run["step"] + 1
        t0 = time.perf_counter()
        n = min(cfg.users_per_round or len(self.episodes.pool), len(self.episodes.pool))
        users, cursor = self.episodes.take(run["cursor"], n)
        pairs, stats = self.sample_pairs(users, run["cursor"])
        t1 = time.perf_counter()
        stats["rollout_seconds"] = t1 - t0
        log_record(self.out, {"step": rnd, "round": rnd, **stats})
        refs = self.reference_logprobs(pairs)
        self.fit(pairs, refs, rnd)
        run["cursor"], run["step"] = cursor, rnd
        run["pairs"].append(len(pairs))
        stats["update_seconds"] = time.perf_counter() - t1
        return stats

    def advantages(self, rewards: np.ndarray, ndcg: np.ndarray) -> np.ndarray:
        """+1 on each group's chosen completion, -1 on its rejected one, 0 elsewhere."""
        marks = np.zeros(len(rewards))
        for c, r in preference_pairs(
            rewards, self.config.samples_per_prompt, self.config.pair_margin
        ):
            marks[c], marks[r] = 1.0, -1.0
        return marks

    def sample_pairs(
        self, users: Sequence[int], position: int
    ) -> tuple[PreferencePairs, dict[str, float]]:
        """Sample and score a group for each of ``users`` and pair each group's best and worst.

        ``users`` are the train episodes at positions ``position, position + 1, ...`` of the
        episode stream; row ``j`` of the episode at position ``p`` is sampled with seed
        ``(config.seed, p * N + j)`` (GRPO's step seeds are the same rule).

        Returns:
            The pairs, and statistics of all the samples.
        """
        cfg = self.config
        g = cfg.samples_per_prompt
        pairs = PreferencePairs()
        parts: dict[str, list[np.ndarray]] = {}
        for lo in range(0, len(users), cfg.prompts_per_step):
            chunk = [int(u) for u in users[lo : lo + cfg.prompts_per_step]]
            batch = self.rollout(0, chunk, first_row=(position + lo) * g)
            pairs.add(batch)
            parts.setdefault("reward", []).append(batch.rewards)
            for key in ("format_ok", "ndcg", "ndcg@10"):
                parts.setdefault(key, []).append(batch.metrics[key])
            lengths = np.array([len(c) for c in batch.completion_ids], dtype=np.float64)
            parts.setdefault("completion_tokens", []).append(lengths)
        values = {k: np.concatenate(v) for k, v in parts.items()}
        groups = values["reward"].reshape(-1, g)
        gaps = np.subtract(pairs.chosen_rewards, pairs.rejected_rewards)
        stats = {k: float(v.mean()) for k, v in values.items()}
        stats.update(
            reward_std=float(values["reward"].std()),
            groups=float(len(users)),
            pairs=float(len(pairs)),
            tied_groups=float(np.mean(groups.max(axis=1) == groups.min(axis=1))),
            reward_gap=float(gaps.mean()) if len(gaps) else 0.0,
        )
        return pairs, stats

    def _pair_logprobs(
        self, pairs: PreferencePairs, rows: Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed log-probs ``(len(rows),)`` of the chosen and the rejected completions of
        ``rows`` under the current model, in one forward pass."""
        prompts = [pairs.prompt_ids[i] for i in rows]
        completions = [pairs.chosen_ids[i] for i in rows] + [pairs.rejected_ids[i] for i in rows]
        with self.autocast():
            logp, mask = completion_logprobs(
                self.model, prompts + prompts, completions, self.pad_id
            )
        sums = (logp * mask).sum(dim=-1)
        return sums[: len(rows)], sums[len(rows) :]

    def reference_logprobs(self, pairs: PreferencePairs) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed log-probs ``(P,)`` of every pair's chosen and rejected completion under the
        reference (``config.reference``), computed once per round."""
        self.model.eval()
        size = self.config.micro_batch_size
        reference = (
            self.model.disable_adapter()  # the base model is the reference
            if self.config.reference == "base"
            else contextlib.nullcontext()  # the policy as the round starts
        )
        chosen, rejected = [torch.zeros(0)], [torch.zeros(0)]
        with torch.no_grad(), reference:
            for lo in range(0, len(pairs), size):
                c, r = self._pair_logprobs(pairs, range(lo, min(lo + size, len(pairs))))
                chosen.append(c.cpu())
                rejected.append(r.cpu())
        return torch.cat(chosen), torch.cat(rejected)

    def fit(
        self, pairs: PreferencePairs, refs: tuple[torch.Tensor, torch.Tensor], rnd: int
    ) -> None:
        """``epochs`` passes over ``pairs`` (seeded by round and epoch) with a fresh AdamW and
        linear schedule; logs each optimizer step."""
        cfg, run = self.config, self.run
        n = len(pairs)
        total = cfg.epochs * math.ceil(n / cfg.pair_batch_size)
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=0.0)
        self.schedule = linear_schedule(self.optimizer, cfg.warmup_steps, total)
        if n == 0:  # every group tied: nothing to learn this round
            return
        self.model.train()
        for epoch in range(1, cfg.epochs + 1):
            order = np.random.default_rng([cfg.seed, rnd, epoch]).permutation(n)
            for lo in range(0, n, cfg.pair_batch_size):
                stats = self.update_pairs(pairs, refs, order[lo : lo + cfg.pair_batch_size])
                run["updates"] += 1
                record = {"step": rnd, "round": rnd, "epoch": epoch, "update": run["updates"]}
                log_record(self.out, {**record, **stats})
        self.model.eval()

    def update_pairs(
        self,
        pairs: PreferencePairs,
        refs: tuple[torch.Tensor, torch.Tensor],
        rows: np.ndarray,
    ) -> dict[str, float]:
        """One optimizer step on the pairs ``rows``, in micro-batches; returns the DPO loss and
        the means of :func:`~agents.llm.policy_loss.dpo_loss`'s statistics."""
        cfg = self.config
        lr = float(self.schedule.get_last_lr()[0])
        stats: dict[str, float] = {"loss": 0.0}
        for lo in range(0, len(rows), cfg.micro_batch_size):
            chunk = [int(i) for i in rows[lo : lo + cfg.micro_batch_size]]
            chosen, rejected = self._pair_logprobs(pairs, chunk)
            index = torch.as_tensor(chunk)
            loss, info = dpo_loss(
                chosen,
                rejected,
                refs[0][index].to(chosen.device),
                refs[1][index].to(chosen.device),
                beta=cfg.beta,
                total_pairs=len(rows),
            )
            if loss.requires_grad:  # not when every completion of the chunk is empty
                loss.backward()
            stats["loss"] += float(loss.detach())
            for key, value in info.items():
                stats[key] = stats.get(key, 0.0) + value * len(chunk) / len(rows)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
        self.optimizer.step()
        self.schedule.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {**stats, "grad_norm": float(grad_norm), "pairs": float(len(rows)), "lr": lr}

    def summary_extra(self) -> dict[str, Any]:
        return {"updates": self.run["updates"], "pairs": self.run["pairs"]}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``python -m agents.llm.dpo``: train and print the summary (no history)."""
    parser = config_parser(
        DPOConfig,
        DPOTrainer.command_prog,
        __doc__.split("\n")[0] + " " + __doc__.split("\n")[1],
        exclude=DPOTrainer.command_exclude,
    )
    summary = train_dpo(parse_config(DPOConfig, vars(parser.parse_args(argv))))
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2))
    return summary


if __name__ == "__main__":
    main()
