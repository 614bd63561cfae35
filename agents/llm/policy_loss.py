"""The math of RL on LLM completions: group advantages, token log-probs, the clipped loss,
the DPO loss.

Kept apart from the trainer so each piece is tested on its own (and reused by trainers of other
envs). Shapes: ``B`` completions, ``T`` completion tokens (right-padded, ``mask`` marks real
ones).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from agents.llm.verbalizer import forward_last

__all__ = [
    "ADVANTAGES",
    "completion_logprobs",
    "dpo_loss",
    "group_advantages",
    "kl_k3",
    "policy_loss",
    "sft_loss",
]

ADVANTAGES = ("grpo", "rloo")


def group_advantages(
    rewards: np.ndarray, group_size: int, kind: str = "grpo", eps: float = 1e-4
) -> np.ndarray:
    """Each completion's advantage relative to the others sampled for the same prompt.

    ``rewards`` holds consecutive groups of ``group_size``. ``"grpo"``: ``(r - mean) /
    (std + eps)`` within the group (DeepSeekMath's GRPO, population std as TRL); ``"rloo"``:
    ``r`` minus the mean of the group's *other* rewards (REINFORCE leave-one-out). Both are
    zero-mean per group; a group whose rewards are all equal gets zeros (nothing to learn).
    """
    if kind not in ADVANTAGES:
        raise ValueError(f"advantage kind must be one of {ADVANTAGES}; got {kind!r}")
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2 to compare completions; got {group_size}")
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 1 or len(r) % group_size:
        raise ValueError(f"rewards must be a flat array of groups of {group_size}; got {r.shape}")
    groups = r.reshape(-1, group_size)
    centred = groups - groups.mean(axis=1, keepdims=True)
    if kind == "grpo":
        out = centred / (groups.std(axis=1, keepdims=True) + eps)
    else:
        out = centred * group_size / (group_size - 1)
    return out.reshape(-1)


def completion_logprobs(
    model: Any,
    prompts: Sequence[Sequence[int]],
    completions: Sequence[Sequence[int]],
    pad_id: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities of each completion token given its prompt and the tokens before it.

    One forward pass over the left-padded ``prompt + completion`` rows; only the last
    ``max(len(completion)) + 1`` positions are projected onto the vocabulary.

    Returns:
        ``(logp, mask)``, both ``(B, T)`` with ``T`` the longest completion, right-padded:
        ``logp[b, t]`` is the log-prob of completion ``b``'s token ``t``; ``mask`` is 1.0 on
        real tokens.
    """
    width = max((len(c) for c in completions), default=0)
    if width == 0:
        z = torch.zeros((len(completions), 0))
        return z, z
    rows = [list(p) + list(c) for p, c in zip(prompts, completions, strict=True)]
    logits = forward_last(model, rows, pad_id, keep=width + 1)[:, :-1].float()
    # Row b's completion fills its last len(c) positions; the logits predicting them sit one
    # position earlier. Gather at the right-aligned ids, then move to left alignment.
    ids = torch.full((len(rows), width), 0, dtype=torch.long)
    aligned = torch.zeros((len(rows), width), dtype=torch.bool)
    for b, c in enumerate(completions):
        if c:
            ids[b, width - len(c) :] = torch.as_tensor(list(c))
            aligned[b, width - len(c) :] = True
    ids, aligned = ids.to(logits.device), aligned.to(logits.device)
    logp = torch.log_softmax(logits, dim=-1).gather(-1, ids[..., None]).squeeze(-1)
    logp = logp.masked_fill(~aligned, 0.0)
    logp_left = torch.zeros_like(logp)
    mask = torch.zeros_like(logp)
    for b, c in enumerate(completions):
        n = len(c)
        if n:
            logp_left[b, :n] = logp[b, width - n :]
            mask[b, :n] = 1.0
    return logp_left, mask


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token KL(policy || reference) by Schulman's low-variance k3 estimator (non-negative)."""
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1.0


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_eps: float = 0.2,
    ref_logp: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    total_tokens: int | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Token-level PPO-clip loss with an optional k3 KL penalty to a reference.

    Every completion token weighs the same (the sum over tokens divided by ``total_tokens``, by
    default the tokens in ``mask``), as in DAPO and TRL's ``loss_type="dapo"``, so long
    completions are not down-weighted per token. Pass the step's token count as
    ``total_tokens`` when a step is split into micro-batches, so that their losses add up to
    the step's.

    Returns:
        The loss, and statistics: ``clip_frac`` (share of tokens whose ratio was clipped) and
        ``kl`` (mean per-token KL, when a reference is given).
    """
    ratio = torch.exp(logp - old_logp)
    adv = advantages[:, None]
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)
    per_token = -surrogate
    n_tokens = float(mask.sum().item())
    stats: dict[str, float] = {}
    if ref_logp is not None and kl_coef:
        kl = kl_k3(logp, ref_logp)
        per_token = per_token + kl_coef * kl
        stats["kl"] = float((kl * mask).sum().item() / max(n_tokens, 1.0))
    denom = float(total_tokens if total_tokens is not None else max(n_tokens, 1.0))
    loss = (per_token * mask).sum() / max(denom, 1.0)
    clipped = ((ratio - 1).abs() > clip_eps).float()
    stats["clip_frac"] = float((clipped * mask).sum().item() / max(n_tokens, 1.0))
    return loss, stats


def sft_loss(
    logp: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor, total_tokens: int | None = None
) -> torch.Tensor:
    """Token-level negative log-likelihood of the completions with ``weights[b] > 0`` (rejection
    sampling fine-tuning keeps the best completions with weight 1), normalised like
    :func:`policy_loss`."""
    kept = mask * (weights[:, None] > 0).float()
    denom = float(total_tokens if total_tokens is not None else kept.sum().item())
    return -(logp * kept * weights[:, None]).sum() / max(denom, 1.0)


def dpo_loss(
    chosen_logp: torch.Tensor,
    rejected_logp: torch.Tensor,
    ref_chosen_logp: torch.Tensor,
    ref_rejected_logp: torch.Tensor,
    *,
    beta: float = 0.01,
    total_pairs: int | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The sigmoid DPO loss (Rafailov et al., 2023) of ``B`` (chosen, rejected) pairs.

    Each input is ``(B,)``: a completion's log-probability summed over its tokens, under the
    policy (with gradient) or the frozen reference. With the implicit rewards
    ``beta * (logp - ref_logp)`` of both completions, the loss of a pair is
    ``-log sigmoid(reward_chosen - reward_rejected)``; its gradient raises the chosen
    completion's log-probability and lowers the rejected one's, more so the more the policy
    still prefers the rejected one.

    The loss is the sum over pairs divided by ``total_pairs`` (default ``B``): pass the
    optimizer step's pair count when a step is split into micro-batches, so that their losses
    add up to the step's mean.

    Returns:
        The loss, and statistics (means over the ``B`` pairs, TRL's names without the
        ``rewards/`` prefix): ``reward_accuracy`` (share of pairs whose chosen reward is the
        higher), ``reward_margin`` (chosen minus rejected reward), ``chosen_reward`` and
        ``rejected_reward``.
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0; got {beta}")
    chosen = beta * (chosen_logp - ref_chosen_logp)
    rejected = beta * (rejected_logp - ref_rejected_logp)
    margin = chosen - rejected
    denom = float(total_pairs if total_pairs is not None else max(len(margin), 1))
    loss = -torch.nn.functional.logsigmoid(margin).sum() / max(denom, 1.0)
    with torch.no_grad():
        stats = {
            "reward_accuracy": float((margin > 0).float().mean().item()),
            "reward_margin": float(margin.mean().item()),
            "chosen_reward": float(chosen.mean().item()),
            "rejected_reward": float(rejected.mean().item()),
        }
    return loss, stats
