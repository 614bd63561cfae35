"""SQN / SA2C (agents.rl4rec), logged sequences and LEA (recgym.wrappers), and the ablation
script: loss parts against hand-computed values, LEA proposals against direct user-model
calls, short training runs on a MovieLens-100k user subset with the fake LE."""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from agents.rl4rec import (
    RL4RecConfig,
    RL4RecData,
    RL4RecModel,
    advantage_weights,
    double_q_value,
    fit_rl4rec,
    le_inputs,
    sa2c_advantage,
    sample_negatives,
    td_targets,
    variant_config,
)
from agents.rl4rec.train import _loss, _Sequences
from recgym.error import DataFormatError, UnknownNameError
from recgym.le import FakeUserModel
from recgym.metrics import top_k
from recgym.models.seqrec import build_model, default_config
from recgym.wrappers import LEAWrapper, LEView, LoggedSequences, rating_rewards

pytestmark = pytest.mark.usefixtures("one_thread")

USERS = 60


@pytest.fixture(scope="module")
def data() -> RL4RecData:
    return RL4RecData.load("ml-100k", users=USERS)


def _tiny(**overrides: object) -> RL4RecConfig:
    backbone = default_config("gru4rec", max_len=30, max_epochs=3, patience=3, batch_size=16)
    values = {"backbone": backbone, "le": "fake", "le_kwargs": {"n_items": 1682}, **overrides}
    return RL4RecConfig(**values)  # type: ignore[arg-type]


def _logged(seqs: list[list[int]], n_items: int) -> LoggedSequences:
    arrays = [np.array(s, dtype=np.int64) for s in seqs]
    rewards = [np.full(max(len(s) - 1, 0), 0.2) for s in arrays]
    return LoggedSequences(np.array([str(i) for i in range(len(seqs))]), arrays, rewards, n_items)


# --- loss parts --------------------------------------------------------------------------


def test_td_targets_discount_and_done_masking() -> None:
    rewards = torch.tensor([1.0, 0.2, 0.0])
    next_value = torch.tensor([2.0, 3.0, 5.0], requires_grad=True)
    done = torch.tensor([False, True, False])
    y = td_targets(rewards, next_value, done, gamma=0.5)
    assert torch.allclose(y, torch.tensor([1.0 + 0.5 * 2.0, 0.2, 0.5 * 5.0]))
    assert not y.requires_grad
    # Several actions in one state share its next value.
    y2 = td_targets(torch.tensor([[1.0, 0.0], [0.0, 0.0]]), next_value[:2], done[:2], 0.9)
    assert torch.allclose(y2, torch.tensor([[1.0 + 1.8, 1.8], [0.0, 0.0]]))


def test_double_q_value_evaluates_the_online_argmax_with_the_target() -> None:
    online = torch.tensor([[0.0, 5.0, 1.0], [3.0, 0.0, 0.0]])
    target = torch.tensor([[9.0, 2.0, 7.0], [4.0, 8.0, 8.0]])
    assert double_q_value(online, target).tolist() == [2.0, 4.0]


def test_sa2c_advantage_is_zero_mean_over_the_sampled_set_and_detached() -> None:
    q = torch.randn(7, 11, requires_grad=True)
    adv = sa2c_advantage(q)
    assert not adv.requires_grad
    assert torch.allclose(adv.sum(dim=1), torch.zeros(7), atol=1e-5)
    assert torch.allclose(adv[:, 0], (q[:, 0] - q.mean(dim=1)).detach())
    weights = advantage_weights(adv[:, 0], clip=2.0)
    assert not weights.requires_grad
    assert weights.min() >= 0 and weights.max() <= 2.0
    positive = adv[:, 0] > 0
    assert torch.allclose(weights[positive], (adv[:, 0] / adv[:, 0].std()).clamp(0, 2)[positive])


def test_sample_negatives_never_draw_the_positive() -> None:
    positives = torch.tensor([0, 4, 9] * 200)
    g = torch.Generator().manual_seed(0)
    neg = sample_negatives(positives, 10, 5, g)
    assert neg.shape == (600, 5)
    assert (neg != positives[:, None]).all()
    assert neg.min() >= 0 and neg.max() <= 9
    assert len(torch.unique(neg[positives == 4])) == 9  # every other item comes up


