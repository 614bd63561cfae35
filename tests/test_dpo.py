"""The iterative DPO trainer (RLRF4Rec's recipe), its loss and its pairs.

Like ``tests/test_grpo.py``: a tiny randomly initialised Llama on CPU is trained on completions
sampled by the fake backend (a seeded mix of well-formed and malformed ones, so groups have
a best and a worst). One straight two-round run is shared by the tests that read it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from conftest import assert_base_unchanged, lora_state, run_log, tiny_llm  # noqa: E402

from agents.llm.dpo import (  # noqa: E402
    DPOConfig,
    DPOTrainer,
    PreferencePairs,
    main,
    preference_pairs,
    train_dpo,
)
from agents.llm.grpo import GRPOTrainer, text_scorer  # noqa: E402
from agents.llm.policy_loss import dpo_loss  # noqa: E402
from agents.llm.training import PolicyTrainer  # noqa: E402
from recgym.llm import FakeLLM  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def env() -> gym.Env:
    return gym.make("RecSeq-v0", split="train")


def _config(tiny_dir: Path, out: Path, **overrides: Any) -> DPOConfig:
    # The fake's completions are ~100 bytes (its tokens); 128 lets well-formed ones finish.
    settings: dict[str, Any] = {
        "model": str(tiny_dir),
        "rounds": 2,
        "users_per_round": 4,
        "prompts_per_step": 2,
        "samples_per_prompt": 4,
        "max_new_tokens": 128,
        "lr": 1e-2,
        "beta": 0.5,
        "epochs": 2,
        "pair_batch_size": 2,
        "micro_batch_size": 1,
        "eval_episodes": 2,
        "eval_batch_size": 2,
        "test_episodes": 2,
        "lora_r": 4,
        "output_dir": str(out),
        "device": "cpu",
        "progress": False,
    }
    settings.update(overrides)
    return DPOConfig(**settings)


def _trace(out: Path) -> list[dict[str, Any]]:
    """The log without its timings."""
    rows = []
    for record in run_log(out):
        row = {k: v for k, v in record.items() if not k.endswith("seconds")}
        if "eval" in row:
            row["eval"] = {k: v for k, v in row["eval"].items() if k != "train_minutes"}
        rows.append(row)
    return rows


# ----- the loss and the pairs ----------------------------------------------------------------


def test_dpo_loss_matches_a_hand_computation_and_pushes_chosen_up() -> None:
    chosen = torch.tensor([-3.0, -5.0], requires_grad=True)
    rejected = torch.tensor([-4.0, -2.0], requires_grad=True)
    ref_c, ref_r = torch.tensor([-3.5, -4.0]), torch.tensor([-3.5, -3.0])
    beta = 0.1
    loss, stats = dpo_loss(chosen, rejected, ref_c, ref_r, beta=beta)
    # Implicit rewards: chosen 0.05, -0.1; rejected -0.05, 0.1; margins 0.1, -0.2.
    margins = [0.1, -0.2]
    expected = -sum(math.log(1 / (1 + math.exp(-m))) for m in margins) / 2
    assert loss.item() == pytest.approx(expected)
    assert stats["reward_accuracy"] == pytest.approx(0.5)
    assert stats["reward_margin"] == pytest.approx(-0.05)
    assert stats["chosen_reward"] == pytest.approx(-0.025)
    assert stats["rejected_reward"] == pytest.approx(0.025)
    loss.backward()
    # d loss / d chosen = -beta * sigmoid(-margin) / B < 0: descent raises the chosen log-prob,
    # lowers the rejected one, and more so for the pair the policy still gets wrong.
    sig = torch.sigmoid(-torch.tensor(margins))
    torch.testing.assert_close(chosen.grad, -beta * sig / 2)
    torch.testing.assert_close(rejected.grad, beta * sig / 2)
    assert (chosen.grad < 0).all() and (rejected.grad > 0).all()
    assert chosen.grad[1].abs() > chosen.grad[0].abs()
    # Micro-batches: with the step's pair count, the halves add up to the whole.
    halves = [
        dpo_loss(
            chosen[i : i + 1],
            rejected[i : i + 1],
            ref_c[i : i + 1],
            ref_r[i : i + 1],
            beta=beta,
            total_pairs=2,
        )[0].item()
        for i in range(2)
    ]
    assert sum(halves) == pytest.approx(expected)


def test_dpo_loss_scales_with_beta() -> None:
    chosen, rejected = torch.tensor([-1.0]), torch.tensor([-3.0])
    zero = torch.zeros(1)
    # At the reference every pair costs log 2, whatever beta.
    for beta in (0.01, 1.0):
        assert dpo_loss(zero, zero, zero, zero, beta=beta)[0].item() == pytest.approx(math.log(2))
    small, s_stats = dpo_loss(chosen, rejected, zero, zero, beta=0.01)
    large, l_stats = dpo_loss(chosen, rejected, zero, zero, beta=1.0)
    assert s_stats["reward_margin"] == pytest.approx(0.02)
    assert l_stats["reward_margin"] == pytest.approx(2.0)
    assert large.item() == pytest.approx(math.log1p(math.exp(-2.0)))
    assert large.item() < small.item() < math.log(2)
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(chosen, rejected, zero, zero, beta=0.0)


def test_preference_pairs_take_best_and_worst_and_skip_ties_and_small_gaps() -> None:
    rewards = np.array(
        [
            *(0.2, 0.9, -2.0, 0.5),  # best 1, worst 2
            *(0.3, 0.3, 0.3, 0.3),  # all equal: no pair
            *(0.0, 0.05, 0.0, 0.05),  # gap 0.05: first best (5) and first worst (4)
            *(1.0, -2.0, 1.0, -2.0),  # ties at both ends: the first of each
        ]
    )
    assert preference_pairs(rewards, 4) == [(1, 2), (9, 8), (12, 13)]
    assert preference_pairs(rewards, 4, margin=0.1) == [(1, 2), (12, 13)]
    assert preference_pairs(rewards, 4, margin=2.9) == [(12, 13)]  # gap 3 > 2.9
    assert preference_pairs(rewards, 4, margin=3.0) == []  # not strictly greater
    with pytest.raises(ValueError):
        preference_pairs(rewards, 5)
    with pytest.raises(ValueError):
        preference_pairs(rewards, 1)


@pytest.mark.parametrize(
    "bad",
    [
        {"algorithm": "grpo"},
        {"lora": False},
        {"max_steps": 5},  # a GRPO setting DPO does not read
        {"kl_coef": 0.0},
        {"rounds": 0},
        {"beta": 0.0},
        {"pair_margin": -1.0},
        {"users_per_round": 0},
        {"reference": "sft"},
        {"samples_per_prompt": 1},
    ],
)
def test_config_rejects_bad_settings(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        DPOConfig(**bad)


def test_help_lists_the_dpo_fields_with_their_docs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--pair-margin" in text and "--beta" in text and "--users-per-round" in text
    assert "--lora-r LORA_R LoRA rank." in text  # an inherited field keeps its doc
    assert "Pairs per forward/backward pass" in text  # a redefined field gets its own
    for fixed in ("--max-steps", "--clip-eps", "--kl-coef", "--algorithm", "--no-lora"):
        assert fixed not in text


# ----- the env check -------------------------------------------------------------------------


def test_any_env_with_the_text_scorer_api_is_accepted(env: gym.Env) -> None:
    assert text_scorer(env) is env.unwrapped
    with pytest.raises(TypeError, match=r"text env.*RecNextEnv.*not Text"):
        text_scorer(gym.make("RecNext-v0"))
    preference = pytest.importorskip("recgym.envs.preference")

    class Judge:
        def score_candidates(self, histories: Any, texts: Any, candidates: Any) -> Any:
            raise AssertionError("not called: the check builds nothing")

    pref = preference.RecPrefEnv(recommender=Judge())
    assert text_scorer(pref) is pref

    class Half(gym.Env):  # Text spaces, but no scorer
        observation_space = action_space = gym.spaces.Text(10)

    with pytest.raises(TypeError, match="lacks num_episodes, observations, score"):
        text_scorer(Half())


# ----- the trainer ---------------------------------------------------------------------------


def _train(trainer: DPOTrainer) -> tuple[dict[str, Any], dict[str, Any]]:
    """``trainer.train()``, and the adapter as training left it (before the test evaluation
    loads the best one back; empty if the run stopped early)."""
    trained: dict[str, Any] = {}
    test = trainer.test

    def test_after_training() -> dict[str, float]:
        trained.update(lora_state(trainer.model))
        return test()

    trainer.test = test_after_training  # type: ignore[method-assign]
    return trainer.train(), trained


@pytest.fixture(scope="module")
def straight(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory, env: gym.Env) -> Any:
    """A two-round run from start to end, with the parameters before and after."""
    out = tmp_path_factory.mktemp("dpo") / "straight"
    llm = tiny_llm(tiny_dir)
    base = {k: v.detach().clone() for k, v in llm.model.named_parameters()}
    trainer = DPOTrainer(_config(tiny_dir, out), env, llm, FakeLLM("mixed"))
    before = lora_state(trainer.model)
    summary, trained = _train(trainer)
    fields = ["out", "summary", "trainer", "base", "before", "trained"]
    return dataclasses.make_dataclass("Run", fields)(out, summary, trainer, base, before, trained)


def test_two_rounds_train_the_adapter_and_not_the_base(straight: Any) -> None:
    out, summary, trainer = straight.out, straight.summary, straight.trainer
    log = run_log(out)
    rounds = [r for r in log if "reward" in r]
    updates = [r for r in log if "update" in r]
    assert [r["round"] for r in rounds] == [1, 2]
    assert all(r["pairs"] > 0 and r["reward_gap"] > 0 for r in rounds)
    assert summary["pairs"] == [int(r["pairs"]) for r in rounds]
    # epochs x ceil(pairs / pair_batch_size) optimizer steps per round.
    per_round = [2 * math.ceil(n / 2) for n in summary["pairs"]]
    assert [r["update"] for r in updates] == list(range(1, sum(per_round) + 1))
    assert summary["updates"] == len(updates)
    assert all(np.isfinite(r["loss"]) and 0 <= r["reward_accuracy"] <= 1 for r in updates)
    # The first step of round 1 is at the reference: log 2, no margin yet.
    assert updates[0]["loss"] == pytest.approx(math.log(2), abs=1e-4)
    assert updates[0]["reward_margin"] == pytest.approx(0.0, abs=1e-4)
    # Only the adapter moved.
    before, trained = straight.before, straight.trained
    assert trained.keys() == before.keys()
    assert any(not torch.equal(before[k], trained[k]) for k in before)
    assert_base_unchanged(trainer.model, straight.base)
    # Validation at rounds 0 (untrained), 1 and 2; test once; the files of a finished run.
    assert summary["algorithm"] == "dpo" and summary["finished"] and summary["steps"] == 2
    assert [h["step"] for h in summary["history"]] == [0, 1, 2]
    assert summary["test"]["episodes"] == 2
    assert "--agent dpo" in summary["leaderboard_command"]
    assert json.loads((out / "training.json").read_text())["algorithm"] == "dpo"
    assert (out / "adapter_model.safetensors").is_file()
    assert (out / "curves.png").stat().st_size > 0
    assert not (out / "checkpoint").exists()
    # Each round's adapter is kept for its own leaderboard row.
    for r in (1, 2):
        kept = json.loads((out / "rounds" / str(r) / "training.json").read_text())
        assert kept["algorithm"] == "dpo" and kept["round"] == r
        assert kept["best_metric"] == summary["history"][r]["ndcg@10"]
        assert (out / "rounds" / str(r) / "adapter_model.safetensors").is_file()


def test_a_stopped_run_resumes_bit_identically(
    straight: Any, tiny_dir: Path, tmp_path: Path, env: gym.Env
) -> None:
    split = tmp_path / "split"
    # max_minutes=0 stops after round 1 with a checkpoint, as a kill after it would.
    first = train_dpo(_config(tiny_dir, split, max_minutes=0.0), env, tiny_llm(tiny_dir), FakeLLM())
    assert not first["finished"] and first["steps"] == 1
    assert (split / "checkpoint" / "adapter_model.safetensors").is_file()
    resumed = DPOTrainer(_config(tiny_dir, split), env, tiny_llm(tiny_dir), FakeLLM())
    second, trained = _train(resumed)
    assert second["finished"] and second["steps"] == 2
    assert _trace(split) == _trace(straight.out)
    # The adapter after round 2, and the best one kept on validation, are the same bits.
    assert all(torch.equal(trained[k], straight.trained[k]) for k in straight.trained)
    from safetensors.torch import load_file

    a = load_file(str(straight.out / "adapter_model.safetensors"))
    b = load_file(str(split / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert second["best_step"] == straight.summary["best_step"]
    assert second["test"] == straight.summary["test"]


def test_the_reference_is_the_base_model_or_the_round_start(
    tiny_dir: Path, tmp_path: Path, env: gym.Env
) -> None:
    trainer = DPOTrainer(_config(tiny_dir, tmp_path), env, tiny_llm(tiny_dir), FakeLLM("mixed"))
    pairs, stats = trainer.sample_pairs([0, 1, 2, 3], 0)
    assert len(pairs) == stats["pairs"] > 0 and isinstance(pairs, PreferencePairs)
    assert all(c > r for c, r in zip(pairs.chosen_rewards, pairs.rejected_rewards, strict=True))
    base = trainer.reference_logprobs(pairs)
    trainer.fit(pairs, base, 1)
    assert trainer.run["updates"] > 0
    # Training moved the policy, not the base model under the disabled adapter.
    again = trainer.reference_logprobs(pairs)
    assert all(torch.equal(x, y) for x, y in zip(base, again, strict=True))
    with torch.no_grad():
        policy = trainer._pair_logprobs(pairs, range(len(pairs)))
    assert not torch.allclose(policy[0], base[0])
    # reference="round": the policy as the round starts.
    trainer.config = dataclasses.replace(trainer.config, reference="round")
    round_start = trainer.reference_logprobs(pairs)
    torch.testing.assert_close(round_start[0], policy[0], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(round_start[1], policy[1], atol=1e-4, rtol=1e-5)


def test_the_runner_builds_the_dpo_agent_and_refuses_other_runs(
    straight: Any, tiny_dir: Path, tmp_path: Path, env: gym.Env
) -> None:
    from agents import make_agent

    kwargs = {"model": str(tiny_dir), "adapter": str(straight.out), "max_new_tokens": 8}
    agent = make_agent("dpo", env, **kwargs)
    assert agent.config()["training"]["algorithm"] == "dpo"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="trained with 'dpo'"):
        make_agent("grpo", env, **kwargs)
    grpo_run = tmp_path / "grpo-run"
    shutil.copytree(straight.out, grpo_run)
    summary = json.loads((grpo_run / "training.json").read_text())
    (grpo_run / "training.json").write_text(json.dumps({**summary, "algorithm": "grpo"}))
    with pytest.raises(ValueError, match="trained with 'grpo', not 'dpo'; use --agent grpo"):
        make_agent("dpo", env, **{**kwargs, "adapter": str(grpo_run)})


def test_the_grpo_trainer_refuses_a_dpo_config_and_vice_versa(
    tiny_dir: Path, tmp_path: Path, env: gym.Env
) -> None:
    from agents.llm.grpo import GRPOConfig

    with pytest.raises(ValueError, match="algorithm must be one of"):
        GRPOConfig(algorithm="dpo")
    with pytest.raises(TypeError, match="DPOConfig"):
        DPOTrainer(GRPOConfig(), env)  # type: ignore[arg-type]
    assert issubclass(DPOTrainer, PolicyTrainer) and not issubclass(DPOTrainer, GRPOTrainer)
