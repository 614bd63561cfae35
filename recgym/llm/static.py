"""A generation backend for GPU batches: a pre-allocated KV cache and a fixed-shape decode step.

transformers' ``generate`` spends most of a decode step on the host (Python, per-layer kernel
launches, cache bookkeeping) for a small model: ~25 ms per step on an H100 for SmolLM2-135M,
whatever the batch. :class:`StaticCacheLLM` decodes Llama-style models (Llama, Qwen2,
Mistral: RMSNorm, rotary attention with grouped KV heads, a gated SiLU MLP) with its own small
decoder:

- the KV cache of a batch is allocated once, ``(batch, kv_heads, length, head_dim)`` per
  layer, ``length`` rounded up to :attr:`StaticCacheLLM.length_step`; prompts are left-padded
  and prefilled in one pass;
- one decode step is a fixed sequence of tensor operations on fixed buffers (token, position,
  cache slot, attention mask, per-row state), sampling included, so on CUDA it is captured
  once per (batch, length) shape as a CUDA graph and replayed: one launch per token;
- sampling happens on the device: temperature, top-p, and one uniform number per row and step
  from a counter-based hash of the row's seed (splitmix64), so a row's sample depends on its
  prompt and its seed only, never on the rest of the batch;
- weights are read from the *current* module at every ``generate`` call (LoRA adapters of PEFT
  folded in, ``W + B A · scale``) into the decoder's own buffers in the compute dtype, so a
  model being trained generates from its latest weights without being modified or copied by
  the caller.

Greedy decoding gives the same tokens as transformers' ``generate`` (up to float rounding
of near-ties; tested on CPU in float32). Sampling gives samples from the same distribution
but not the same draws as :class:`~recgym.llm.hf.PerRowSampler` (another random stream).

On CPU the default backend is faster than recomputing weights per call and gains nothing from
graphs, so ``generate`` there falls back to the wrapped :class:`~recgym.llm.hf.HFLLM` unless
the decoder is forced (``force=True``: the tests run it that way).
"""

from __future__ import annotations

import contextlib
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch.nn.attention import SDPBackend, sdpa_kernel

from recgym.llm.base import (
    Generation,
    Prompt,
    batch_rows,
    check_prompts,
    check_sampling,
    row_seeds,
)
from recgym.llm.hf import HFLLM

__all__ = ["SUPPORTED_MODEL_TYPES", "StaticCacheLLM", "fast_generator", "uniform_from_seeds"]

SUPPORTED_MODEL_TYPES = frozenset({"llama", "qwen2", "mistral"})
"""``config.model_type`` values whose blocks the decoder reproduces."""

# Attention kernels that CUDA graphs can capture; cuDNN's costs host time on every call.
_GRAPH_SDPA = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


