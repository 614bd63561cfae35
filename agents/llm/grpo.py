"""RL from recommendation metrics for LLM policies on recgym's text envs (Rec-R1's recipe).

Each step samples ``prompts_per_step`` train episodes and ``samples_per_prompt`` completions of
each (a *group*), scores them all with one call of the env's batched scorer, and updates the
policy:

- ``algorithm="grpo"``: group-normalised advantages ``(r - mean) / (std + eps)``;
- ``algorithm="rloo"``: leave-one-out advantages ``r - mean(others)``;
- ``algorithm="rs-sft"``: rejection-sampling fine-tuning, the SFT baseline a user without a
  stronger teacher model would run: the best completion of each group, if it retrieved the
  target, is fine-tuned on by plain likelihood. Same samples, same steps: the same budget.

The policy loss is token-level PPO-clip (:func:`agents.llm.policy_loss.policy_loss`) with an
optional k3 KL penalty to the reference model. With LoRA the reference is the same model with
its adapter disabled, so there is no second copy of the weights.

On CUDA, rollouts are sampled by :class:`recgym.llm.static.StaticCacheLLM` (a static KV cache
and a CUDA-graph decode step, reading the adapter's current weights at every step;
``fast_generation=False`` goes back to transformers' ``generate``). The log splits each step's
time into ``generation_seconds``, ``scoring_seconds`` and ``update_seconds``.

The recipe is :class:`~agents.llm.grpo_config.GRPOConfig`; the rest is
:class:`~agents.llm.training.PolicyTrainer`'s, shared with DPO and RecPO. Validation runs on a
fixed subset of the validation split every ``eval_every`` steps (step 0 is the untrained
model); the best adapter by validation NDCG@10 (``select_metric``) is kept;
the test split is evaluated once, with that adapter, at the end. Checkpoints make a killed run
(or a run cut by ``max_minutes``) resume where it stopped, bit for bit: rollouts are seeded by
step.

Run ``python -m agents.llm.grpo --help``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from agents.llm.grpo_config import ALGORITHMS, GRPOConfig
from agents.llm.policy_loss import completion_logprobs, group_advantages, policy_loss, sft_loss
from agents.llm.run_files import config_parser, log_record, parse_config, plot_run
from agents.llm.sampling import Rollout
from agents.llm.text_env import TextScorer, text_scorer
from agents.llm.training import PolicyTrainer
from recgym.llm import LLM

__all__ = [
    "ALGORITHMS",
    "GRPOConfig",
    "GRPOTrainer",
    "Rollout",
    "TextScorer",
    "main",
    "plot_run",
    "text_scorer",
    "train_grpo",
]


def train_grpo(
    config: GRPOConfig,
    env: gym.Env[Any, Any] | None = None,
    llm: LLM | None = None,
    generator: LLM | None = None,
) -> dict[str, Any]:
    """Train an LLM policy on a recgym text env; shorthand for ``GRPOTrainer(...).train()``."""
    return GRPOTrainer(config, env, llm, generator).train()


class GRPOTrainer(PolicyTrainer):
    """Trains an LLM policy with GRPO, RLOO or rejection-sampling SFT (see the module docstring).

    Takes the arguments of :class:`~agents.llm.training.PolicyTrainer`, which does the
    sampling, validation, test, checkpoints and summary; this class adds the advantages and the
    update. A recipe that adds a loss to the policy loss (RecPO's item loss) fills in
    :meth:`extra_rows` and :meth:`extra_backward`.

    Attributes:
        agent: the policy as a :class:`~agents.llm.zero_shot.ZeroShotLLMAgent`, which
            evaluates it.
    """

    def extra_rows(self, batch: Rollout) -> list[int]:
        """Rows of ``batch`` that :meth:`extra_backward` trains on besides the policy loss
        (none here)."""
        return []

    def extra_backward(self, batch: Rollout, rows: list[int]) -> dict[str, float]:
        """Backpropagate a loss besides the policy loss on ``rows`` (called once per optimizer
        step, before the gradient is clipped); returns its statistics, ``"loss"`` included."""
        raise NotImplementedError

    def train_step(self) -> dict[str, Any]:
        """One :meth:`step`; the progress bar shows its mean reward."""
        return {"reward": f"{self.step()['reward']:.3f}"}

    def advantages(self, rewards: np.ndarray, ndcg: np.ndarray) -> np.ndarray:
        """Each completion's loss weight (groups of ``samples_per_prompt`` are consecutive):
        group-normalised (``grpo``), leave-one-out (``rloo``), or 1 on each group's best
        (``rs-sft``)."""
        cfg = self.config
        if cfg.algorithm == "rs-sft":
            return _best_of_group(rewards, ndcg, cfg.samples_per_prompt, cfg.sft_min_ndcg)
        return group_advantages(rewards, cfg.samples_per_prompt, cfg.algorithm, cfg.advantage_eps)

    def step(self) -> dict[str, float]:
        """Roll out, score, and take ``updates_per_batch`` optimizer steps; returns statistics."""
        cfg, run = self.config, self.run
        t0 = time.perf_counter()
        indices, cursor = self.episodes.take(run["cursor"], cfg.prompts_per_step)
        batch = self.rollout(run["step"], indices)
        t1 = time.perf_counter()
        stats = self.update(batch)
        t2 = time.perf_counter()
        run["cursor"] = cursor
        run["step"] += 1
        lengths = [len(c) for c in batch.completion_ids]
        record = {
            "step": run["step"],
            "reward": float(batch.rewards.mean()),
            "reward_std": float(batch.rewards.std()),
            "format_ok": float(batch.metrics["format_ok"].mean()),
            "ndcg": float(batch.metrics["ndcg"].mean()),
            "ndcg@10": float(batch.metrics["ndcg@10"].mean()),
            "completion_tokens": float(np.mean(lengths)),
            "zero_std_groups": float(_zero_std_share(batch.rewards, self.group_size)),
            **stats,
            "lr": float(self.schedule.get_last_lr()[0]),
            "rollout_seconds": t1 - t0,
            **self.timing,
            "update_seconds": t2 - t1,
            "seconds": self.minutes() * 60,
        }
        log_record(self.out, record)
        return record

    def update(self, batch: Rollout) -> dict[str, float]:
        """Optimizer steps on one rollout batch, in micro-batches; returns mean statistics."""
        cfg = self.config
        # A zero-advantage completion adds no policy gradient, only its KL term; it is skipped
        # (TRL keeps it), which saves its forward and backward passes when groups tie.
        rows = [
            i
            for i in range(len(batch.actions))
            if batch.advantages[i] != 0 and len(batch.completion_ids[i]) > 0
        ]
        extra = self.extra_rows(batch)
        stats: dict[str, list[float]] = {"loss": [], "clip_frac": [], "kl": []}
        if not rows and not extra:  # every group tied: no gradient; no-op steps keep the schedule
            for _ in range(cfg.updates_per_batch):
                self.optimizer.step()
                self.schedule.step()
            return {"loss": 0.0, "clip_frac": 0.0, "kl": 0.0, "trained_rows": 0.0}
        total = sum(len(batch.completion_ids[i]) for i in rows)
        size = cfg.micro_batch_size
        chunks = [rows[i : i + size] for i in range(0, len(rows), size)]
        old = self._old_logprobs(batch, chunks) if cfg.updates_per_batch > 1 else None
        refs = self._reference_logprobs(batch, chunks)
        self.model.train()
        for _ in range(cfg.updates_per_batch):
            step_loss = 0.0
            for c, chunk in enumerate(chunks):
                with self.autocast():
                    logp, mask = completion_logprobs(
                        self.model,
                        [batch.prompt_ids[i] for i in chunk],
                        [batch.completion_ids[i] for i in chunk],
                        self.pad_id,
                    )
                adv = torch.as_tensor(batch.advantages[chunk], dtype=torch.float32)
                adv = adv.to(logp.device)
                info: dict[str, float] = {}
                if cfg.algorithm == "rs-sft":
                    loss = sft_loss(logp, adv, mask, total)
                else:
                    loss, info = policy_loss(
                        logp,
                        logp.detach() if old is None else old[c],
                        adv,
                        mask,
                        clip_eps=cfg.clip_eps,
                        ref_logp=None if refs is None else refs[c],
                        kl_coef=cfg.kl_coef,
                        total_tokens=total,
                    )
                loss.backward()
                step_loss += float(loss.detach())
                for key, value in info.items():
                    stats[key].append(value)
            if extra:
                for key, value in self.extra_backward(batch, extra).items():
                    if key == "loss":
                        step_loss += value
                    else:
                        stats.setdefault(key, []).append(value)
            torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
            self.optimizer.step()
            self.schedule.step()
            self.optimizer.zero_grad(set_to_none=True)
            stats["loss"].append(step_loss)
        self.model.eval()
        out = {k: float(np.mean(v)) if v else 0.0 for k, v in stats.items()}
        out["trained_rows"] = float(len(rows) + len(extra))
        return out

    def _logprobs(self, batch: Rollout, chunks: list[list[int]]) -> list[torch.Tensor]:
        with torch.no_grad(), self.autocast():
            return [
                completion_logprobs(
                    self.model,
                    [batch.prompt_ids[i] for i in chunk],
                    [batch.completion_ids[i] for i in chunk],
                    self.pad_id,
                )[0]
                for chunk in chunks
            ]

    def _old_logprobs(self, batch: Rollout, chunks: list[list[int]]) -> list[torch.Tensor]:
        self.model.eval()
        return self._logprobs(batch, chunks)

    def _reference_logprobs(
        self, batch: Rollout, chunks: list[list[int]]
    ) -> list[torch.Tensor] | None:
        if not self.config.kl_coef or self.config.algorithm == "rs-sft":
            return None
        self.model.eval()
        with self.model.disable_adapter():  # the base model is the reference
            return self._logprobs(batch, chunks)


def _best_of_group(
    rewards: np.ndarray, ndcg: np.ndarray, group_size: int, min_ndcg: float
) -> np.ndarray:
    """Weight 1 on each group's best completion if its NDCG beats ``min_ndcg``, else 0."""
    weights = np.zeros(len(rewards))
    for start in range(0, len(rewards), group_size):
        best = start + int(np.argmax(rewards[start : start + group_size]))
        if ndcg[best] > min_ndcg:
            weights[best] = 1.0
    return weights


def _zero_std_share(rewards: np.ndarray, group_size: int) -> float:
    """Share of groups whose completions all got the same reward (no learning signal)."""
    groups = rewards.reshape(-1, group_size)
    return float(np.mean(groups.max(axis=1) == groups.min(axis=1)))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``python -m agents.llm.grpo``: train and print the summary (no history)."""
    parser = config_parser(GRPOConfig, GRPOTrainer.command_prog, __doc__.split("\n")[0])
    summary = train_grpo(parse_config(GRPOConfig, vars(parser.parse_args(argv))))
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2))
    return summary


if __name__ == "__main__":
    main()
