"""The GRPO / RLOO / rejection-sampling SFT trainer and its loss functions.

Runs on CPU with a tiny randomly initialised Llama (SmolLM2's tokenizer, see ``tiny_dir``). The
tiny model only writes malformed text, so most trainer tests sample rollouts from the fake
backend (a chosen mix of well-formed and malformed completions) and train the tiny model on
them; one test keeps the tiny model on-policy.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from conftest import assert_base_unchanged, lora_state, run_log, tiny_llm  # noqa: E402

from agents.llm.grpo import GRPOConfig, GRPOTrainer, main, train_grpo  # noqa: E402
from agents.llm.policy_loss import (  # noqa: E402
    completion_logprobs,
    group_advantages,
    kl_k3,
    policy_loss,
    sft_loss,
)
from agents.llm.zero_shot import ZeroShotLLMAgent  # noqa: E402
from recgym.llm import FakeLLM  # noqa: E402

PREFIX = '<answer>{"query": "'
# The fake's completions are ~100 bytes (its tokens); 128 lets well-formed ones finish.


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def env() -> gym.Env:
    return gym.make("RecSeq-v0", split="train")


def _config(tiny_dir: Path, out: Path, **overrides: Any) -> GRPOConfig:
    settings: dict[str, Any] = {
        "model": str(tiny_dir),
        "prompts_per_step": 2,
        "samples_per_prompt": 4,
        "max_new_tokens": 128,
        "lr": 1e-2,
        "max_steps": 2,
        "eval_every": 2,
        "eval_episodes": 4,
        "eval_batch_size": 4,
        "test_episodes": 4,
        "micro_batch_size": 3,
        "lora_r": 4,
        "output_dir": str(out),
        "device": "cpu",
        "progress": False,
    }
    settings.update(overrides)
    return GRPOConfig(**settings)


# ----- the math ------------------------------------------------------------------------------


def test_group_advantages_are_zero_mean_per_group() -> None:
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=24)
    for kind in ("grpo", "rloo"):
        adv = group_advantages(rewards, 6, kind).reshape(4, 6)
        np.testing.assert_allclose(adv.mean(axis=1), 0.0, atol=1e-12)
    grpo = group_advantages(rewards, 6, "grpo").reshape(4, 6)
    np.testing.assert_allclose(grpo.std(axis=1), 1.0, rtol=1e-3)
    # RLOO: own reward minus the mean of the others.
    r = rewards[:6]
    expected = [r[i] - np.delete(r, i).mean() for i in range(6)]
    np.testing.assert_allclose(group_advantages(rewards, 6, "rloo")[:6], expected)
    assert not group_advantages(np.array([-2.0] * 4 + [0.3] * 4), 4).any()  # ties: no signal


@pytest.mark.parametrize(
    ("rewards", "size", "kind"),
    [(np.zeros(5), 2, "grpo"), (np.zeros(4), 1, "grpo"), (np.zeros(4), 2, "ppo")],
)
def test_group_advantages_reject_bad_input(rewards: np.ndarray, size: int, kind: str) -> None:
    with pytest.raises(ValueError):
        group_advantages(rewards, size, kind)


def test_completion_logprobs_match_a_plain_forward_pass(tiny_dir: Path) -> None:
    llm = tiny_llm(tiny_dir)
    tok = llm.tokenizer
    prompts = [tok("Hello there, how are")["input_ids"], tok("A")["input_ids"]]
    completions = [tok(" you today?")["input_ids"], tok(" b c d e f g")["input_ids"]]
    logp, mask = completion_logprobs(llm.model, prompts, completions, tok.pad_token_id)
    assert logp.shape == mask.shape == (2, max(map(len, completions)))
    for b, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        with torch.no_grad():
            full = llm.model(torch.tensor([p + c])).logits[0].float().log_softmax(-1)
        expected = torch.stack([full[len(p) - 1 + t, tok_id] for t, tok_id in enumerate(c)])
        torch.testing.assert_close(logp[b, : len(c)].detach(), expected, atol=1e-5, rtol=1e-5)
        assert mask[b].tolist() == [1.0] * len(c) + [0.0] * (mask.shape[1] - len(c))
        assert not logp[b, len(c) :].any()


def test_policy_loss_on_policy_is_the_advantage_weighted_likelihood() -> None:
    logp = torch.tensor([[-1.0, -2.0, 0.0], [-0.5, -0.5, -0.5]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    adv = torch.tensor([2.0, -1.0])
    loss, stats = policy_loss(logp, logp.detach(), adv, mask)
    loss.backward()
    # d loss / d logp = -A / tokens on real tokens, 0 on padding.
    expected = -(adv[:, None] * mask) / mask.sum()
    torch.testing.assert_close(logp.grad, expected)
    assert stats["clip_frac"] == 0.0
    assert loss.item() == pytest.approx(-(2 * 2 - 1 * 3) / 5)


def test_policy_loss_clips_moved_ratios_and_adds_kl() -> None:
    old = torch.zeros((1, 4))
    logp = torch.log(torch.tensor([[1.5, 1.1, 0.5, 1.0]]))  # ratios 1.5, 1.1, 0.5, 1.0
    mask = torch.ones((1, 4))
    loss, stats = policy_loss(logp, old, torch.tensor([1.0]), mask, clip_eps=0.2)
    assert stats["clip_frac"] == pytest.approx(0.5)
    # min(r A, clip(r) A) with A = 1: 1.2, 1.1, 0.5, 1.0
    assert loss.item() == pytest.approx(-(1.2 + 1.1 + 0.5 + 1.0) / 4)
    ref = torch.zeros((1, 4))
    with_kl, stats = policy_loss(logp, old, torch.tensor([1.0]), mask, ref_logp=ref, kl_coef=0.5)
    kl = kl_k3(logp, ref)
    assert (kl >= 0).all()
    assert with_kl.item() == pytest.approx(loss.item() + 0.5 * kl.mean().item())
    assert stats["kl"] == pytest.approx(kl.mean().item())


def test_sft_loss_keeps_only_the_selected_completions() -> None:
    logp = torch.tensor([[-1.0, -3.0], [-2.0, -2.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    loss = sft_loss(logp, torch.tensor([0.0, 1.0]), mask)
    assert loss.item() == pytest.approx(2.0)  # row 1's one real token


# ----- the trainer ---------------------------------------------------------------------------


def test_grpo_steps_train_the_adapter_and_not_the_base(
    tiny_dir: Path, tmp_path: Path, env: gym.Env
) -> None:
    llm = tiny_llm(tiny_dir)
    base_before = {k: v.detach().clone() for k, v in llm.model.named_parameters()}
    # No test evaluation: it would load the best adapter back (here the untrained one).
    config = _config(tiny_dir, tmp_path, test_episodes=0)
    trainer = GRPOTrainer(config, env, llm, FakeLLM("mixed"))
    lora_before = lora_state(trainer.model)
    summary = trainer.train()
    steps = [r for r in run_log(tmp_path) if "reward" in r]
    assert [r["step"] for r in steps] == [1, 2]
    assert all(np.isfinite(r["loss"]) for r in steps)
    assert sum(r["trained_rows"] for r in steps) > 0
    # Only the adapter moved.
    lora_after = lora_state(trainer.model)
    assert any(not torch.equal(lora_before[k], lora_after[k]) for k in lora_before)
    assert_base_unchanged(trainer.model, base_before)
    # Validation at step 0 and 2, a summary, the best adapter and the curves.
    assert [h["step"] for h in summary["history"]] == [0, 2]
    assert summary["test"] is None and summary["finished"]
    assert (tmp_path / "adapter_model.safetensors").is_file()
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert not (tmp_path / "checkpoint").exists()


def test_malformed_completions_get_the_format_penalty_and_the_step_survives(
    tiny_dir: Path, tmp_path: Path, env: gym.Env
) -> None:
    llm = tiny_llm(tiny_dir)
    config = _config(tiny_dir, tmp_path, prompts_per_step=4)
    trainer = GRPOTrainer(config, env, llm, FakeLLM("mixed"))
    batch = trainer.rollout(0, [0, 1, 2, 3])
    ok = batch.metrics["format_ok"].astype(bool)
    assert ok.any() and (~ok).any()  # the fake's mix: both kinds in one step
    np.testing.assert_array_equal(batch.rewards[~ok], -2.0)
    np.testing.assert_allclose(batch.advantages.reshape(4, 4).mean(axis=1), 0.0, atol=1e-9)
    stats = trainer.update(batch)
    assert np.isfinite(stats["loss"]) and stats["trained_rows"] > 0
    # A batch of nothing but malformed completions: every group ties, no update, no crash.
    trainer.generator = FakeLLM(kinds=["invalid_json", "no_answer_tag", "empty"])
    bad = trainer.rollout(1, [0, 1])
    assert (bad.rewards == -2.0).all() and not bad.advantages.any()
    assert trainer.update(bad)["trained_rows"] == 0


def test_the_tiny_model_trains_on_its_own_samples(
    tiny_dir: Path, tmp_path: Path, env: gym.Env
) -> None:
    llm = tiny_llm(tiny_dir)
    trainer = GRPOTrainer(_config(tiny_dir, tmp_path, response_prefix=PREFIX), env, llm)
    batch = trainer.rollout(0, [0, 1])
    assert all(a.startswith(PREFIX) for a in batch.actions)
    assert trainer.generator is llm  # on-policy: the trained ids are the sampled ones
    assert all(len(c) > 0 for c in batch.completion_ids)
    batch.advantages = np.tile([1.0, -1.0], len(batch.actions) // 2)  # force a gradient
    before = lora_state(trainer.model)
    assert np.isfinite(trainer.update(batch)["loss"])
    after = lora_state(trainer.model)
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_rs_sft_fine_tunes_on_the_best_completion_of_each_group(
    tiny_dir: Path, tmp_path: Path, env: gym.Env
) -> None:
    llm = tiny_llm(tiny_dir)
    config = _config(tiny_dir, tmp_path, algorithm="rs-sft", prompts_per_step=4)
    trainer = GRPOTrainer(config, env, llm, FakeLLM("mixed"))
    batch = trainer.rollout(0, [0, 1, 2, 3])
    for g in range(4):
        part = slice(4 * g, 4 * g + 4)
        weights, rewards, ndcg = (
            batch.advantages[part],
            batch.rewards[part],
            batch.metrics["ndcg"][part],
        )
        if ndcg.max() > 0:
            assert weights.sum() == 1 and rewards[weights.argmax()] == rewards.max()
        else:
            assert weights.sum() == 0
    assert np.isfinite(trainer.update(batch)["loss"])


def test_a_killed_run_resumes_bit_identically(tiny_dir: Path, tmp_path: Path, env: gym.Env) -> None:
    straight = tmp_path / "straight"
    train_grpo(_config(tiny_dir, straight, max_steps=4), env, tiny_llm(tiny_dir), FakeLLM("mixed"))
    split = tmp_path / "split"
    # max_minutes=0 stops after the first step with a checkpoint, as a kill after it would.
    first = train_grpo(
        _config(tiny_dir, split, max_steps=4, max_minutes=0.0), env, tiny_llm(tiny_dir), FakeLLM()
    )
    assert not first["finished"] and first["steps"] == 1
    assert (split / "checkpoint" / "adapter_model.safetensors").is_file()
    second = train_grpo(_config(tiny_dir, split, max_steps=4), env, tiny_llm(tiny_dir), FakeLLM())
    assert second["finished"] and second["steps"] == 4

    def trace(out: Path) -> list[Any]:  # the log without its timings
        keep = ("step", "reward", "loss", "kl", "clip_frac", "trained_rows", "lr", "eval")
        rows = [{k: r[k] for k in keep if k in r} for r in run_log(out)]
        for row in rows:
            row.get("eval", {}).pop("train_minutes", None)
        return rows

    assert trace(split) == trace(straight)
    from safetensors.torch import load_file

    a = load_file(str(straight / "adapter_model.safetensors"))
    b = load_file(str(split / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_of_another_recipe_is_refused(
    tiny_dir: Path, tmp_path: Path, env: gym.Env
) -> None:
    train_grpo(_config(tiny_dir, tmp_path, max_minutes=0.0), env, tiny_llm(tiny_dir), FakeLLM())
    with pytest.raises(ValueError, match="another recipe"):
        GRPOTrainer(_config(tiny_dir, tmp_path, lr=0.5), env, tiny_llm(tiny_dir), FakeLLM())


def test_the_trained_adapter_is_an_agent_for_the_runner(
    tiny_dir: Path, tmp_path: Path, env: gym.Env
) -> None:
    out = tmp_path / "run"
    summary = train_grpo(
        _config(tiny_dir, out, response_prefix=PREFIX), env, tiny_llm(tiny_dir), FakeLLM("mixed")
    )
    agent = ZeroShotLLMAgent(
        str(tiny_dir), adapter=str(out), response_prefix=PREFIX, max_new_tokens=8, batch_size=4
    )
    assert agent.config()["training"]["algorithm"] == "grpo"
    assert agent.config()["training"]["best_step"] == summary["best_step"]
    # The trainer's own test evaluation is what the agent scores on the same episodes.
    agent.reset(0)
    scorer = env.unwrapped
    actions = agent.act_batch(scorer.observations([0, 1, 2, 3], "test"))
    assert all(a.startswith(PREFIX) for a in actions)
    scores = scorer.score(actions, [0, 1, 2, 3], "test")
    assert summary["test"]["episodes"] == 4
    # The runner builds it by the algorithm's name, and refuses another algorithm's run.
    from agents import make_agent

    kwargs = {"model": str(tiny_dir), "adapter": str(out), "max_new_tokens": 8}
    assert make_agent("grpo", env, **kwargs).config()["adapter"] == str(out)
    with pytest.raises(ValueError, match="trained with 'grpo'"):
        make_agent("rs-sft", env, **kwargs)
    with pytest.raises(ValueError, match="output folder"):
        make_agent("grpo", env, model=str(tiny_dir))
    assert "--agent grpo" in summary["leaderboard_command"]
    assert float(scores.rewards.mean()) == pytest.approx(summary["test"]["reward"])


def test_main_parses_every_field(tiny_dir: Path, tmp_path: Path) -> None:
    summary = main(
        [
            "--model",
            str(tiny_dir),
            "--env",
            "RecSeq-v0",
            "--env-kwargs",
            '{"k": 100}',
            "--algorithm",
            "rloo",
            "--prompts-per-step",
            "1",
            "--samples-per-prompt",
            "2",
            "--max-new-tokens",
            "4",
            "--max-steps",
            "1",
            "--eval-episodes",
            "2",
            "--test-episodes",
            "0",
            "--target-modules",
            "q_proj",
            "v_proj",
            "--no-progress",
            "--output-dir",
            str(tmp_path),
            "--device",
            "cpu",
            "--kl-coef",
            "0",
        ]
    )
    assert summary["algorithm"] == "rloo" and summary["env"]["k"] == 100
    assert list(summary["config"]["target_modules"]) == ["q_proj", "v_proj"]
    assert summary["test"] is None and summary["steps"] == 1
    # The leaderboard command is an evaluation spec's: it parses back into the run's settings.
    from benchmarks.__main__ import _parser, run_spec

    command = summary["leaderboard_command"]
    spec = run_spec(_parser().parse_args(shlex.split(command)[3:]))
    assert spec.command() == command
    assert (spec.env_id, spec.agent_name, spec.split, spec.seeds) == (
        "RecSeq-v0",
        "rloo",
        "test",
        (0, 1, 2),
    )
    assert spec.env_kwargs == {"k": 100} and spec.batch_size == 32 and spec.budget_device == "cpu"
    assert spec.agent_kwargs["adapter"] == str(tmp_path) and spec.budget is not None
    # ... and it records the training command, which parses back into the run's config.
    from agents.llm.grpo import GRPOTrainer
    from agents.llm.grpo_config import GRPOConfig
    from agents.llm.run_files import config_parser, parse_config

    assert spec.training is not None
    argv = shlex.split(spec.training["command"])
    assert " ".join(argv[:3]) == GRPOTrainer.command_prog and "--algorithm" in argv
    parser = config_parser(GRPOConfig, GRPOTrainer.command_prog, "")
    again = parse_config(GRPOConfig, vars(parser.parse_args(argv[3:])))
    assert json.loads(json.dumps(dataclasses.asdict(again))) == json.loads(
        json.dumps(summary["config"])
    )
    assert spec.training["log"] == str(tmp_path / "log.jsonl")


@pytest.mark.parametrize(
    "bad",
    [
        {"algorithm": "ppo"},
        {"samples_per_prompt": 1},
        {"temperature": 0.0},
        {"lora": False},  # full fine-tuning with the default kl_coef > 0
        {"eval_episodes": 0},
    ],
)
def test_config_rejects_bad_settings(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        GRPOConfig(**bad)


def test_an_env_that_is_not_a_text_env_is_refused(tiny_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="text env"):
        GRPOTrainer(_config(tiny_dir, tmp_path), gym.make("RecNext-v0"), tiny_llm(tiny_dir))


def test_select_metric_picks_the_adapter_and_must_be_a_validation_metric(
    tiny_dir: Path, tmp_path: Path, env: gym.Env
) -> None:
    config = _config(tiny_dir, tmp_path / "reward", select_metric="reward", test_episodes=0)
    summary = train_grpo(config, env, tiny_llm(tiny_dir), FakeLLM("mixed"))
    best = max(summary["history"], key=lambda h: h["reward"])  # the first of equals, as kept
    assert (summary["best_step"], summary["best_metric"]) == (best["step"], best["reward"])
    with pytest.raises(ValueError, match="not a validation metric"):
        train_grpo(
            _config(tiny_dir, tmp_path / "bad", select_metric="ndcg@7"),
            env,
            tiny_llm(tiny_dir),
            FakeLLM(),
        )


def test_a_checkpoint_older_than_a_new_field_resumes(
    tiny_dir: Path, tmp_path: Path, env: gym.Env
) -> None:
    train_grpo(_config(tiny_dir, tmp_path, max_minutes=0.0), env, tiny_llm(tiny_dir), FakeLLM())
    path = tmp_path / "checkpoint" / "state.json"
    state = json.loads(path.read_text())
    del state["config"]["select_metric"]  # written before the field existed: its default
    path.write_text(json.dumps(state))
    assert GRPOTrainer(_config(tiny_dir, tmp_path), env, tiny_llm(tiny_dir), FakeLLM())._state
    with pytest.raises(ValueError, match="another recipe"):
        GRPOTrainer(
            _config(tiny_dir, tmp_path, select_metric="reward"), env, tiny_llm(tiny_dir), FakeLLM()
        )


# ----- the module layout ---------------------------------------------------------------------


def test_the_names_users_import_stay_where_they_were() -> None:
    import agents.llm.grpo as grpo
    from agents.llm import grpo_config, run_files, sampling, trainer_utils, training

    assert grpo.GRPOConfig is grpo_config.GRPOConfig and grpo.ALGORITHMS is grpo_config.ALGORITHMS
    assert grpo.plot_run is run_files.plot_run and grpo.Rollout is sampling.Rollout
    assert issubclass(GRPOTrainer, training.PolicyTrainer)
    moved = {name: run_files for name in training._RUN_FILES}
    moved |= {name: trainer_utils for name in training._TRAINER_UTILS}
    for name, module in moved.items():
        with pytest.warns(DeprecationWarning, match=f"training.{name} moved to agents.llm"):
            old = getattr(training, name)
        assert old is getattr(module, name)
    with pytest.raises(AttributeError):
        training.nothing  # noqa: B018


def test_the_trainers_use_no_private_name_of_another_module() -> None:
    import ast

    import agents.llm

    for path in Path(agents.llm.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("agents"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.name} imports {private} from {node.module}"
