"""The GRPO trainer's recipe: :class:`GRPOConfig` (the trainer is :mod:`agents.llm.grpo`).

Every field has a one-line docstring, which ``python -m agents.llm.grpo --help`` shows. The
configs of the other policy trainers (:class:`~agents.llm.dpo.DPOConfig`,
:class:`~agents.llm.recpo.RecPOConfig`) subclass it: the fields they share mean the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = ["ALGORITHMS", "GRPOConfig"]

ALGORITHMS = ("grpo", "rloo", "rs-sft")
"""The values of :attr:`GRPOConfig.algorithm`."""


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
    """``grpo``, ``rloo`` or ``rs-sft`` (see :mod:`agents.llm.grpo`)."""
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
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    )
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
            "prompts_per_step",
            "max_new_tokens",
            "max_steps",
            "updates_per_batch",
            "micro_batch_size",
            "lora_r",
            "eval_every",
            "eval_batch_size",
        )
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
