"""The LLM environment (recgym.le): a tiny LE trained for real on MovieLens-100k.

The base LLM is the tiny randomly initialised Llama of ``tiny_dir``; everything else (item
tokens, both LoRA adapters, heads, calibration, caching) is the code users run on SmolLM2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import assert_base_unchanged  # noqa: E402

from recgym.error import CacheWarning, ModelLoadError, UnknownNameError  # noqa: E402
from recgym.le import FakeUserModel, UserModel, load_user_model  # noqa: E402
from recgym.le.model import LLMEnvironment  # noqa: E402
from recgym.le.train import LEConfig, le_data, train_le  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _config(tiny_dir: Path, **overrides: Any) -> LEConfig:
    fields: dict[str, Any] = {
        "model": str(tiny_dir),
        "users": 24,
        "eval_users": 60,
        "max_items": 60,
        "window": 4,
        "state_dim": 8,
        "lora_r": 2,
        "sm_epochs": 2,
        "rm_epochs": 2,
        "batch_size": 8,
    }
    return LEConfig(**(fields | overrides))


@pytest.fixture(scope="module")
def le(tiny_dir: Path) -> LLMEnvironment:
    return train_le(_config(tiny_dir), device="cpu", progress=False)


def test_the_le_is_a_user_model_over_its_catalog(le: LLMEnvironment) -> None:
    assert isinstance(le, UserModel) and isinstance(FakeUserModel(), UserModel)
    assert le.n_items == 60 and len(le.item_ids) == 60
    states = le.states([np.array([1, 2, 3]), np.array([], dtype=np.int64)])
    assert states.shape == (2, 8) and states.dtype == np.float32
    assert np.allclose(np.linalg.norm(states, axis=1), 1.0, atol=1e-5)
    vectors = le.item_vectors()
    assert vectors.shape == (60, 8)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    rewards = le.rewards([np.array([1, 2]), np.array([5])], np.array([3, 4]))
    assert rewards.shape == (2,) and ((rewards > 0) & (rewards < 1)).all()


def test_training_uses_only_training_events_of_a_user_subset(tiny_dir: Path) -> None:
    config = _config(tiny_dir)
    data = le_data(config, progress=False)
    assert len(data.train) == 24 and len(data.heldout) > 800
    assert all(s.max() < 60 for s in data.train)
    # The popular-item cut keeps the 60 most-rated items, in dataset order.
    assert (np.diff(data.item_ids) > 0).all() and len(data.item_ids) == 60


def test_along_sequence_passes_equal_per_prefix_reads(le: LLMEnvironment) -> None:
    seqs = [s for s in le.users["train"] if len(s) > 3 * le.window][:2]
    for seq, along in zip(seqs, le.states_along(seqs), strict=True):
        direct = le.states([seq[: t + 1] for t in range(len(seq))])
        np.testing.assert_allclose(along, direct, atol=1e-5)
    for seq, along in zip(seqs, le.rewards_along(seqs), strict=True):
        direct = le.rewards([seq[: t + 1] for t in range(len(seq) - 1)], seq[1:])
        np.testing.assert_allclose(along, direct, atol=1e-5)
    rng = np.random.default_rng(0)
    cands = [rng.integers(60, size=(len(s), 3)) for s in seqs]
    for seq, cand, along in zip(seqs, cands, le.rewards_along(seqs, cands), strict=True):
        prefixes = [seq[: t + 1] for t in range(len(seq)) for _ in range(3)]
        direct = le.rewards(prefixes, cand.reshape(-1)).reshape(len(seq), 3)
        np.testing.assert_allclose(along, direct, atol=1e-5)


def test_a_history_is_read_from_its_second_to_last_block(le: LLMEnvironment) -> None:
    w = le.window
    assert [le.read_from(n) for n in (1, w, w + 1, 2 * w, 2 * w + 1, 3 * w)] == [0, 0, 0, 0, w, w]
    seq = le.users["train"][0][: 3 * w]
    other = seq.copy()
    other[: w - 1] = (other[: w - 1] + 1) % le.n_items  # change items the state does not read
    np.testing.assert_allclose(le.states([seq]), le.states([other]), atol=1e-6)
    other[w] = (other[w] + 1) % le.n_items  # an item it reads
    assert not np.allclose(le.states([seq]), le.states([other]), atol=1e-4)


def test_calibration_puts_half_between_positives_and_negatives(le: LLMEnvironment) -> None:
    m = le.metrics
    assert m["heldout_users"] == 60
    # The calibration is the midpoint of the two median scores: their rewards mirror around 0.5.
    assert m["rm/reward_negative"] + m["rm/reward_positive"] == pytest.approx(1.0, abs=1e-5)
    assert m["rm/reward_negative"] != pytest.approx(0.5)
    assert 0.0 <= m["rm/pairwise_accuracy"] <= 1.0 and 0.0 <= m["sm/recall@10"] <= 1.0
    assert m["train_users"] == 24 and m["minutes/total"] > 0


def test_stages_train_their_own_parameters_and_leave_the_base(tiny_dir: Path) -> None:
    from recgym.le.train import train_rm, train_sm

    config = _config(tiny_dir, users=8)
    data = le_data(config, progress=False)
    fresh = LLMEnvironment.build(
        str(tiny_dir), n_items=60, state_dim=8, window=4, lora_r=2, device="cpu", progress=False
    )
    base = {
        n.replace("base_model.model.", "").replace("base_layer.", ""): p.detach().clone()
        for n, p in fresh.lm.named_parameters()
        if "lora_" not in n
    }
    before = {k: v.clone() for k, v in fresh.trained_state().items()}
    sm = train_sm(fresh, data.train, config, progress=False)
    after_sm = fresh.trained_state()
    changed = {k for k in before if not torch.equal(before[k], after_sm[k])}
    assert changed and all(".sm." in k or k.startswith(("sm_", "item_emb")) for k in changed)
    train_rm(fresh, data.train, config, np.random.default_rng(0), data.counts, progress=False)
    after_rm = fresh.trained_state()
    changed = {k for k in before if not torch.equal(after_sm[k], after_rm[k])}
    assert changed and all(".rm." in k or k.startswith("rm_") for k in changed), changed
    assert_base_unchanged(fresh.lm, base)
    assert np.mean(sm[-4:]) < sm[0]


def test_save_and_load_round_trip(le: LLMEnvironment, tmp_path: Path) -> None:
    le.save(tmp_path / "le")
    again = load_user_model(str(tmp_path / "le"), device="cpu", progress=False)
    assert isinstance(again, LLMEnvironment)
    hist = le.users["test"][:5]
    # Equal up to float noise: a read window may come from either LE's prefix cache, filled
    # by other batches (recgym.le.kv).
    np.testing.assert_allclose(again.states(hist), le.states(hist), atol=1e-6)
    items = np.arange(5)
    np.testing.assert_allclose(again.rewards(hist, items), le.rewards(hist, items), atol=1e-6)
    assert again.metrics == le.metrics
    assert [len(s) for s in again.users["test"]] == [len(s) for s in le.users["test"]]
    np.testing.assert_array_equal(again.item_ids, le.item_ids)


def test_registered_names_train_once_then_load(
    tiny_dir: Path, tmp_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recgym.le import hub

    monkeypatch.setitem(hub.CONFIGS, "tiny", _config(tiny_dir, users=6, sm_epochs=1, rm_epochs=1))
    # Never trained behind the caller's back: the error names the explicit command.
    with pytest.raises(ModelLoadError, match=r"python -m recgym\.le\.hub tiny"):
        hub.load("tiny", device="cpu", progress=False)
    first = hub.load("tiny", device="cpu", progress=False, train=True)
    folder = hub.le_dir(hub.CONFIGS["tiny"], "tiny")
    assert (folder / "le.safetensors").is_file()
    stamp = (folder / "le.safetensors").stat().st_mtime_ns
    second = hub.load("tiny", device="cpu", progress=False)
    assert (folder / "le.safetensors").stat().st_mtime_ns == stamp  # loaded, not retrained
    hist = first.users["test"][:3]
    np.testing.assert_allclose(first.states(hist), second.states(hist), atol=1e-6)
    # A corrupted cached LE is reported, never loaded, and trained again.
    weights = folder / "le.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.warns(CacheWarning, match=r"le\.safetensors has sha256 .*; training it again"):
        third = hub.load("tiny", device="cpu", progress=False, train=True)
    assert weights.read_bytes() != bytes(data)
    np.testing.assert_allclose(third.states(hist), first.states(hist), atol=1e-6)


def test_bad_names_and_inputs_get_clear_errors(le: LLMEnvironment, tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="unknown LE"):
        load_user_model("no-such-le")
    with pytest.raises(ModelLoadError, match="not a saved LE"):
        load_user_model(str(tmp_path))
    with pytest.raises(ValueError, match=r"0\.\.59"):
        le.states([np.array([60])])
    with pytest.raises(ValueError, match="one item per history"):
        le.rewards([np.array([1])], np.array([1, 2]))
    with pytest.raises(ValueError, match=r"\(len\(seq\), k\)"):
        le.rewards_along([np.array([1, 2])], [np.zeros((3, 1), dtype=np.int64)])
    with pytest.raises(TypeError, match="list of histories"):
        le.states(np.array([1, 2]))
    with pytest.raises(ValueError, match="users must be >= 1"):
        LEConfig(users=0)


def test_candidate_rewards_equal_per_item_rewards(
    le: LLMEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = le.window
    seq = le.users["train"][0]
    # Empty, short, and longer than two blocks (the read starts at a block boundary).
    histories = [np.zeros(0, dtype=np.int64), seq[:3], seq[: 3 * w + 1]]
    candidates = np.random.default_rng(0).integers(60, size=(3, 20))
    import recgym.le.kv
    import recgym.le.model

    # Three chunks per history, the last short, in full reads and in incremental ones.
    monkeypatch.setattr(recgym.le.model, "CANDIDATE_CHUNK", 7)
    monkeypatch.setattr(recgym.le.kv, "CANDIDATE_CHUNK", 7)
    direct = le.rewards([h for h in histories for _ in range(20)], candidates.reshape(-1))
    for cache_bytes in (0, 1 << 26):
        monkeypatch.setattr(le, "kv_cache_bytes", cache_bytes)
        out = le.candidate_rewards(histories, candidates)
        assert out.shape == (3, 20) and out.dtype == np.float64
        np.testing.assert_allclose(out, direct.reshape(3, 20), atol=1e-5)
    assert len(np.unique(out.round(4))) > 20  # the candidates are really told apart
    with pytest.raises(ValueError, match=r"\(3, k\) int array"):
        le.candidate_rewards(histories, candidates[:2])


def test_all_user_training_keeps_validation_and_test_events_out(tiny_dir: Path) -> None:
    from recgym.data import leave_one_out, load_dataset

    config = _config(tiny_dir, users=None, max_items=None, test_users=100)
    data = le_data(config, progress=False)
    split = leave_one_out(load_dataset("ml-100k", progress=False).interactions)
    _, train_seqs, val_targets = split.examples("validation")
    # Every user's training sequence, and nothing else; evaluation on their validation items.
    assert len(data.train) == len(train_seqs) == len(data.heldout)
    assert sum(map(len, data.train)) == sum(map(len, train_seqs))
    assert sorted(map(tuple, data.train)) == sorted(tuple(s) for s in train_seqs)
    assert sorted(data.heldout_targets.tolist()) == sorted(np.asarray(val_targets).tolist())
    # RecUser-v0's splits partition the users: 100 test users, the rest train.
    train_users, test_users = data.users["train"], data.users["test"]
    assert len(test_users) == 100 and len(train_users) + 100 == len(data.train)
    assert sorted(map(tuple, train_users + test_users)) == sorted(map(tuple, data.train))


def test_config_refuses_what_cannot_train() -> None:
    with pytest.raises(ValueError, match="item_epochs must be 0 with layers"):
        LEConfig(layers=4, item_epochs=1)
    with pytest.raises(ValueError, match="item_init"):
        LEConfig(item_init="random")
    with pytest.raises(ValueError, match="popular_negatives"):
        LEConfig(popular_negatives=1.5)
    with pytest.raises(ValueError, match="users must be >= 1 or None"):
        LEConfig(users=0)


def test_popular_negatives_are_unseen_and_follow_popularity() -> None:
    from recgym.le.train import sample_negatives

    rng = np.random.default_rng(0)
    counts = np.array([1000, 0, 0, 0, 500, 0, 0, 0, 0, 0], dtype=np.int64)
    seq = np.array([0, 1])
    uniform = sample_negatives(seq, 4000, counts, 0.0, rng)
    popular = sample_negatives(seq, 4000, counts, 1.0, rng)
    assert not np.isin(uniform, seq).any() and not np.isin(popular, seq).any()
    # Item 4 is the only popular unseen item: drawn ~500/508 of the time, ~1/8 uniformly.
    assert (popular == 4).mean() > 0.9 and (uniform == 4).mean() < 0.2


def test_a_truncated_base_keeps_its_first_layers(tiny_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    full = LLMEnvironment.build(str(tiny_dir), n_items=30, window=4, state_dim=8, progress=False)
    short = LLMEnvironment.build(
        str(tiny_dir), n_items=30, window=4, state_dim=8, layers=1, progress=False
    )
    assert len(full.decoder.layers) == 2 and len(short.decoder.layers) == 1
    short.save(tmp_path / "short")
    again = LLMEnvironment.load(tmp_path / "short", device="cpu", progress=False)
    assert len(again.decoder.layers) == 1
    hist = [np.array([1, 2, 3]), np.array([4])]
    np.testing.assert_allclose(again.states(hist), short.states(hist), atol=1e-6)
    with pytest.raises(ValueError, match=r"layers must be in 1\.\.2"):
        LLMEnvironment.build(str(tiny_dir), n_items=30, layers=3, progress=False)


def test_a_shipped_le_loads_checked_and_never_trains(
    le: LLMEnvironment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recgym.le import hub, train

    saved = le.save(tmp_path / "trained")
    monkeypatch.setattr(hub, "shipped_dir", lambda name: tmp_path / "shipped" / name)
    digests = hub.ship("tiny", saved, "python -m recgym.le.hub tiny --retrain --ship\n")
    monkeypatch.setitem(hub.CONFIGS, "tiny", _config(Path(le.extra["model"])))
    monkeypatch.setitem(hub.SHIPPED, "tiny", digests)

    def no_training(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a shipped LE must never train")

    monkeypatch.setattr(train, "train_le", no_training)
    loaded = hub.load("tiny", device="cpu", progress=False)
    assert loaded.digest == digests["le.safetensors"]
    hist = [np.array([1, 2, 3])]
    np.testing.assert_array_equal(loaded.states(hist), le.states(hist))
    assert (tmp_path / "shipped" / "tiny" / "COMMAND.md").read_text().startswith("python -m")
    # A damaged shipped file is an error naming it, never a silent retraining.
    weights = tmp_path / "shipped" / "tiny" / "le.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    with pytest.raises(ModelLoadError, match=r"le\.safetensors has sha256"):
        hub.load("tiny", device="cpu", progress=False)


@pytest.mark.slow  # loads SmolLM2's first 8 layers and the shipped weights (seconds)
def test_recuser_default_le_is_shipped_and_never_trains(monkeypatch: pytest.MonkeyPatch) -> None:
    import gymnasium as gym

    import recgym  # noqa: F401
    from recgym.envs import users
    from recgym.le import DEFAULT_LE, hub, train

    def no_training(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("RecUser-v0's default LE must never train")

    monkeypatch.setattr(train, "train_le", no_training)
    monkeypatch.setattr(users, "_MODELS", {})  # a fresh load, not one cached by another test
    assert DEFAULT_LE in hub.SHIPPED, "the default LE must ship trained"
    env = gym.make("RecUser-v0", users="test")
    obs, info = env.reset(seed=0)
    model = env.unwrapped.model
    assert model.digest == hub.SHIPPED[DEFAULT_LE]["le.safetensors"]
    assert len(model.users["test"]) == 200 and model.n_items == 1682
    mask = info["action_mask"].astype(bool)
    _, reward, *_ = env.step(int(np.flatnonzero(mask)[0]))
    assert 0.0 < reward < 1.0 and obs.shape == (model.state_dim,)
    env.close()
