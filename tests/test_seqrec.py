"""recgym.models.seqrec: the three next-item models, their trainer, the retriever API and its
cache."""

from __future__ import annotations

import copy
import dataclasses
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from recgym.error import CacheWarning  # noqa: E402
from recgym.models.seqrec import (  # noqa: E402
    MODELS,
    SeqRecConfig,
    SeqRecRetriever,
    build_model,
    default_config,
    fit,
    hub,
    pretrained,
    pretrained_dir,
    top_k,
    train_seqrec,
)
from recgym.models.seqrec.lru import linear_recurrence, linear_recurrence_reference  # noqa: E402
from recgym.models.seqrec.models import Dropout  # noqa: E402

NAMES = sorted(MODELS)
N_ITEMS = 24
TINY: dict[str, Any] = {
    "d": 32,
    "layers": 1,
    "heads": 1,
    "rnn_hidden": 32,
    "dropout": 0.0,
    "lr": 1e-2,
    "batch_size": 32,
    "max_len": 16,
}


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    # Tiny models run faster on one thread, and OpenMP threads spin when the CPU is shared.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _successor_sequences(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Sequences where item i is always followed by item i + 1 (mod N_ITEMS)."""
    starts = rng.integers(0, N_ITEMS, n)
    lengths = rng.integers(4, 13, n)
    return [(s + np.arange(m)) % N_ITEMS for s, m in zip(starts, lengths, strict=True)]


def _tiny(name: str, **overrides: Any) -> SeqRecConfig:
    return default_config(name, **{**TINY, **overrides})


@pytest.mark.parametrize("name", NAMES)
def test_learns_a_deterministic_successor_pattern(name: str) -> None:
    rng = np.random.default_rng(0)
    config = _tiny(name, max_epochs=15)
    model = build_model(config, N_ITEMS)
    result = fit(model, _successor_sequences(128, rng), config)
    held_out = _successor_sequences(200, rng)
    top, _ = SeqRecRetriever(model).retrieve(held_out, 1, exclude_history=False)
    expected = np.array([(h[-1] + 1) % N_ITEMS for h in held_out])
    assert (top[:, 0] == expected).mean() >= 0.95
    assert result.epochs == 15 and result.history[-1]["loss"] < result.history[0]["loss"] / 4


@pytest.mark.parametrize("name", NAMES)
def test_padding_does_not_change_a_histories_scores(name: str) -> None:
    retriever = SeqRecRetriever(build_model(_tiny(name, dropout=0.3), 40))
    rng = np.random.default_rng(1)
    short = rng.integers(0, 40, 3)
    batch = [rng.integers(0, 40, 14), short, rng.integers(0, 40, 9)]
    alone = retriever.score([short])[0]
    np.testing.assert_allclose(retriever.score(batch)[1], alone, rtol=1e-5, atol=1e-5)
    assert not np.allclose(retriever.score([batch[0]])[0], alone, atol=1e-3)  # not a constant


