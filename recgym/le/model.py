"""The LLM environment (LE): item tokens, a state model and a reward model on one causal LM.

After Wang et al., *Reinforcement Learning-based Recommender Systems with Large Language Models
for State Reward and Action Modeling* (SIGIR 2024, arXiv 2403.16948; no public code). One base
LLM, frozen, carries:

- **item tokens**: one input embedding per item (:attr:`LLMEnvironment.item_emb`), learned by
  having the LLM regenerate the item's text after it (:func:`recgym.le.train.train_le`);
- **the state model (SM)**: LoRA adapter ``"sm"``; it reads the last :attr:`window` item tokens
  of a history, and the last hidden state, projected by ``sm_head`` and normalised, is the
  state. Items get action vectors from their tokens (``sm_item``, normalised); the SM is trained
  so that ``cos(state, next item) / tau`` wins a softmax over the catalog;
- **the reward model (RM)**: LoRA adapter ``"rm"``; its prompt is the last :attr:`window`
  history tokens then the candidate's token, and ``rm_head`` reads the candidate's hidden
  state: a score trained Bradley–Terry style (next item over a random unseen one). The reward
  is ``sigmoid(score - calibration)``, with ``calibration`` set on held-out users halfway
  between the median positive and median negative score.

Both read a history from the start of its second-to-last block of :attr:`window` items
(counting blocks from the oldest item), so the last ``window`` to ``2 * window - 1`` items: the
state after every prefix of a long sequence then comes from one causal pass per block (with
the previous block as context) instead of one pass per prefix, and equals the state of that
prefix read alone. RM candidates ride in the same pass behind a 4D attention mask: each sees
its own prefix and itself, at the position right after it.

In inference, :meth:`LLMEnvironment.states`, :meth:`~LLMEnvironment.rm_scores` and
:meth:`~LLMEnvironment.candidate_scores` read incrementally (:mod:`recgym.le.kv`): each
adapter caches the keys and values of the windows it read, and a call feeds only the items a
window has beyond its longest cached prefix, plus the candidates; the outputs are those of full
reads up to float noise. ``kv_cache_bytes = 0`` turns this off; ``kv_cross_episode = True``
(for training) reuses windows across episodes, and :meth:`LLMEnvironment.fresh_reads` gives an
evaluation its own empty caches.

torch, transformers and peft are imported here; ``import recgym.le`` does not import this.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from recgym.error import ModelLoadError
from recgym.le.base import check_candidates, check_histories, check_items
from recgym.le.kv import CANDIDATE_CHUNK, DEFAULT_BYTES, IncrementalReader
from recgym.utils.files import file_digest

__all__ = ["ADAPTERS", "Job", "LLMEnvironment", "Windows"]

ADAPTERS = ("sm", "rm")
"""The two LoRA adapters on the base LLM: state model and reward model."""

_WEIGHTS = "le.safetensors"
_META = "le.json"
_USERS = "users.npz"


class Job(NamedTuple):
    """One window of one sequence, for :meth:`LLMEnvironment.windows`.

    Attributes:
        seq: which sequence it was cut from.
        items: the window's items (the previous block as context, then the block).
        out_from: the first window position whose state is wanted (the block's start).
        candidates: ``(m, k)`` candidates after each block position, or ``None``.
        cand_positions: ``(m,)`` window position each candidate row follows, or ``None``.
        start: the block's first position in the sequence.
    """

    seq: int
    items: np.ndarray
    out_from: int
    candidates: np.ndarray | None
    cand_positions: np.ndarray | None
    start: int


@dataclass
class Windows:
    """One padded batch of item-token windows for a forward pass.

    Attributes:
        items: ``(B, L)`` item indices (pads are 0 and masked out).
        positions: ``(B, L)`` position ids.
        mask: ``(B, 1, L, L)`` additive attention mask (0 or the dtype's minimum).
        history_rows: per window, the token positions whose hidden states are wanted as states.
        candidate_rows: per window, ``(m, k)`` token positions of the candidates (or ``None``).
    """

    items: Tensor
    positions: Tensor
    mask: Tensor
    history_rows: list[Tensor]
    candidate_rows: list[Tensor | None]


class LLMEnvironment(nn.Module):
    """A trained (or training) LE: see the module docstring. Implements
    :class:`recgym.le.base.UserModel`.

    Args:
        lm: a transformers causal LM already wrapped by PEFT with the adapters of
            :data:`ADAPTERS` (see :meth:`build`).
        n_items: catalog size.
        state_dim: state and action vector length.
        window: history items the SM and RM read.
        tau: the SM's softmax temperature (training, and the SM's own next-item scores).
        item_ids: dataset item index of each LE item.
        name: what the model was loaded from.
    """

    calibration: Tensor
    """The RM score that maps to reward 0.5 (a buffer, saved with the weights)."""
    tokens_fed: int
    """Tokens (history items and candidates) fed to the SM and RM by :meth:`states`,
    :meth:`rm_scores` and :meth:`candidate_scores` so far: what a step cost."""

    def __init__(
        self,
        lm: Any,
        n_items: int,
        state_dim: int,
        window: int,
        tau: float,
        item_ids: np.ndarray,
        name: str = "",
    ) -> None:
        super().__init__()
        self.lm = lm
        hidden = int(lm.config.hidden_size)
        # Random until the item stage sets them: identical tokens would leave the RM's
        # positive and negative inputs equal, and its loss without a gradient.
        self.item_emb = nn.Parameter(torch.randn(n_items, hidden) * 0.02)
        self.sm_head = nn.Linear(hidden, state_dim)
        self.sm_item = nn.Linear(hidden, state_dim)
        self.rm_head = nn.Linear(hidden, 1)
        self.register_buffer("calibration", torch.zeros(()))
        self.n_items = int(n_items)
        self.state_dim = int(state_dim)
        self.window = int(window)
        self.tau = float(tau)
        self.item_ids = np.asarray(item_ids, dtype=np.int64)
        self.name = name
        self.batch_size = 16  # windows per forward
        self.users: dict[str, list[np.ndarray]] = {}
        self.tokenizer: Any = None
        self.metrics: dict[str, float] = {}
        self.extra: dict[str, Any] = {}
        self._item_vectors: np.ndarray | None = None
        self.digest = ""
        """The sha256 of the saved weights this LE was loaded from (``""``: not loaded)."""
        self.tokens_fed = 0
        self._kv_bytes = DEFAULT_BYTES
        self._kv: IncrementalReader | None = None
        self._kv_cross = False
        # Loaded weights make cached reads stale (a resumed training loads its checkpoint).
        self.register_load_state_dict_post_hook(lambda module, _: module.invalidate())

    # ----- construction ---------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        model: str,
        *,
        n_items: int,
        state_dim: int = 64,
        window: int = 10,
        tau: float = 0.1,
        item_ids: np.ndarray | None = None,
        lora_r: int = 8,
        lora_alpha: int = 16,
        target_modules: Sequence[str] = ("q_proj", "k_proj", "v_proj", "o_proj"),
        layers: int | None = None,
        device: str | None = None,
        progress: bool = True,
    ) -> LLMEnvironment:
        """A fresh LE on ``model`` (any :func:`recgym.llm.load` name or folder): the base LLM
        with two new LoRA adapters, untrained heads and random item tokens.

        ``layers`` keeps only the base's first ``layers`` decoder layers (``None``: all of them):
        the SM and RM read item tokens, not text, and a shallower stack trains and steps in a
        fraction of the time (see :class:`recgym.le.train.LEConfig`)."""
        from peft import LoraConfig, get_peft_model

        import recgym.llm

        llm = recgym.llm.load(model, device=device, progress=progress)
        if llm.model is None:
            raise ModelLoadError(f"the LE needs a torch language model; {model!r} has none")
        base = llm.model
        base.requires_grad_(False)
        if layers is not None:
            stack = base.get_decoder().layers
            if not 1 <= layers <= len(stack):
                raise ValueError(f"layers must be in 1..{len(stack)} for {model!r}; got {layers}")
            base.get_decoder().layers = stack[:layers]
            base.config.num_hidden_layers = layers
        lora = LoraConfig(
            r=lora_r,
            lora_alpha=lora_alpha,
            lora_dropout=0.0,
            target_modules=list(target_modules),
            bias="none",
        )
        lm = get_peft_model(base, lora, adapter_name=ADAPTERS[0])
        for adapter in ADAPTERS[1:]:
            lm.add_adapter(adapter, lora)
        ids = np.arange(n_items) if item_ids is None else np.asarray(item_ids)
        le = cls(lm, n_items, state_dim, window, tau, ids, name=model)
        le.extra = {
            "model": model,
            "lora_r": lora_r,
            "lora_alpha": lora_alpha,
            "target_modules": list(target_modules),
            "layers": layers,
        }
        le.tokenizer = llm.tokenizer
        # The LE's own parameters are created in float32; only the device changes (the base
        # keeps its dtype, bf16 on GPU, without a round trip through float32).
        return le.to(device=next(base.parameters()).device).to_base_dtype(base.dtype)

    def to_base_dtype(self, dtype: torch.dtype) -> LLMEnvironment:
        """Keep the base LM in ``dtype`` (bf16 on GPU) and the LE's own parameters in float32."""
        self.lm.to(dtype)
        for module in self.lm.modules():  # LoRA weights train in float32
            for name, param in module.named_parameters(recurse=False):
                if "lora_" in name:
                    param.data = param.data.float()
        return self

    @property
    def device(self) -> torch.device:
        """Where the model runs."""
        return self.item_emb.device

    @property
    def decoder(self) -> Any:
        """The base model's decoder stack (embeddings → last hidden state, final norm applied)."""
        return self.lm.get_base_model().model

    # ----- forward --------------------------------------------------------------------------

    def windows(
        self,
        histories: Sequence[np.ndarray],
        out_from: Sequence[int],
        candidates: Sequence[np.ndarray | None],
        cand_positions: Sequence[np.ndarray | None],
    ) -> Windows:
        """Pack sequences into one padded batch with sliding-window and candidate masks.

        Args:
            histories: item sequences; token ``j`` sees tokens ``j - window + 1 .. j``.
            out_from: per sequence, the first position whose state is wanted.
            candidates: per sequence ``(m, k)`` candidate items, or ``None``.
            cand_positions: per sequence ``(m,)``: candidate row ``r`` follows history position
                ``cand_positions[r]`` (it sees that position's window and itself).
        """
        lengths = [
            len(h) + (0 if c is None else c.size)
            for h, c in zip(histories, candidates, strict=True)
        ]
        size = max(max(lengths), 1)
        n = len(histories)
        items = np.zeros((n, size), dtype=np.int64)
        positions = np.zeros((n, size), dtype=np.int64)
        allowed = np.zeros((n, size, size), dtype=bool)
        allowed[:, np.arange(size), np.arange(size)] = True  # pads see themselves: no NaN rows
        history_rows: list[Tensor] = []
        candidate_rows: list[Tensor | None] = []
        for b, (hist, start, cand, cpos) in enumerate(
            zip(histories, out_from, candidates, cand_positions, strict=True)
        ):
            length = len(hist)
            items[b, :length] = hist
            q = np.arange(length)
            positions[b, :length] = q
            allowed[b, :length, :length] = q[None, :] <= q[:, None]
            history_rows.append(torch.arange(start, length))
            if cand is None or cpos is None:
                candidate_rows.append(None)
                continue
            m, k = cand.shape
            rows = length + np.arange(m * k).reshape(m, k)
            items[b, rows] = cand
            after = np.repeat(np.asarray(cpos), k)
            positions[b, rows.reshape(-1)] = after + 1
            sees = q[None, :] <= after[:, None]
            allowed[b, rows.reshape(-1), :length] = sees
            candidate_rows.append(torch.from_numpy(rows))
        dtype = self.decoder.dtype if hasattr(self.decoder, "dtype") else torch.float32
        mask = torch.zeros((n, 1, size, size), dtype=dtype)
        mask.masked_fill_(torch.from_numpy(~allowed)[:, None], torch.finfo(dtype).min)
        return Windows(
            torch.from_numpy(items), torch.from_numpy(positions), mask, history_rows, candidate_rows
        )

    def pack(self, jobs: Sequence[Job]) -> Windows:
        """:meth:`windows` of a list of jobs."""
        return self.windows(
            [j.items for j in jobs],
            [j.out_from for j in jobs],
            [j.candidates for j in jobs],
            [j.cand_positions for j in jobs],
        )

    def hidden(self, adapter: str, batch: Windows) -> Tensor:
        """``(B, L, H)`` float32 last hidden states of a packed batch under ``adapter``."""
        self.lm.set_adapter(adapter)
        dev = self.device
        emb = self.item_emb[batch.items.to(dev)]
        dtype = batch.mask.dtype
        out = self.decoder(
            inputs_embeds=emb.to(dtype),
            attention_mask=batch.mask.to(dev),
            position_ids=batch.positions.to(dev),
            use_cache=False,
        )
        return out.last_hidden_state.float()

    def state_vectors(self, hidden: Tensor) -> Tensor:
        """Unit state vectors of SM hidden states."""
        return F.normalize(self.sm_head(hidden), dim=-1)

    def action_vectors(self) -> Tensor:
        """``(n_items, state_dim)`` unit action vectors of every item token."""
        return F.normalize(self.sm_item(self.item_emb), dim=-1)

    def scores(self, hidden: Tensor) -> Tensor:
        """RM scores (before calibration) of candidate hidden states."""
        return self.rm_head(hidden).squeeze(-1)

    # ----- the UserModel protocol -----------------------------------------------------------

    def jobs(
        self, sequences: list[np.ndarray], candidates: list[np.ndarray | None], rm: bool
    ) -> list[Job]:
        """Cut sequences into aligned windows: the block of positions ``[lo, lo + window)``
        (``lo`` a multiple of :attr:`window`) with the previous block as context, so that every
        position ``t`` reads exactly ``seq[read_from(t + 1) : t + 1]``, as :meth:`states` does.

        SM windows (``rm=False``) want the state at every position. RM windows carry, after
        each position ``t``, the candidates ``candidates[s][t]`` or, when those are ``None``,
        the logged next item (then the sequence's last position has none).
        """
        jobs = []
        w = self.window
        for s, (seq, cand) in enumerate(zip(sequences, candidates, strict=True)):
            n = len(seq) if not rm or cand is not None else len(seq) - 1
            for lo in range(0, n, w):
                hi = min(lo + w, n)
                ctx = max(0, lo - w)
                part = seq[ctx:hi]
                if not rm:
                    jobs.append(Job(s, part, lo - ctx, None, None, lo))
                    continue
                rows = cand[lo:hi] if cand is not None else seq[lo + 1 : hi + 1, None]
                jobs.append(Job(s, part, len(part), rows, np.arange(lo - ctx, hi - ctx), lo))
        return jobs

    def read_from(self, length: int) -> int:
        """Where the SM and RM start reading a history of ``length`` items: the start of the
        block before the last (blocks of :attr:`window` items from the oldest), so they read
        the last ``window`` to ``2 * window - 1`` items (all of a shorter history)."""
        return max(0, ((length - 1) // self.window - 1) * self.window)

    @torch.no_grad()
    def run(self, jobs: Sequence[Job], rm: bool) -> list[np.ndarray]:
        """One forward pass per :attr:`batch_size` jobs; per job, the SM's unit states
        ``(positions, state_dim)`` from ``out_from`` on (``rm=False``) or the RM's raw scores
        ``(m, k)`` of its candidates, before calibration (``rm=True``)."""
        out: list[np.ndarray] = []
        self.eval()
        for i in range(0, len(jobs), self.batch_size):
            chunk = jobs[i : i + self.batch_size]
            batch = self.pack(chunk)
            hidden = self.hidden("rm" if rm else "sm", batch)
            for b in range(len(chunk)):
                if rm:
                    rows = batch.candidate_rows[b]
                    assert rows is not None
                    out.append(self.scores(hidden[b, rows.to(self.device)]).double().cpu().numpy())
                else:
                    rows = batch.history_rows[b].to(self.device)
                    out.append(self.state_vectors(hidden[b, rows]).cpu().numpy())
        return out

    def _probability(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated RM rewards of raw scores: ``sigmoid(score - calibration)``."""
        return 1.0 / (1.0 + np.exp(-(scores - float(self.calibration))))

    def _along(
        self, sequences: list[np.ndarray], candidates: list[np.ndarray | None], rm: bool
    ) -> list[list[np.ndarray]]:
        jobs = self.jobs(sequences, candidates, rm)
        out: list[list[np.ndarray]] = [[] for _ in sequences]
        for job, values in zip(jobs, self.run(jobs, rm), strict=True):
            out[job.seq].append(self._probability(values) if rm else values)
        return out

    def states_along(self, sequences: Sequence[np.ndarray]) -> list[np.ndarray]:
        """States after every prefix of each sequence (see the protocol)."""
        seqs = check_histories(sequences, self.n_items)
        parts = self._along(seqs, [None] * len(seqs), rm=False)
        return [
            np.concatenate(p).astype(np.float32) if p else np.zeros((0, self.state_dim), np.float32)
            for p in parts
        ]

    def rewards_along(
        self, sequences: Sequence[np.ndarray], candidates: Sequence[np.ndarray] | None = None
    ) -> list[np.ndarray]:
        """RM rewards after every prefix (see the protocol)."""
        seqs = check_histories(sequences, self.n_items)
        if candidates is None:
            parts = self._along(seqs, [None] * len(seqs), rm=True)
            return [np.concatenate(p)[:, 0] if p else np.zeros(0) for p in parts]
        cands = []
        for j, (s, c) in enumerate(zip(seqs, candidates, strict=True)):
            arr = np.asarray(c, dtype=np.int64)
            if arr.ndim != 2 or len(arr) != len(s):
                raise ValueError(
                    f"candidates[{j}] must be (len(seq), k) = ({len(s)}, k); got {arr.shape}"
                )
            check_items(arr.reshape(-1), self.n_items, arr.size)
            cands.append(arr)
        parts = self._along(seqs, list(cands), rm=True)
        return [
            np.concatenate(p) if p else np.zeros((0, c.shape[1]))
            for p, c in zip(parts, cands, strict=True)
        ]

    # ----- inference: full or incremental reads ---------------------------------------------

    @property
    def kv_cache_bytes(self) -> int:
        """Byte budget of each adapter's prefix cache of read windows (:mod:`recgym.le.kv`);
        ``0`` turns incremental reads off: every call reads its windows in full."""
        return self._kv_bytes

    @kv_cache_bytes.setter
    def kv_cache_bytes(self, value: int) -> None:
        if value < 0:
            raise ValueError(f"kv_cache_bytes must be >= 0 (0: no cache); got {value}")
        self._kv_bytes = int(value)
        if self._kv is not None:
            self._kv.resize(self._kv_bytes)

    @property
    def kv_cross_episode(self) -> bool:
        """Whether incremental reads reuse windows across episodes (:mod:`recgym.le.kv`: a
        window read in full also serves the shorter windows it begins with). Off by default;
        for training, where the same users start episode after episode (a user's restart from
        the same logged block then costs one item instead of a window)."""
        return self._kv_cross

    @kv_cross_episode.setter
    def kv_cross_episode(self, value: bool) -> None:
        self._kv_cross = bool(value)
        if self._kv is not None:
            self._kv.cross_episode = self._kv_cross

    @contextmanager
    def fresh_reads(self) -> Iterator[None]:
        """Within the block, incremental reads start from empty caches in the exact mode
        (not cross-episode), and the caches from before are back after it: an evaluation in
        the middle of training reads as it would alone, and training keeps what it cached."""
        saved, cross = self._kv, self._kv_cross
        self._kv, self._kv_cross = None, False
        try:
            yield
        finally:
            self._kv, self._kv_cross = saved, cross

    def _reader(self) -> IncrementalReader | None:
        """The incremental reader, in inference only (a training step changes the weights
        without :meth:`invalidate`)."""
        if self._kv_bytes <= 0 or self.training:
            return None
        if self._kv is None:
            self._kv = IncrementalReader(self, self._kv_bytes)
            self._kv.cross_episode = self._kv_cross
        return self._kv

    def states(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """SM states after each history (read from :meth:`read_from`; a new user's state is the
        normalised mean action vector)."""
        hs = [h[self.read_from(len(h)) :] for h in check_histories(histories, self.n_items)]
        out = np.empty((len(hs), self.state_dim), dtype=np.float32)
        filled = [i for i, h in enumerate(hs) if len(h)]
        if len(filled) < len(hs):
            mean = self.item_vectors().mean(axis=0)
            out[[i for i, h in enumerate(hs) if not len(h)]] = mean / np.linalg.norm(mean)
        if not filled:
            return out
        reader = self._reader()
        if reader is not None:
            with torch.no_grad():
                out[filled] = reader.states([hs[i] for i in filled])
            return out
        # One job per history: the whole (cut) history, the state at its last position.
        jobs = [Job(i, hs[i], len(hs[i]) - 1, None, None, 0) for i in filled]
        self.tokens_fed += sum(len(hs[i]) for i in filled)
        out[filled] = np.concatenate(self.run(jobs, rm=False))
        return out

    def item_vectors(self) -> np.ndarray:
        """The SM's unit action vectors (cached until the weights are trained again)."""
        if self._item_vectors is None:
            with torch.no_grad():
                self._item_vectors = self.action_vectors().cpu().numpy().astype(np.float32)
        return self._item_vectors.copy()

    def rewards(self, histories: Sequence[np.ndarray], items: np.ndarray) -> np.ndarray:
        """Calibrated RM rewards of one candidate after each history."""
        return self._probability(self.rm_scores(histories, items))

    def rm_scores(self, histories: Sequence[np.ndarray], items: np.ndarray) -> np.ndarray:
        """``(B,)`` float64 raw RM scores (before calibration) of one candidate per history."""
        hists = check_histories(histories, self.n_items)
        cand = check_items(items, self.n_items, len(hists))
        reader = self._reader()
        if reader is not None:
            # A taken candidate extends the read window unless it starts a new block: keep
            # its keys/values as that window's, so the next step reads nothing again.
            keep = [self.read_from(len(h) + 1) == self.read_from(len(h)) for h in hists]
            windows = [h[self.read_from(len(h)) :] for h in hists]
            with torch.no_grad():
                return reader.scores(windows, cand[:, None], keep)[:, 0]
        return self._full_scores(hists, cand[:, None])[:, 0]

    def _full_scores(self, hists: list[np.ndarray], cand: np.ndarray) -> np.ndarray:
        """``(B, k)`` raw RM scores of full reads, :data:`CANDIDATE_CHUNK` candidates a job."""
        hs = [h[self.read_from(len(h)) :] for h in hists]
        out = np.empty(cand.shape, dtype=np.float64)
        for s in range(0, cand.shape[1], CANDIDATE_CHUNK):
            part = cand[:, s : s + CANDIDATE_CHUNK]
            # One job per history: its candidates follow the history's last position.
            jobs = [
                Job(i, h, len(h), part[i : i + 1], np.array([len(h) - 1]), 0)
                for i, h in enumerate(hs)
            ]
            self.tokens_fed += sum(len(h) for h in hs) + part.size
            out[:, s : s + part.shape[1]] = np.concatenate(self.run(jobs, rm=True))
        return out

    def candidate_scores(
        self, histories: Sequence[np.ndarray], candidates: np.ndarray
    ) -> np.ndarray:
        """``(B, k)`` float64 raw RM scores (before calibration) of ``candidates[i]`` after
        ``histories[i]``: each candidate is read after the history as :meth:`rm_scores` reads
        one, the history once for all of them."""
        hists = check_histories(histories, self.n_items)
        cand = check_candidates(candidates, self.n_items, len(hists))
        if not cand.size:
            return np.zeros(cand.shape, dtype=np.float64)
        reader = self._reader()
        if reader is not None:
            windows = [h[self.read_from(len(h)) :] for h in hists]
            with torch.no_grad():
                return reader.scores(windows, cand)
        return self._full_scores(hists, cand)

    def candidate_rewards(
        self, histories: Sequence[np.ndarray], candidates: np.ndarray
    ) -> np.ndarray:
        """``(B, k)`` float64 calibrated RM rewards of ``candidates[i]`` after ``histories[i]``
        (:meth:`rewards` of each candidate, the history read once)."""
        return self._probability(self.candidate_scores(histories, candidates))

    def invalidate(self) -> None:
        """Forget cached action vectors and read windows (call after changing the weights)."""
        self._item_vectors = None
        if self._kv is not None:
            self._kv.clear()

    # ----- persistence ----------------------------------------------------------------------

    def trained_state(self) -> dict[str, Tensor]:
        """What training changes: item tokens, heads, calibration and both LoRA adapters."""
        state = {
            k: v.detach().float().cpu().clone()
            for k, v in self.state_dict().items()
            if not k.startswith("lm.") or "lora_" in k
        }
        return state

    def save(self, directory: str | Path, config: dict[str, Any] | None = None) -> Path:
        """Write the trained parts (safetensors), the metadata and the simulated users."""
        from safetensors.torch import save_file

        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        save_file(self.trained_state(), str(path / _WEIGHTS))
        meta = {
            "n_items": self.n_items,
            "state_dim": self.state_dim,
            "window": self.window,
            "tau": self.tau,
            **self.extra,
            "metrics": self.metrics,
            "config": config or {},
        }
        (path / _META).write_text(json.dumps(meta, indent=2) + "\n")
        arrays = {"item_ids": self.item_ids}
        for split, seqs in self.users.items():
            arrays[f"{split}_lengths"] = np.array([len(s) for s in seqs], dtype=np.int64)
            arrays[f"{split}_items"] = (
                np.concatenate(seqs).astype(np.int64) if seqs else np.zeros(0, np.int64)
            )
        np.savez(path / _USERS, **arrays)  # type: ignore[arg-type]
        return path

    @classmethod
    def load(
        cls, directory: str | Path, *, device: str | None = None, progress: bool = True
    ) -> LLMEnvironment:
        """An LE written by :meth:`save` (its base LLM is loaded by the recorded name)."""
        from safetensors.torch import load_file

        path = Path(directory)
        if not (path / _META).is_file() or not (path / _WEIGHTS).is_file():
            raise ModelLoadError(
                f"{path} is not a saved LE: expected {_META} and {_WEIGHTS} written by "
                "LLMEnvironment.save()"
            )
        meta = json.loads((path / _META).read_text())
        users = np.load(path / _USERS)
        le = cls.build(
            meta["model"],
            n_items=meta["n_items"],
            state_dim=meta["state_dim"],
            window=meta["window"],
            tau=meta["tau"],
            item_ids=users["item_ids"],
            lora_r=meta["lora_r"],
            lora_alpha=meta["lora_alpha"],
            target_modules=meta["target_modules"],
            layers=meta.get("layers"),
            device=device,
            progress=progress,
        )
        state = load_file(str(path / _WEIGHTS))
        missing, unexpected = le.load_state_dict(state, strict=False)
        lost = [k for k in missing if not k.startswith("lm.") or "lora_" in k]
        if lost or unexpected:
            raise ModelLoadError(f"{path}: saved LE does not fit its model ({lost or unexpected})")
        le.metrics = dict(meta.get("metrics", {}))
        le.name = str(path)
        le.digest = file_digest(path / _WEIGHTS)
        le.eval()  # a loaded LE simulates users: its reads may be incremental
        for key in users.files:
            if key.endswith("_lengths"):
                split = key[: -len("_lengths")]
                bounds = np.cumsum(users[key])[:-1]
                le.users[split] = list(np.split(users[f"{split}_items"], bounds))
        return le
