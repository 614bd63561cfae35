"""LlamaRec's ranker training: LoRA on a causal LM, cross-entropy on the answer letter.

Each training example is a ``RecRank-v0`` train episode (the target and 19 random unseen
movies, shuffled); the model reads the prompt and is taught the target's letter followed by
the end of the answer, with the loss on those two tokens only (LlamaRec arXiv 2311.02089,
code ``trainer/llm.py``: LoRA r 8, α 32, dropout 0.05 on q/v, lr 1e-4, 100 warm-up steps, a
linear schedule, one epoch, validation NDCG@10 every 100 steps with patience 20). The letter
token is the one :class:`~agents.llm.verbalizer.VerbalizerAgent` scores, from the same function.

Run ``python -m agents.llm.verbalizer_train --help``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (torch's own alias)

from agents.llm.run_files import (
    CheckpointedRun,
    config_parser,
    finished,
    load_state,
    log_record,
    parse_config,
    provenance,
    remove_checkpoint,
    save_adapter,
    trim_log,
    write_summary,
)
from agents.llm.trainer_utils import EpisodeStream, autocast, linear_schedule, with_lora
from agents.llm.verbalizer import (
    VerbalizerAgent,
    end_token_id,
    forward_last,
    letter_token_ids,
    render_prompt,
)
from recgym.envs.rank import RecRankEnv
from recgym.llm import LLM
from recgym.utils.checkpoint import note_resume

__all__ = [
    "VerbalizerTrainConfig",
    "VerbalizerTrainer",
    "encode_example",
    "main",
    "train_verbalizer",
]

_RESUMABLE = ("device", "output_dir", "progress", "eval_batch_size")
"""Config fields that may differ between a checkpoint and the run resuming it."""


@dataclass(frozen=True)
class VerbalizerTrainConfig:
    """LlamaRec's ranker recipe (defaults) and the run's bookkeeping."""

    model: str = "smollm2-135m"
    """Name or path for :func:`recgym.llm.load` (loaded in float32)."""
    retriever: str = "lrurec"
    """``RecRank-v0`` retriever when no env is given (``"popularity"``: a popularity count)."""
    chat: bool = True
    """Chat-template framing; ``False``: LlamaRec's alpaca ``### Response:`` framing."""
    lora_r: int = 8
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA input."""
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    """Linear layers that get an adapter."""
    lr: float = 1e-4
    """Peak AdamW learning rate (linear warm-up, then linear decay to 0 at ``max_steps``)."""
    warmup_steps: int = 100
    """Optimizer steps of linear warm-up."""
    batch_size: int = 16
    """Examples per forward/backward pass."""
    grad_accum: int = 1
    """Passes per optimizer step (effective batch = batch_size x grad_accum)."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm (transformers' Trainer default, which LlamaRec used)."""
    max_steps: int | None = None
    """Optimizer steps; ``None``: one epoch over ``train_examples``."""
    train_examples: int | None = None
    """Train-split episodes to train on, sampled with ``seed``; ``None``: all 97,171."""
    eval_every: int = 100
    """Validate (and checkpoint) every this many optimizer steps, and after the last."""
    eval_episodes: int | None = None
    """Validation episodes scored for selection, evenly spaced among those whose target the
    retriever found (the rest score 0 whatever the ranker does); ``None``: all of them."""
    eval_batch_size: int = 8
    """Prompts per validation forward pass."""
    patience: int = 20
    """Stop after this many validations without a better NDCG@10."""
    seed: int = 0
    """Seed of the example sample and order, the LoRA initialisation and dropout."""
    output_dir: str | None = None
    """Where the best adapter, training.json, log.jsonl and checkpoint/ go; ``None``:
    ``$RECGYM_CACHE/verbalizer/<model>``."""
    device: str | None = None
    """``"cpu"``, ``"cuda"``...; ``None``: CUDA when available."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        for name in (
            "lora_r",
            "batch_size",
            "grad_accum",
            "eval_every",
            "patience",
            "eval_batch_size",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        for name in ("max_steps", "train_examples", "eval_episodes"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None; got {value}")
        if self.lr <= 0 or self.warmup_steps < 0:
            raise ValueError(f"need lr > 0, warmup_steps >= 0; got {self.lr}, {self.warmup_steps}")


def encode_example(
    llm: LLM, observation: dict[str, Any], label: int, *, chat: bool
) -> tuple[list[int], list[int]]:
    """An episode as training tokens: ``(input_ids, label_ids)``.

    ``input_ids`` is the rendered prompt followed by ``label_ids``: the target's letter token
    (from :func:`~agents.llm.verbalizer.letter_token_ids`, as the agent scores it) and the
    token that ends the answer.
    """
    n = len(observation["candidates"])
    if not 0 <= label < n:
        raise ValueError(f"label must be a candidate position in 0..{n - 1}; got {label}")
    rendered = render_prompt(llm, observation["prompt"], chat)
    prompt_ids, letters = letter_token_ids(llm.tokenizer, rendered, n, add_special_tokens=not chat)
    labels = [letters[label], end_token_id(llm.tokenizer, chat)]
    return prompt_ids + labels, labels


def train_verbalizer(
    config: VerbalizerTrainConfig, env: gym.Env[Any, Any] | None = None
) -> dict[str, Any]:
    """Fine-tune a LoRA verbalizer on ``RecRank-v0``; keep the adapter best on validation.

    Shorthand for ``VerbalizerTrainer(config, env).train()``.
    """
    return VerbalizerTrainer(config, env).train()


class VerbalizerTrainer(CheckpointedRun):
    """LoRA fine-tuning of a causal LM as a ``RecRank-v0`` verbalizer.

    Validates (NDCG@10 over the validation split, see ``eval_episodes``) at step 0 (the
    zero-shot model) and every ``eval_every`` steps, keeps the best adapter in ``output_dir``,
    and checkpoints after each validation. A run finds its checkpoint in
    ``output_dir/checkpoint`` and resumes from it (a killed run); the checkpoint is removed when
    the run ends. The test split is never read.

    Args:
        config: the recipe.
        env: a ``RecRank-v0`` env (its train and validation splits are used); default one with
            ``config.retriever``.

    Attributes:
        llm: the language model (float32 weights; bf16 autocast on CUDA).
        model: the PEFT-wrapped module being trained.
        agent: the :class:`VerbalizerAgent` that validates ``model``.
        out: the output directory.
    """

    def __init__(self, config: VerbalizerTrainConfig, env: gym.Env[Any, Any] | None = None) -> None:
        import recgym.llm

        self.config = config
        self.out = Path(config.output_dir or _default_dir(config.model)).expanduser()
        self._state = load_state(self.out, config, _RESUMABLE)
        if self._state is None and finished(self.out):
            raise FileExistsError(
                f"{self.out} holds a finished run (training.json, no checkpoint/); pass another "
                "output_dir or delete that one"
            )
        torch.manual_seed(config.seed)  # the LoRA initialisation
        base = (env if env is not None else _make_env(config.retriever)).unwrapped
        if not isinstance(base, RecRankEnv):
            raise TypeError(f"env must be a RecRank-v0 env; got {type(base).__name__}")
        self.base = base
        dev = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.device = torch.device(dev)
        self.llm = recgym.llm.load(config.model, device=dev, dtype="float32", progress=False)
        self.agent = VerbalizerAgent(self.llm, chat=config.chat, batch_size=config.eval_batch_size)
        self.model = with_lora(self.llm.model, config)
        self.agent.model = self.model  # validate the adapter being trained
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=config.lr, weight_decay=0.0)
        self.examples = EpisodeStream(
            self.base.num_episodes("train"), config.train_examples, config.seed
        )
        per_step = config.batch_size * config.grad_accum
        self.max_steps = config.max_steps or math.ceil(len(self.examples.pool) / per_step)
        self.schedule = linear_schedule(self.optimizer, config.warmup_steps, self.max_steps)
        n_val = self.base.num_episodes("validation")
        found = [i for i in range(n_val) if self.base.label(i, "validation") >= 0]
        if not found:
            raise ValueError("the retriever found no validation target: nothing to select on")
        k = min(config.eval_episodes or len(found), len(found))
        picks = np.unique(np.linspace(0, len(found) - 1, k).round().astype(int))
        self.val_indices = [found[i] for i in picks]
        self.val_share = len(found) / n_val
        self.run: dict[str, Any] = {
            "step": 0,
            "cursor": 0,
            "history": [],
            "best_step": None,
            "best": -math.inf,
            "bad_evals": 0,
            "seconds": 0.0,
            "eval_seconds": 0.0,
        }
        self._losses: list[float] = []

    def _autocast(self) -> Any:
        return autocast(self.device)

    def train(self) -> dict[str, Any]:
        """Run to ``max_steps`` or early stopping.

        Returns:
            The summary also written to ``output_dir/training.json``: ``best_step``,
            ``best_ndcg@10``, ``history`` (validation metrics per evaluation, step 0 =
            zero-shot), ``steps``, ``examples_seen``, ``train_minutes``, ``device``,
            ``config``...
        """
        from tqdm.auto import tqdm

        self.out.mkdir(parents=True, exist_ok=True)
        if self._state is not None:
            self.restore_checkpoint(self._state)
            note_resume(f"{self.out} from its checkpoint (step {self.run['step']})")
        trim_log(self.out / "log.jsonl", None if self._state is None else self.run["step"])
        self._started = time.perf_counter() - self.run["seconds"]
        bar = tqdm(
            total=self.max_steps,
            initial=self.run["step"],
            desc="verbalizer",
            unit="step",
            disable=not self.config.progress,
        )
        # A resumed run whose patience ran out at its last validation stops at once.
        stop = self.evaluate() if not self.run["history"] else self._out_of_patience()
        while not stop and self.run["step"] < self.max_steps:
            loss = self.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", best=f"{self.run['best']:.4f}")
            if self.run["step"] % self.config.eval_every == 0 or self.run["step"] == self.max_steps:
                stop = self.evaluate()
                self.save_checkpoint()
        bar.close()
        summary = self._write_summary(finished=True)
        remove_checkpoint(self.out)
        return summary

    def step(self) -> float:
        """One optimizer step over ``grad_accum`` batches; returns the last batch's loss."""
        cfg, run = self.config, self.run
        self.model.train()
        for _ in range(cfg.grad_accum):
            indices, run["cursor"] = self.examples.take(
                run["cursor"], cfg.batch_size, lambda i: self.base.label(i, "train") >= 0
            )
            with self._autocast():
                loss = _batch_loss(self.model, self.llm, self.base, indices, cfg.chat)
            (loss / cfg.grad_accum).backward()
            self._losses.append(float(loss.detach()))
        torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
        self.optimizer.step()
        self.schedule.step()
        self.optimizer.zero_grad(set_to_none=True)
        run["step"] += 1
        log_record(
            self.out,
            {
                "step": run["step"],
                "loss": self._losses[-1],
                "lr": self.schedule.get_last_lr()[0],
                "examples": run["cursor"],
                "seconds": time.perf_counter() - self._started,
            },
        )
        return self._losses[-1]

    def evaluate(self) -> bool:
        """Validate; keep the adapter if it is the best so far. True when patience ran out."""
        run, t0 = self.run, time.perf_counter()
        with self._autocast():
            metrics = _validate(self.agent, self.base, self.val_indices, self.val_share)
        run["eval_seconds"] += time.perf_counter() - t0
        loss = float(np.mean(self._losses)) if self._losses else None
        row = {"step": run["step"], **metrics, "train_loss": loss}
        self._losses.clear()
        run["history"].append(row)
        if metrics["ndcg@10"] > run["best"]:
            run["best"], run["best_step"], run["bad_evals"] = metrics["ndcg@10"], run["step"], 0
            save_adapter(self.model, self.out)
        else:
            run["bad_evals"] += 1
        log_record(self.out, {"step": run["step"], "eval": row})
        self._write_summary(finished=False)
        return self._out_of_patience()

    def _out_of_patience(self) -> bool:
        return bool(self.run["bad_evals"] >= self.config.patience)

    def _write_summary(self, finished: bool) -> dict[str, Any]:
        run = self.run
        run["seconds"] = time.perf_counter() - self._started
        summary = {
            "best_step": run["best_step"],
            "best_ndcg@10": run["best"],
            "steps": run["step"],
            "examples_seen": run["cursor"],
            "train_examples": len(self.examples.pool),
            "train_minutes": round(run["seconds"] / 60, 3),
            "eval_minutes": round(run["eval_seconds"] / 60, 3),
            "device": str(self.device),
            "finished": finished,
            "history": run["history"],
            "env": {
                "id": "RecRank-v0",
                "retriever": self.base.task.retriever_name,
                "data_version": self.base.task.data_version,
            },
            **provenance(self.config),
        }
        write_summary(self.out, summary)
        return summary


