"""TRL interop: the prompt dataset and reward function of a text env, and a real GRPOTrainer run.

The trainer test runs TRL's ``GRPOTrainer`` for two steps on CPU with the tiny random Llama of
``conftest.tiny_dir`` (SmolLM2's tokenizer and chat template); it is skipped without ``trl``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

import recgym  # noqa: F401  (registers the env ids)
from agents.llm.trl_reward import (
    EnvReward,
    completion_text,
    prompt_dataset,
    reward_function,
)
from recgym.envs.text import SYSTEM_PROMPT

GOOD = '<think>they like space operas</think><answer>{"query": "Star Wars Sci-Fi 1977"}</answer>'
PLAIN = '<answer>{"query": "Drama Romance 1996"}</answer>'
BROKEN = [
    "I would recommend Star Wars.",  # no_answer
    '<answer>{"query": "a"}</answer><answer>{"query": "b"}</answer>',  # tags
    "<answer>{query: star wars}</answer>",  # json
    '<answer>{"q": "star wars"}</answer>',  # no_query
    '<answer>{"query": 7}</answer>',  # query_not_string
    "",
    "<answer>\x00\ud800 unfinished",
]


@pytest.fixture(scope="module")
def env() -> Iterator[gym.Env]:
    env = gym.make("RecSeq-v0")
    yield env
    env.close()


def _chat(text: str) -> list[dict[str, str]]:
    """A completion as TRL passes it for a conversational dataset."""
    return [{"role": "assistant", "content": text}]


def test_prompt_dataset_rows_are_the_env_observations(env: gym.Env) -> None:
    pytest.importorskip("datasets")
    scorer: Any = env.unwrapped
    indices = [5, 0, 942, 17]
    data = prompt_dataset(env, "validation", indices)
    assert data.column_names == ["prompt", "index", "split"]
    assert data["index"] == indices
    assert data["split"] == ["validation"] * 4
    for row, observation in zip(data, scorer.observations(indices, "validation"), strict=True):
        assert row["prompt"] == [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": observation},
        ]
    bare = prompt_dataset(env.unwrapped, "test", range(3), system_prompt=None)
    assert bare[0]["prompt"] == [{"role": "user", "content": scorer.observation(0, "test")}]
    assert len(prompt_dataset(env, "test")) == scorer.num_episodes("test")


def test_non_text_envs_and_bad_arguments_are_refused(env: gym.Env) -> None:
    cartpole = gym.make("CartPole-v1")
    with pytest.raises(TypeError, match=r"recgym text env.*CartPoleEnv"):
        reward_function(cartpole)
    with pytest.raises(TypeError, match=r"recgym text env.*CartPoleEnv"):
        prompt_dataset(cartpole)
    with pytest.raises(ValueError, match=r"metric must be one of .*'ndcg@10'.*got 'ndcg@5'"):
        reward_function(env, metric="ndcg@5")
    with pytest.raises(ValueError, match="response_prefix needs the policy's tokenizer"):
        prompt_dataset(env, "test", range(2), response_prefix="<answer>")
    with pytest.raises(ValueError, match="split must be"):
        reward_function(env, split="dev")
    with pytest.raises(ValueError, match="split must be one of"):
        prompt_dataset(env, "dev")


def test_reward_equals_the_env_score_for_strings_and_conversations(env: gym.Env) -> None:
    scorer: Any = env.unwrapped
    texts = [GOOD, PLAIN, *BROKEN]
    indices = [i % 3 for i in range(len(texts))]
    expected = scorer.score(texts, indices, "train")
    assert expected.format_ok.tolist() == [True, True] + [False] * len(BROKEN)
    assert expected.rewards[0] != expected.rewards[1]  # the two queries retrieve differently

    reward = reward_function(env)
    assert isinstance(reward, EnvReward)
    assert reward.__name__ == "recseq_reward"
    assert reward(texts, indices) == expected.rewards.tolist()
    # As TRL 1.16 calls it: keywords only, the dataset's columns, and its own extras.
    logged: dict[str, Any] = {}
    as_trl = reward(
        prompts=["ignored"] * len(texts),
        completions=[_chat(t) for t in texts],
        completion_ids=[[1, 2]] * len(texts),
        index=indices,
        split=["train"] * len(texts),
        trainer_state=None,
        log_extra=lambda column, values: logged.__setitem__(column, values),
        log_metric=lambda name, value: logged.__setitem__(name, value),
    )
    assert isinstance(as_trl, list) and all(isinstance(r, float) for r in as_trl)
    assert as_trl == expected.rewards.tolist()
    assert logged["recseq_reward/format_ok"] == pytest.approx(2 / len(texts))
    assert logged["recseq_reward/query"] == expected.queries

    ndcg10 = reward_function(env, metric="ndcg@10")
    assert ndcg10.__name__ == "recseq_ndcg@10"
    assert ndcg10(texts, indices) == expected.metrics["ndcg@10"].tolist()


def test_reward_follows_the_split_column(env: gym.Env) -> None:
    scorer: Any = env.unwrapped
    texts = [GOOD, PLAIN, GOOD, BROKEN[0]]
    splits = ["validation", "train", "test", "validation"]
    indices = [3, 3, 3, 4]
    got = reward_function(env)(texts, indices, splits)
    for text, split, index, value in zip(texts, splits, indices, got, strict=True):
        assert value == pytest.approx(scorer.score([text], [index], split).rewards[0])
    fixed = reward_function(env, split="test")
    assert fixed([GOOD], [3]) == [got[2]]
    with pytest.raises(ValueError, match="split column"):
        fixed(texts, indices, splits)


def test_a_prefill_is_rendered_open_and_scored_with_the_completion(env: gym.Env) -> None:
    pytest.importorskip("datasets")
    from transformers import AutoTokenizer

    import recgym.llm

    tokenizer = AutoTokenizer.from_pretrained(
        recgym.llm.embedded_model_dir("smollm2-135m", progress=False)
    )
    scorer: Any = env.unwrapped
    prefix = '<answer>{"query": "'
    data = prompt_dataset(env, "validation", [4, 1], response_prefix=prefix, tokenizer=tokenizer)
    assert data.column_names == ["prompt", "index", "split", "response_prefix"]
    assert data["response_prefix"] == [prefix, prefix]
    for row, observation in zip(data, scorer.observations([4, 1], "validation"), strict=True):
        # The reply is open: the prompt ends with the prefix, not with an end-of-turn.
        assert row["prompt"].endswith("<|im_start|>assistant\n" + prefix)
        assert observation in row["prompt"] and SYSTEM_PROMPT in row["prompt"]

    # TRL passes string completions (the continuation only) and the prefix column.
    tails = ['Star Wars Sci-Fi"}</answer>', 'Drama"}</answer>', "no closing quote"]
    got = reward_function(env)(tails, [4, 1, 1], "validation", response_prefix=[prefix] * 3)
    expected = scorer.score([prefix + t for t in tails], [4, 1, 1], "validation")
    assert expected.format_ok.tolist() == [True, True, False]
    assert got == expected.rewards.tolist()
    # Without the prefix the same continuations are all malformed.
    assert reward_function(env)(tails, [4, 1, 1], "validation") == [-2.0] * 3
    with pytest.raises(ValueError, match="2 response prefixes for 3 completions"):
        reward_function(env)(tails, [4, 1, 1], "validation", response_prefix=[prefix] * 2)


def test_completion_text_reads_conversations() -> None:
    assert completion_text("plain") == "plain"
    assert completion_text(_chat(PLAIN)) == PLAIN
    # The last assistant turn of a tool-using completion.
    turns = [*_chat("calling"), {"role": "tool", "content": "x"}, *_chat(PLAIN)]
    assert completion_text(turns) == PLAIN
    parts = [{"role": "assistant", "content": [{"type": "text", "text": PLAIN}]}]
    assert completion_text(parts) == PLAIN
    # A response schema's split-off reasoning comes back as a <think> block.
    split_off = [{"role": "assistant", "content": PLAIN, "reasoning_content": "sci-fi fan"}]
    assert completion_text(split_off) == f"<think>\nsci-fi fan\n</think>\n\n{PLAIN}"
    assert completion_text([{"role": "assistant", "content": None}]) == ""
    assert completion_text([{"role": "user", "content": PLAIN}]) == ""
    assert completion_text([]) == ""


# TRL 1.16's generation context reads transformers 5's deprecated model.is_gradient_checkpointing.
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
@pytest.mark.parametrize("prefix", ["", '<answer>{"query": "'])
def test_grpo_trainer_runs_two_steps_on_the_tiny_model(
    env: gym.Env, tiny_dir: Path, tmp_path: Path, prefix: str
) -> None:
    pytest.importorskip("trl")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    seen: list[dict[str, Any]] = []

    def length(completions: list[Any], **kwargs: Any) -> list[float | None]:
        # The random tiny model never writes the answer format, so the env's reward is a
        # constant -2, every advantage 0 and nothing would train: this one varies.
        seen.append({"prompts": kwargs["prompts"], "prefix": kwargs.get("response_prefix")})
        return [len(completion_text(c)) / 100 for c in completions]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny model's ops are too small to share out
    try:
        names = {f.name for f in dataclasses.fields(GRPOConfig)}
        # transformers 5 renamed gradient_checkpointing (which GRPOConfig turns on).
        no_checkpointing: dict[str, Any] = {
            next(
                n for n in ("activation_checkpointing", "gradient_checkpointing") if n in names
            ): False
        }
        model = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        config = GRPOConfig(
            output_dir=str(tmp_path / "grpo"),
            max_steps=2,
            per_device_train_batch_size=4,
            num_generations=4,
            max_completion_length=16,
            learning_rate=1e-2,
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            use_cpu=True,
            bf16=False,
            **no_checkpointing,
            seed=0,
        )
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=[reward_function(env), length],
            args=config,
            train_dataset=prompt_dataset(
                env, "train", range(8), response_prefix=prefix, tokenizer=tokenizer
            ),
            processing_class=tokenizer,
        )
        trainer.train()
    finally:
        torch.set_num_threads(threads)

    steps = [log for log in trainer.state.log_history if "loss" in log]
    assert len(steps) == 2
    for log in steps:
        assert math.isfinite(log["loss"])
        assert log["rewards/recseq_reward/mean"] == pytest.approx(-2.0)
        assert log["recseq_reward/format_ok"] == 0.0
        assert log["rewards/length/std"] > 0
    # With a prefill, TRL generates from the open reply and hands the reward functions the
    # prefix column; without one, from conversations.
    assert seen and all(call["prefix"] == ([prefix] * 4 if prefix else None) for call in seen)
    if prefix:
        assert all(p.endswith("<|im_start|>assistant\n" + prefix) for p in seen[0]["prompts"])
    else:
        assert seen[0]["prompts"][0][-1]["role"] == "user"
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert changed
