"""RecPref-v0 and its judge, the knowledge-augmented recommender (recgym.models.kar)."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import recgym  # noqa: F401 (registers the ids)
from recgym.envs.preference import RecPrefEnv, build_pref_task
from recgym.error import CacheWarning, RecGymError
from recgym.models.kar import KARAdaptor, KARConfig, KARRecommender, train_kar

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def kar() -> KARRecommender:
    """A quickly trained judge: 2 backbone epochs, texts from the fake backend, real encoder."""
    config = KARConfig(
        text_llm="fake",
        backbone_overrides={"max_epochs": 2, "patience": 2},
        max_epochs=3,
        patience=3,
    )
    return train_kar(config, progress=False)


@pytest.fixture
def env(kar: KARRecommender) -> RecPrefEnv:
    return gym.make("RecPref-v0", recommender=kar, split="test", render_mode="ansi").unwrapped


def _shifting(kar: KARRecommender) -> KARRecommender:
    """``kar`` with a random (non-zero) adaptor, so every text moves the user state."""
    cfg = kar.config
    adaptor = KARAdaptor(384, kar.backbone.config.d, cfg.experts, cfg.hidden, dropout=0.0)
    torch.manual_seed(1)
    for p in adaptor.parameters():
        torch.nn.init.normal_(p, std=0.5)
    return KARRecommender(kar.backbone, adaptor, kar.config, encoder=kar.encoder)


def test_check_env(env: RecPrefEnv) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=False)
    assert not [str(w.message) for w in caught]


def test_episodes_are_one_per_user_and_leave_one_out() -> None:
    task = build_pref_task()
    train, val, test = (task.splits[s] for s in ("train", "validation", "test"))
    assert len(train) == len(val) == len(test) == 943
    for i in (0, 100, 942):
        assert (val.histories[i][:-1] == train.histories[i]).all()
        assert val.histories[i][-1] == train.targets[i]
        assert (test.histories[i][:-1] == val.histories[i]).all()
        assert test.histories[i][-1] == val.targets[i]
        assert len(test.ratings[i]) == len(test.histories[i])


def test_candidate_lists_are_fixed_and_never_seen(env: RecPrefEnv) -> None:
    task = env.task
    lists = task.candidates("test", 19)
    assert lists.shape == (943, 20)
    episodes = task.splits["test"]
    assert (lists[:, 0] == episodes.targets).all()
    for row in (0, 5, 500):
        negatives = lists[row, 1:]
        assert len(set(negatives.tolist())) == 19
        assert not np.isin(negatives, task.seen[str(episodes.users[row])]).any()
    # A fresh build draws the same lists (they are part of the benchmark).
    assert (build_pref_task().candidates("test", 19) == lists).all()
    assert (env.candidates(5) == lists[5]).all()


def test_prompt_shows_the_last_rated_movies(env: RecPrefEnv) -> None:
    prompt = env.observation(0, "test")
    assert " stars" in prompt
    lines = [line for line in prompt.splitlines() if line[:1].isdigit()]
    assert len(lines) == env.history_len
    assert "1 stars" not in prompt
    last = env.task.texts[int(env.task.splits["test"].histories[0][-1])]
    assert lines[-1].startswith(f"{env.history_len}. {last}: ")


def test_no_text_is_the_plain_backbone(env: RecPrefEnv, kar: KARRecommender) -> None:
    rows = [0, 1, 2, 3, 10]
    result = env.score(["", "   ", "", "", ""], rows, "test")
    histories = [env.task.splits["test"].histories[i] for i in rows]
    plain = kar.backbone.score(histories)
    lists = env.task.candidates("test", 19)[rows]
    assert np.allclose(result.candidate_scores, np.take_along_axis(plain, lists, axis=1))
    ahead = (result.candidate_scores[:, 1:] >= result.candidate_scores[:, :1]).sum(axis=1)
    assert (result.ranks == ahead).all()
    assert np.allclose(result.rewards, 1 / np.log2(ahead + 2))
    assert result.format_ok.all()


def test_untrained_adaptor_changes_nothing(kar: KARRecommender) -> None:
    zero = KARRecommender(
        kar.backbone,
        KARAdaptor(384, kar.backbone.config.d, 2, 8, 0.0),
        kar.config,
        encoder=kar.encoder,
    )
    histories = kar_histories(3)
    lists = np.tile(np.arange(20), (3, 1))
    with_text = zero.score_candidates(histories, ["likes sci-fi", "hates horror", "x"], lists)
    assert np.allclose(with_text, zero.score_candidates(histories, ["", "", ""], lists))


def kar_histories(n: int) -> list[np.ndarray]:
    return build_pref_task().splits["test"].histories[:n]


def test_text_moves_the_ranking_and_batching_changes_nothing(kar: KARRecommender) -> None:
    env = RecPrefEnv(recommender=_shifting(kar), split="test")
    texts = ["A fan of science fiction and space adventures.", "", "Loves romantic comedies."]
    batched = env.score(texts, [7, 7, 7], "test")
    assert not np.allclose(batched.candidate_scores[0], batched.candidate_scores[1])
    assert not np.allclose(batched.candidate_scores[0], batched.candidate_scores[2])
    # One by one, through the Gymnasium API, gives the same rewards.
    for text, reward in zip(texts, batched.rewards, strict=True):
        env.reset(options={"index": 7})
        _, r, terminated, truncated, info = env.step(text)
        assert r == pytest.approx(reward)
        assert terminated and not truncated
        assert info["metrics"]["ndcg@10"] == pytest.approx(
            float(info["target_rank"] < 10) / np.log2(info["target_rank"] + 2)
        )
    # Bytes are decoded; the same text scores the same in any batch.
    alone = env.score([texts[2].encode()], 7, "test")
    assert alone.rewards[0] == pytest.approx(batched.rewards[2])


def test_save_and_load_give_the_same_scores(kar: KARRecommender, tmp_path: Path) -> None:
    shifting = _shifting(kar)
    shifting.save(tmp_path / "kar")
    loaded = KARRecommender.load(tmp_path / "kar")
    histories, lists = kar_histories(2), np.tile(np.arange(1, 21), (2, 1))
    texts = ["dark thrillers", ""]
    assert np.allclose(
        loaded.score_candidates(histories, texts, lists),
        shifting.score_candidates(histories, texts, lists),
        atol=1e-5,
    )
    assert loaded.config == kar.config


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_cached_judge_is_reported_and_trained_again(
    kar: KARRecommender, tmp_cache: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    from recgym.models import kar as kar_module

    trained: list[KARConfig] = []
    shifting = _shifting(kar)

    def train(config: KARConfig, **kwargs: Any) -> KARRecommender:  # the fixture's judge
        trained.append(config)
        return shifting

    monkeypatch.setattr(kar_module, "train_kar", train)
    kar_module.pretrained_kar(seed=7, progress=False)
    (weights,) = kar_module.kar_dir(trained[0]).glob("adaptor.safetensors")
    data = weights.read_bytes()
    if damage == "flip":
        weights.write_bytes(data[:-9] + bytes([data[-9] ^ 0x10]) + data[-8:])
    else:
        weights.write_bytes(data[: len(data) // 2])
    with pytest.warns(CacheWarning, match=r"adaptor\.safetensors .*; training it again"):
        kar_module.pretrained_kar(seed=7, progress=False)
    assert len(trained) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        loaded = kar_module.pretrained_kar(seed=7, progress=False)  # the new copy, cached
    assert len(trained) == 2
    histories, lists = kar_histories(2), np.tile(np.arange(1, 21), (2, 1))
    texts = ["dark thrillers", ""]
    assert np.allclose(
        loaded.score_candidates(histories, texts, lists),
        shifting.score_candidates(histories, texts, lists),
        atol=1e-5,
    )


def test_a_damaged_text_cache_is_reported_and_written_again(tmp_path: Path) -> None:
    from recgym.llm import load
    from recgym.models.kar import write_texts

    llm, cache = load("fake"), tmp_path / "texts.json"
    prompts = [f"user {i} likes films" for i in range(5)]
    texts = write_texts(llm, prompts, max_new_tokens=8, batch_size=2, cache=cache)
    record = json.loads(cache.read_text())
    record["texts"][1] = "tampered"
    cache.write_text(json.dumps(record))
    with pytest.warns(CacheWarning, match=r"texts\.json is damaged .*sha256"):
        assert write_texts(llm, prompts, max_new_tokens=8, batch_size=2, cache=cache) == texts
    cache.write_text(cache.read_text()[:20])  # truncated
    with pytest.warns(CacheWarning, match="not JSON|Expecting|Unterminated"):
        assert write_texts(llm, prompts, max_new_tokens=8, batch_size=2, cache=cache) == texts


def test_training_reports_held_out_metrics(kar: KARRecommender) -> None:
    m = kar.metrics
    assert m["holdout_users"] == pytest.approx(94)
    for key in ("holdout_plain/ndcg@10", "holdout_text/ndcg@10", "backbone_train_ndcg@10"):
        assert 0.0 <= m[key] <= 1.0
    # Early stopping keeps the adaptor only if it beats the plain backbone on held-out users.
    assert m["holdout_text/ndcg@10"] >= m["holdout_plain/ndcg@10"] - 1e-9


def test_render_shows_text_and_target(env: RecPrefEnv) -> None:
    env.reset(options={"index": 3})
    env.step("Enjoys dramas.")
    out = env.render()
    assert out is not None and "Enjoys dramas." in out and "TARGET:" in out


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"split": "dev"}, ValueError),
        ({"n_negatives": 0}, ValueError),
        ({"k": 21}, ValueError),
        ({"history_len": 0}, ValueError),
        ({"reward": "mrr"}, ValueError),
        ({"reward": "fused", "tau": 0.0}, ValueError),
        ({"recommender": 3}, TypeError),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        RecPrefEnv(**kwargs)


def test_bad_actions_are_refused_clearly(env: RecPrefEnv) -> None:
    with pytest.raises(TypeError, match="batch"):
        env.score("one text", 0, "test")
    with pytest.raises(TypeError, match="str"):
        env.score([3], 0, "test")  # type: ignore[list-item]
    env.reset(options={"index": 0})
    env.step("")
    with pytest.raises(RecGymError):
        env.step("again")


def test_invalid_unicode_is_repaired_and_scored(kar: KARRecommender) -> None:
    # A lone surrogate (an LLM's byte-level decoding, a JSON round-trip) used to crash the
    # encoder's tokenizer; it reads as U+FFFD now, and a surrogate pair as its character.
    env = RecPrefEnv(recommender=_shifting(kar), split="test", reward="fused")
    texts = [
        "likes dramas \ud800 and comedies",
        "likes dramas \ufffd and comedies",
        "a fan of \ud83c\udfac films",
        "a fan of \U0001f3ac films",
        "\udfff" * 10_000,  # megabytes of them are cut to MAX_TEXT_CHARS first
        "\ufffd" * 4_000,
    ]
    result = env.score(texts, 3, "test")
    assert np.isfinite(result.rewards).all() and np.isfinite(result.candidate_scores).all()
    for broken, repaired in ((0, 1), (2, 3), (4, 5)):
        np.testing.assert_array_equal(
            result.candidate_scores[broken], result.candidate_scores[repaired]
        )
    env.reset(options={"index": 3})
    assert env.step(texts[0])[1] == pytest.approx(result.rewards[0])  # batch padding: ~1e-9
    # Valid texts reach the judge untouched.
    from recgym.envs.preference import _as_text

    for text in ("  héllo 😀 naïve 中文  ", "plain", "\U0010ffff"):
        assert _as_text(text) == text.strip()


def test_fused_reward_separates_texts_of_equal_rank(kar: KARRecommender) -> None:
    judge = _shifting(kar)
    plain = RecPrefEnv(recommender=judge, split="test")
    fused = RecPrefEnv(recommender=judge, split="test", reward="fused", beta=0.9, tau=2.0)
    texts = ["Likes westerns.", "Likes old westerns.", "", "Enjoys musicals and dance."]
    a, b = plain.score(texts, 11, "test"), fused.score(texts, 11, "test")
    logits = b.candidate_scores / 2.0
    p = np.exp(logits[:, 0]) / np.exp(logits).sum(axis=1)
    assert np.allclose(b.metrics["p_target"], p)
    assert np.allclose(b.rewards, 0.9 * a.rewards + 0.1 * p)
    assert np.allclose(b.ndcg, a.ndcg)  # the NDCG the trainers log is the same
    assert len(set(np.round(b.rewards, 12))) == len(texts)  # no ties, whatever the ranks
    assert fused.reward_name == "fused" and plain.reward_name == "ndcg"


def test_trl_reward_function_scores_preference_texts(kar: KARRecommender) -> None:
    """The TRL interop takes RecPref-v0 like the Rec-R1 envs: its texts are the actions."""
    from agents.llm.trl_reward import reward_function

    env = RecPrefEnv(recommender=_shifting(kar), split="test", reward="fused")
    texts = ["Likes westerns.", "", "Enjoys musicals and dance.", "Likes westerns."]
    rows = [3, 3, 5, 5]
    expected = env.score(texts, rows, "test")
    logged: dict[str, Any] = {}
    got = reward_function(env)(
        [[{"role": "assistant", "content": t}] for t in texts],
        rows,
        ["test"] * 4,
        log_extra=lambda column, values: logged.__setitem__(column, values),
    )
    assert got == expected.rewards.tolist()
    assert logged["recpref_reward/query"] == texts  # no query to parse: the text itself
    p_target = reward_function(env, metric="p_target")
    assert p_target(texts, rows, "test") == expected.metrics["p_target"].tolist()
    with pytest.raises(ValueError, match=r"metric must be one of .*'hit@1'.*got 'recall@10'"):
        reward_function(env, metric="recall@10")


def test_rows_record_the_judge(kar: KARRecommender) -> None:
    """A judge with other weights scores differently, so its rows get another data_version."""
    env = RecPrefEnv(recommender=kar, split="test")
    assert env.data_version == RecPrefEnv(recommender=kar, split="validation").data_version
    assert env.data_version != env.task.data_version  # the judge is in it
    shifted = _shifting(kar)
    assert shifted.version != kar.version
    assert RecPrefEnv(recommender=shifted).data_version != env.data_version
    # The same weights, in another object, are the same judge.
    same = KARRecommender(kar.backbone, copy.deepcopy(kar.adaptor), kar.config)
    assert RecPrefEnv(recommender=same).data_version == env.data_version


def test_a_leaderboard_row_records_the_judge(kar: KARRecommender) -> None:
    from agents.baselines import FixedTextAgent
    from benchmarks.runner import evaluate
    from recgym.evaluation import EvalSpec

    row = evaluate(
        EvalSpec("RecPref-v0", "fixed-text", episodes=8, env_kwargs={"recommender": kar}),
        FixedTextAgent(""),
    )
    assert row["data_version"] == RecPrefEnv(recommender=kar).data_version
