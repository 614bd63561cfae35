"""Ranking metrics against hand-computed cases and a brute-force reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recgym.metrics import (
    hit_rate_at_k,
    metrics_at_k,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
    target_ranks,
    top_k,
)


def _reference(ranked: list[int], targets: list[int], k: int) -> dict[str, float]:
    """Textbook definitions, one list at a time, written as plainly as possible."""
    relevant = set(targets)
    seen: set[int] = set()
    dcg, hits, first = 0.0, 0, None
    for pos, item in enumerate(ranked[:k]):
        if item == -1 or item in seen:
            continue
        seen.add(item)
        if item in relevant:
            dcg += 1.0 / math.log2(pos + 2)
            hits += 1
            first = pos if first is None else first
    idcg = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return {
        "ndcg": dcg / idcg,
        "recall": hits / len(relevant),
        "hit": float(hits > 0),
        "mrr": 0.0 if first is None else 1.0 / (first + 1),
    }


def test_hand_computed_single_target() -> None:
    ranked = np.array([[4, 7, 1], [4, 7, 1], [4, 7, 1]])
    targets = np.array([4, 1, 9])
    assert ndcg_at_k(ranked, targets, 10) == pytest.approx([1.0, 0.5, 0.0])  # 1/log2(4) = 0.5
    assert mrr_at_k(ranked, targets, 10) == pytest.approx([1.0, 1 / 3, 0.0])
    assert hit_rate_at_k(ranked, targets, 2) == pytest.approx([1.0, 0.0, 0.0])
    assert recall_at_k(ranked, targets, 3) == pytest.approx([1.0, 1.0, 0.0])


def test_k_larger_than_list_and_padding() -> None:
    ranked = np.array([[3, -1, -1]])
    assert ndcg_at_k(ranked, np.array([3]), 100) == pytest.approx([1.0])
    # Two targets, one retrieved at rank 1: DCG 1, IDCG 1 + 1/log2(3).
    assert ndcg_at_k(ranked, [[3, 5]], 100) == pytest.approx([1 / (1 + 1 / math.log2(3))])
    assert recall_at_k(ranked, [[3, 5]], 100) == pytest.approx([0.5])
    # Padding never matches a padded target list.
    assert ndcg_at_k(np.array([[-1, -1]]), np.array([[7, -1]]), 2) == pytest.approx([0.0])


def test_duplicate_targets_do_not_cap_ndcg_below_one() -> None:
    ranked = np.array([[8, 2, 5]])
    assert ndcg_at_k(ranked, [[8, 8, 2]], 10) == pytest.approx([1.0])
    assert recall_at_k(ranked, [[8, 8, 2]], 10) == pytest.approx([1.0])


def test_item_ranked_twice_counts_once() -> None:
    # A repeated hit would push DCG above the ideal; it must count at its first position only.
    ranked = np.array([[8, 8, 8]])
    assert ndcg_at_k(ranked, [[8, 2]], 3) == pytest.approx([1 / (1 + 1 / math.log2(3))])
    assert ndcg_at_k(ranked, np.array([8]), 3) == pytest.approx([1.0])


def test_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="k must be >= 1"):
        ndcg_at_k(np.array([[1]]), np.array([1]), 0)
    with pytest.raises(ValueError, match="no target"):
        ndcg_at_k(np.array([[1]]), [[]], 5)
    with pytest.raises(ValueError, match="2 rows"):
        ndcg_at_k(np.array([[1]]), np.array([1, 2]), 5)
    with pytest.raises(ValueError, match="unknown metrics"):
        metrics_at_k(np.array([[1]]), np.array([1]), names=["map"])


rows = st.lists(
    st.tuples(
        st.lists(st.integers(-1, 15), min_size=1, max_size=20),
        st.lists(st.integers(0, 15), min_size=1, max_size=5),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(rows=rows, k=st.integers(1, 25))
def test_matches_brute_force_reference(rows: list[tuple[list[int], list[int]]], k: int) -> None:
    width = max(len(r) for r, _ in rows)
    ranked = np.full((len(rows), width), -1)
    for i, (r, _) in enumerate(rows):
        ranked[i, : len(r)] = r
    targets = [t for _, t in rows]
    got = metrics_at_k(ranked, targets, ks=[k])
    for name in ("ndcg", "recall", "hit", "mrr"):
        want = [_reference(r, t, k)[name] for r, t in rows]
        np.testing.assert_allclose(got[f"{name}@{k}"], want, rtol=1e-12, atol=1e-12)


def test_target_ranks_are_pessimistic_and_mask_history() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.9], [1.0, 1.0, 1.0, 1.0]])
    assert target_ranks(scores, np.array([1, 2])).tolist() == [1, 3]
    # Masking the tied item 3 and the better item lifts target 2 to the top.
    assert target_ranks(scores[:1], np.array([2]), exclude=[[1, 3, 2]]).tolist() == [0]
    # NaN ranks last; a masked item is never ahead, even of a target scored -inf or NaN.
    assert target_ranks([[np.nan, 0.0, np.nan]], np.array([0])).tolist() == [2]
    low = [[-np.inf, -np.inf, -np.inf, 0.0]]
    assert target_ranks(low, np.array([0]), exclude=[[1, 2]]).tolist() == [1]
    ranks = target_ranks(scores[:1], np.array([2]))
    assert ndcg_at_k(np.argsort(-scores[:1], kind="stable"), np.array([2]), 10) == pytest.approx(
        1 / math.log2(ranks[0] + 2)
    )


@pytest.mark.parametrize("k", [1, 3, 7, 20])
def test_top_k_partition_and_sort_paths_agree(k: int) -> None:
    # k <= n / 4 takes the partition path, larger k the full sort; both must equal a plain
    # stable sort: ties to the lower index, -inf items as -1, fewer than k left padded.
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((50, 30)).astype(np.float32)
    scores[:, :4] = 1.5  # ties above the rest
    scores[:, 20:28] = -np.inf
    scores[3] = 0.0  # a row of ties
    scores[4, :25] = -np.inf  # fewer than k items left
    items, best = top_k(scores, k)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    want = np.take_along_axis(scores, order, axis=1)
    np.testing.assert_array_equal(best, want)
    np.testing.assert_array_equal(items, np.where(np.isneginf(want), -1, order))


def test_top_k_ranks_nan_scores_last() -> None:
    scores = np.array([[0.5, np.nan, 2.0, -np.inf, 1.0, 0.1, 0.2, 0.3]], dtype=np.float32)
    items, _ = top_k(scores, 1)
    assert items.tolist() == [[2]]
    items, _ = top_k(scores, 8)
    assert items[0, :6].tolist() == [2, 4, 0, 7, 6, 5] and items[0, 6] == -1 and items[0, 7] == 1


def test_pairwise_auc_counts_ties_as_half_and_checks_shapes() -> None:
    from recgym.metrics import pairwise_auc

    auc = pairwise_auc([1.0, 0.0, 2.0], [[0.0, 2.0], [0.0, 0.0], [1.0, 1.5]])
    np.testing.assert_allclose(auc, [0.5, 0.5, 1.0])
    with pytest.raises(ValueError, match=r"\(B, K>0\)"):
        pairwise_auc([1.0], [[]])
    with pytest.raises(ValueError, match="expected"):
        pairwise_auc([1.0, 2.0], [[0.0]])