@pytest.mark.parametrize(("algo", "end_is_terminal"), [("sqn", True), ("sa2c", False)])
def test_trainer_loss_is_ce_plus_double_q_td_with_lea_terms(
    algo: str, end_is_terminal: bool
) -> None:
    """The trainer's batch loss, recomputed transition by transition from its definition."""
    n_items, gamma = 12, 0.5
    backbone = default_config("gru4rec", d=8, rnn_hidden=8, dropout=0.0, max_len=10)
    config = RL4RecConfig(
        algo=algo,
        backbone=backbone,
        gamma=gamma,
        q_weight=0.7,
        negatives=2,
        lea_k=2,
        lea_ce_weight=0.3,
        lea_q_weight=0.4,
        adv_clip=5.0,
        le="fake",
        end_is_terminal=end_is_terminal,
    )
    model = RL4RecModel(build_model(backbone, n_items)).eval()
    target = copy.deepcopy(model)
    with torch.no_grad():
        target.q_head.weight.add_(0.5 * torch.randn_like(target.q_head.weight))
    items = [np.array([1, 4, 2, 7]), np.array([3, 5, 9])]
    rewards = [np.array([1.0, 0.2, 0.2]), np.array([0.2, 1.0])]
    proposals = [np.array([[0, 6], [8, -1], [10, 11]]), np.array([[2, 1], [0, 4]])]
    prop_rewards = [np.array([[0.6, 0.3], [0.9, 0.0], [0.1, 0.2]]), np.full((2, 2), 0.5)]
    seqs = _Sequences(items, rewards, None, proposals, prop_rewards)
    batch = seqs.batch(np.array([0, 1]), torch.device("cpu"), end_is_terminal)
    for weighted in [False, True] if algo == "sa2c" else [False]:
        loss, _ = _loss(model, target, batch, config, weighted, torch.Generator().manual_seed(3))
        negatives = sample_negatives(batch["actions"], n_items, 2, torch.Generator().manual_seed(3))
        ce_terms, q_terms, advantages, i = [], [], [], 0
        with torch.no_grad():
            for seq, rew, prop, prew in zip(items, rewards, proposals, prop_rewards, strict=True):
                hidden = model.backbone.encode(torch.as_tensor(seq + 1)[None])[0]
                t_hidden = target.backbone.encode(torch.as_tensor(seq + 1)[None])[0]
                for t in range(len(seq) - 1):
                    q = model.q_head(hidden[t])
                    logp = torch.log_softmax(model.backbone.item_logits(hidden[t]), -1)
                    if t == len(seq) - 2 and end_is_terminal:
                        value = 0.0  # the episode ends: no bootstrap
                    else:
                        best = model.q_head(hidden[t + 1]).argmax()
                        value = float(target.q_head(t_hidden[t + 1])[best])
                    actions, action_rewards = [int(seq[t + 1])], [float(rew[t])]
                    if algo == "sa2c":
                        actions += negatives[i].tolist()
                        action_rewards += [0.0, 0.0]
                    q_loss = sum(
                        0.5 * (float(q[a]) - (r + gamma * value)) ** 2
                        for a, r in zip(actions, action_rewards, strict=True)
                    )
                    q_sampled = q[actions]
                    advantages.append(float(q_sampled[0] - q_sampled.mean()))
                    ce_lea = 0.0
                    for p, r in zip(prop[t], prew[t], strict=True):
                        if p >= 0:
                            q_loss += 0.4 * 0.5 * (float(q[p]) - (r + gamma * value)) ** 2
                            ce_lea -= 0.3 * float(logp[p])
                    ce_terms.append((-float(logp[seq[t + 1]]), ce_lea))
                    q_terms.append(q_loss)
                    i += 1
        weights = np.ones(len(ce_terms))
        if weighted:
            adv = np.array(advantages)
            weights = np.clip(adv / adv.std(ddof=1), 0.0, 5.0)
        ce_total = np.mean([w * ce + lea for w, (ce, lea) in zip(weights, ce_terms, strict=True)])
        expected = ce_total + 0.7 * np.mean(q_terms)
        assert loss.item() == pytest.approx(expected, rel=1e-4)