@pytest.mark.parametrize("name", NAMES)
def test_outputs_do_not_depend_on_later_items(name: str) -> None:
    model = build_model(_tiny(name), 40).eval()
    items = torch.randint(1, 41, (2, 12))
    changed = items.clone()
    changed[:, 7:] = torch.randint(1, 41, (2, 5))
    with torch.inference_mode():
        before, after = model.encode(items), model.encode(changed)
    torch.testing.assert_close(before[:, :7], after[:, :7], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(before[:, 7:], after[:, 7:], atol=1e-3)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_linear_recurrence_matches_the_loop_in_values_and_gradients(backend: str) -> None:
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(3, 37, 5, dtype=torch.cfloat, generator=gen).requires_grad_()
    lam = torch.polar(
        0.8 + 0.19 * torch.rand(5, generator=gen), 6.28 * torch.rand(5, generator=gen)
    )
    lam.requires_grad_()
    weight = torch.randn(3, 37, 5, dtype=torch.cfloat, generator=gen)
    grads = []
    for fn in (linear_recurrence_reference, lambda a, b: linear_recurrence(a, b, backend)):
        out = fn(u, lam)
        grads.append((out, *torch.autograd.grad((out * weight).real.sum(), (u, lam))))
    for got, want in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_dropout_drops_at_rate_p_keeps_the_mean_and_is_off_in_eval() -> None:
    layer = Dropout(0.25)
    x = torch.ones(200_000)
    out = layer(x)
    assert abs((out == 0).float().mean().item() - 0.25) < 0.01
    assert abs(out.mean().item() - 1.0) < 0.02
    assert torch.equal(layer.eval()(x), x)


def test_retrieve_excludes_history_sorts_best_first_and_is_deterministic() -> None:
    retriever = SeqRecRetriever(build_model(_tiny("sasrec"), 30))
    histories = [np.array([3, 1, 4]), np.array([5]), np.arange(28)]
    items, scores = retriever.retrieve(histories, 5)
    assert items.shape == scores.shape == (3, 5) and items.dtype == np.int64
    for row, hist in enumerate(histories[:2]):
        assert not set(items[row]) & set(hist.tolist())
        assert np.all(np.diff(scores[row]) <= 0)
        full = retriever.score([hist])[0]
        np.testing.assert_allclose(scores[row], full[items[row]], rtol=1e-5)
    assert sorted(items[2, :2]) == [28, 29] and items[2, 2:].tolist() == [-1, -1, -1]
    again, _ = retriever.retrieve(histories, 5)
    np.testing.assert_array_equal(items, again)
    unmasked, _ = retriever.retrieve(histories[:1], 30, exclude_history=False)
    assert sorted(unmasked[0].tolist()) == list(range(30))


def test_top_k_breaks_ties_by_lower_index() -> None:
    items, scores = top_k(np.array([[1.0, 3.0, 3.0, 0.0, 3.0]]), 4, [np.array([2])])
    assert items.tolist() == [[1, 4, 0, 3]] and scores[0, 0] == 3.0
    with pytest.raises(ValueError, match="k must be"):
        top_k(np.zeros((1, 5)), 6)


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip_gives_identical_scores(name: str, tmp_path: Path) -> None:
    model = build_model(_tiny(name, dropout=0.2), 30)
    fit(model, _successor_sequences(32, np.random.default_rng(2))[:32], _tiny(name, max_epochs=1))
    retriever = SeqRecRetriever(model, metrics={"test/ndcg@10": 0.5}, data_version="abc")
    loaded = SeqRecRetriever.load(retriever.save(tmp_path / name))
    histories = [np.array([1, 2, 3]), np.array([7])]
    np.testing.assert_array_equal(loaded.score(histories), retriever.score(histories))
    assert (loaded.config, loaded.metrics, loaded.data_version) == (
        retriever.config,
        retriever.metrics,
        "abc",
    )


def test_early_stopping_keeps_the_best_epochs_weights() -> None:
    config = _tiny("gru4rec", max_epochs=20, patience=2)
    model = build_model(config, N_ITEMS)
    scores = iter([0.1, 0.3, 0.2, 0.25, 0.9])
    snapshots = []

    def validate(m: Any) -> float:
        snapshots.append(copy.deepcopy(m.state_dict()))
        return next(scores)

    result = fit(
        model, _successor_sequences(64, np.random.default_rng(3)), config, validate=validate
    )
    assert (result.epochs, result.best_epoch, result.best_score) == (4, 2, 0.3)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, snapshots[1][key])
    assert not torch.equal(model.item_emb.weight, snapshots[-1]["item_emb.weight"])


def _fake_trainer(calls: list[SeqRecConfig]) -> Any:
    def train(config: SeqRecConfig, **kwargs: Any) -> SeqRecRetriever:
        calls.append(config)
        return SeqRecRetriever(build_model(config, 30), metrics={"best_epoch": 1.0})

    return train


def test_pretrained_trains_once_then_loads_from_the_cache(
    tmp_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[SeqRecConfig] = []
    monkeypatch.setattr(hub, "train_seqrec", _fake_trainer(calls))
    first = pretrained("lrurec", progress=False, **TINY)
    second = pretrained("lrurec", progress=False, **TINY)
    assert len(calls) == 1 and calls[0] == _tiny("lrurec")
    histories = [np.array([4, 5, 6])]
    np.testing.assert_array_equal(first.score(histories), second.score(histories))
    pretrained("lrurec", progress=False, **{**TINY, "lr": 0.02})
    pretrained("lrurec", progress=False, seed=1, **TINY)
    assert len(calls) == 3
    entries = sorted(p.name for p in (tmp_cache / "seqrec" / "ml-100k").iterdir())
    assert len(entries) == 3 and pretrained_dir("lrurec", **TINY).name in entries
    pretrained("lrurec", progress=False, retrain=True, **TINY)
    assert len(calls) == 4


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_a_damaged_cached_model_is_reported_and_trained_again(
    tmp_cache: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    calls: list[SeqRecConfig] = []
    monkeypatch.setattr(hub, "train_seqrec", _fake_trainer(calls))
    pretrained("lrurec", progress=False, **TINY)
    (weights,) = pretrained_dir("lrurec", **TINY).glob("*.safetensors")
    if damage == "flip":
        data = bytearray(weights.read_bytes())
        data[-5] ^= 0x01  # one bit of one weight: safetensors would load it without a word
        weights.write_bytes(bytes(data))
    elif damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:64])
    else:
        weights.unlink()
    with pytest.warns(CacheWarning, match=rf"{weights.name} .*; training it again"):
        retrained = pretrained("lrurec", progress=False, **TINY)
    assert len(calls) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = pretrained("lrurec", progress=False, **TINY)  # the new copy, loaded
    assert len(calls) == 2
    histories = [np.array([4, 5, 6]), np.array([1])]
    np.testing.assert_array_equal(again.score(histories), retrained.score(histories))


