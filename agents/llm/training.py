"""What every LLM policy trainer does, once: :class:`PolicyTrainer`, the base of GRPO, DPO, RecPO.

A trainer here trains a causal LM (LoRA by default) on a recgym env's batched scorer. The base
class owns the model, the agent that evaluates it, seeded group sampling and scoring
(:meth:`~PolicyTrainer.rollout`, from :class:`~agents.llm.sampling.GroupSampler`), the train
loop, validation every few steps with the best adapter kept by validation only, the one test
evaluation at the end, checkpoint and resume (:mod:`agents.llm.run_files`), the
``training.json`` summary and its leaderboard command. A recipe subclasses it and fills in:

- :meth:`~PolicyTrainer.train_step`: one unit of training (a GRPO step, a DPO round);
- :meth:`~PolicyTrainer.advantages`: each sampled completion's weight in a
  :class:`~agents.llm.sampling.Rollout`;
- optionally :attr:`~PolicyTrainer.total_steps`, :meth:`~PolicyTrainer.validation_due`,
  :meth:`~PolicyTrainer.summary_extra`, :attr:`~PolicyTrainer.unit`;

and a trainer for another env family replaces :meth:`~PolicyTrainer.scorer_of`,
:meth:`~PolicyTrainer.make_agent`, :meth:`~PolicyTrainer.prompt_of`,
:meth:`~PolicyTrainer.agent_kwargs` and :attr:`~PolicyTrainer.group_size`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from agents.llm import run_files, trainer_utils
from agents.llm.grpo_config import GRPOConfig
from agents.llm.sampling import GroupSampler
from agents.llm.text_env import text_scorer
from agents.llm.zero_shot import ZeroShotLLMAgent
from recgym.envs.text import SYSTEM_PROMPT
from recgym.evaluation import EvalSpec, score_episodes
from recgym.llm import LLM
from recgym.utils.checkpoint import note_resume
from recgym.utils.moved import moved_names

__all__ = ["PolicyTrainer"]

_RESUMABLE = ("device", "output_dir", "progress", "eval_batch_size", "max_minutes")
"""Config fields that may differ between a checkpoint and the run resuming it."""


class PolicyTrainer(GroupSampler, run_files.CheckpointedRun):
    """Trains an LLM policy on a recgym env's batched scorer (see the module docstring).

    ``command_prog`` is the command that trains it (``python -m agents.llm.grpo``) and
    ``command_exclude`` the config fields it fixes (not options); the leaderboard command of a
    run records it with the run's settings.

    Args:
        config: the recipe (a :class:`~agents.llm.grpo_config.GRPOConfig` or a subclass).
        env: a recgym env (its train and validation splits are used, and test once at the
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
        agent: the policy that evaluation runs (:meth:`make_agent`).
        out: the output directory.
        pad_id: the tokenizer's padding token.
    """

    command_prog: ClassVar[str] = "python -m agents.llm.grpo"
    command_exclude: ClassVar[tuple[str, ...]] = ()

    unit: ClassVar[str] = "step"
    """What ``run["step"]`` (and the summary's ``steps``, ``best_step``) counts."""
    config: GRPOConfig

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
        self._state = run_files.load_state(self.out, config, _RESUMABLE)
        if self._state is None and run_files.finished(self.out):
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
        self.model = trainer_utils.with_lora(llm.model, config) if config.lora else llm.model
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
        self.schedule = trainer_utils.linear_schedule(
            self.optimizer, config.warmup_steps, config.max_steps
        )
        self.system_prompt = SYSTEM_PROMPT if config.system_prompt else None
        self.agent = self.make_agent()
        self.episodes = trainer_utils.EpisodeStream(
            self.scorer.num_episodes("train"), config.train_episodes, config.seed
        )
        n_val = self.scorer.num_episodes("validation")
        self.val_indices = list(range(min(config.eval_episodes or n_val, n_val)))
        self.pad_id = int(llm.tokenizer.pad_token_id)
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

    # ----- what a trainer for another env family replaces -------------------------------------

    @staticmethod
    def scorer_of(env: gym.Env[Any, Any]) -> Any:
        """The env's batched scorer (here :func:`~agents.llm.text_env.text_scorer`: a text
        env)."""
        return text_scorer(env)

    def make_agent(self) -> Any:
        """The policy that :meth:`evaluate_split` runs: ``act_batch(observations)`` gives the
        actions ``scorer.score`` takes (here a :class:`ZeroShotLLMAgent` on ``self.llm``)."""
        cfg = self.config
        return ZeroShotLLMAgent(
            self.llm,
            max_new_tokens=cfg.max_new_tokens,
            temperature=self.eval_temperature,
            top_p=cfg.top_p,
            batch_size=cfg.eval_batch_size,
            system_prompt=self.system_prompt,
            response_prefix=cfg.response_prefix,
        )

    def agent_kwargs(self) -> dict[str, Any]:
        """The ``--agent-kwargs`` of :meth:`leaderboard_command` (this run's policy)."""
        cfg = self.config
        return {
            "model": cfg.model,
            "adapter": str(self.out),
            "max_new_tokens": cfg.max_new_tokens,
            "temperature": self.eval_temperature,
            "top_p": cfg.top_p,
            "batch_size": cfg.eval_batch_size,
            **({"response_prefix": cfg.response_prefix} if cfg.response_prefix else {}),
            **({} if cfg.system_prompt else {"system_prompt": None}),
        }

    # ----- what a recipe fills in ---------------------------------------------------------------

    @property
    def total_steps(self) -> int:
        """How many :meth:`train_step` calls make the run (``max_steps``)."""
        return self.config.max_steps

    def train_step(self) -> dict[str, Any]:
        """One unit of training (``run["step"]`` goes up by one); returns the fields the
        progress bar shows besides the best validation metric."""
        raise NotImplementedError

    def validation_due(self) -> bool:
        """Whether to validate (and checkpoint) after the step just taken: every
        ``eval_every`` steps, and after the last."""
        step = self.run["step"]
        return step % self.config.eval_every == 0 or step == self.total_steps

    def summary_extra(self) -> dict[str, Any]:
        """More summary fields of a recipe (none here)."""
        return {}

    # ----- shared tools -------------------------------------------------------------------------

    @property
    def eval_temperature(self) -> float:
        """The temperature of evaluation: ``eval_temperature`` if set, else the rollouts'."""
        cfg = self.config
        return cfg.temperature if cfg.eval_temperature is None else cfg.eval_temperature

    @property
    def device_name(self) -> str:
        """The device training runs on, as the summary records it: the GPU's name
        (``"NVIDIA H100 80GB HBM3"``) or ``"cpu"``."""
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        return "cpu"

    def minutes(self) -> float:
        """Minutes of this run so far (a resumed run counts from where it stopped)."""
        return (time.perf_counter() - self._started) / 60

    # ----- the loop ---------------------------------------------------------------------------

    def train(self) -> dict[str, Any]:
        """Run :attr:`total_steps` steps (or until ``max_minutes``), then evaluate the best
        adapter on test.

        Returns:
            The summary also written to ``output_dir/training.json``: ``best_step``,
            ``best_metric`` (validation ``select_metric``), ``history`` (validation per
            evaluation, step 0 = the untrained model), ``test`` (the final evaluation), ``steps``,
            ``train_minutes``, ``beat_zero_shot_minutes``, ``device``, ``config``...
        """
        from tqdm.auto import tqdm

        cfg, run = self.config, self.run
        self.begin()
        bar = tqdm(
            total=self.total_steps,
            initial=run["step"],
            desc=f"{cfg.algorithm} {cfg.env}",
            unit=self.unit,
            disable=not cfg.progress,
        )
        if not run["history"]:
            self.evaluate()
        out_of_time = False
        while run["step"] < self.total_steps and not out_of_time:
            postfix = self.train_step()
            validated = self.validation_due()
            if validated:
                self.evaluate()
                self.save_checkpoint()
            bar.update(1)
            bar.set_postfix(**postfix, best=f"{run['best']:.4f}")
            out_of_time = cfg.max_minutes is not None and self.minutes() >= cfg.max_minutes
            if out_of_time and not validated:
                self.save_checkpoint()
        bar.close()
        if run["step"] < self.total_steps:  # stopped by max_minutes: resume later
            return self._write_summary(finished=False)
        return self._finish()

    def begin(self) -> None:
        """Create the run folder, or resume from its checkpoint (dropping later log lines), and
        start the clock where the saved run stopped it."""
        self.out.mkdir(parents=True, exist_ok=True)
        if self._state is not None:
            self.restore_checkpoint(self._state)
            note_resume(f"{self.out} from its checkpoint ({self.unit} {self.run['step']})")
        run_files.trim_log(
            self.out / "log.jsonl", None if self._state is None else self.run["step"]
        )
        self._started = time.perf_counter() - self.run["seconds"]

    def _finish(self) -> dict[str, Any]:
        """Test the best adapter, write the final summary and the curves, drop the checkpoint
        (last: a run killed before resumes at its end and tests again)."""
        self._write_summary(finished=False)
        test = self.test() if self.config.test_episodes != 0 else None
        summary = self._write_summary(finished=True, test=test)
        run_files.plot_run(self.out, self.unit, self.config.select_metric)
        run_files.remove_checkpoint(self.out)
        return summary

    # ----- evaluation ---------------------------------------------------------------------------

    def evaluate_split(self, split: str, indices: Sequence[int], seed: int) -> dict[str, float]:
        """Mean metrics of the current policy on episodes of ``split`` (sampled with ``seed``,
        by the benchmark runner's loop, :func:`recgym.evaluation.score_episodes`)."""
        self.model.eval()
        per_seed = score_episodes(
            self.scorer,
            self.agent,
            split,
            indices,
            (seed,),
            self.config.eval_batch_size,
            act_context=self.autocast,
        )
        out: dict[str, float] = {key: float(np.mean(values[0])) for key, values in per_seed.items()}
        out["episodes"] = len(indices)
        return out

    def evaluate(self) -> None:
        """Validate; keep the adapter if it is the best so far (by ``select_metric``)."""
        run, t0 = self.run, time.perf_counter()
        metrics = self.evaluate_split("validation", self.val_indices, self.config.seed)
        run["eval_seconds"] += time.perf_counter() - t0
        row = {"step": run["step"], "train_minutes": round(self.minutes(), 3), **metrics}
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
            run_files.save_adapter(self.model, self.out)
        run_files.log_record(self.out, {"step": run["step"], "eval": row})
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
        n = self.scorer.num_episodes("test")
        # The budget in minutes to one decimal: what a leaderboard row shows.
        spec = EvalSpec(
            cfg.env,
            cfg.algorithm,
            agent_kwargs=self.agent_kwargs(),
            split="test",
            episodes=min(cfg.test_episodes or n, n),
            seeds=seeds,
            env_kwargs=cfg.env_kwargs,
            batch_size=cfg.eval_batch_size,
            budget=round(self.minutes(), 1),
            budget_device=self.device_name,
            training={
                # output_dir as the run used it, so the command resumes or repeats this run.
                "command": run_files.config_command(
                    dataclasses.replace(cfg, output_dir=str(self.out)),
                    self.command_prog,
                    self.command_exclude,
                ),
                "config": str(self.out / "training.json"),
                "log": str(self.out / "log.jsonl"),
            },
        )
        return spec.command()

    # ----- the summary --------------------------------------------------------------------------

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
            "train_minutes": round(self.minutes(), 3),
            "eval_minutes": round(run["eval_seconds"] / 60, 3),
            "beat_zero_shot_minutes": run["beat_zero_shot_minutes"],
            "device": self.device_name,
            "finished": finished,
            "test": test,
            "leaderboard_command": self.leaderboard_command(),
            "history": run["history"],
            **self.summary_extra(),
            **run_files.provenance(self.config),
        }
        run_files.write_summary(self.out, summary)
        return summary


def _default_dir(config: GRPOConfig) -> Path:
    from recgym.data.cache import cache_dir

    name = f"{config.env}-{Path(config.model).name}-{config.algorithm}-s{config.seed}"
    return cache_dir("grpo", create=False) / name


_TRAINER_UTILS = ("EpisodeStream", "autocast", "linear_schedule", "with_lora")
_RUN_FILES = (
    "CheckpointedRun",
    "config_parser",
    "field_docs",
    "finished",
    "git_commit",
    "load_adapter",
    "load_checkpoint",
    "load_state",
    "log_record",
    "parse_config",
    "provenance",
    "read_log",
    "save_adapter",
    "save_checkpoint",
    "trim_log",
)
# Names that this module held before the policy trainer moved in, kept for one release.
__getattr__ = moved_names(
    __name__,
    dict.fromkeys(_TRAINER_UTILS, "agents.llm.trainer_utils")
    | dict.fromkeys(_RUN_FILES, "agents.llm.run_files"),
)