# --- logged data ---------------------------------------------------------------------------


def test_rating_rewards_map_ratings_to_purchase_and_click() -> None:
    got = rating_rewards([1, 2, 3, 3.5, 4, 5])
    assert got.tolist() == [0.2, 0.2, 0.2, 0.2, 1.0, 1.0]
    assert rating_rewards([4.0], threshold=5.0, high=2.0, low=0.0).tolist() == [0.0]
    with pytest.raises(ValueError, match="NaN"):
        rating_rewards([np.nan])


def test_logged_sequences_keep_time_order_and_ratings(data: RL4RecData) -> None:
    frame = pd.DataFrame(
        {
            "user_id": ["b", "a", "a", "a", "b"],
            "item_idx": [5, 3, 1, 2, 4],
            "timestamp": [9, 3, 1, 2, 8],
            "rating": [5.0, 2.0, 4.0, 4.0, 1.0],
        }
    )
    logged = LoggedSequences.from_frame(frame, n_items=6)
    assert list(logged.users) == ["a", "b"]
    assert [s.tolist() for s in logged.sequences] == [[1, 2, 3], [4, 5]]
    assert [r.tolist() for r in logged.rewards] == [[1.0, 0.2], [1.0]]
    assert logged.n_transitions == 3
    with pytest.raises(DataFormatError, match="rating"):
        LoggedSequences.from_frame(frame.drop(columns="rating"), 6)
    with pytest.raises(ValueError, match="outside"):
        LoggedSequences.from_frame(frame, n_items=5)
    # On the real split: the validation histories are the training sequences, in user order.
    hist, _ = data.validation
    assert all(np.array_equal(a, b) for a, b in zip(hist, data.logged.sequences, strict=True))
    assert data.logged.n_transitions == sum(len(h) - 1 for h in hist)
    assert set(np.unique(np.concatenate(data.logged.rewards))) == {0.2, 1.0}


# --- LEA -----------------------------------------------------------------------------------


@pytest.mark.parametrize("exclude_history", [True, False])
def test_lea_proposals_are_the_sm_top_k_rewarded_by_the_rm(exclude_history: bool) -> None:
    um = FakeUserModel(n_items=40, state_dim=8, window=3, seed=1)
    logged = _logged([[3, 7, 7, 1, 30, 2], [5, 6], [9]], 40)
    lea = LEAWrapper(logged, um, k=4, ce_weight=0.3, q_weight=0.7, exclude_history=exclude_history)
    assert (lea.k, lea.ce_weight, lea.q_weight) == (4, 0.3, 0.7)
    assert lea.sequences is logged.sequences and lea.rewards is logged.rewards
    assert [p.shape for p in lea.proposals] == [(5, 4), (1, 4), (0, 4)]
    vectors = um.item_vectors()
    for seq, props, rewards in zip(
        logged.sequences, lea.proposals, lea.proposal_rewards, strict=True
    ):
        for t in range(len(seq) - 1):
            state = um.states([seq[: t + 1]])[0]
            blocked = {int(seq[t + 1])} | (set(seq[: t + 1].tolist()) if exclude_history else set())
            assert not blocked & set(props[t].tolist())
            scores = (state @ vectors.T)[None]
            expected, _ = top_k(scores, 4, [np.array(sorted(blocked))])
            assert props[t].tolist() == expected[0].tolist()
            direct = um.rewards([seq[: t + 1]] * 4, props[t])
            np.testing.assert_allclose(rewards[t], direct, rtol=1e-6)
    assert lea.n_proposals == 6 * 4