def _batch_loss(
    model: Any, llm: LLM, base: RecRankEnv, indices: Sequence[int], chat: bool
) -> torch.Tensor:
    """Mean cross-entropy over the answer tokens (letter + end) of the episodes."""
    encoded = [
        encode_example(llm, base.observation(i, "train"), base.label(i, "train"), chat=chat)
        for i in indices
    ]
    pad_id = int(llm.tokenizer.pad_token_id)
    # With left padding the two answer tokens are every row's last two: the logits that
    # predict them sit at positions -3 and -2.
    logits = forward_last(model, [ids for ids, _ in encoded], pad_id, keep=3)[:, :2]
    targets = torch.as_tensor([labels for _, labels in encoded], device=logits.device)
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))


def _validate(
    agent: VerbalizerAgent, base: RecRankEnv, indices: list[int], share: float
) -> dict[str, float]:
    """NDCG@10 and recall@10 over the whole validation split, from episodes with a hit.

    A missed target scores 0 for every ranker, so the split's mean is the hit episodes' mean
    times their share: exact when ``indices`` are all of them, an unbiased estimate otherwise,
    at a fraction of the forward passes (LlamaRec evaluates the same subset).
    """
    actions = agent.act_batch(base.observations(indices, "validation"))
    metrics = base.score(np.stack(actions), indices, "validation").metrics
    ndcg, recall = (
        float(np.mean(metrics["cand/ndcg@10"])),
        float(np.mean(metrics["cand/recall@10"])),
    )
    return {
        "ndcg@10": ndcg * share,
        "recall@10": recall * share,
        "subset/ndcg@10": ndcg,
        "subset/recall@10": recall,
        "hit_share": share,
        "episodes": len(indices),
    }


def _make_env(retriever: str) -> gym.Env[Any, Any]:
    import recgym  # noqa: F401  (registers RecRank-v0)

    # By name, "popularity" too: the env digests a retriever object by its id(), which would
    # give the summary a data_version of its own in every process.
    return gym.make("RecRank-v0", split="train", retriever=retriever)


def _default_dir(model: str) -> Path:
    from recgym.data.cache import cache_dir

    return cache_dir("verbalizer", create=False) / Path(model).name.replace("/", "--")


# ----- command line ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``python -m agents.llm.verbalizer_train``: train and print the summary (no history)."""
    parser = config_parser(
        VerbalizerTrainConfig, "python -m agents.llm.verbalizer_train", __doc__.split("\n")[0]
    )
    config = parse_config(VerbalizerTrainConfig, vars(parser.parse_args(argv)))
    summary = train_verbalizer(config)
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2))
    return summary


if __name__ == "__main__":
    main()
