"""R²ec's recommendation head, its RecNext-v0 agent, and the RecPO trainer.

Runs on CPU with the tiny randomly initialised Llama of ``tiny_dir`` (SmolLM2's tokenizer): its
reasoning is noise, but every number the trainer uses is computed from it for real.
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

from conftest import assert_base_unchanged, lora_state, run_log, tiny_llm  # noqa: E402

from agents import make_agent  # noqa: E402
from agents.llm.grpo import GRPOConfig  # noqa: E402
from agents.llm.rec_head import ANSWER, RecHead, RecHeadAgent  # noqa: E402
from agents.llm.recpo import (  # noqa: E402
    RecPOConfig,
    RecPOTrainer,
    best_traces,
    main,
    train_recpo,
)
from recgym.agent import Agent  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def env() -> gym.Env:
    return gym.make("RecNext-v0", reward="fused", history_len=5)


def _config(tiny_dir: Path, out: Path, **overrides: Any) -> RecPOConfig:
    settings: dict[str, Any] = {
        "model": str(tiny_dir),
        "env_kwargs": {"reward": "fused", "history_len": 5},
        "prompts_per_step": 3,
        "samples_per_prompt": 4,
        "max_new_tokens": 12,
        "lr": 1e-2,
        "max_steps": 2,
        "eval_every": 2,
        "eval_episodes": 4,
        "eval_batch_size": 64,
        "test_episodes": 4,
        "micro_batch_size": 4,
        "lora_r": 4,
        "output_dir": str(out),
        "device": "cpu",
        "progress": False,
    }
    settings.update(overrides)
    return RecPOConfig(**settings)


# ----- the head ------------------------------------------------------------------------------


def test_the_answer_marker_ends_every_readout(tiny_dir: Path, env: gym.Env) -> None:
    llm = tiny_llm(tiny_dir)
    head = RecHead(llm, env.unwrapped.task.texts)
    tok = llm.tokenizer
    reasoning = tok("I like old films.", add_special_tokens=False)["input_ids"]
    stopped = reasoning + head.answer_ids  # generation stopped on the marker: kept as is
    assert head.with_answer(stopped) == stopped
    # Cut by the budget, or ended by the end token: the marker is appended (the end dropped).
    assert head.with_answer(reasoning) == stopped
    assert head.with_answer([*reasoning, head.eos_id]) == stopped
    assert tok.decode(head.prompt_ids("hi", answer_now=True)).endswith(ANSWER)
    assert not tok.decode(head.prompt_ids("hi", answer_now=False)).endswith(ANSWER)


def test_scores_are_cosines_against_a_table_of_the_current_weights(
    tiny_dir: Path, env: gym.Env
) -> None:
    llm = tiny_llm(tiny_dir)
    head = RecHead(llm, env.unwrapped.task.texts, batch_size=256)
    table = head.table()
    assert table.shape[0] == env.unwrapped.n_items
    np.testing.assert_allclose(table.norm(dim=1).numpy(), 1.0, atol=1e-5)
    # Batching does not change an item's vector.
    with torch.no_grad():
        np.testing.assert_allclose(
            head.encode_items([5, 7]).numpy(), table[[5, 7]].numpy(), atol=1e-5
        )
    users = torch.nn.functional.normalize(torch.randn(2, table.shape[1]), dim=-1)
    scores = head.scores(users)
    np.testing.assert_allclose(scores, (users @ table.T).numpy(), atol=1e-6)
    assert scores.shape == (2, env.unwrapped.n_items) and np.abs(scores).max() <= 1 + 1e-6
    # New weights: refresh() re-encodes the given rows only; refresh(None) rebuilds the table.
    with torch.no_grad():
        next(llm.model.parameters()).add_(0.5)
    old = table.clone()
    head.refresh([3])
    assert not torch.allclose(head.table()[3], old[3])
    assert torch.equal(head.table()[4], old[4])
    head.refresh(None)
    assert not torch.allclose(head.table()[4], old[4])


def test_the_agent_plays_recnext_with_and_without_reasoning(tiny_dir: Path, env: gym.Env) -> None:
    scorer = env.unwrapped
    observations = scorer.observations([0, 1, 2], "test")
    agent = RecHeadAgent.from_env(env, model=str(tiny_dir), max_new_tokens=6, batch_size=2)
    actions = agent.act_batch(observations)
    assert [a["scores"].shape for a in actions] == [(scorer.n_items,)] * 3
    assert all(isinstance(a["reasoning"], str) for a in actions)
    # One step of the env takes the action as is (the reasoning comes back in info).
    env.reset(options={"split": "test", "index": 0})
    _, reward, terminated, _, info = env.step(actions[0])
    assert terminated and info["reasoning"] == actions[0]["reasoning"]
    assert reward == pytest.approx(float(scorer.score(actions[:1], 0, "test").rewards[0]))
    # Greedy: the same actions again; no reasoning: other scores, from the prompt alone.
    again = agent.act_batch(observations)
    np.testing.assert_array_equal(again[1]["scores"], actions[1]["scores"])
    agent.reasoning = False
    plain = agent.act_batch(observations)
    assert all(a["reasoning"] == "" for a in plain)
    assert not np.allclose(plain[0]["scores"], actions[0]["scores"])
    built = make_agent("rec-head", env, model=str(tiny_dir), reasoning=False)
    assert isinstance(built, Agent)
    config = built.config()  # type: ignore[attr-defined]
    assert config["reasoning"] is False and "adapter" not in config


# ----- the trainer ---------------------------------------------------------------------------


def test_best_traces_weigh_the_top_trace_of_each_group() -> None:
    advantages = np.array([-1.0, 0.5, 1.5, -1.0, 0.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(best_traces(advantages, 4), [0, 0, 1.5, 0, 0, 0, 0, 0])


def test_a_rollout_scores_the_readouts_it_will_train_on(
    tiny_dir: Path, tmp_path: Path, env: gym.Env
) -> None:
    trainer = RecPOTrainer(_config(tiny_dir, tmp_path), env, tiny_llm(tiny_dir))
    batch = trainer.rollout(0, [0, 1, 2])
    scorer = env.unwrapped
    assert len(batch.actions) == 12 and list(batch.episodes) == [0] * 4 + [1] * 4 + [2] * 4
    expected = [scorer.target(int(i), "train") for i in batch.episodes]
    np.testing.assert_array_equal(batch.targets, expected)
    # Every readout ends with the marker; its user vector's scores give the logged reward.
    tok = trainer.llm.tokenizer
    assert all(tok.decode(r).endswith(ANSWER) for r in batch.readout_ids)
    with torch.no_grad():
        users = trainer.head.encode(batch.readout_ids[:2])
    again = scorer.score(trainer.head.scores(users), batch.episodes[:2].tolist(), "train")
    np.testing.assert_allclose(again.rewards, batch.rewards[:2], rtol=1e-6)
    # The batch's targets were re-encoded into the table with the current weights.
    with torch.no_grad():
        fresh = trainer.head.encode_items([int(batch.targets[0])])
    torch.testing.assert_close(trainer.head.table()[int(batch.targets[0])], fresh[0])
    # GRPO advantages per group; the item loss weighs each group's best trace only.
    np.testing.assert_allclose(batch.advantages.reshape(3, 4).mean(axis=1), 0.0, atol=1e-9)
    weights = batch.item_weights.reshape(3, 4)
    assert ((weights > 0).sum(axis=1) <= 1).all()
    for g in range(3):
        if weights[g].any():
            assert weights[g].max() == pytest.approx(batch.advantages.reshape(3, 4)[g].max())


@pytest.mark.parametrize("refresh", ["targets", "all"])
def test_a_step_rescores_against_the_refreshed_rows(
    tiny_dir: Path, tmp_path: Path, env: gym.Env, refresh: str
) -> None:
    trainer = RecPOTrainer(
        _config(tiny_dir, tmp_path, item_refresh=refresh), env, tiny_llm(tiny_dir)
    )
    stale = trainer.head.table().clone()
    with torch.no_grad():  # the weights move, as an update moves them
        for name, param in trainer.model.named_parameters():
            if "lora_B" in name:
                param.add_(0.05)
    batch = trainer.rollout(0, [0, 1, 2])
    table = trainer.head.table().clone()
    trainer.head.refresh(None)
    fresh = trainer.head.table()
    targets = sorted(set(batch.targets.tolist()))
    others = [i for i in range(len(fresh)) if i not in targets][:50]
    torch.testing.assert_close(table[targets], fresh[targets])
    if refresh == "all":  # every row from the current weights
        torch.testing.assert_close(table, fresh)
    else:  # R²ec's: the other rows are the last evaluation's
        assert torch.equal(table[others], stale[others])
        assert not torch.allclose(table[others], fresh[others])


def test_recpo_steps_train_the_adapter_and_not_the_base(
    tiny_dir: Path, tmp_path: Path, env: gym.Env
) -> None:
    llm = tiny_llm(tiny_dir)
    base_before = {k: v.detach().clone() for k, v in llm.model.named_parameters()}
    # No test evaluation: it would load the best adapter back (maybe the untrained one).
    trainer = RecPOTrainer(_config(tiny_dir, tmp_path, test_episodes=0), env, llm)
    lora_before = lora_state(trainer.model)
    summary = trainer.train()
    steps = [r for r in run_log(tmp_path) if "reward" in r]
    assert [r["step"] for r in steps] == [1, 2]
    assert all(np.isfinite(r["loss"]) and np.isfinite(r["item_ce"]) for r in steps)
    lora_after = lora_state(trainer.model)
    assert any(not torch.equal(lora_before[k], lora_after[k]) for k in lora_before)
    assert_base_unchanged(trainer.model, base_before)
    assert [h["step"] for h in summary["history"]] == [0, 2]
    assert summary["algorithm"] == "recpo" and summary["reasoning"] is True
    assert summary["env"]["reward"] == "fused" and summary["finished"]
    assert {"ndcg@10", "hit@5", "ndcg@20"} <= set(summary["history"][0])
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_the_item_loss_alone_learns_without_reasoning(
    tiny_dir: Path, tmp_path: Path, env: gym.Env
) -> None:
    config = _config(tiny_dir, tmp_path, reasoning=False, prompts_per_step=4, lr=3e-2)
    trainer = RecPOTrainer(config, env, tiny_llm(tiny_dir))
    assert trainer.group_size == 1
    batch = trainer.rollout(0, [0, 1, 2, 3])
    assert batch.completion_ids == [[]] * 4 and not batch.advantages.any()
    np.testing.assert_array_equal(batch.item_weights, 1.0)
    losses = [trainer.update(batch)["item_ce"] for _ in range(4)]
    # The in-batch softmax of these four users over their own targets is fitted.
    assert losses[-1] < losses[0]
    assert trainer.update(batch)["trained_rows"] == 4


def test_a_killed_run_resumes_bit_identically(tiny_dir: Path, tmp_path: Path, env: gym.Env) -> None:
    straight = tmp_path / "straight"
    train_recpo(_config(tiny_dir, straight, max_steps=3, eval_every=3), env, tiny_llm(tiny_dir))
    split = tmp_path / "split"
    first = train_recpo(
        _config(tiny_dir, split, max_steps=3, eval_every=3, max_minutes=0.0),
        env,
        tiny_llm(tiny_dir),
    )
    assert not first["finished"] and first["steps"] == 1
    assert (split / "checkpoint" / "items.pt").is_file()
    second = train_recpo(
        _config(tiny_dir, split, max_steps=3, eval_every=3), env, tiny_llm(tiny_dir)
    )
    assert second["finished"] and second["steps"] == 3

    def trace(out: Path) -> list[Any]:  # the log without its timings
        keep = ("step", "reward", "loss", "item_ce", "clip_frac", "trained_rows", "eval")
        rows = [{k: r[k] for k in keep if k in r} for r in run_log(out)]
        for row in rows:
            row.get("eval", {}).pop("train_minutes", None)
        return rows

    assert trace(split) == trace(straight)
    assert second["test"] == pytest.approx(
        json.loads((straight / "training.json").read_text())["test"]
    )


def test_the_trained_adapter_is_the_recpo_agent(
    tiny_dir: Path, tmp_path: Path, env: gym.Env
) -> None:
    out = tmp_path / "run"
    summary = train_recpo(
        _config(tiny_dir, out, max_steps=1, eval_every=1), env, tiny_llm(tiny_dir)
    )
    kwargs = json.loads(summary["leaderboard_command"].split("--agent-kwargs ")[1].split("'")[1])
    assert kwargs["adapter"] == str(out) and kwargs["temperature"] == 0.0
    assert "--agent recpo" in summary["leaderboard_command"]
    agent = make_agent("recpo", env, **kwargs)
    assert agent.config()["training"]["algorithm"] == "recpo"
    # The runner's agent scores the test episodes as the trainer's own test evaluation did.
    scorer = env.unwrapped
    agent.reset(0)
    actions = agent.act_batch(scorer.observations([0, 1, 2, 3], "test"))
    scores = scorer.score(actions, [0, 1, 2, 3], "test")
    assert float(scores.rewards.mean()) == pytest.approx(summary["test"]["reward"], rel=1e-5)
    with pytest.raises(ValueError, match="trained with 'recpo'"):
        make_agent("grpo", gym.make("RecSeq-v0"), model=str(tiny_dir), adapter=str(out))
    with pytest.raises(ValueError, match="output folder"):
        make_agent("recpo", env, model=str(tiny_dir))


def test_main_parses_the_recpo_fields(tiny_dir: Path, tmp_path: Path) -> None:
    summary = main(
        [
            "--model",
            str(tiny_dir),
            "--env-kwargs",
            '{"reward": "ndcg", "history_len": 3}',
            "--no-reasoning",
            "--advantage",
            "rloo",
            "--prompts-per-step",
            "2",
            "--max-steps",
            "1",
            "--eval-episodes",
            "2",
            "--test-episodes",
            "0",
            "--no-progress",
            "--output-dir",
            str(tmp_path),
            "--device",
            "cpu",
        ]
    )
    assert summary["reasoning"] is False and summary["advantage"] == "rloo"
    assert summary["env"]["reward"] == "ndcg" and summary["steps"] == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"advantage": "ppo"},
        {"algorithm": "grpo"},
        {"reasoning": False, "item_loss_coef": 0.0},
        {"item_loss_coef": -1.0},
        {"response_prefix": "<answer>"},
        {"item_refresh": "some"},
    ],
)
def test_config_rejects_bad_settings(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RecPOConfig(**bad)


def test_other_envs_and_configs_are_refused(tiny_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="next-item env"):
        RecPOTrainer(_config(tiny_dir, tmp_path), gym.make("RecSeq-v0"), tiny_llm(tiny_dir))
    with pytest.raises(TypeError, match="RecPOConfig"):
        RecPOTrainer(GRPOConfig(model=str(tiny_dir)), gym.make("RecNext-v0"))  # type: ignore[arg-type]


def test_the_refresh_bias_benchmark_scores_one_run_against_both_tables(
    tiny_dir: Path, tmp_path: Path, env: gym.Env
) -> None:
    from benchmarks.studies import recpo_refresh_bias

    out = tmp_path / "run"
    config = _config(tiny_dir, out, max_steps=1, eval_every=1, test_episodes=0)
    train_recpo(config, env, tiny_llm(tiny_dir))
    path = tmp_path / "bias.json"
    record = recpo_refresh_bias.main([str(out), "--episodes", "3", "--out", str(path)])
    assert json.loads(path.read_text()) == record and record["episodes"] == 3
    for table in ("stale+targets", "fresh"):
        assert 0 <= record[table]["reward"] <= 1
        assert 0 <= record[table]["median_target_rank"] < env.unwrapped.n_items