@pytest.mark.parametrize("name", sorted(hub.SHIPPED))
def test_shipped_retrievers_load_checked_and_never_train(
    name: str, tmp_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retrievers of RecRank-v0 ship trained: with an empty cache, ``pretrained`` loads
    them from the package (their default configuration, seed 0) and trains nothing; a damaged
    shipped file is an error naming it, never a silent retraining."""
    import json
    import shutil

    from recgym.error import ModelLoadError

    monkeypatch.setattr(hub, "train_seqrec", lambda *a, **k: pytest.fail("trained"))
    model = pretrained(name)
    meta = json.loads((hub.shipped_dir(name) / "seqrec.json").read_text())
    assert meta["config"] == dataclasses.asdict(default_config(name, seed=hub.SHIPPED_SEED))
    assert model.n_items == 1682 and model.metrics["test/ndcg@10"] > 0.08
    assert not (tmp_cache / "seqrec").exists()  # nothing was cached: nothing was trained
    copy = tmp_path / "shipped"
    shutil.copytree(hub.shipped_dir(name), copy)
    monkeypatch.setattr(hub, "shipped_dir", lambda n: copy)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match=r"model\.safetensors has sha256"):
        pretrained(name)


def test_pretrained_rejects_unknown_names_and_fields(tmp_cache: Path) -> None:
    with pytest.raises(KeyError, match="lrurec"):
        pretrained("bert4rec")
    with pytest.raises(TypeError, match="max_epochs"):
        pretrained("sasrec", epochs=3)


def test_config_is_frozen_json_and_validated() -> None:
    config = default_config("gru4rec")
    assert config.layers == 1 and config.rnn_hidden == 128
    assert dataclasses.asdict(config)["model"] == "gru4rec"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.lr = 1.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="divisible"):
        SeqRecConfig(d=30, heads=4)


def test_train_seqrec_on_movielens_keeps_the_best_validation_epoch(tmp_path: Path) -> None:
    config = _tiny("lrurec", max_len=50, max_epochs=4, patience=1, lr=5e-3, batch_size=16)
    retriever = train_seqrec(config, users=60, progress=False)
    curve = [h["validation/ndcg@10"] for h in retriever.history]
    metrics = retriever.metrics
    assert metrics["best_epoch"] == 1 + int(np.argmax(curve))
    assert metrics["validation/ndcg@10"] == pytest.approx(max(curve))
    assert metrics["train_users"] == 60 and len(retriever.data_version) == 16
    loaded = SeqRecRetriever.load(retriever.save(tmp_path / "m"))
    from recgym.models.seqrec.train import load_split

    split, _ = load_split(users=60, progress=False)
    _, histories, targets = split.examples("validation")
    again = loaded.evaluate(histories, targets)
    assert again["ndcg@10"] == pytest.approx(metrics["validation/ndcg@10"])
    assert again["recall@10"] == pytest.approx(metrics["validation/recall@10"])


def test_target_positions_exclude_the_history_but_never_the_target() -> None:
    from recgym.models.seqrec import evaluate_scores, target_positions

    scores = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]] * 4)
    histories = [np.array([0]), np.array([0, 1]), np.array([4]), np.array([2])]
    targets = np.array([2, 1, 4, 3])
    # row 0: item 0 is history, so 1, 2 lead: 2 is second; row 1: the target stays in although
    # it is in the history; row 2: item 4 is fifth, outside the top 3; row 3: 0, 1, 3.
    positions = target_positions(scores, histories, targets, k=3)
    assert positions.tolist() == [1, 0, -1, 2]
    found = evaluate_scores(scores, histories, targets, k=3)
    assert found["hit@3"] == pytest.approx(3 / 4)
    assert found["ndcg@3"] == pytest.approx((1 / np.log2(3) + 1 + 1 / np.log2(4)) / 4)


@pytest.mark.slow  # ~10-20 s on 2 shared cores: three epochs over all 943 users
def test_lrurec_beats_popularity_on_movielens() -> None:
    from recgym.models.seqrec import evaluate_scores
    from recgym.models.seqrec.train import load_split

    split, n_items = load_split(progress=False)
    _, histories, targets = split.examples("validation")
    counts = np.bincount(split.train["item_idx"], minlength=n_items).astype(np.float32)
    popularity = evaluate_scores(np.tile(counts, (len(histories), 1)), histories, targets)
    config = _tiny("lrurec", max_len=50, lr=5e-3, max_epochs=3, dropout=0.1)
    retriever = train_seqrec(config, progress=False)
    assert retriever.metrics["validation/ndcg@10"] > 1.5 * popularity["ndcg@10"]


def test_benchmark_script_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from benchmarks.studies.seqrec import main

    out = tmp_path / "seqrec.json"
    args = "--models gru4rec --seeds 0 --users 30 --max-epochs 1 --no-cache --quiet --out"
    main([*args.split(), str(out)])
    record = json.loads(out.read_text())
    assert [row["model"] for row in record["rows"]] == ["popularity", "gru4rec"]
    assert record["users"] == 30 and record["rows"][1]["epochs"] == 1
    assert "| gru4rec | 0 | 1.0 | 1.0 |" in capsys.readouterr().out
