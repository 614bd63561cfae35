"""The SQN / SA2C network (a seqrec backbone with a CE head and a Q head) and its loss parts.

Xin et al., *Self-Supervised Reinforcement Learning for Recommender Systems* (SIGIR 2020, SQN)
and *Supervised Advantage Actor-Critic for Recommender Systems* (arXiv 2111.03474, SA2C). The
RL state ``s_t`` is the backbone's hidden state after items ``0..t``, optionally concatenated
with the LE's SM state. The CE head scores items with the backbone's tied item embeddings (it
also makes the recommendations); the Q head is a linear map of the state to one Q value per
item.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from recgym.models.seqrec.models import SeqRecModel

__all__ = [
    "RL4RecModel",
    "advantage_weights",
    "double_q_value",
    "sa2c_advantage",
    "sample_negatives",
    "td_targets",
]


class RL4RecModel(nn.Module):
    """A backbone with a cross-entropy head and a Q head over every item.

    With ``le_dim > 0`` the state is ``[h_t, e_t]``, the backbone's hidden state and the LE's
    SM state. The Q head reads it whole; the CE head scores ``h_t + W e_t`` against the tied
    item embeddings, a linear map of the same state whose ``h`` block is fixed to the identity
    (``W`` starts at zero, so training starts from the plain backbone).

    Args:
        backbone: a model of :mod:`recgym.models.seqrec.models`.
        le_dim: length of the LE state (0: none).
    """

    def __init__(self, backbone: SeqRecModel, le_dim: int = 0) -> None:
        super().__init__()
        d = backbone.config.d
        self.backbone = backbone
        self.n_items = backbone.n_items
        self.le_dim = int(le_dim)
        self.state_dim = d + self.le_dim
        self.le_proj = nn.Linear(self.le_dim, d, bias=False) if self.le_dim else None
        if self.le_proj is not None:
            nn.init.zeros_(self.le_proj.weight)
        self.q_head = nn.Linear(self.state_dim, self.n_items)

    def state(self, hidden: Tensor, le_states: Tensor | None = None) -> Tensor:
        """The RL state ``(..., state_dim)`` from backbone hidden states ``(..., d)``."""
        if self.le_dim == 0:
            return hidden
        if le_states is None or le_states.shape[-1] != self.le_dim:
            got = None if le_states is None else tuple(le_states.shape)
            raise ValueError(f"this model reads {self.le_dim}-dim LE states; got {got}")
        return torch.cat([hidden, le_states.to(hidden.dtype)], dim=-1)

    def ce_logits(self, state: Tensor) -> Tensor:
        """Next-item scores ``(..., n_items)`` of the CE head."""
        hidden = state[..., : self.backbone.config.d]
        if self.le_proj is not None:
            hidden = hidden + self.le_proj(state[..., self.backbone.config.d :])
        return self.backbone.item_logits(hidden)

    def q_values(self, state: Tensor) -> Tensor:
        """Q values ``(..., n_items)`` of every item as the next action."""
        return self.q_head(state)


def double_q_value(next_q_online: Tensor, next_q_target: Tensor) -> Tensor:
    """Double DQN's value of the next states ``(N,)``: the target network's Q of the online
    network's best action."""
    best = next_q_online.argmax(dim=-1, keepdim=True)
    return next_q_target.gather(-1, best).squeeze(-1)


def td_targets(rewards: Tensor, next_value: Tensor, done: Tensor, gamma: float) -> Tensor:
    """One-step TD targets ``r + γ (1 - done) V(s')``, detached.

    Args:
        rewards: ``(N,)`` or ``(N, m)`` (several actions in the same state, e.g. sampled
            negatives, sharing the next state).
        next_value: ``(N,)`` value of each next state.
        done: ``(N,)`` bool, the transition ends the sequence.
        gamma: the discount.
    """
    bootstrap = gamma * next_value * (~done).to(next_value.dtype)
    if rewards.ndim == 2:
        bootstrap = bootstrap[:, None]
    return (rewards + bootstrap).detach()


def sa2c_advantage(q_sampled: Tensor) -> Tensor:
    """SA2C's advantages ``(N, 1 + n_neg)``: each sampled action's Q minus the mean Q of the
    sampled set (logged action first, then the negatives), detached; zero-mean per row."""
    q = q_sampled.detach()
    return q - q.mean(dim=-1, keepdim=True)


def advantage_weights(advantage: Tensor, clip: float) -> Tensor:
    """CE weights ``(N,)`` from the logged actions' advantages: divided by their standard
    deviation over the batch (so the weights' scale does not drift with the Q values), then
    clipped to ``[0, clip]`` (Xin et al.'s lower clip at 0: no gradient away from a logged
    item)."""
    scale = advantage.std() if advantage.numel() > 1 else advantage.new_tensor(1.0)
    return (advantage / (scale + 1e-8)).clamp(0.0, clip).detach()


def sample_negatives(
    positives: Tensor, n_items: int, n: int, generator: torch.Generator | None = None
) -> Tensor:
    """``(N, n)`` items drawn uniformly from the catalog without the row's positive."""
    draws = torch.randint(
        0, n_items - 1, (len(positives), n), generator=generator, device=positives.device
    )
    return draws + (draws >= positives[:, None]).long()