def test_lea_ranked_by_the_rm_keeps_the_best_rewarded_of_the_sm_pool() -> None:
    um = FakeUserModel(n_items=40, state_dim=8, window=3, seed=1)
    logged = _logged([[3, 7, 7, 1, 30, 2], [5, 6]], 40)
    pool = LEAWrapper(logged, um, k=8)  # the SM's top 8, rewarded
    lea = LEAWrapper(logged, um, k=3, rank="rm", pool=8)
    assert (lea.rank, lea.pool) == ("rm", 8) and [p.shape for p in lea.proposals] == [
        (5, 3),
        (1, 3),
    ]
    for props, rewards, cands, cand_rewards in zip(
        lea.proposals, lea.proposal_rewards, pool.proposals, pool.proposal_rewards, strict=True
    ):
        for t in range(len(props)):
            best = np.argsort(-cand_rewards[t], kind="stable")[:3]
            assert props[t].tolist() == cands[t][best].tolist()
            np.testing.assert_allclose(rewards[t], cand_rewards[t][best])
            assert (np.diff(rewards[t]) <= 0).all()
    # The RM's pick is rewarded at least as well as the SM's own top 3, per transition.
    sm = LEAWrapper(logged, um, k=3)
    for a, b in zip(lea.proposal_rewards, sm.proposal_rewards, strict=True):
        assert (a.sum(axis=1) >= b.sum(axis=1) - 1e-12).all()
    assert LEAWrapper(logged, um, k=2, rank="rm").pool == 8  # default: 4 * k


def test_lea_speaks_dataset_indices_to_a_reordered_le() -> None:
    """An LE whose catalog is a shuffled subset of the dataset's: proposals come back in
    dataset indices, never name an item the LE lacks, and match the identity-mapped LE."""
    base = FakeUserModel(n_items=30, state_dim=8, seed=2)
    perm = np.random.default_rng(0).permutation(30)

    class Shuffled(FakeUserModel):
        def __init__(self) -> None:
            super().__init__(n_items=30, state_dim=8, seed=2)
            # LE item j is dataset item ids[j] (here a permutation into a 35-item catalog).
            self.item_ids = perm.copy()
            self._vectors = self._vectors[perm]
            self._popularity = self._popularity[perm]

    logged = _logged([[4, 9, 1, 22, 0]], 35)
    lea = LEAWrapper(logged, Shuffled(), k=3)
    plain = LEAWrapper(_logged([[4, 9, 1, 22, 0]], 30), base, k=3)
    assert np.array_equal(lea.proposals[0], plain.proposals[0])
    np.testing.assert_allclose(lea.proposal_rewards[0], plain.proposal_rewards[0])
    assert (lea.proposals[0] < 30).all()  # items 30..34 have no LE item
    view = LEView(Shuffled(), 35)
    with pytest.raises(ValueError, match="has no item for 1 dataset items"):
        view.states([np.array([1, 33])])


def test_lea_rejects_bad_arguments() -> None:
    um = FakeUserModel(n_items=20)
    logged = _logged([[1, 2, 3]], 20)
    for k in (0, -1, 2.5):
        with pytest.raises(ValueError, match="k"):
            LEAWrapper(logged, um, k=k)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ce_weight"):
        LEAWrapper(logged, um, ce_weight=-1.0)
    with pytest.raises(ValueError, match="q_weight"):
        LEAWrapper(logged, um, q_weight=float("nan"))
    with pytest.raises(ValueError, match="exceeds"):
        LEAWrapper(logged, um, k=21)
    with pytest.raises(ValueError, match="states"):
        LEAWrapper(logged, um, states=[np.zeros((2, um.state_dim))])
    with pytest.raises(ValueError, match="rank must be one of"):
        LEAWrapper(logged, um, rank="popularity")
    with pytest.raises(ValueError, match="pool must be an integer >= k"):
        LEAWrapper(logged, um, k=3, rank="rm", pool=2)


def test_recgym_wrappers_import_no_torch() -> None:
    code = "import recgym.wrappers, sys; print('torch' in sys.modules, 'agents' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# --- configuration -------------------------------------------------------------------------


def test_bad_configurations_raise_clear_errors() -> None:
    with pytest.raises(UnknownNameError, match="no rl4rec variant named 'nope'"):
        variant_config("nope")
    with pytest.raises(UnknownNameError, match="no algo named 'dqn'"):
        RL4RecConfig(algo="dqn")
    with pytest.raises(ValueError, match="lea_k"):
        RL4RecConfig(lea_k=-1)
    with pytest.raises(ValueError, match="gamma"):
        RL4RecConfig(gamma=1.0)
    with pytest.raises(ValueError, match="backbone alone"):
        RL4RecConfig(algo="ce", le_state=True)
    with pytest.raises(TypeError, match="unknown RL4RecConfig fields"):
        variant_config("rating", lr=1.0)
    config = variant_config("lea", "sa2c")
    assert (config.algo, config.lea_k, config.reward) == ("sa2c", 3, "rating")
    assert variant_config("base", "sa2c").algo == "ce"
    assert RL4RecConfig.from_dict(json.loads(json.dumps(_asdict(config)))) == config


