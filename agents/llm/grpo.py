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

Validation runs on a fixed subset of the validation split every ``eval_every`` steps (step 0
is the untrained model); the best adapter by validation NDCG@10 (``select_metric``) is kept;
the test split is evaluated once, with that adapter, at the end. Checkpoints make a killed run
(or a run cut by ``max_minutes``) resume where it stopped, bit for bit: rollouts are seeded by
step.

Run ``python -m agents.llm.grpo --help``.
"""

from __future__ import annotations

import json
import math
import shlex
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from agents.llm.policy_loss import completion_logprobs, group_advantages, policy_loss, sft_loss
from agents.llm.text_env import TextScorer, text_scorer
from agents.llm.training import (
    CheckpointedRun,
    EpisodeStream,
    autocast,
    config_parser,
    finished,
    linear_schedule,
    load_state,
    log_record,
    parse_config,
    provenance,
    read_log,
    save_adapter,
    trim_log,
    with_lora,
)
from agents.llm.zero_shot import ZeroShotLLMAgent, policy_messages
from recgym.envs.text import SYSTEM_PROMPT
from recgym.llm import LLM, Generation
from recgym.llm.base import derive_seed

__all__ = [
    "ALGORITHMS",
    "GRPOConfig",
    "GRPOTrainer",
    "Rollout",
    "TextScorer",
    "main",
    "text_scorer",
    "train_grpo",
]

ALGORITHMS = ("grpo", "rloo", "rs-sft")

_RESUMABLE = ("device", "output_dir", "progress", "eval_batch_size", "max_minutes")
"""Config fields that may differ between a checkpoint and the run resuming it."""


@dataclass(frozen=True)
class GRPOConfig:
    """The recipe (defaults: Rec-R1's sampling and loss, sized for SmolLM2-135M) and the run's
    bookkeeping."""

    algorithms: ClassVar[tuple[str, ...]] = ALGORITHMS
    """The values ``algorithm`` may take (a subclass with its own recipe sets its own)."""
    env: str = "RecSeq-v0"
    """A registered recgym text env (``RecSeq-v0``, ``RecSearch-v0``)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra ``gym.make`` arguments of the env (JSON on the command line)."""
    model: str = "smollm2-135m"
    """Name or path for :func:`recgym.llm.load` (loaded in float32; bf16 autocast on CUDA)."""
    algorithm: str = "grpo"
    """``grpo``, ``rloo`` or ``rs-sft`` (see the module docstring)."""
    prompts_per_step: int = 8
    """Train episodes per step (Rec-R1: 32)."""
    samples_per_prompt: int = 8
    """Completions per episode, the group (Rec-R1: 12)."""
    max_new_tokens: int = 64
    """Completion budget in tokens (Rec-R1: 512, for a 3B model that reasons first)."""
    temperature: float = 0.6
    """Sampling temperature of rollouts and evaluation (Rec-R1: 0.6)."""
    eval_temperature: float | None = None
    """Temperature of validation, test and the leaderboard command (``None``: ``temperature``;
    0: greedy)."""
    top_p: float = 0.95
    """Nucleus mass (Rec-R1: 0.95)."""
    system_prompt: bool = True
    """Send Rec-R1's system prompt before the observation."""
    response_prefix: str = ""
    """Start of every reply, continued by the model (e.g. ``<answer>{"query": "``); part of
    the action, not of the trained tokens."""
    lr: float = 2e-5
    """Peak AdamW learning rate (Rec-R1: 1e-6 for full fine-tuning of 3B; LoRA needs more)."""
    warmup_steps: int = 0
    """Linear warm-up steps (then linear decay to 0 at ``max_steps``)."""
    max_steps: int = 100
    """Optimizer steps."""
    updates_per_batch: int = 1
    """Optimizer steps on each batch of rollouts (Rec-R1: 1; >1 makes the clip matter)."""
    clip_eps: float = 0.2
    """PPO clip range of the probability ratio."""
    kl_coef: float = 0.001
    """Weight of the k3 KL penalty to the reference (Rec-R1: 0.001; 0 skips the reference
    forward pass)."""
    advantage_eps: float = 1e-4
    """Added to the group std in GRPO's normalisation."""
    sft_min_ndcg: float = 0.0
    """``rs-sft``: keep a group's best completion only if its NDCG@k exceeds this."""
    fast_generation: bool = True
    """Sample rollouts with :class:`recgym.llm.static.StaticCacheLLM` (static KV cache, CUDA
    graphs) on CUDA; the CPU always uses transformers' ``generate``."""
    micro_batch_size: int = 8
    """Completions per forward/backward pass (gradient accumulation over the step's batch)."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm."""
    lora: bool = True
    """Train a LoRA adapter (``False``: full fine-tuning; then there is no cheap reference, so
    ``kl_coef`` must be 0)."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA input (0: rollouts and updates see the same function)."""
    target_modules: tuple[str, ...] = (
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
    )  # fmt: skip
    """Linear layers that get an adapter."""
    train_episodes: int | None = None
    """Train-split episodes to draw from (sampled with ``seed``); ``None``: all."""
    eval_every: int = 10
    """Validate (and checkpoint) every this many steps, and after the last."""
    select_metric: str = "ndcg@10"
    """The validation metric that picks the best adapter (a key of the env's
    ``info["metrics"]``, or ``reward``); higher is better."""
    eval_episodes: int | None = 200
    """Validation episodes (the first ones of the split); ``None``: all."""
    eval_batch_size: int = 32
    """Prompts per evaluation generation batch."""
    test_episodes: int | None = None
    """Test episodes of the final evaluation (the first ones); ``None``: all; 0: skip it."""
    seed: int = 0
    """Seed of the episode order, the rollouts, the LoRA initialisation and evaluation."""
    output_dir: str | None = None
    """Run folder; ``None``: ``$RECGYM_CACHE/grpo/<env>-<model>-<algorithm>-s<seed>``."""
    device: str | None = None
    """``"cpu"``, ``"cuda"``...; ``None``: CUDA when available."""
    max_minutes: float | None = None
    """Stop (with a checkpoint) once training has run this long; a later run resumes."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        if self.algorithm not in self.algorithms:
            raise ValueError(f"algorithm must be one of {self.algorithms}; got {self.algorithm!r}")
        positive = (
            "prompts_per_step", "max_new_tokens", "max_steps", "updates_per_batch",
            "micro_batch_size", "lora_r", "eval_every", "eval_batch_size",
        )  # fmt: skip
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if self.samples_per_prompt < 2:
            raise ValueError(f"samples_per_prompt must be >= 2; got {self.samples_per_prompt}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 to sample a group; got {self.temperature}")
        if self.eval_temperature is not None and self.eval_temperature < 0:
            raise ValueError(f"eval_temperature must be >= 0; got {self.eval_temperature}")
        if self.lr <= 0 or self.warmup_steps < 0 or self.clip_eps <= 0 or self.kl_coef < 0:
            raise ValueError("need lr > 0, warmup_steps >= 0, clip_eps > 0 and kl_coef >= 0")
        if not self.lora and self.kl_coef:
            raise ValueError("full fine-tuning has no adapter-free reference: set kl_coef=0")
        for name in ("train_episodes", "eval_episodes"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None; got {value}")


@dataclass
class Rollout:
    """One step's completions, scored.

    Attributes:
        episodes: ``(N,)`` train episode of each completion (groups are consecutive).
        prompt_ids: the tokens of each completion's rendered prompt (with the prefix).
        completion_ids: the sampled tokens (with the end token when generation stopped).
        actions: what the env scored: the response prefix followed by the completion text.
        rewards: ``(N,)`` the env's rewards (format penalty included).
        advantages: ``(N,)`` per-completion weights of the loss.
        metrics: the env's per-completion metrics (``ndcg@10``...), ``format_ok`` and
            ``ndcg`` (at the env's k).
    """

    episodes: np.ndarray
    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    actions: list[str]
    rewards: np.ndarray
    advantages: np.ndarray
    metrics: dict[str, np.ndarray]


def train_grpo(
    config: GRPOConfig,
    env: gym.Env[Any, Any] | None = None,
    llm: LLM | None = None,
    generator: LLM | None = None,
) -> dict[str, Any]:
    """Train an LLM policy on a recgym text env; shorthand for ``GRPOTrainer(...).train()``."""
    return GRPOTrainer(config, env, llm, generator).train()


class GRPOTrainer(CheckpointedRun):
    """Trains an LLM policy with GRPO, RLOO or rejection-sampling SFT (see the module docstring).

    Args:
        config: the recipe.
        env: a recgym text env (its train and validation splits are used, and test once at the
            end); default ``gym.make(config.env, **config.env_kwargs)``.
        llm: the model to train, loaded by :func:`recgym.llm.load` (default: ``config.model``
            in float32); its ``model`` is wrapped in place.
        generator: the backend that samples rollouts (default: ``llm``, which generates from
            the weights being trained). Another backend's completions are re-tokenized with
            ``llm``'s tokenizer and trained on off-policy; the fast tests use the fake backend
            this way to get a chosen mix of well-formed and malformed completions.

    Attributes:
        llm: the language model; ``llm.model`` is the module being trained.
        scorer: the env's batched scorer (``env.unwrapped``).
        agent: the policy as a :class:`~agents.llm.zero_shot.ZeroShotLLMAgent`, which
            evaluates it.
        out: the output directory.
    """

    unit: ClassVar[str] = "step"
    """What ``run["step"]`` (and the summary's ``steps``, ``best_step``) counts."""

    def __init__(
        self,
        config: GRPOConfig,
        env: gym.Env[Any, Any] | None = None,
        llm: LLM | None = None,
        generator: LLM | None = None,
    ) -> None:
        import recgym
        import recgym.llm

        self.config = config
        self.out = Path(config.output_dir or _default_dir(config)).expanduser()
        self._state = load_state(self.out, config, _RESUMABLE)
        if self._state is None and finished(self.out):
            raise FileExistsError(
                f"{self.out} holds a finished run (training.json, no checkpoint/); pass another "
                "output_dir or delete that one"
            )
        env = env if env is not None else gym.make(config.env, **config.env_kwargs)
        self.scorer = self.scorer_of(env)
        dev = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.device = torch.device(dev)
        if llm is None:
            llm = recgym.llm.load(config.model, device=dev, dtype="float32", progress=False)
        if llm.model is None:
            raise TypeError(f"{llm.name!r} has no torch model to train (the fake backend?)")
        self.llm = llm
        torch.manual_seed(config.seed)  # the LoRA initialisation
        self.model = with_lora(llm.model, config) if config.lora else llm.model
        llm.model = self.model  # rollouts and evaluation run the weights being trained
        if generator is None:
            from recgym.llm.static import fast_generator

            generator = fast_generator(llm) if config.fast_generation else llm
            self._sampled_ids = True  # the generator samples with llm's own tokens
        else:
            self._sampled_ids = False
        self.generator = generator
        self.timing: dict[str, float] = {}
        """Seconds of the last rollout's generation and scoring."""
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=config.lr, weight_decay=0.0)
        self.schedule = linear_schedule(self.optimizer, config.warmup_steps, config.max_steps)
        self.system_prompt = SYSTEM_PROMPT if config.system_prompt else None
        self.agent = self.make_agent()
        self.episodes = EpisodeStream(
            self.scorer.num_episodes("train"), config.train_episodes, config.seed
        )
        n_val = self.scorer.num_episodes("validation")
        self.val_indices = list(range(min(config.eval_episodes or n_val, n_val)))
        self._pad_id = int(llm.tokenizer.pad_token_id)
        self.run: dict[str, Any] = {
            "step": 0,
            "cursor": 0,
            "history": [],
            "best_step": None,
            "best": -math.inf,
            "seconds": 0.0,
            "eval_seconds": 0.0,
            "beat_zero_shot_minutes": None,
        }

    # ----- what a subclass for another env family replaces -----------------------------------

    @staticmethod
    def scorer_of(env: gym.Env[Any, Any]) -> Any:
        """The env's batched scorer (here :func:`text_scorer`: a text env)."""
        return text_scorer(env)

    def make_agent(self) -> Any:
        """The policy that :meth:`evaluate_split` runs: ``act_batch(observations)`` gives the
        actions ``scorer.score`` takes (here a :class:`ZeroShotLLMAgent` on ``self.llm``)."""
        cfg = self.config
        return ZeroShotLLMAgent(
            self.llm,
            max_new_tokens=cfg.max_new_tokens,
            temperature=_eval_temperature(cfg),
            top_p=cfg.top_p,
            batch_size=cfg.eval_batch_size,
            system_prompt=self.system_prompt,
            response_prefix=cfg.response_prefix,
        )

    def prompt_of(self, observation: Any) -> str:
        """The user turn of an observation (a text env's observation is the text)."""
        return str(observation)

    def agent_kwargs(self) -> dict[str, Any]:
        """The ``--agent-kwargs`` of :meth:`leaderboard_command` (this run's policy)."""
        cfg = self.config
        return {
            "model": cfg.model,
            "adapter": str(self.out),
            "max_new_tokens": cfg.max_new_tokens,
            "temperature": _eval_temperature(cfg),
            "top_p": cfg.top_p,
            "batch_size": cfg.eval_batch_size,
            **({"response_prefix": cfg.response_prefix} if cfg.response_prefix else {}),
            **({} if cfg.system_prompt else {"system_prompt": None}),
        }

    def extra_rows(self, batch: Rollout) -> list[int]:
        """Rows of ``batch`` that :meth:`extra_backward` trains on besides the policy loss
        (none here)."""
        return []

    def extra_backward(self, batch: Rollout, rows: list[int]) -> dict[str, float]:
        """Backpropagate a loss besides the policy loss on ``rows`` (called once per optimizer
        step, before the gradient is clipped); returns its statistics, ``"loss"`` included."""
        raise NotImplementedError

    @property
    def group_size(self) -> int:
        """Completions per train episode in a rollout (``samples_per_prompt``)."""
        return self.config.samples_per_prompt

    def _autocast(self) -> Any:
        return autocast(self.device)

    # ----- the loop ---------------------------------------------------------------------------

    def train(self) -> dict[str, Any]:
        """Run to ``max_steps`` (or ``max_minutes``), then evaluate the best adapter on test.

        Returns:
            The summary also written to ``output_dir/training.json``: ``best_step``,
            ``best_metric`` (validation ``select_metric``), ``history`` (validation per
            evaluation, step 0 = the untrained model), ``test`` (the final evaluation), ``steps``,
            ``train_minutes``, ``beat_zero_shot_minutes``, ``device``, ``config``...
        """
        from tqdm.auto import tqdm

        cfg, run = self.config, self.run
        self._begin()
        bar = tqdm(
            total=cfg.max_steps,
            initial=run["step"],
            desc=f"{cfg.algorithm} {cfg.env}",
            unit="step",
            disable=not cfg.progress,
        )
        if not run["history"]:
            self.evaluate()
        out_of_time = False
        while run["step"] < cfg.max_steps and not out_of_time:
            stats = self.step()
            bar.update(1)
            bar.set_postfix(reward=f"{stats['reward']:.3f}", best=f"{run['best']:.4f}")
            out_of_time = cfg.max_minutes is not None and self._minutes() >= cfg.max_minutes
            if run["step"] % cfg.eval_every == 0 or run["step"] == cfg.max_steps:
                self.evaluate()
                self.save_checkpoint()
            elif out_of_time:
                self.save_checkpoint()
        bar.close()
        if run["step"] < cfg.max_steps:  # stopped by max_minutes: resume later
            return self._write_summary(finished=False)
        return self._finish()

    def _begin(self) -> None:
        """Create the run folder, or resume from its checkpoint (dropping later log lines), and
        start the clock where the saved run stopped it."""
        self.out.mkdir(parents=True, exist_ok=True)
        if self._state is not None:
            self._restore(self._state)
        trim_log(self.out / "log.jsonl", None if self._state is None else self.run["step"])
        self._started = time.perf_counter() - self.run["seconds"]

    def _finish(self) -> dict[str, Any]:
        """Test the best adapter, write the final summary and the curves, drop the checkpoint."""
        self._write_summary(finished=False)
        test = self.test() if self.config.test_episodes != 0 else None
        summary = self._write_summary(finished=True, test=test)
        shutil.rmtree(self.out / "checkpoint", ignore_errors=True)
        plot_run(self.out, self.unit, self.config.select_metric)
        return summary

    def rollout(
        self, step: int, indices: Sequence[int], *, first_row: int | None = None
    ) -> Rollout:
        """Sample a group of completions for each train episode and score them all at once.

        Row ``r`` of step ``step`` is sampled with seed ``(config.seed, step * N + r)``, so the
        rollouts of a step do not depend on what ran before it; ``first_row`` replaces
        ``step * N`` (for callers whose batches differ in size).
        """
        cfg = self.config
        episodes, prompt_ids, generations = self.sample(step, indices, first_row=first_row)
        actions = [cfg.response_prefix + gen.text for gen in generations]
        start = time.perf_counter()
        scores = self.scorer.score(actions, episodes.tolist(), "train")
        self.timing["scoring_seconds"] = time.perf_counter() - start
        rewards = np.asarray(scores.rewards, dtype=np.float64)
        metrics = {
            **scores.metrics,
            "format_ok": scores.format_ok.astype(np.float64),
            "ndcg": scores.ndcg,
        }
        advantages = self._advantages(rewards, scores.ndcg)
        completion_ids = [self._completion_tokens(gen) for gen in generations]
        return Rollout(episodes, prompt_ids, completion_ids, actions, rewards, advantages, metrics)

    def sample(
        self,
        step: int,
        indices: Sequence[int],
        *,
        first_row: int | None = None,
        stop: Sequence[str] | None = None,
    ) -> tuple[np.ndarray, list[list[int]], list[Generation]]:
        """:attr:`group_size` completions of each train episode, seeded as :meth:`rollout`
        says; ``stop`` strings end a completion (kept in its tokens).

        Returns:
            ``(episodes, prompt_ids, generations)``, one row per completion: the episode, the
            tokens of its rendered prompt (with the response prefix), the generation.
        """
        cfg = self.config
        g = self.group_size
        episodes = np.repeat(np.asarray(indices, dtype=np.int64), g)
        observations = self.scorer.observations([int(i) for i in indices], "train")
        conversations = [
            policy_messages(self.prompt_of(o), self.system_prompt, cfg.response_prefix)
            for o in observations
        ]
        rows = [c for c in conversations for _ in range(g)]
        first = step * len(rows) if first_row is None else first_row
        seeds = [derive_seed(cfg.seed, first + r) for r in range(len(rows))]
        self.model.eval()
        start = time.perf_counter()
        with self._autocast():
            generations = self.generator.generate(
                rows,
                max_new_tokens=cfg.max_new_tokens,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                seed=seeds,
                batch_size=len(rows),
                stop=stop,
            )
        self.timing["generation_seconds"] = time.perf_counter() - start
        tok = self.llm.tokenizer
        # A rendered chat prompt holds its special tokens already (as HFLLM tokenizes it).
        prompts = [
            tok(self.llm.chat_prompt(c), add_special_tokens=False)["input_ids"]
            for c in conversations
        ]
        return episodes, [prompts[r // g] for r in range(len(rows))], list(generations)

    def _advantages(self, rewards: np.ndarray, ndcg: np.ndarray) -> np.ndarray:
        """Each completion's loss weight (groups of ``samples_per_prompt`` are consecutive)."""
        cfg = self.config
        if cfg.algorithm == "rs-sft":
            return _best_of_group(rewards, ndcg, cfg.samples_per_prompt, cfg.sft_min_ndcg)
        return group_advantages(rewards, cfg.samples_per_prompt, cfg.algorithm, cfg.advantage_eps)

    def _completion_tokens(self, gen: Generation) -> list[int]:
        if self._sampled_ids:
            # The sampled ids themselves: re-tokenizing the text need not give them back.
            return list(gen.token_ids)
        tok = self.llm.tokenizer
        ids: list[int] = tok(gen.text, add_special_tokens=False)["input_ids"]
        return [*ids, int(tok.eos_token_id)] if gen.finish_reason == "stop" else ids

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
            "seconds": self._minutes() * 60,
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
                with self._autocast():
                    logp, mask = completion_logprobs(
                        self.model,
                        [batch.prompt_ids[i] for i in chunk],
                        [batch.completion_ids[i] for i in chunk],
                        self._pad_id,
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
        with torch.no_grad(), self._autocast():
            return [
                completion_logprobs(
                    self.model,
                    [batch.prompt_ids[i] for i in chunk],
                    [batch.completion_ids[i] for i in chunk],
                    self._pad_id,
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

    # ----- evaluation ---------------------------------------------------------------------------

    def evaluate_split(self, split: str, indices: Sequence[int], seed: int) -> dict[str, float]:
        """Mean metrics of the current policy on episodes of ``split`` (sampled with ``seed``,
        as the benchmark runner does)."""
        self.model.eval()
        self.agent.reset(seed)
        rewards: list[np.ndarray] = []
        parts: dict[str, list[np.ndarray]] = {}
        for lo in range(0, len(indices), self.config.eval_batch_size):
            chunk = list(indices[lo : lo + self.config.eval_batch_size])
            with self._autocast():
                actions = self.agent.act_batch(self.scorer.observations(chunk, split))
            scores = self.scorer.score(actions, chunk, split)
            rewards.append(scores.rewards)
            parts.setdefault("format_ok", []).append(scores.format_ok.astype(np.float64))
            for key, value in scores.metrics.items():
                parts.setdefault(key, []).append(value)
        out = {"reward": float(np.mean(np.concatenate(rewards)))}
        out.update({k: float(np.mean(np.concatenate(v))) for k, v in parts.items()})
        out["episodes"] = len(indices)
        return out

    def evaluate(self) -> None:
        """Validate; keep the adapter if it is the best so far (by ``select_metric``)."""
        run, t0 = self.run, time.perf_counter()
        metrics = self.evaluate_split("validation", self.val_indices, self.config.seed)
        run["eval_seconds"] += time.perf_counter() - t0
        row = {"step": run["step"], "train_minutes": round(self._minutes(), 3), **metrics}
        run["history"].append(row)
        key = self.config.select_metric
        if key not in metrics:
            raise ValueError(
                f"select_metric {key!r} is not a validation metric of {self.config.env}; it has "
                f"{', '.join(sorted(metrics))}"
            )
        if (
            run["beat_zero_shot_minutes"] is None
            and run["step"] > 0
            and metrics[key] > run["history"][0][key]
        ):
            run["beat_zero_shot_minutes"] = row["train_minutes"]
        if metrics[key] > run["best"]:
            run["best"], run["best_step"] = metrics[key], run["step"]
            save_adapter(self.model, self.out)
        log_record(self.out, {"step": run["step"], "eval": row})
        self._write_summary(finished=False)

    def test(self) -> dict[str, float]:
        """Evaluate the best adapter (by validation) on the test split, once."""
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        if self.config.lora:
            weights = load_file(str(self.out / "adapter_model.safetensors"))
            set_peft_model_state_dict(self.model, weights)
        n = self.scorer.num_episodes("test")
        indices = list(range(min(self.config.test_episodes or n, n)))
        return {"step": self.run["best_step"], **self.evaluate_split("test", indices, 0)}

    def leaderboard_command(self, seeds: Sequence[int] = (0, 1, 2)) -> str:
        """The ``python -m benchmarks run`` command that puts this run's policy on the
        leaderboard: the test split, sampled as in training, with the training budget."""
        cfg = self.config
        kwargs = self.agent_kwargs()
        n = self.scorer.num_episodes("test")
        args = ["python", "-m", "benchmarks", "run", "--env", cfg.env, "--agent", cfg.algorithm]
        args += ["--agent-kwargs", json.dumps(kwargs, sort_keys=True), "--split", "test"]
        args += ["--episodes", str(min(cfg.test_episodes or n, n))]
        args += ["--seeds", *map(str, seeds), "--batch-size", str(cfg.eval_batch_size)]
        if cfg.env_kwargs:
            args += ["--env-kwargs", json.dumps(cfg.env_kwargs, sort_keys=True)]
        args += ["--budget", f"{self._minutes():.1f}", "--budget-device", _device_name(self.device)]
        return shlex.join(args)

    # ----- files ------------------------------------------------------------------------------

    def _minutes(self) -> float:
        return (time.perf_counter() - self._started) / 60

    def _write_summary(
        self, finished: bool, test: dict[str, float] | None = None
    ) -> dict[str, Any]:
        run = self.run
        summary = {
            "algorithm": self.config.algorithm,
            "env": {
                "id": self.config.env,
                "kwargs": self.config.env_kwargs,
                "data_version": self.scorer.data_version,
                "reward": self.scorer.reward_name,
                "k": self.scorer.k,
            },
            "best_step": run["best_step"],
            "best_metric": run["best"],
            "steps": run["step"],
            "seed": self.config.seed,
            "train_minutes": round(self._minutes(), 3),
            "eval_minutes": round(run["eval_seconds"] / 60, 3),
            "beat_zero_shot_minutes": run["beat_zero_shot_minutes"],
            "device": _device_name(self.device),
            "finished": finished,
            "test": test,
            "leaderboard_command": self.leaderboard_command(),
            "history": run["history"],
            **self._summary_extra(),
            **provenance(self.config),
        }
        (self.out / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary

    def _summary_extra(self) -> dict[str, Any]:
        """More summary fields of a subclass's recipe (none here)."""
        return {}


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


def _eval_temperature(config: GRPOConfig) -> float:
    """The temperature of evaluation: ``eval_temperature`` if set, else the rollouts'."""
    return config.temperature if config.eval_temperature is None else config.eval_temperature


def _zero_std_share(rewards: np.ndarray, group_size: int) -> float:
    """Share of groups whose completions all got the same reward (no learning signal)."""
    groups = rewards.reshape(-1, group_size)
    return float(np.mean(groups.max(axis=1) == groups.min(axis=1)))


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"


def _default_dir(config: GRPOConfig) -> Path:
    from recgym.data.cache import cache_dir

    name = f"{config.env}-{Path(config.model).name}-{config.algorithm}-s{config.seed}"
    return cache_dir("grpo", create=False) / name


def plot_run(out: Path, unit: str = "step", metric: str = "ndcg@10") -> Path | None:
    """``out/curves.png``: train reward per ``unit`` (the records of ``log.jsonl`` with a
    ``reward``) and the validation ``metric`` (the run's ``select_metric``) per evaluation.

    Needs matplotlib (the ``llm`` extra); returns ``None`` without it.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    records = read_log(out)
    steps = [r for r in records if "reward" in r]
    evals = [r["eval"] for r in records if "eval" in r]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    if steps:
        x = [r["step"] for r in steps]
        marker = "o" if len(x) < 20 else None  # a few rounds: points, not a line
        left.plot(x, [r["reward"] for r in steps], lw=1, marker=marker, label="train reward")
        left.plot(x, [r["format_ok"] for r in steps], lw=1, marker=marker, label="train format ok")
    left.set_xlabel(unit)
    left.legend()
    if evals:
        right.plot([e["step"] for e in evals], [e[metric] for e in evals], "o-", label="val")
        right.axhline(evals[0][metric], color="grey", ls="--", lw=1, label=f"{unit} 0")
    right.set_xlabel(unit)
    right.set_ylabel(f"validation {metric}")
    right.legend()
    fig.suptitle(out.name)
    fig.tight_layout()
    path = out / "curves.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``python -m agents.llm.grpo``: train and print the summary (no history)."""
    parser = config_parser(GRPOConfig, "python -m agents.llm.grpo", __doc__.split("\n")[0])
    summary = train_grpo(parse_config(GRPOConfig, vars(parser.parse_args(argv))))
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2))
    return summary


if __name__ == "__main__":
    main()
