"""LLM checkpoints on disk load through the benchmark runner's agent entry (``build_agent``).

A tiny randomly initialised Llama (2 layers, hidden 32) with SmolLM2's real tokenizer is
saved with ``save_pretrained``, as any fine-tuned checkpoint would be, and passed by path:
to ``zero-shot`` on ``RecSeq-v0`` and, with a LoRA adapter written by the verbalizer trainer,
to ``verbalizer`` on ``RecRank-v0`` (popularity retriever). ~15 s in all on 2 cores.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from benchmarks.runner import build_agent, evaluate  # noqa: E402
from recgym.evaluation import EvalSpec  # noqa: E402

EPISODES = 8
RANK_KWARGS: dict[str, Any] = {"retriever": "popularity"}


pytestmark = pytest.mark.usefixtures("one_thread")


def _finite(row: dict[str, Any]) -> None:
    for key, stats in row["metrics"].items():
        assert math.isfinite(stats["mean"]) and math.isfinite(stats["ci95"]), key


def test_a_saved_model_folder_plays_zero_shot(tiny_dir: Path) -> None:
    kwargs = {
        "model": str(tiny_dir),
        "max_new_tokens": 8,
        "model_kwargs": {"device": "cpu", "progress": False},
    }
    agent = build_agent("zero-shot", gym.make("RecSeq-v0", split="test"), kwargs)
    assert agent.llm.model.config.hidden_size == 32  # the folder's model, not the default
    row = evaluate(
        EvalSpec("RecSeq-v0", "zero-shot", agent_kwargs=kwargs, episodes=EPISODES, batch_size=4),
        agent,
    )
    _finite(row)
    assert row["agent_config"]["model"] == str(tiny_dir)
    assert row["episodes"] == EPISODES and str(tiny_dir) in row["command"]
    # Eight random tokens are never a well-formed answer: every episode gets Rec-R1's format
    # penalty, and the row says so.
    assert row["metrics"]["format_ok"]["mean"] == 0.0
    assert row["metrics"]["reward"]["mean"] == -2.0
    assert row["metrics"]["ndcg@10"]["mean"] == 0.0


def test_a_trained_verbalizer_adapter_plays_by_path(tiny_dir: Path, tmp_path: Path) -> None:
    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file

    from agents.llm.verbalizer import VerbalizerAgent
    from agents.llm.verbalizer_train import VerbalizerTrainConfig, train_verbalizer

    out = tmp_path / "adapter"
    config = VerbalizerTrainConfig(
        model=str(tiny_dir),
        retriever="popularity",
        lr=3e-2,
        warmup_steps=0,
        batch_size=4,
        train_examples=8,
        max_steps=8,
        eval_every=8,
        eval_episodes=8,
        output_dir=str(out),
        device="cpu",
        progress=False,
    )
    summary = train_verbalizer(config)
    assert (out / "adapter_config.json").is_file() and (out / "training.json").is_file()

    env = gym.make("RecRank-v0", split="test", **RANK_KWARGS)
    kwargs = {"model": str(tiny_dir), "adapter": str(out), "model_kwargs": {"device": "cpu"}}
    agent = build_agent("verbalizer", env, kwargs)
    assert isinstance(agent, VerbalizerAgent)
    # The adapter in the file is the one that runs.
    saved = load_file(str(out / "adapter_model.safetensors"))
    loaded = get_peft_model_state_dict(agent.model)
    assert saved.keys() == loaded.keys() and saved
    for key, value in saved.items():
        torch.testing.assert_close(loaded[key], value)

    row = evaluate(
        EvalSpec(
            "RecRank-v0",
            "verbalizer",
            agent_kwargs=kwargs,
            env_kwargs=RANK_KWARGS,
            episodes=EPISODES,
            batch_size=4,
        ),
        agent,
    )
    _finite(row)
    assert row["agent_config"]["model"] == str(tiny_dir)
    assert row["agent_config"]["adapter"] == str(out)
    assert row["agent_config"]["training"]["best_step"] == summary["best_step"]
    assert row["agent_config"]["training"]["steps"] == 8

    # The row scores the adapted model's actions; they differ from the base model's unless
    # validation kept the step-0 adapter (LoRA starts as the identity).
    indices = list(range(EPISODES))
    observations = env.unwrapped.observations(indices, "test")
    adapted = np.stack(agent.act_batch(observations))
    scores = env.unwrapped.score(adapted, indices, "test")
    assert row["metrics"]["reward"]["mean"] == pytest.approx(scores.rewards.mean(), abs=1e-9)
    base = VerbalizerAgent(str(tiny_dir), model_kwargs={"device": "cpu"})
    plain = np.stack(base.act_batch(observations))
    assert np.allclose(adapted, plain, atol=1e-6) == (summary["best_step"] == 0)