def _asdict(config: RL4RecConfig) -> dict[str, object]:
    return dataclasses.asdict(config)


# --- training ------------------------------------------------------------------------------


def test_sqn_training_lowers_the_loss_and_changes_both_heads(data: RL4RecData) -> None:
    backbone = default_config("gru4rec", max_len=30, max_epochs=4, patience=4, batch_size=16)
    config = _tiny(algo="sqn", backbone=backbone)
    before = RL4RecModel(build_model(config.backbone, data.n_items))
    rec = fit_rl4rec(config, data)
    losses = [h["loss"] for h in rec.history]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert all(h["q"] > 0 for h in rec.history)
    # Same seed, same initial weights: training moved the Q head and the shared embeddings.
    assert not torch.equal(before.q_head.weight, rec.model.q_head.weight)
    assert not torch.equal(before.backbone.item_emb.weight, rec.model.backbone.item_emb.weight)
    for split in ("validation", "test"):
        for metric in ("ndcg@10", "hit@10", "recall@10"):
            assert 0.0 <= rec.metrics[f"{split}/{metric}"] <= 1.0
    assert rec.metrics["test/hit@10"] == rec.metrics["test/recall@10"]
    # Recommendations come from the CE head.
    hist, targets = data.test
    scores = rec.score(hist[:5])
    with torch.inference_mode():
        hidden = torch.stack(
            [rec.model.backbone.encode(torch.as_tensor(h[-30:] + 1)[None])[0, -1] for h in hist[:5]]
        )
        np.testing.assert_allclose(scores, rec.model.ce_logits(hidden).numpy(), atol=1e-4)
    assert rec.evaluate(hist, targets)["ndcg@10"] == pytest.approx(rec.metrics["test/ndcg@10"])


def test_sm_state_widens_the_q_head_and_is_needed_to_score(data: RL4RecData) -> None:
    config = _tiny(algo="sa2c", le_state=True, warmup_epochs=1, negatives=3)
    le = le_inputs(data, "fake", le_kwargs=config.le_kwargs)
    assert le.validation_states.shape == (len(data.validation[0]), 16)
    rec = fit_rl4rec(config, data, le)
    d = config.backbone.d
    assert rec.model.state_dim == rec.model.q_head.in_features == d + 16
    plain = fit_rl4rec(_tiny(algo="sqn"), data)
    assert plain.model.q_head.in_features == d
    hist, _ = data.test
    # The LE state is part of the input: another state gives other scores.
    np.testing.assert_allclose(rec.score(hist[:3]), rec.score(hist[:3], le.test_states[:3]))
    assert not np.allclose(rec.score(hist[:3]), rec.score(hist[:3], le.test_states[3:6]))
    rec.user_model = None
    with pytest.raises(ValueError, match="LE states"):
        rec.score(hist[:3])
    with pytest.raises(ValueError, match="reads the LE"):
        fit_rl4rec(config, data, None)


def test_le_inputs_are_computed_once_and_match_the_user_model(data: RL4RecData) -> None:
    first = le_inputs(data, "fake", le_kwargs={"n_items": 1682}, lea_k=2)
    again = le_inputs(data, "fake", le_kwargs={"n_items": 1682}, lea_k=2)
    assert again.train_states is first.train_states and again.lea is first.lea
    um = FakeUserModel(n_items=1682)
    hist, _ = data.test
    np.testing.assert_allclose(first.test_states[:4], um.states(hist[:4]), atol=1e-6)
    np.testing.assert_allclose(first.validation_states[:4], um.states(data.validation[0][:4]))
    seq = data.logged.sequences[0]
    np.testing.assert_allclose(
        first.rm_rewards[0][:5], um.rewards([seq[:1], seq[:2], seq[:3], seq[:4], seq[:5]], seq[1:6])
    )


