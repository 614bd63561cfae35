"""The LlamaRec verbalizer agent and its LoRA trainer.

Fast tests run a tiny randomly initialised Llama (2 layers, hidden 32) with SmolLM2's real
tokenizer, read from the embedded model's safetensors folder (converted from the GGUF on first
use, ~20 s once per cache). The one ``slow`` test runs the real SmolLM2-135M on CPU.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

import recgym  # noqa: E402  (registers the env ids)
import recgym.llm  # noqa: E402
from agents.llm.verbalizer import VerbalizerAgent, letter_token_ids  # noqa: E402
from agents.llm.verbalizer_train import (  # noqa: E402
    VerbalizerTrainConfig,
    VerbalizerTrainer,
    _validate,
    encode_example,
    main,
    train_verbalizer,
)
from recgym.envs.rank import LETTERS  # noqa: E402
from recgym.models.popularity import PopularityRetriever  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def tiny(tiny_dir: Path) -> Any:
    """A fresh copy of the tiny model (training wraps its layers in place)."""
    return recgym.llm.load(str(tiny_dir), device="cpu", progress=False)


@pytest.fixture(scope="module")
def env() -> gym.Env:
    return gym.make("RecRank-v0", split="train", retriever=PopularityRetriever.movielens())


def _config(tiny_dir: Path, out: Path, **overrides: Any) -> VerbalizerTrainConfig:
    settings: dict[str, Any] = {
        "model": str(tiny_dir),
        "lr": 3e-2,
        "warmup_steps": 0,
        "batch_size": 4,
        "train_examples": 4,
        "max_steps": 4,
        "eval_every": 2,
        "eval_episodes": 4,
        "output_dir": str(out),
        "device": "cpu",
        "progress": False,
    }
    return VerbalizerTrainConfig(**{**settings, **overrides})


@pytest.mark.parametrize("chat", [True, False])
def test_scored_letter_is_the_trained_token(tiny: Any, env: gym.Env, chat: bool) -> None:
    base = env.unwrapped
    obs, label = base.observation(5, "train"), base.label(5, "train")
    prompt_ids, letters = VerbalizerAgent(tiny, chat=chat).letter_ids(obs["prompt"], 20)
    input_ids, labels = encode_example(tiny, obs, label, chat=chat)
    assert labels[0] == letters[label]
    assert input_ids == [*prompt_ids, *labels]
    assert [tiny.tokenizer.decode([i]) for i in letters] == list(LETTERS[:20])
    end = "<|im_end|>" if chat else tiny.tokenizer.eos_token
    assert labels[1] == tiny.tokenizer.convert_tokens_to_ids(end)
    rendered = tiny.chat_prompt(obs["prompt"]) if chat else obs["prompt"] + "\n\n### Response:\n"
    assert tiny.tokenizer.decode(input_ids).startswith(rendered)


def test_a_letter_that_merges_with_the_prompt_is_refused(tiny: Any) -> None:
    # "Answer: " + "A" tokenises as "Answer", ":", " A": the bare letter is not what follows.
    with pytest.raises(ValueError, match="does not tokenise as one token after the prompt"):
        letter_token_ids(tiny.tokenizer, "Answer: ", 3, add_special_tokens=False)


def test_batched_scores_equal_single_scores(tiny: Any, env: gym.Env) -> None:
    base = env.unwrapped
    observations = base.observations([0, 3, 7, 11, 12], "validation")
    agent = VerbalizerAgent(tiny, batch_size=3)
    batched = np.stack(agent.act_batch(observations))
    single = np.stack([agent.act(o) for o in observations])
    assert batched.shape == (5, 20) and batched.dtype == np.float32
    np.testing.assert_allclose(batched, single, atol=1e-6)
    np.testing.assert_allclose(batched.sum(axis=1), 1.0, atol=1e-5)
    assert all(env.action_space.contains(a) for a in batched)
    # the last position of an unpadded full forward pass gives the same distribution
    prompt_ids, letters = agent.letter_ids(observations[1]["prompt"], 20)
    with torch.inference_mode():
        logits = tiny.model(torch.tensor([prompt_ids])).logits[0, -1, letters]
    np.testing.assert_allclose(batched[1], torch.softmax(logits, -1).numpy(), atol=1e-6)


def test_a_model_without_logits_is_refused() -> None:
    with pytest.raises(TypeError, match="transformers model"):
        VerbalizerAgent(recgym.llm.load("fake"))


def test_training_raises_the_target_letter_and_the_adapter_reloads(
    tiny_dir: Path, env: gym.Env, tmp_path: Path
) -> None:
    config = _config(tiny_dir, tmp_path / "run", max_steps=8, eval_every=8)
    trainer = VerbalizerTrainer(config, env)
    base = env.unwrapped
    pool = trainer.examples.pool.tolist()
    observations = base.observations(pool, "train")
    rows, labels = np.arange(len(pool)), [base.label(i, "train") for i in pool]
    assert len(trainer.val_indices) == 4
    assert all(base.label(i, "validation") >= 0 for i in trainer.val_indices)
    before = np.stack(trainer.agent.act_batch(observations))
    summary = trainer.train()
    after = np.stack(trainer.agent.act_batch(observations))
    assert after[rows, labels].mean() > before[rows, labels].mean() + 0.2
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert len(losses) == 8 and losses[-1] < losses[0] - 0.5
    assert [h["step"] for h in summary["history"]] == [0, 8]
    assert summary["best_step"] in (0, 8) and summary["examples_seen"] == 32
    assert not (tmp_path / "run" / "checkpoint").exists()
    # the best adapter reloads with the scores it had (step 0: LoRA starts as the identity)
    reloaded = VerbalizerAgent(
        str(tiny_dir), adapter=str(tmp_path / "run"), model_kwargs={"device": "cpu"}
    )
    expected = before if summary["best_step"] == 0 else after
    np.testing.assert_allclose(np.stack(reloaded.act_batch(observations)), expected, atol=1e-6)
    assert reloaded.config()["training"]["best_step"] == summary["best_step"]
    with pytest.raises(FileExistsError, match="finished run"):
        train_verbalizer(config, env)


def test_resume_continues_from_the_saved_step(
    tiny_dir: Path, env: gym.Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = train_verbalizer(_config(tiny_dir, tmp_path / "whole"), env)
    evaluate = VerbalizerTrainer.evaluate

    def killed_at_step_4(self: VerbalizerTrainer) -> bool:
        if self.run["step"] == 4:
            raise KeyboardInterrupt  # after the step-2 checkpoint, before the step-4 one
        return evaluate(self)

    with monkeypatch.context() as patch:
        patch.setattr(VerbalizerTrainer, "evaluate", killed_at_step_4)
        with pytest.raises(KeyboardInterrupt):
            train_verbalizer(_config(tiny_dir, tmp_path / "cut"), env)
    assert json.loads((tmp_path / "cut" / "checkpoint" / "state.json").read_text())["step"] == 2
    with pytest.raises(ValueError, match="lr differ"):
        VerbalizerTrainer(_config(tiny_dir, tmp_path / "cut", lr=1e-3), env)
    resumed = train_verbalizer(_config(tiny_dir, tmp_path / "cut"), env)

    def losses(folder: str) -> list[tuple[int, float]]:
        lines = (tmp_path / folder / "log.jsonl").read_text().splitlines()
        return [(r["step"], r["loss"]) for r in map(json.loads, lines) if "loss" in r]

    assert [s for s, _ in losses("cut")] == [1, 2, 3, 4]
    np.testing.assert_allclose(
        [v for _, v in losses("cut")], [v for _, v in losses("whole")], rtol=1e-5
    )
    assert [h["step"] for h in resumed["history"]] == [0, 2, 4]
    for a, b in zip(resumed["history"], whole["history"], strict=True):
        assert a["ndcg@10"] == pytest.approx(b["ndcg@10"], abs=1e-9)


def test_validation_on_found_targets_is_the_whole_split_figure(env: gym.Env) -> None:
    class RetrieverOrder:
        def act_batch(self, observations: list[dict[str, Any]]) -> list[np.ndarray]:
            return [-np.arange(20, dtype=np.float32) for _ in observations]

    base, n = env.unwrapped, env.unwrapped.num_episodes("validation")
    found = [i for i in range(n) if base.label(i, "validation") >= 0]
    metrics = _validate(RetrieverOrder(), base, found, len(found) / n)  # type: ignore[arg-type]
    whole = base.score(np.tile(-np.arange(20.0), (n, 1)), list(range(n)), "validation")
    assert metrics["ndcg@10"] == pytest.approx(whole.rewards.mean(), abs=1e-12)
    assert metrics["subset/ndcg@10"] > metrics["ndcg@10"] > 0


def test_cli_runs_end_to_end(tiny_dir: Path, tmp_path: Path, capsys: Any) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    helptext = capsys.readouterr().out
    for flag in ("--retriever", "--no-chat", "--lora-r", "--train-examples", "--output-dir"):
        assert flag in helptext
    out = tmp_path / "cli"
    argv = [
        "--model",
        str(tiny_dir),
        "--retriever",
        "popularity",
        "--no-chat",
        "--max-steps",
        "1",
        "--batch-size",
        "2",
        "--train-examples",
        "2",
        "--eval-episodes",
        "2",
        "--output-dir",
        str(out),
        "--device",
        "cpu",
        "--no-progress",
    ]
    summary = main(argv)
    assert summary["steps"] == 1 and summary["config"]["chat"] is False
    assert summary["env"]["retriever"] == "popularity"
    assert (out / "adapter_model.safetensors").is_file()
    with pytest.raises(ValueError, match="batch_size"):
        VerbalizerTrainConfig(batch_size=0)


@pytest.mark.slow
def test_smollm2_zero_shot_ranks_validation_episodes() -> None:
    """The real SmolLM2-135M on CPU: valid actions and scores for three validation episodes."""
    env = gym.make("RecRank-v0", split="validation", retriever=PopularityRetriever.movielens())
    base = env.unwrapped
    agent = VerbalizerAgent("smollm2-135m", batch_size=3, model_kwargs={"device": "cpu"})
    actions = agent.act_batch(base.observations([0, 1, 2], "validation"))
    assert all(env.action_space.contains(a) for a in actions)
    assert all(abs(float(a.sum()) - 1) < 1e-4 and len(np.unique(a)) > 1 for a in actions)
    rewards = base.score(np.stack(actions), [0, 1, 2], "validation").rewards
    assert ((rewards >= 0) & (rewards <= 1)).all()
    assert agent.config() == {
        "model": "smollm2-135m",
        "adapter": None,
        "training": None,
        "chat": True,
    }


def test_the_registered_verbalizer_is_an_agent(tiny: Any, env: gym.Env) -> None:
    from agents import make_agent
    from recgym.agent import Agent

    agent = make_agent("verbalizer", env, model=tiny)
    assert isinstance(agent, Agent)
    assert agent.config()["model"] == tiny.name  # type: ignore[attr-defined]
    action = agent.act(env.unwrapped.observation(0, "validation"))
    assert env.action_space.contains(action)
