"""Incremental reads of the LE (recgym.le.kv): cached windows give what full reads give.

The LE is the tiny random Llama of ``tiny_dir`` with random (non-zero) LoRA weights, so the
two adapters and every position matter; nothing is trained.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from recgym.envs.user import RecUserVectorEnv  # noqa: E402
from recgym.le.kv import CANDIDATE_CHUNK  # noqa: E402
from recgym.le.model import LLMEnvironment  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

N_ITEMS = 40
WINDOW = 4
T = TypeVar("T")


def _tiny_le(tiny_dir: Path, kv_cache_bytes: int = 1 << 26) -> LLMEnvironment:
    torch.manual_seed(0)  # the same weights every time: item tokens, heads, LoRA A
    le = LLMEnvironment.build(
        str(tiny_dir), n_items=N_ITEMS, state_dim=8, window=WINDOW, lora_r=2, progress=False
    )
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in le.lm.named_parameters():
            if "lora_B" in name:  # zero at creation: both adapters would equal the base
                param.copy_(torch.randn(param.shape, generator=gen) * 0.5)
        le.rm_head.bias.fill_(0.0)
    le.calibration.fill_(0.1)
    le.kv_cache_bytes = kv_cache_bytes
    return le.eval()


@pytest.fixture
def le(tiny_dir: Path) -> Iterator[LLMEnvironment]:
    yield _tiny_le(tiny_dir)


@pytest.fixture
def ref(tiny_dir: Path) -> Iterator[LLMEnvironment]:
    """The same LE without a cache: full reads."""
    yield _tiny_le(tiny_dir, kv_cache_bytes=0)


def full(le: LLMEnvironment, read: Callable[[], T]) -> T:
    """``read()`` with incremental reads off (every window read in full; the cache is
    dropped)."""
    budget = le.kv_cache_bytes
    le.kv_cache_bytes = 0
    try:
        return read()
    finally:
        le.kv_cache_bytes = budget


def fed(le: LLMEnvironment, read: Callable[..., T], *args: Any) -> tuple[T, int]:
    """``read(*args)`` and the tokens it fed."""
    before = le.tokens_fed
    out = read(*args)
    return out, le.tokens_fed - before


def test_states_rewards_and_candidates_equal_full_reads(
    le: LLMEnvironment, ref: LLMEnvironment
) -> None:
    rng = np.random.default_rng(0)
    lengths = (0, 1, 3, 4, 5, 7, 8, 9, 13)  # empty, shorter than the window, several blocks
    hs = [rng.integers(N_ITEMS, size=n) for n in lengths]
    items = rng.integers(N_ITEMS, size=len(hs))
    cands = rng.integers(N_ITEMS, size=(len(hs), 5))
    want_states = ref.states(hs)
    want_rewards = ref.rewards(hs, items)
    want_cands = ref.candidate_scores(hs, cands)
    for _ in range(2):  # misses, then the cache's exact hits
        np.testing.assert_allclose(le.states(hs), want_states, atol=1e-5)
        np.testing.assert_allclose(le.rewards(hs, items), want_rewards, atol=1e-5)
        np.testing.assert_allclose(le.candidate_scores(hs, cands), want_cands, atol=1e-5)
    _, tokens = fed(le, le.states, hs)
    assert tokens == 0  # every window cached
    rewards = le.candidate_rewards(hs, cands)
    np.testing.assert_allclose(rewards, le._probability(want_cands), atol=1e-5)
    assert rewards.shape == (len(hs), 5) and rewards.dtype == np.float64
    # The SM's and the RM's caches are their own: a window the SM read is a miss for the RM.
    h = rng.integers(N_ITEMS, size=6)
    le.states([h])
    _, tokens = fed(le, le.rm_scores, [h], np.array([1]))
    assert tokens == 6 + 1


def test_a_batch_mixes_hits_extensions_and_misses(le: LLMEnvironment, ref: LLMEnvironment) -> None:
    rng = np.random.default_rng(1)
    hs = [rng.integers(N_ITEMS, size=n) for n in (2, 5, 6, 7, 3)]
    le.states(hs)
    le.rm_scores(hs, rng.integers(N_ITEMS, size=len(hs)))
    mixed = [
        hs[0],  # a hit
        np.append(hs[1], 3),  # one more item in the same block
        np.append(hs[2], [3, 4]),  # two more
        np.append(hs[3], [9, 8]),  # a new block: a miss
        rng.integers(N_ITEMS, size=11),  # never seen
        np.zeros(0, dtype=np.int64),  # a new user
    ]
    items = rng.integers(N_ITEMS, size=len(mixed))
    states, tokens = fed(le, le.states, mixed)
    np.testing.assert_allclose(states, ref.states(mixed), atol=1e-5)
    assert tokens == 0 + 1 + 2 + 5 + 7
    rewards = le.rewards(mixed, items)
    np.testing.assert_allclose(rewards, ref.rewards(mixed, items), atol=1e-5)


def test_a_user_taking_items_one_by_one_across_blocks(
    le: LLMEnvironment, ref: LLMEnvironment
) -> None:
    """Every step equals a full read; a step costs the RM its candidate and the SM the taken
    item, but at a block boundary (a full read of the new window)."""
    rng = np.random.default_rng(2)
    history = rng.integers(N_ITEMS, size=3)
    le.states([history])
    le.rm_scores([history], np.array([0]))
    for step in range(5 * WINDOW):
        refused, taken = rng.integers(N_ITEMS, size=2)
        # A refused item: the state is unchanged and comes from the cache.
        reward, tokens = fed(le, le.rewards, [history], np.array([refused]))
        want = ref.rewards([history], [refused])
        np.testing.assert_allclose(reward, want, atol=1e-5)
        assert tokens == 1, step
        state, tokens = fed(le, le.states, [history])
        np.testing.assert_allclose(state, ref.states([history]), atol=1e-5)
        assert tokens == 0
        reward, tokens = fed(le, le.rewards, [history], np.array([taken]))
        want = ref.rewards([history], [taken])
        np.testing.assert_allclose(reward, want, atol=1e-5)
        history = np.append(history, taken)
        state, sm_tokens = fed(le, le.states, [history])
        np.testing.assert_allclose(state, ref.states([history]), atol=1e-5)
        boundary = le.read_from(len(history)) != le.read_from(len(history) - 1)
        assert sm_tokens == (len(history) - le.read_from(len(history)) if boundary else 1)
        _, rm_tokens = fed(le, le.rm_scores, [history], np.array([refused]))
        assert rm_tokens == (sm_tokens + 1 if boundary else 1)  # the taken one was kept


def test_many_candidates_are_read_in_chunks(le: LLMEnvironment, ref: LLMEnvironment) -> None:
    rng = np.random.default_rng(3)
    hs = [rng.integers(N_ITEMS, size=n) for n in (0, 5, 9)]
    cands = rng.integers(N_ITEMS, size=(3, CANDIDATE_CHUNK + 20))
    want = ref.candidate_scores(hs, cands)
    np.testing.assert_allclose(le.candidate_scores(hs, cands), want, atol=1e-5)
    column = ref.rm_scores(hs, cands[:, 7])
    np.testing.assert_allclose(want[:, 7], column, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(3, k\) int array"):
        le.candidate_rewards(hs, cands[:2])
    with pytest.raises(ValueError, match=r"0\.\.39"):
        le.candidate_rewards(hs, cands + N_ITEMS)


def test_a_tiny_budget_evicts_and_stays_right(le: LLMEnvironment, ref: LLMEnvironment) -> None:
    le.kv_cache_bytes = 1 << 30
    le.states([np.arange(WINDOW)])
    (entry,) = le._kv.caches["sm"]._entries.values()  # type: ignore[union-attr]
    le.kv_cache_bytes = 3 * entry.nbytes  # about three windows of a block
    assert le._kv.caches["sm"].nbytes <= le.kv_cache_bytes  # type: ignore[union-attr]
    rng = np.random.default_rng(4)
    hs = [rng.integers(N_ITEMS, size=n) for n in (2, 6, 9, 1)]
    for _ in range(3 * WINDOW):
        items = rng.integers(N_ITEMS, size=len(hs))
        np.testing.assert_allclose(le.rewards(hs, items), ref.rewards(hs, items), atol=1e-5)
        hs = [np.append(h, i) for h, i in zip(hs, items, strict=True)]
        np.testing.assert_allclose(le.states(hs), ref.states(hs), atol=1e-5)
        for cache in le._kv.caches.values():  # type: ignore[union-attr]
            assert cache.nbytes <= le.kv_cache_bytes and len(cache) <= 3


def test_new_weights_clear_the_caches(le: LLMEnvironment, tiny_dir: Path) -> None:
    hs = [np.arange(5), np.arange(3)]
    items = np.array([7, 8])
    le.states(hs), le.rewards(hs, items)
    other = _tiny_le(tiny_dir, kv_cache_bytes=0)
    with torch.no_grad():
        for name, param in other.lm.named_parameters():
            if "lora_B" in name:
                param.mul_(-1.0)
    other.rm_head.weight.data.mul_(2.0)
    le.load_state_dict(other.trained_state(), strict=False)  # no invalidate(): the hook
    np.testing.assert_allclose(le.states(hs), other.states(hs), atol=1e-5)
    np.testing.assert_allclose(le.rewards(hs, items), other.rewards(hs, items), atol=1e-5)
    with torch.no_grad():
        le.sm_head.weight.mul_(-1.0)
    le.invalidate()
    np.testing.assert_allclose(le.states(hs), full(le, lambda: le.states(hs)), atol=1e-5)
    with pytest.raises(ValueError, match="kv_cache_bytes must be >= 0"):
        le.kv_cache_bytes = -1


def test_recuser_steps_equal_with_and_without_the_cache(tiny_dir: Path, tmp_path: Path) -> None:
    le = _tiny_le(tiny_dir)
    rng = np.random.default_rng(5)
    le.users = {"train": [rng.choice(N_ITEMS, int(rng.integers(3, 20)), False) for _ in range(9)]}
    le.save(tmp_path / "le")
    kwargs: dict[str, Any] = {
        "le": str(tmp_path / "le"),
        "le_kwargs": {"device": "cpu", "progress": False},
        "max_steps": 12,
    }

    def play(budget: int) -> tuple[list[Any], int]:
        env = RecUserVectorEnv(4, **kwargs)
        model = env.model
        assert isinstance(model, LLMEnvironment)
        model.kv_cache_bytes = budget
        model.invalidate()
        before = model.tokens_fed
        out: list[Any] = [env.reset(seed=3)[0]]
        actions = np.random.default_rng(6)
        for _ in range(30):
            masks = env.action_masks()
            act = np.array([actions.choice(np.flatnonzero(m)) for m in masks])
            obs, reward, terminated, truncated, info = env.step(act)
            out += [obs, reward, terminated, truncated, np.asarray(info["accepted"], float)]
        return out, model.tokens_fed - before

    cached, cached_tokens = play(1 << 26)
    uncached, full_tokens = play(0)
    assert len(cached) == len(uncached)
    for a, b in zip(cached, uncached, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert cached_tokens < full_tokens / 2


def test_throughput_benchmark_times_full_and_incremental_reads(
    tiny_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks.perf import recuser_throughput

    argv = ["--untrained", "--model", str(tiny_dir), "--layers", "1", "--window", "4"]
    argv += ["--n-items", "60", "--steps", "3", "--sizes", "2", "--skip-singles"]
    argv += ["--cross-episode", "--warmup", "40", "--env-kwargs", '{"n_users": 2, "patience": 1}']
    recuser_throughput.main(argv)
    out = capsys.readouterr().out
    assert "untrained" in out and "1 decoder layers" in out and "window 4" in out
    cells = [line.strip("| ").split(" | ") for line in out.splitlines() if line.startswith("|")]
    rows = [row for row in cells if row[0].isdigit()]
    assert [row[0] for row in rows] == ["2", "2"]
    full_tokens, inc_tokens = (float(x) for x in rows[0][-1].split(" -> "))
    assert 0 < inc_tokens < full_tokens
    # Two users restarting from their own logged blocks: across episodes feeds less.
    within, across = (float(x) for x in rows[1][-1].split(" -> "))
    assert across < within


def test_an_episode_row_does_not_depend_on_what_ran_before(tiny_dir: Path, tmp_path: Path) -> None:
    from benchmarks.episodes import play_episodes
    from recgym.envs.users import user_model

    le = _tiny_le(tiny_dir)
    rng = np.random.default_rng(7)
    le.users = {"test": [rng.choice(N_ITEMS, int(rng.integers(6, 20)), False) for _ in range(6)]}
    le.save(tmp_path / "le")
    kwargs: dict[str, Any] = {"le": str(tmp_path / "le"), "le_kwargs": {"progress": False}}

    class First:  # the first unseen item: deterministic, so only the caches could differ
        def act_batch(self, observations: Any, action_masks: np.ndarray) -> list[int]:
            return [int(np.flatnonzero(m)[0]) for m in action_masks]

    class Last:
        def act_batch(self, observations: Any, action_masks: np.ndarray) -> list[int]:
            return [int(np.flatnonzero(m)[-1]) for m in action_masks]

    def play(agent: Any) -> tuple[dict[str, np.ndarray], int]:
        model = user_model(kwargs["le"], kwargs["le_kwargs"])
        before = model.tokens_fed  # type: ignore[attr-defined]
        values, _ = play_episodes(
            "RecUser-v0", agent, split="test", episodes=6, env_kwargs=kwargs, batch_size=3
        )
        return values, model.tokens_fed - before  # type: ignore[attr-defined]

    alone, cold = play(First())
    play(Last())  # leaves the caches full of windows
    again, tokens = play(First())
    # The same reads as a cold start (warm caches would have spared some), so the same bits.
    assert tokens == cold
    for key, values in alone.items():
        np.testing.assert_array_equal(values, again[key])


def test_cross_episode_reads_cut_a_root_for_a_shorter_start(
    le: LLMEnvironment, ref: LLMEnvironment
) -> None:
    """A user restarting from a shorter part of a block read before costs the SM one item and
    the RM nothing (the exact mode reads the window again); outputs equal full reads."""
    rng = np.random.default_rng(8)
    logged = rng.choice(N_ITEMS, 3 * WINDOW, replace=False)
    le.kv_cross_episode = True
    long, short = logged[: 2 * WINDOW - 1], logged[: WINDOW + 1]  # both read from item 0
    le.states([long])
    le.rm_scores([long], np.array([0]))
    states, tokens = fed(le, le.states, [short])
    np.testing.assert_allclose(states, ref.states([short]), atol=1e-5)
    assert tokens == 1
    scores, tokens = fed(le, le.rm_scores, [short], np.array([5]))
    np.testing.assert_allclose(scores, ref.rm_scores([short], np.array([5])), atol=1e-5)
    assert tokens == 1  # the candidate
    # The exact mode does not cut: no prefix of the shorter window is cached.
    le.invalidate()
    le.kv_cross_episode = False
    le.states([long])
    _, tokens = fed(le, le.states, [short])
    assert tokens == len(short)


def test_cross_episode_roots_outlive_the_windows_of_stepping_users(
    le: LLMEnvironment, ref: LLMEnvironment
) -> None:
    """Roots have an LRU of their own: another user stepping through many windows (a budget
    of a few) does not push out a start, and every step equals a full read."""
    rng = np.random.default_rng(9)
    le.kv_cross_episode = True
    start = rng.choice(N_ITEMS, WINDOW + 2, replace=False)
    le.states([start])
    reader = le._reader()
    assert reader is not None
    le.kv_cache_bytes = 3 * reader.caches["sm"].root_bytes  # about three windows per LRU
    other = rng.choice(N_ITEMS, WINDOW + 1, replace=False)
    for _ in range(WINDOW - 2):  # stay in the block: extensions, not roots
        taken = np.array([int(rng.integers(N_ITEMS))])
        np.testing.assert_allclose(
            le.rewards([other], taken), ref.rewards([other], taken), atol=1e-5
        )
        other = np.append(other, taken)
        np.testing.assert_allclose(le.states([other]), ref.states([other]), atol=1e-5)
    states, tokens = fed(le, le.states, [start[: WINDOW + 1]])
    assert tokens == 1  # the first user's start still serves a shorter restart
    np.testing.assert_allclose(states, ref.states([start[: WINDOW + 1]]), atol=1e-5)


def test_fresh_reads_give_an_evaluation_its_own_exact_caches(le: LLMEnvironment) -> None:
    rng = np.random.default_rng(10)
    le.kv_cross_episode = True
    h = rng.integers(N_ITEMS, size=WINDOW + 2)
    le.states([h])
    with le.fresh_reads():
        assert not le.kv_cross_episode
        _, tokens = fed(le, le.states, [h])
        assert tokens == len(h)  # empty caches: a full read of the window
    assert le.kv_cross_episode
    _, tokens = fed(le, le.states, [h])
    assert tokens == 0  # the training caches are back