def test_le_inputs_kept_in_a_store_are_read_back_without_the_le(
    data: RL4RecData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = {"lea_k": 2, "lea_rank": "rm", "lea_pool": 3, "lea_ce_weight": 0.3}
    model = FakeUserModel(n_items=1682)
    first = le_inputs(data, model, store=tmp_path, **settings)
    assert sorted(p.name[:3] for p in tmp_path.glob("*.npz")) == ["le-", "lea"]

    def no_le(*args: object, **kwargs: object) -> None:  # a resumed study runs no LE pass
        raise AssertionError("the LE ran again")

    monkeypatch.setattr(LEView, "states_along", no_le)
    monkeypatch.setattr(LEView, "rewards_along", no_le)
    again = le_inputs(data, model, store=tmp_path, **settings)
    assert again.seconds == pytest.approx(first.seconds)
    kept, read = first.train_states + first.rm_rewards, again.train_states + again.rm_rewards
    for a, b in zip(kept, read, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first.test_states, again.test_states)
    assert first.lea is not None and again.lea is not None
    assert (again.lea.k, again.lea.rank, again.lea.pool, again.lea.ce_weight) == (2, "rm", 3, 0.3)
    for a, b in zip(first.lea.proposals, again.lea.proposals, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(first.lea.proposal_rewards, again.lea.proposal_rewards, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(AssertionError, match="ran again"):  # other settings: another file
        le_inputs(data, model, store=tmp_path, lea_k=1)
    with pytest.raises(ValueError, match=r"got \(4, 2\)"):
        LEAWrapper.from_proposals(
            data.logged,
            model,
            [np.zeros((4, 2), dtype=np.int64)] * len(data.logged.sequences),
            first.lea.proposal_rewards,
            k=2,
        )


def test_lea_and_rm_rewards_train(data: RL4RecData) -> None:
    config = _tiny(algo="sqn", reward="le", lea_k=2, lea_ce_weight=0.2, lea_q_weight=0.5)
    le = le_inputs(data, "fake", le_kwargs=config.le_kwargs, lea_k=2, lea_ce_weight=0.2)
    rec = fit_rl4rec(config, data, le)
    assert rec.history[-1]["loss"] < rec.history[0]["loss"]
    with pytest.raises(ValueError, match="LEA"):
        fit_rl4rec(_tiny(algo="sqn", lea_k=3), data, le)
    # RM-ranked proposals: the config's settings reach the wrapper (and must match it).
    ranked = _tiny(algo="sqn", lea_k=2, lea_rank="rm", lea_pool=6)
    le = le_inputs(data, "fake", le_kwargs=ranked.le_kwargs, **ranked.lea_settings())
    assert le.lea is not None and (le.lea.rank, le.lea.pool) == ("rm", 6)
    assert fit_rl4rec(ranked, data, le).history
    with pytest.raises(ValueError, match=r"rank, pool\) = \(2, 0.1, 0.5, 'rm', 8\)"):
        fit_rl4rec(_tiny(algo="sqn", lea_k=2, lea_rank="rm"), data, le)
    with pytest.raises(ValueError, match="lea_rank must be one of"):
        _tiny(algo="sqn", lea_k=2, lea_rank="both")
    with pytest.raises(ValueError, match="lea_pool must be 0 or >= lea_k"):
        _tiny(algo="sqn", lea_k=3, lea_pool=2)


# --- the ablation script -------------------------------------------------------------------


def test_ablation_script_runs_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks.studies.rl4rec_ablation import main

    args = ["--users", "30", "--max-epochs", "1", "--seeds", "0", "1", "--le", "fake"]
    args += ["--le-kwargs", '{"n_items": 1682}', "--out", str(tmp_path), "--max-len", "20"]
    tuned = 'lea:lea_k=1,lea_rank="rm"'
    args += ["--variants", "base", "rating", "rm", "sm", "lea", tuned]
    args += ["--le-store", str(tmp_path / "store")]
    assert main(args) == 0
    # The SM/RM passes and the two LEA settings, kept for other studies on the same data.
    assert len(list((tmp_path / "store").glob("*.npz"))) == 3
    out = capsys.readouterr().out
    record = json.loads((tmp_path / "results.json").read_text())
    cells = [(r["algo"], r["variant"]) for r in record["rows"]]
    assert cells[0] == ("ce", "base") and len(cells) == 1 + 2 * 5
    assert ("sa2c", "lea") in cells and ("sqn", "sm") in cells and ("sqn", tuned) in cells
    base = record["rows"][0]
    assert "paired/test/ndcg@10" not in base
    for row in record["rows"]:
        assert len(row["runs"]) == 2 and row["test/ndcg@10"]["ci95"] is not None
        assert 0 <= row["test/hit@10"]["mean"] <= 1
        assert all(len(r["test_positions"]) == 30 for r in row["runs"])
        assert 0 <= row["validation/ndcg@10"]["mean"] <= 1
        if row is base:
            continue
        for key in ("test/ndcg@10", "test/hit@10"):  # paired by user and seed: means subtract
            paired = row[f"paired/{key}"]
            assert paired["mean"] == pytest.approx(row[key]["mean"] - base[key]["mean"])
            assert paired["ci95"] is not None and len(paired["seed_means"]) == 2
    lea_row = next(r for r in record["rows"] if r["variant"] == tuned)
    lea = lea_row["runs"][0]["config"]
    assert (lea["lea_k"], lea["lea_rank"]) == (1, "rm")
    assert 0 < lea_row["lea"]["proposals"] <= 30 * 200 and 0 <= lea_row["lea"]["later"] <= 1
    assert f"| {tuned} | {lea_row['lea']['proposals']:.0f} |" in out  # the LEA table
    assert "| sqn | rm |" in out and "Δ NDCG@10 vs base" in (tmp_path / "table.md").read_text()
    with pytest.raises(UnknownNameError, match="no rl4rec variant named 'bogus'"):
        main(["--variants", "bogus", "--users", "5", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="must be JSON"):
        main(["--variants", "lea:lea_rank=rm", "--users", "5", "--out", str(tmp_path)])
    with pytest.raises(TypeError, match="lea_kk"):
        main(["--variants", "lea:lea_kk=1", "--users", "5", "--out", str(tmp_path)])


def test_lea_diagnostics_count_proposals_the_user_rates_later() -> None:
    from agents.rl4rec import LEInputs
    from benchmarks.studies.rl4rec_ablation import lea_diagnostics

    logged = _logged([[0, 1, 2, 3], [5]], 6)
    data = RL4RecData(logged, (logged.sequences, np.array([4, 0])), ([], np.array([5, 1])), 6, "")
    model = FakeUserModel(n_items=6)
    proposals = [np.array([[2], [5], [1]]), np.zeros((0, 1), dtype=np.int64)]
    rewards = [np.array([[0.5], [0.7], [0.9]]), np.zeros((0, 1))]
    lea = LEAWrapper.from_proposals(logged, model, proposals, rewards, k=1)
    inputs = LEInputs("fake", [], np.zeros((2, 1)), np.zeros((2, 1)), [], lea, 0.0, model)
    found = lea_diagnostics(inputs, data)
    # 2 is rated two steps on, 5 is the test item, 1 was rated before: 2 of 3 come later. A
    # count (all tied: lower index first) proposes 2, 3 and the validation item 4: all later.
    assert found == pytest.approx(
        {"proposals": 3, "reward": 0.7, "later": 2 / 3, "popular_later": 1.0}
    )


def test_ablation_overrides_reach_every_cell(tmp_path: Path) -> None:
    from benchmarks.studies.rl4rec_ablation import main

    args = ["--users", "20", "--max-epochs", "1", "--seeds", "0", "--max-len", "20"]
    args += ["--variants", "base", "rating", "--algos", "sqn", "--out", str(tmp_path)]
    assert main([*args, "--set", "q_weight=0.25", "--set", "gamma=0.9"]) == 0
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["overrides"] == {"q_weight": 0.25, "gamma": 0.9}
    for row in record["rows"]:
        config = row["runs"][0]["config"]
        assert config["q_weight"] == 0.25 and config["gamma"] == 0.9
    assert "q_weight=0.25" in (tmp_path / "table.md").read_text()
    with pytest.raises(SystemExit):
        main([*args, "--set", "q_weight"])
    with pytest.raises(TypeError, match="no_such_field"):
        main([*args, "--set", "no_such_field=1"])
