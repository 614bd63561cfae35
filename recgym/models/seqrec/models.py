"""Next-item models in torch: SASRec, GRU4Rec and LRURec, chosen by name from :data:`MODELS`.

Every model reads a ``(B, L)`` tensor of item ids shifted by one (``0`` pads) with each
sequence **left-aligned** (pads at the end) and returns one hidden state per position. All
three are causal, so the state at position ``t`` depends on items ``0..t`` only and trailing
pads never change it: a history scores the same alone or in a batch with longer ones. The
next-item scores of a hidden state are its dot products with the (tied) item embeddings.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from recgym.error import UnknownNameError
from recgym.models.seqrec.config import SeqRecConfig
from recgym.models.seqrec.lru import linear_recurrence

__all__ = [
    "MODELS",
    "Dropout",
    "GRU4Rec",
    "LRURec",
    "SASRec",
    "SeqRecModel",
    "build_model",
    "pad_batch",
]


class Dropout(nn.Module):
    """Dropout with a mask cut from random bytes, so ``p`` moves in steps of 1/256.

    On CPU, torch's ``bernoulli_`` draws one random number per element and took 20-30 % of a
    training step here; one 64-bit draw per 8 elements makes dropout ~3x cheaper.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self._cut = round(p * 256)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self._cut == 0:
            return x
        n = x.numel()
        words = torch.randint(-(2**63), 2**63 - 1, ((n + 7) // 8,), device=x.device)
        keep = words.view(torch.uint8)[:n].view(x.shape) >= self._cut
        return x * keep * (256 / (256 - self._cut))

    def extra_repr(self) -> str:
        return f"p={self._cut / 256:.4f}"


class SeqRecModel(nn.Module):
    """Base class: an item embedding table (row 0 = padding) tied to the output layer."""

    def __init__(self, n_items: int, config: SeqRecConfig) -> None:
        super().__init__()
        self.n_items = n_items
        self.config = config
        self.item_emb = nn.Embedding(n_items + 1, config.d, padding_idx=0)
        nn.init.normal_(self.item_emb.weight, std=0.02)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def encode(self, items: Tensor) -> Tensor:
        """Hidden states ``(B, L, d)`` of left-aligned shifted item ids ``(B, L)``."""
        raise NotImplementedError

    def item_logits(self, hidden: Tensor) -> Tensor:
        """Scores ``(..., n_items)`` of every item (0-based index) as the next one."""
        return hidden @ self.item_emb.weight[1:].T

    def forward(self, items: Tensor) -> Tensor:
        """Next-item scores ``(B, L, n_items)`` at every position."""
        return self.item_logits(self.encode(items))


class _CausalBlock(nn.Module):
    """Pre-norm transformer block with causal multi-head self-attention."""

    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.att_drop = Dropout(dropout)
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.ff = nn.Sequential(
            nn.Linear(d, 4 * d), nn.GELU(), Dropout(dropout), nn.Linear(4 * d, d)
        )
        self.drop = Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).unbind(2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if self.training and self.att_drop.p > 0:
            # Written out: on CPU the fused kernel's dropout is the slow bernoulli_, and with
            # dropout it takes this same unfused path anyway.
            logits = (q @ k.transpose(-1, -2)) / math.sqrt(d // self.heads)
            future = torch.ones(n, n, dtype=torch.bool, device=x.device).triu(1)
            att = self.att_drop(logits.masked_fill(future, float("-inf")).softmax(-1)) @ v
        else:
            att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.drop(self.proj(att.transpose(1, 2).reshape(b, n, d)))
        return x + self.drop(self.ff(self.norm2(x)))


class SASRec(SeqRecModel):
    """SASRec (Kang & McAuley, 2018): causal self-attention over item + learned position
    embeddings (position 0 = the oldest item kept), ``layers`` pre-norm blocks, tied output."""

    def __init__(self, n_items: int, config: SeqRecConfig) -> None:
        super().__init__(n_items, config)
        self.pos_emb = nn.Embedding(config.max_len, config.d)
        nn.init.normal_(self.pos_emb.weight, std=0.02)
        self.drop = Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            _CausalBlock(config.d, config.heads, config.dropout) for _ in range(config.layers)
        )
        self.norm = nn.LayerNorm(config.d)

    def encode(self, items: Tensor) -> Tensor:
        pos = torch.arange(items.shape[1], device=items.device)
        x = self.item_emb(items) * math.sqrt(self.config.d) + self.pos_emb(pos)
        x = self.drop(x)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class GRU4Rec(SeqRecModel):
    """GRU4Rec as configured in RecBole: embedding dropout, a GRU of ``rnn_hidden`` units,
    a linear map back to the embedding size, and tied output embeddings."""

    def __init__(self, n_items: int, config: SeqRecConfig) -> None:
        super().__init__(n_items, config)
        self.drop = Dropout(config.dropout)
        self.gru = nn.GRU(config.d, config.rnn_hidden, num_layers=config.layers, batch_first=True)
        self.dense = nn.Linear(config.rnn_hidden, config.d)

    def encode(self, items: Tensor) -> Tensor:
        # Left-aligned input: the GRU meets the pads only after the last real item.
        out, _ = self.gru(self.drop(self.item_emb(items)))
        return self.dense(out)


class _LRULayer(nn.Module):
    """A linear recurrent unit: ``h_t = λ ⊙ h_{t-1} + γ ⊙ B x_t``, output ``Re(C h_t)``.

    λ is complex and diagonal, ``|λ|`` initialised uniformly on the ring ``[r_min, r_max]``
    and the phase in ``[0, 2π)``; γ = sqrt(1 - |λ|²) keeps the state's scale (Orvieto et al.,
    2023). The recurrence is :func:`recgym.models.seqrec.lru.linear_recurrence`.
    """

    def __init__(self, d: int, dropout: float, r_min: float = 0.8, r_max: float = 0.99) -> None:
        super().__init__()
        hidden = 2 * d
        u1, u2 = torch.rand(hidden), torch.rand(hidden)
        nu_log = torch.log(-0.5 * torch.log(u1 * (r_max**2 - r_min**2) + r_min**2))
        self.nu_log = nn.Parameter(nu_log)
        self.theta_log = nn.Parameter(torch.log(u2 * 2 * math.pi + 1e-4))
        modulus = torch.exp(-torch.exp(nu_log))
        self.gamma_log = nn.Parameter(torch.log(torch.sqrt(1 - modulus**2)))
        self.in_re = nn.Linear(d, hidden)
        self.in_im = nn.Linear(d, hidden)
        # Re(C h) = C_re h_re - C_im h_im: one real linear map of [h_re, h_im].
        self.out = nn.Linear(2 * hidden, d)
        self.drop = Dropout(dropout)
        self.norm = nn.LayerNorm(d)

    def forward(self, x: Tensor) -> Tensor:
        gamma = torch.exp(self.gamma_log)
        u = torch.complex(self.in_re(x) * gamma, self.in_im(x) * gamma)
        lam = torch.polar(torch.exp(-torch.exp(self.nu_log)), torch.exp(self.theta_log))
        h = linear_recurrence(u, lam)
        y = self.out(torch.cat([h.real, h.imag], dim=-1))
        return self.norm(x + self.drop(y))


class _LRUBlock(nn.Module):
    """An LRU layer then a 4d GELU feed-forward, each with a residual and a post-norm."""

    def __init__(self, d: int, dropout: float) -> None:
        super().__init__()
        self.lru = _LRULayer(d, dropout)
        self.ff = nn.Sequential(
            nn.Linear(d, 4 * d), nn.GELU(), Dropout(dropout), nn.Linear(4 * d, d)
        )
        self.drop = Dropout(dropout)
        self.norm = nn.LayerNorm(d)

    def forward(self, x: Tensor) -> Tensor:
        x = self.lru(x)
        return self.norm(x + self.drop(self.ff(x)))


class LRURec(SeqRecModel):
    """LRURec, LlamaRec's retriever (Yue et al., 2024): normalised item embeddings, ``layers``
    LRU blocks, no position embeddings, tied output embeddings plus an item bias."""

    def __init__(self, n_items: int, config: SeqRecConfig) -> None:
        super().__init__(n_items, config)
        self.emb_norm = nn.LayerNorm(config.d)
        self.drop = Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            _LRUBlock(config.d, config.dropout) for _ in range(config.layers)
        )
        self.bias = nn.Parameter(torch.zeros(n_items))

    def encode(self, items: Tensor) -> Tensor:
        x = self.drop(self.emb_norm(self.item_emb(items)))
        for block in self.blocks:
            x = block(x)
        return x

    def item_logits(self, hidden: Tensor) -> Tensor:
        return super().item_logits(hidden) + self.bias


MODELS: dict[str, type[SeqRecModel]] = {"sasrec": SASRec, "gru4rec": GRU4Rec, "lrurec": LRURec}
"""Model classes by name: ``MODELS[name](n_items, config)``."""


def build_model(config: SeqRecConfig, n_items: int) -> SeqRecModel:
    """A freshly initialised ``config.model`` for ``n_items`` items, seeded by ``config.seed``.

    Raises:
        UnknownNameError: ``config.model`` is not in :data:`MODELS`.
    """
    if config.model not in MODELS:
        raise UnknownNameError(
            f"no seqrec model named {config.model!r}; known: {', '.join(MODELS)}"
        )
    torch.manual_seed(config.seed)
    return MODELS[config.model](n_items, config)


def pad_batch(sequences: list[np.ndarray], max_len: int) -> tuple[Tensor, Tensor]:
    """Left-aligned shifted ids ``(B, L)`` of the last ``max_len`` items of each sequence, and
    each row's length ``(B,)``; ``L`` is the longest kept length (at least 1)."""
    kept = [np.asarray(s, dtype=np.int64)[-max_len:] for s in sequences]
    lengths = np.array([len(s) for s in kept], dtype=np.int64)
    out = np.zeros((len(kept), max(1, int(lengths.max(initial=0)))), dtype=np.int64)
    for row, seq in enumerate(kept):
        out[row, : len(seq)] = seq + 1
    return torch.from_numpy(out), torch.from_numpy(lengths)
