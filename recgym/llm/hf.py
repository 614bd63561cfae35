"""The transformers backend: a causal LM and its tokenizer behind the :class:`~recgym.llm.LLM` API.

Imported only when a real model is loaded (it imports torch and transformers at module level);
use :func:`recgym.llm.load` rather than building :class:`HFLLM` by hand.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, cast

import torch
from transformers import LogitsProcessor, LogitsProcessorList
from transformers.utils import logging as hf_logging

from recgym.llm.base import (
    Generation,
    Prompt,
    batch_rows,
    check_prompts,
    check_sampling,
    ids_to_generation,
    row_seeds,
    template_prompt,
)

__all__ = ["HFLLM", "PerRowSampler", "progress_bars"]


@contextlib.contextmanager
def progress_bars(show: bool) -> Iterator[None]:
    """Hide transformers' progress bars for the block when ``show`` is false, then restore."""
    was_disabled = not hf_logging.is_progress_bar_enabled()
    if not show:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if not show and not was_disabled:
            hf_logging.enable_progress_bar()


class PerRowSampler(LogitsProcessor):
    """Samples every row's next token from that row's own random generator.

    transformers' sampling draws the whole batch from one global RNG stream, so a row's sample
    depends on its position in the batch and on the other rows. This processor samples instead:
    temperature, then top-p, then an inverse-CDF draw with one uniform number per row from a
    ``torch.Generator`` seeded with the row's seed. It returns scores that are ``-inf`` except
    at the drawn token, so greedy decoding (``do_sample=False``) emits exactly that token.

    Cost, measured on 2 CPU cores with SmolLM2-135M (8 rows x 32 tokens): within 5 % of greedy
    decoding, with or without top-p. Draws happen on the CPU, so a seed gives the same sample
    on every device, up to the logits' own numerical differences.

    Args:
        seeds: one seed per row of the batch.
        temperature: sampling temperature, > 0.
        top_p: nucleus mass in (0, 1].
    """

    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float) -> None:
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.temperature = temperature
        self.top_p = top_p

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        probs = torch.softmax(scores.float().cpu() / self.temperature, dim=-1)
        ids = None
        if self.top_p < 1.0:
            probs, ids = _nucleus(probs, self.top_p)
        cdf = probs.cumsum(dim=-1)
        u = torch.cat([torch.rand(1, generator=g) for g in self.generators])[:, None]
        # right=True lands on a token whose own probability is > 0, even for u == 0.
        picks = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).clamp_(max=cdf.shape[-1] - 1)
        if ids is not None:
            picks = ids.gather(-1, picks)
        out = torch.full_like(scores, float("-inf"))
        return cast(torch.FloatTensor, out.scatter_(-1, picks.to(scores.device), 0.0))


def _nucleus(probs: torch.Tensor, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the most likely tokens holding ``top_p`` of the mass (the rest zeroed), and ids.

    A full-vocabulary sort costs more than the model's forward pass on CPU; the nucleus is
    almost always within the top few hundred tokens, so grow a ``topk`` until it covers top_p.
    The kept set does not depend on ``k``, so neither does the sample.
    """
    vocab = probs.shape[-1]
    k = min(256, vocab)
    while True:
        vals, ids = probs.topk(k, dim=-1)
        if k == vocab or bool((vals.sum(dim=-1) >= top_p).all()):
            break
        k = min(4 * k, vocab)
    drop = vals.cumsum(dim=-1) - vals >= top_p  # keep the smallest prefix reaching top_p
    return vals.masked_fill(drop, 0.0), ids


class HFLLM:
    """A transformers causal language model implementing :class:`~recgym.llm.LLM`.

    Args:
        model: a causal LM (``AutoModelForCausalLM``), already on its device and dtype.
        tokenizer: its tokenizer; a missing pad token is set to the end-of-sequence token.
        name: the name or path the model was loaded from.
        path: the local directory its weights were read from, if any.
        batch_size: default number of prompts per ``model.generate`` call (``None``: all).

    Attributes:
        model: the torch module (e.g. to wrap with a LoRA adapter for training).
        tokenizer: the transformers tokenizer.
        eos_ids: the token ids that end a completion (the model's and the tokenizer's).
        pad_id: the padding token id.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str,
        path: str | None = None,
        batch_size: int | None = None,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.path = path
        self.batch_size = batch_size
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        eos = model.generation_config.eos_token_id
        eos = list(eos) if isinstance(eos, (list, tuple)) else [eos]
        self.eos_ids = sorted({int(i) for i in [*eos, tokenizer.eos_token_id] if i is not None})
        self.pad_id = int(tokenizer.pad_token_id)

    def __repr__(self) -> str:
        return f"HFLLM(name={self.name!r}, device={self.device}, dtype={self.model.dtype})"

    @property
    def device(self) -> torch.device:
        """The device the model runs on."""
        return self.model.device

    def chat_prompt(self, messages: Prompt) -> str:
        """Render ``messages`` with the tokenizer's chat template, ready for the reply (or
        continuing a final assistant message)."""
        return template_prompt(self.tokenizer, self.name, messages)

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

        Prompts are left-padded and sent through one ``model.generate`` call per batch of
        ``batch_size``. Sampling (``temperature > 0``) uses :class:`PerRowSampler`, so each
        row's sample depends only on its prompt and its seed, never on the rest of the batch.
        """
        check_prompts(prompts, chat)
        check_sampling(max_new_tokens, temperature, top_p)
        texts = [self.chat_prompt(p) if chat else str(p) for p in prompts]
        seeds = row_seeds(seed, len(texts)) if temperature > 0 else None
        size = batch_rows(batch_size, self.batch_size, len(texts))
        results: list[Generation] = []
        for start in range(0, len(texts), size):
            rows = slice(start, start + size)
            batch_seeds = None if seeds is None else seeds[rows]
            results += self._generate_batch(
                texts[rows], batch_seeds, max_new_tokens, temperature, top_p, chat, stop
            )
        return results

    def _generate_batch(
        self,
        texts: list[str],
        seeds: list[int] | None,
        max_new_tokens: int,
        temperature: float,
        top_p: float,
        chat: bool,
        stop: Sequence[str] | None,
    ) -> list[Generation]:
        # A rendered chat prompt already holds its special tokens; adding them again would put
        # a second BOS in front for tokenizers that add one.
        enc = self.tokenizer(
            texts,
            return_tensors="pt",
            padding=True,
            padding_side="left",
            add_special_tokens=not chat,
        ).to(self.device)
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "do_sample": False,
            "pad_token_id": self.pad_id,
            "eos_token_id": self.eos_ids,
        }
        if seeds is not None:
            sampler = PerRowSampler(seeds, temperature, top_p)
            kwargs["logits_processor"] = LogitsProcessorList([sampler])
        stop_strings = [s for s in stop or () if s]
        if stop_strings:
            kwargs.update(stop_strings=stop_strings, tokenizer=self.tokenizer)
        with torch.inference_mode():
            out = self.model.generate(**enc, **kwargs)
        new = out[:, enc["input_ids"].shape[1] :].tolist()
        return [self.to_generation(ids, text, stop) for ids, text in zip(new, texts, strict=True)]

    def to_generation(self, ids: list[int], prompt: str, stop: Sequence[str] | None) -> Generation:
        """A :class:`Generation` from a row of generated ids (padded after its end token):
        the text up to the end token or the first stop string, and the tokens kept."""
        # A finished row is padded to the batch's length; pad and EOS are often the same id.
        return ids_to_generation(self.tokenizer, ids, prompt, stop, {*self.eos_ids, self.pad_id})
