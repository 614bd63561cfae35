"""LlamaRec's ranker for ``RecRank-v0``: one forward pass, the letters' logits as the ranking.

A causal LM reads the observation's prompt (history titles numbered, candidates lettered
A–T) followed by the response header, and the next-token logits of the candidates' letters
score the candidates (a *verbalizer*, LlamaRec arXiv 2311.02089 §3). Nothing is generated.

LlamaRec scored the first token of the bare letter (``▁A`` in Llama-2's SentencePiece) but
trained on the letter as it tokenises after the response header (``A``), so evaluation read a
logit that training never raised. Here the letter id is, by construction, the token the
trainer (:mod:`agents.llm.verbalizer_train`) teaches: :func:`letter_token_ids` is the only
place either side gets it from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from agents.llm.run_files import load_policy_llm
from recgym.envs.rank import LETTERS
from recgym.llm import LLM

__all__ = [
    "RESPONSE_HEADER",
    "VerbalizerAgent",
    "end_token_id",
    "forward_last",
    "last_hidden",
    "left_padded",
    "letter_token_ids",
    "render_prompt",
]

RESPONSE_HEADER = "\n\n### Response:\n"
"""What follows the prompt in LlamaRec's alpaca framing (``chat=False``)."""

SUMMARY_KEYS = ("best_step", "best_ndcg@10", "steps", "examples_seen", "train_minutes", "device")
"""The parts of an adapter's ``training.json`` that :meth:`VerbalizerAgent.config` reports."""


def render_prompt(llm: LLM, prompt: str, chat: bool) -> str:
    """The text the model reads: the chat template with the assistant turn opened, or alpaca."""
    return llm.chat_prompt(prompt) if chat else prompt + RESPONSE_HEADER


def letter_token_ids(
    tokenizer: Any, rendered: str, n: int, *, add_special_tokens: bool
) -> tuple[list[int], list[int]]:
    """The prompt's token ids and the id of each of the first ``n`` letters right after it.

    A letter's id is the last token of ``tokenize(rendered + letter)``: the token a model
    trained on ``rendered + letter`` learns to emit, whatever the tokenizer does to a bare
    letter. The tokens before it must be exactly ``tokenize(rendered)``, so that one forward
    pass over the prompt scores every letter.

    Raises:
        ValueError: a letter merges with the prompt's end or splits into several tokens.
    """
    letters = LETTERS[:n]
    encoded = tokenizer(
        [rendered, *(rendered + c for c in letters)], add_special_tokens=add_special_tokens
    )["input_ids"]
    prompt_ids, ids = list(encoded[0]), []
    for letter, seq in zip(letters, encoded[1:], strict=True):
        if len(seq) != len(prompt_ids) + 1 or list(seq[:-1]) != prompt_ids:
            raise ValueError(
                f"the letter {letter!r} does not tokenise as one token after the prompt: "
                f"the prompt ends with {tokenizer.convert_ids_to_tokens(prompt_ids[-3:])} and "
                f"prompt + {letter!r} ends with {tokenizer.convert_ids_to_tokens(seq[-4:])}; "
                "a verbalizer needs one token per letter, so end the prompt with a separator "
                "(a newline, as both framings here do) or use another tokenizer"
            )
        ids.append(int(seq[-1]))
    return prompt_ids, ids


def end_token_id(tokenizer: Any, chat: bool) -> int:
    """The token that closes the answer: ChatML's ``<|im_end|>`` in chat, else the EOS token.

    LlamaRec trains the letter followed by ``</s>``; the chat equivalent is the token that
    ends the assistant turn.
    """
    template = getattr(tokenizer, "chat_template", None) or ""
    if chat and "<|im_end|>" in template:
        return int(tokenizer.convert_tokens_to_ids("<|im_end|>"))
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token to end the answer with; set eos_token")
    return int(tokenizer.eos_token_id)


def forward_last(
    model: Any, sequences: Sequence[Sequence[int]], pad_id: int, keep: int = 1
) -> torch.Tensor:
    """Logits ``(B, keep, vocab)`` at the last ``keep`` positions of left-padded sequences.

    Left padding puts every row's last tokens at the same positions, so ``logits_to_keep``
    skips the vocabulary projection everywhere else (at ~700 tokens and a 49k vocabulary that
    projection would cost as much memory as the rest of the pass). Positions count from each
    row's first real token, so a row scores the same alone or in any batch.
    """
    out = model(**left_padded(model, sequences, pad_id), logits_to_keep=keep, use_cache=False)
    logits: torch.Tensor = out.logits
    return logits


def last_hidden(model: Any, sequences: Sequence[Sequence[int]], pad_id: int) -> torch.Tensor:
    """``(B, hidden)`` last-layer hidden state (after the final norm) at each sequence's last
    token, padded as :func:`forward_last` pads."""
    out = model(
        **left_padded(model, sequences, pad_id),
        logits_to_keep=1,
        use_cache=False,
        output_hidden_states=True,
    )
    hidden: torch.Tensor = out.hidden_states[-1][:, -1]
    return hidden