def _signed(value: int) -> int:
    """A 64-bit constant as the int64 torch stores (two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value


_GOLDEN = _signed(0x9E3779B97F4A7C15)
_MIX1 = _signed(0xBF58476D1CE4E5B9)
_MIX2 = _signed(0x94D049BB133111EB)


def _shift_right(x: torch.Tensor, bits: int) -> torch.Tensor:
    """A logical right shift of int64 values (torch's ``>>`` is arithmetic)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def uniform_from_seeds(seeds: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """One uniform number in [0, 1) per row: splitmix64 of ``seed + (step + 1) * golden``.

    A counter-based generator: the number depends on the row's seed and the step only, so a
    batch draws for all rows in a few tensor operations, on any device, inside a CUDA graph.
    int64 products wrap modulo 2**64 like the reference's unsigned ones.

    Args:
        seeds: ``(B,)`` int64 row seeds.
        step: a 0-d (or broadcastable) int64 tensor, the decode step.

    Returns:
        ``(B,)`` float32 in [0, 1), multiples of 2**-24.
    """
    x = seeds + (step + 1) * _GOLDEN
    x = (x ^ _shift_right(x, 30)) * _MIX1
    x = (x ^ _shift_right(x, 27)) * _MIX2
    x = x ^ _shift_right(x, 31)
    return _shift_right(x, 40).to(torch.float32) * (1.0 / (1 << 24))


def _linear(module: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The weight and bias a (possibly LoRA-wrapped) linear layer applies now."""
    base = module.get_base_layer() if hasattr(module, "get_base_layer") else module
    weight, bias = base.weight, base.bias
    if hasattr(module, "lora_A") and not module.disable_adapters and not module.merged:
        for name in module.active_adapters:
            if name not in module.lora_A:
                continue
            if getattr(module, "use_dora", {}).get(name, False):
                raise NotImplementedError("DoRA adapters are not supported by StaticCacheLLM")
            weight = weight + module.get_delta_weight(name)
    return weight, bias


@dataclass
class _Layer:
    """One decoder block's weights in the compute dtype (fused q/k/v and gate/up)."""

    ln1: torch.Tensor
    qkv: torch.Tensor
    qkv_bias: torch.Tensor | None
    o: torch.Tensor
    ln2: torch.Tensor
    gate_up: torch.Tensor
    down: torch.Tensor


@dataclass
class _Batch:
    """Buffers of one (batch, length) shape; the decode step reads and updates them in place."""

    k: list[torch.Tensor]
    v: list[torch.Tensor]
    tokens: torch.Tensor  # (B,) the token to feed next
    positions: torch.Tensor  # (B,) its rotary position
    slot: torch.Tensor  # (1,) its cache slot
    step: torch.Tensor  # () the step that samples the following token
    valid: torch.Tensor  # (B, T) cache slots a query may attend to
    finished: torch.Tensor  # (B,) rows that emitted an end token
    out: torch.Tensor  # (B, T) sampled tokens by step
    seeds: torch.Tensor  # (B,)
    eos: torch.Tensor  # the end token ids
    temperature: torch.Tensor  # ()
    top_p: torch.Tensor  # ()
    graph: Any = None  # the captured decode step (CUDA), built with both sampling branches
    sampling: bool = False  # this call samples (eager steps skip the sampling branch if not)


class StaticCacheLLM:
    """An :class:`~recgym.llm.LLM` that decodes an :class:`~recgym.llm.hf.HFLLM`'s model with a
    static KV cache and, on CUDA, a CUDA-graph-captured decode step (see the module docstring).

    Args:
        llm: the transformers backend whose model (and tokenizer, chat template) is used; its
            ``model`` is read at every call, so replacing it (e.g. by a PEFT wrapper) is seen.
        force: use the decoder on CPU too (default: fall back to ``llm.generate`` there).
        cuda_graphs: capture the decode step on CUDA (default: on CUDA; ``False``: eager).
        dtype: compute dtype (default: bfloat16 on CUDA where supported, else float32).
        length_step: cache lengths are rounded up to a multiple of this (fewer graph shapes).
        batch_step: batches are padded to a multiple of this on CUDA (fewer graph shapes).
        max_graphs: captured shapes kept (least recently used ones are dropped with their
            caches).

    Raises:
        ValueError: if the model is not a supported architecture (see
            :data:`SUPPORTED_MODEL_TYPES`); :func:`fast_generator` falls back instead.
    """

    def __init__(
        self,
        llm: HFLLM,
        *,
        force: bool = False,
        cuda_graphs: bool | None = None,
        dtype: torch.dtype | None = None,
        length_step: int = 64,
        batch_step: int = 8,
        max_graphs: int = 4,
    ) -> None:
        model_type = getattr(llm.model.config, "model_type", None)
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise ValueError(
                f"StaticCacheLLM decodes {sorted(SUPPORTED_MODEL_TYPES)} models; "
                f"{llm.name!r} is {model_type!r} (use the default backend)"
            )
        if length_step < 1 or batch_step < 1 or max_graphs < 1:
            raise ValueError("length_step, batch_step and max_graphs must be >= 1")
        self.llm = llm
        self.name = llm.name
        self.tokenizer = llm.tokenizer
        self.force = force
        self.length_step = length_step
        self.batch_step = batch_step
        self.max_graphs = max_graphs
        self._cuda_graphs = cuda_graphs
        self._dtype = dtype
        self._batches: OrderedDict[tuple[int, int], _Batch] = OrderedDict()
        self._layers: list[_Layer] = []
        self._tensors: dict[str, torch.Tensor] = {}
        self._eos = torch.tensor(llm.eos_ids, dtype=torch.long)
        self._pad_id = llm.pad_id
        config = llm.model.config
        self.n_heads: int = config.num_attention_heads
        self.n_kv: int = getattr(config, "num_key_value_heads", None) or self.n_heads
        self.head_dim: int = getattr(config, "head_dim", None) or config.hidden_size // self.n_heads
        self.eps = float(config.rms_norm_eps)
        rotary = llm.model.get_decoder().rotary_emb
        self.rope_scale = float(getattr(rotary, "attention_scaling", 1.0))

    def __repr__(self) -> str:
        return f"StaticCacheLLM({self.llm!r}, active={self.active})"

    @property
    def model(self) -> Any:
        """The wrapped backend's torch module (the one being trained, if any)."""
        return self.llm.model

    @property
    def device(self) -> torch.device:
        return self.llm.device

    @property
    def active(self) -> bool:
        """Whether ``generate`` runs the static decoder (CUDA, or ``force``) or falls back."""
        return self.force or self.device.type == "cuda"

    @property
    def graphs(self) -> bool:
        """Whether decode steps are captured as CUDA graphs."""
        on_cuda = self.device.type == "cuda"
        return on_cuda and (self._cuda_graphs if self._cuda_graphs is not None else True)

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype of the decoder."""
        if self._dtype is not None:
            return self._dtype
        if self.device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32

    def chat_prompt(self, messages: Prompt) -> str:
        return self.llm.chat_prompt(messages)

    def generate(
        self,
        prompts: Sequence[Prompt],
        *,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | Sequence[int] | None = None,
        chat: bool = True,
        stop: Sequence[str] | None = None,
        batch_size: int | None = None,
    ) -> list[Generation]:
        """Complete each prompt (see :meth:`recgym.llm.LLM.generate`).

        Stop strings are applied to the decoded text after generation (the decoder stops on
        end tokens only), with the same result as the default backend.
        """
        if not self.active:
            return self.llm.generate(
                prompts,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                seed=seed,
                chat=chat,
                stop=stop,
                batch_size=batch_size,
            )
        check_prompts(prompts, chat)
        check_sampling(max_new_tokens, temperature, top_p)
        texts = [self.chat_prompt(p) if chat else str(p) for p in prompts]
        seeds = row_seeds(seed, len(texts)) if temperature > 0 else [0] * len(texts)
        size = batch_rows(batch_size, self.llm.batch_size, len(texts))
        self.refresh_weights()
        results: list[Generation] = []
        # The decoder picks its own dtypes; a caller's autocast (a trainer's) must not recast.
        off = torch.autocast(self.device.type, enabled=False)
        for start in range(0, len(texts), size):
            rows = slice(start, start + size)
            with off:
                ids = self._generate_batch(
                    texts[rows], seeds[rows], max_new_tokens, temperature, top_p, chat
                )
            results += [
                self.llm.to_generation(row, text, stop)
                for row, text in zip(ids, texts[rows], strict=True)
            ]
        return results

    # ----- weights --------------------------------------------------------------------------

    @torch.no_grad()
    def refresh_weights(self) -> None:
        """Copy the module's current weights (adapters folded in) into the decoder's buffers.

        Buffers keep their addresses across calls, so captured graphs read the new values.
        """
        decoder = self.llm.model.get_decoder()
        dev, dtype = self.device, self.dtype
        fresh: list[_Layer] = []
        for block in decoder.layers:
            attn, mlp = block.self_attn, block.mlp
            parts = [_linear(getattr(attn, n)) for n in ("q_proj", "k_proj", "v_proj")]
            biases = [b for _, b in parts if b is not None]
            if biases and len(biases) != 3:
                raise ValueError("q/k/v projections must all have biases or none")
            (gate, g_bias), (up, u_bias) = _linear(mlp.gate_proj), _linear(mlp.up_proj)
            o, o_bias = _linear(attn.o_proj)
            down, d_bias = _linear(mlp.down_proj)
            if any(b is not None for b in (o_bias, g_bias, u_bias, d_bias)):
                raise ValueError("biased o_proj or MLP layers are not supported")
            fresh.append(
                _Layer(
                    ln1=block.input_layernorm.weight,
                    qkv=torch.cat([w for w, _ in parts]),
                    qkv_bias=torch.cat(biases) if biases else None,
                    o=o,
                    ln2=block.post_attention_layernorm.weight,
                    gate_up=torch.cat([gate, up]),
                    down=down,
                )
            )
        tensors = {
            "embed": self.llm.model.get_input_embeddings().weight,
            "norm": decoder.norm.weight,
            "lm_head": self.llm.model.get_output_embeddings().weight,
            "inv_freq": decoder.rotary_emb.inv_freq,
        }
        if not self._layers:  # first call: allocate the buffers
            self._layers = [
                _Layer(**{k: _copy(v, dev, dtype) for k, v in vars(layer).items()})
                for layer in fresh
            ]
            self._tensors = {
                k: _copy(v, dev, torch.float32 if k == "inv_freq" else dtype)
                for k, v in tensors.items()
            }
            return
        for mine, theirs in zip(self._layers, fresh, strict=True):
            for key, value in vars(theirs).items():
                if value is not None:
                    getattr(mine, key).copy_(value)
        for key, value in tensors.items():
            self._tensors[key].copy_(value)

    # ----- decoding -------------------------------------------------------------------------

    def _rope(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin of ``positions`` (any shape), like transformers' rotary embedding."""
        freqs = positions[..., None].float() * self._tensors["inv_freq"]
        emb = torch.cat([freqs, freqs], dim=-1)
        return (emb.cos() * self.rope_scale).to(self.dtype), (emb.sin() * self.rope_scale).to(
            self.dtype
        )

    def _norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return weight * h.to(x.dtype)

    def _forward(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor,
        batch: _Batch,
        mask: torch.Tensor,
        slot: torch.Tensor | None,
    ) -> torch.Tensor:
        """Logits (float32) of the last position of ``ids`` ``(B, S)``.

        With ``slot`` (decode, S = 1) the keys/values go to that cache slot and the query
        attends over the whole cache under ``mask`` ``(B, 1, 1, T)``; without it (prefill) they
        fill slots ``0..S-1`` and attention runs over those under ``mask`` ``(B, 1, S, S)``.
        """
        bsz, seq = ids.shape
        hq, hkv, d = self.n_heads, self.n_kv, self.head_dim
        x = F.embedding(ids, self._tensors["embed"])
        cos, sin = self._rope(positions)
        cos, sin = cos[:, None], sin[:, None]  # (B, 1, S, D)
        for i, layer in enumerate(self._layers):
            h = self._norm(x, layer.ln1)
            qkv = F.linear(h, layer.qkv, layer.qkv_bias)
            q, k, v = qkv.split([hq * d, hkv * d, hkv * d], dim=-1)
            q = q.view(bsz, seq, hq, d).transpose(1, 2)
            k = k.view(bsz, seq, hkv, d).transpose(1, 2)
            v = v.view(bsz, seq, hkv, d).transpose(1, 2)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            if slot is None:
                batch.k[i][:, :, :seq] = k
                batch.v[i][:, :, :seq] = v
                keys, values = k, v
            else:
                batch.k[i].index_copy_(2, slot, k)
                batch.v[i].index_copy_(2, slot, v)
                keys, values = batch.k[i], batch.v[i]
            a = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, enable_gqa=True)
            x = x + F.linear(a.transpose(1, 2).reshape(bsz, seq, hq * d), layer.o)
            h = self._norm(x, layer.ln2)
            gate, up = F.linear(h, layer.gate_up).chunk(2, dim=-1)
            x = x + F.linear(F.silu(gate) * up, layer.down)
        x = self._norm(x[:, -1], self._tensors["norm"])
        return F.linear(x, self._tensors["lm_head"]).float()

    def _sample(self, logits: torch.Tensor, batch: _Batch) -> torch.Tensor:
        """Next token per row: argmax at temperature 0, else temperature + top-p + the row's
        uniform number; rows already finished get the pad token."""
        greedy = logits.argmax(dim=-1)
        if batch.graph is None and not batch.sampling:  # eager greedy: skip the sort
            return greedy.masked_fill(batch.finished, self._pad_id)
        probs = torch.softmax(logits / batch.temperature.clamp_min(1e-6), dim=-1)
        probs, order = probs.sort(dim=-1, descending=True)
        # Keep the smallest prefix whose mass reaches top_p (the first token always).
        probs = probs.masked_fill(probs.cumsum(dim=-1) - probs >= batch.top_p, 0.0)
        cdf = probs.cumsum(dim=-1)
        u = uniform_from_seeds(batch.seeds, batch.step)[:, None] * cdf[:, -1:]
        pick = torch.searchsorted(cdf, u, right=True).clamp_(max=cdf.shape[-1] - 1)
        sampled = order.gather(-1, pick).squeeze(-1)
        token = torch.where(batch.temperature > 0, sampled, greedy)
        return token.masked_fill(batch.finished, self._pad_id)

    def _advance(self, token: torch.Tensor, batch: _Batch) -> None:
        """Record ``token`` as step ``batch.step``'s output and make it the next input."""
        batch.out.index_copy_(1, batch.step.view(1), token[:, None])
        batch.finished |= torch.isin(token, batch.eos)
        batch.tokens.copy_(token)

    def _decode_step(self, batch: _Batch) -> None:
        """Feed ``batch.tokens`` at ``batch.slot``, sample the next ones: the graphed step."""
        batch.valid.index_fill_(1, batch.slot, True)
        mask = batch.valid[:, None, None, :]
        logits = self._forward(
            batch.tokens[:, None], batch.positions[:, None], batch, mask, batch.slot
        )
        batch.step += 1
        self._advance(self._sample(logits, batch), batch)
        batch.positions += 1
        batch.slot += 1

    def _buffers(self, rows: int, length: int) -> _Batch:
        key = (rows, length)
        if key in self._batches:
            self._batches.move_to_end(key)
            return self._batches[key]
        while len(self._batches) >= self.max_graphs:
            self._batches.popitem(last=False)
        dev = self.device

        def zeros(*shape: int, dtype: torch.dtype = torch.long) -> torch.Tensor:
            return torch.zeros(shape, dtype=dtype, device=dev)

        cache = (rows, self.n_kv, length, self.head_dim)
        batch = _Batch(
            k=[zeros(*cache, dtype=self.dtype) for _ in self._layers],
            v=[zeros(*cache, dtype=self.dtype) for _ in self._layers],
            tokens=zeros(rows),
            positions=zeros(rows),
            slot=zeros(1),
            step=zeros(),
            valid=zeros(rows, length, dtype=torch.bool),
            finished=zeros(rows, dtype=torch.bool),
            out=zeros(rows, length),
            seeds=zeros(rows),
            eos=self._eos.to(dev),
            temperature=zeros(dtype=torch.float32),
            top_p=zeros(dtype=torch.float32),
        )
        if self.graphs:
            batch.slot.fill_(length - 1)  # warm-up steps write to the last slot, in range
            batch.sampling = True  # warm up and capture both branches: any temperature replays
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream), sdpa_kernel(_GRAPH_SDPA), torch.no_grad():
                for _ in range(2):  # warm-up, as CUDA graph capture requires
                    self._decode_step(batch)
                    batch.slot.fill_(length - 1)
                    batch.step.zero_()
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph), sdpa_kernel(_GRAPH_SDPA), torch.no_grad():
                self._decode_step(batch)
            batch.graph = graph
        self._batches[key] = batch
        return batch

    @torch.no_grad()
    def _generate_batch(
        self,
        texts: list[str],
        seeds: list[int],
        max_new_tokens: int,
        temperature: float,
        top_p: float,
        chat: bool,
    ) -> list[list[int]]:
        enc = self.llm.tokenizer(
            texts,
            return_tensors="pt",
            padding=True,
            padding_side="left",
            add_special_tokens=not chat,
        )
        dev = self.device
        n, prompt_len = enc["input_ids"].shape
        rows = n if not self.graphs else -(-n // self.batch_step) * self.batch_step
        need = prompt_len + max_new_tokens
        window = getattr(self.llm.model.config, "sliding_window", None)
        if window and getattr(self.llm.model.config, "use_sliding_window", True) and need > window:
            raise ValueError(
                f"prompt + max_new_tokens = {need} exceeds the model's sliding window {window}, "
                "which StaticCacheLLM does not implement; use the default backend"
            )
        length = -(-need // self.length_step) * self.length_step
        batch = self._buffers(rows, length)

        ids = torch.full((rows, prompt_len), self._pad_id, dtype=torch.long)
        attention = torch.zeros(rows, prompt_len, dtype=torch.long)
        ids[:n], attention[:n] = enc["input_ids"], enc["attention_mask"]
        attention[n:, -1] = 1  # padding rows: one visible token, discarded afterwards
        ids, attention = ids.to(dev), attention.to(dev)
        positions = (attention.cumsum(-1) - 1).masked_fill_(attention == 0, 1)
        keep = attention.bool()
        causal = torch.ones(prompt_len, prompt_len, dtype=torch.bool, device=dev).tril_()
        # A padding query sees itself only (its output is never used; a fully masked row
        # would give NaN).
        mask = (causal & keep[:, None, :]) | torch.eye(prompt_len, dtype=torch.bool, device=dev)

        batch.sampling = temperature > 0
        batch.seeds.copy_(torch.tensor(seeds + [0] * (rows - n), dtype=torch.long))
        batch.temperature.fill_(temperature)
        batch.top_p.fill_(top_p)
        batch.valid.zero_()
        batch.valid[:, :prompt_len] = keep
        batch.finished.zero_()
        batch.finished[n:] = True
        batch.out.fill_(self._pad_id)
        batch.step.zero_()
        kernels = sdpa_kernel(_GRAPH_SDPA) if dev.type == "cuda" else contextlib.nullcontext()
        with kernels:
            logits = self._forward(ids, positions, batch, mask[:, None], None)
        self._advance(self._sample(logits, batch), batch)
        batch.positions.copy_(positions[:, -1] + 1)
        batch.slot.fill_(prompt_len)
        for t in range(1, max_new_tokens):
            if batch.graph is not None:
                batch.graph.replay()
            else:
                self._decode_step(batch)
            # A host sync; every 16 steps it costs little and ends early batches soon enough.
            if t % 16 == 0 and bool(batch.finished.all()):
                break
        return batch.out[:n, :max_new_tokens].tolist()


def _copy(value: torch.Tensor | None, device: torch.device, dtype: torch.dtype) -> Any:
    return None if value is None else value.detach().to(device=device, dtype=dtype).clone()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def fast_generator(llm: Any) -> Any:
    """The fastest generation backend for ``llm``: a :class:`StaticCacheLLM` over it on CUDA
    for supported architectures, else ``llm`` itself (with a warning when only the
    architecture stood in the way)."""
    if not isinstance(llm, HFLLM) or llm.device.type != "cuda":
        return llm
    try:
        return StaticCacheLLM(llm)
    except ValueError as exc:
        warnings.warn(f"{exc}; generating with transformers' generate", stacklevel=2)
        return llm