def left_padded(
    model: Any, sequences: Sequence[Sequence[int]], pad_id: int
) -> dict[str, torch.Tensor]:
    """``input_ids``, ``attention_mask`` and ``position_ids`` of left-padded ``sequences`` on
    the model's device; positions count from each row's first real token."""
    device = next(model.parameters()).device
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, width - len(seq) :] = torch.as_tensor(list(seq), dtype=torch.long)
        mask[row, width - len(seq) :] = 1
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return {
        "input_ids": ids.to(device),
        "attention_mask": mask.to(device),
        "position_ids": positions.to(device),
    }


class VerbalizerAgent:
    """Score ``RecRank-v0`` candidates by the LM's next-token probability of their letters.

    The action is the softmax over the candidates' letter logits at the prompt's end (float32
    in [0, 1], one entry per candidate), so it lies inside the env's action space and its
    order is the LM's ranking.

    Args:
        model: a loaded transformers-backed :class:`recgym.llm.LLM` (``recgym.llm.HFLLM``), or
            a name/path for :func:`recgym.llm.load` (default: the embedded SmolLM2-135M).
        adapter: a directory written by :func:`agents.llm.verbalizer_train.train_verbalizer`
            (a PEFT LoRA adapter); it is loaded onto ``model`` in place.
        chat: frame the prompt with the model's chat template (the prompt as the user turn,
            the assistant turn opened); ``False`` uses LlamaRec's alpaca framing.
        batch_size: prompts per forward pass.
        model_kwargs: arguments of :func:`recgym.llm.load` when ``model`` is a name;
            ``{"backend": "ct2", "quantization": "float32"}`` scores on the CTranslate2 engine
            (the adapter folded in first; float32 gives transformers' logits).

    Attributes:
        llm: the language model.
        model: the torch module that is run (the LLM's, wrapped by the adapter if any);
            ``None`` on the ct2 engine.

    Raises:
        TypeError: the model has no torch module (e.g. :class:`recgym.llm.FakeLLM`).
    """

    def __init__(
        self,
        model: LLM | str = "smollm2-135m",
        *,
        adapter: str | None = None,
        chat: bool = True,
        batch_size: int = 8,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        trainer = "agents.llm.verbalizer_train.train_verbalizer"
        loaded, self.training = load_policy_llm(model, model_kwargs, adapter, trainer)
        self.engine = loaded if hasattr(loaded, "next_token_logits") else None
        if self.engine is None and not isinstance(getattr(loaded, "model", None), torch.nn.Module):
            raise TypeError(
                f"VerbalizerAgent reads next-token logits, so it needs a transformers model "
                f"(recgym.llm.HFLLM) or the ct2 engine; {type(loaded).__name__} {loaded.name!r} "
                "has neither. Load one with recgym.llm.load('smollm2-135m') or another Hugging "
                "Face causal LM"
            )
        self.llm: LLM = loaded
        self.model: Any = getattr(loaded, "model", None)
        self.chat = bool(chat)
        self.batch_size = int(batch_size)
        self.adapter = None if adapter is None else str(adapter)

    def letter_ids(self, prompt: str, n: int) -> tuple[list[int], list[int]]:
        """The rendered prompt's token ids and the ids of its first ``n`` candidate letters."""
        rendered = render_prompt(self.llm, prompt, self.chat)
        return letter_token_ids(self.llm.tokenizer, rendered, n, add_special_tokens=not self.chat)

    def act_batch(self, observations: Sequence[dict[str, Any]]) -> list[np.ndarray]:
        """One probability vector over each observation's candidates, in letter order."""
        encoded = [self.letter_ids(o["prompt"], len(o["candidates"])) for o in observations]
        if self.engine is not None:
            logits = self.engine.next_token_logits(
                [ids for ids, _ in encoded], batch_size=self.batch_size
            )
            return [
                torch.softmax(torch.from_numpy(row[letters]).float(), dim=-1).numpy()
                for row, (_, letters) in zip(logits, encoded, strict=True)
            ]
        pad_id = int(self.llm.tokenizer.pad_token_id)
        actions: list[np.ndarray] = []
        was_training = self.model.training
        self.model.eval()  # no LoRA dropout while scoring, even when called mid-training
        try:
            with torch.inference_mode():
                for lo in range(0, len(encoded), self.batch_size):
                    chunk = encoded[lo : lo + self.batch_size]
                    logits = forward_last(self.model, [ids for ids, _ in chunk], pad_id)[:, -1]
                    for row, (_, letters) in enumerate(chunk):
                        picked = logits[row, torch.as_tensor(letters, device=logits.device)]
                        probs = torch.softmax(picked.float(), dim=-1)
                        actions.append(probs.cpu().numpy().astype(np.float32))
        finally:
            self.model.train(was_training)
        return actions

    def act(self, observation: dict[str, Any]) -> np.ndarray:
        """The probability vector over one observation's candidates."""
        return self.act_batch([observation])[0]

    def config(self) -> dict[str, Any]:
        """The settings that define this agent (for leaderboard rows)."""
        training = None
        if self.training is not None:
            training = {k: self.training[k] for k in SUMMARY_KEYS if k in self.training}
        return {
            "model": self.llm.name,
            **({"backend": backend} if (backend := getattr(self.llm, "backend", None)) else {}),
            "adapter": self.adapter,
            "training": training,
            "chat": self.chat,
        }
