"""Property-based fuzzing of every registered env with hostile actions of its kind (issue 28).

Each env gets generated actions: hostile floats, dtypes and shapes for the score-vector envs
(``RecRank-v0``, ``RecNext-v0``), arbitrary Unicode (surrogates included), megabyte strings and
near-miss answer formats for the text envs (``RecSearch-v0``, ``RecSeq-v0``, ``RecPref-v0``),
arbitrary ints for ``RecUser-v0``, and misuse (``None``, dicts, strings, wrong shapes) for all.
The properties:

- an action the env documents as valid never raises; a misuse raises ``TypeError`` or
  ``ValueError`` with a message, through ``step`` and through ``score`` alike;
- rewards and metrics are finite and within the env's documented bounds;
- ``info`` has the env's documented keys;
- ``step`` equals the batched ``score`` (``RecUser-v0``: the vector env equals single envs);
- the same seed gives the same episode and the same reward.

The default suite runs a few hundred actions per env on cheap configurations (a popularity
retriever, a hashing judge, the fake LE); ``-m slow`` runs at least 10,000 per env, scored in
batches through ``score`` with every fifth action also stepped.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import recgym
from recgym.envs.preference import MAX_TEXT_CHARS
from recgym.rewards import format_answer

Tagged = tuple[Any, str]
"""An action and what the env must do with it: ``"ok"`` (score it), ``"error"`` (refuse it
with ``TypeError``/``ValueError``) or ``"any"`` (either, but cleanly)."""

MISUSE = (TypeError, ValueError)


class HashJudge:
    """A cheap stand-in for ``RecPref-v0``'s judge: candidate scores drawn from a hash of the
    text and the history, at a scale from 1e-308 to 1e308 (so the fused reward's softmax meets
    overflow), and a check that the env hands it only cut, stripped, encodable texts."""

    def score_candidates(
        self, histories: Sequence[np.ndarray], texts: Sequence[str], candidates: np.ndarray
    ) -> np.ndarray:
        out = np.zeros(candidates.shape)
        for row, (history, text) in enumerate(zip(histories, texts, strict=True)):
            assert len(text) <= MAX_TEXT_CHARS and text == text.strip()
            blob = text.encode("utf-8")  # a lone surrogate raises here, as in the tokenizer
            if text:
                seed = int.from_bytes(hashlib.sha256(blob).digest()[:8], "little")
                rng = np.random.default_rng([seed, len(history)])
                with np.errstate(over="ignore"):
                    out[row] = rng.normal(size=candidates.shape[1]) * 10.0 ** (seed % 617 - 308)
        return out


@dataclass(frozen=True)
class Case:
    """An env configuration to fuzz and what it documents."""

    env_id: str
    kwargs: dict[str, Any]
    low: float
    high: float
    info_keys: frozenset[str]


_ONE_STEP_INFO = frozenset({"split", "index", "metrics"})
_TEXT_INFO = _ONE_STEP_INFO | {"query", "format_error", "rewards", "retrieved"}
CASES = {
    "RecSearch-v0": Case("RecSearch-v0", {}, -2.0, 1.1, _TEXT_INFO | {"query_id", "request"}),
    "RecSeq-v0": Case("RecSeq-v0", {}, -2.0, 1.1, _TEXT_INFO | {"user_id", "history"}),
    "RecRank-v0": Case(
        "RecRank-v0",
        {"retriever": "popularity"},
        0.0,
        1.0,
        _ONE_STEP_INFO | {"user_id", "retriever", "ranking"},
    ),
    "RecNext-v0": Case(
        "RecNext-v0",
        {"reward": "fused"},
        0.0,
        1.0,
        _ONE_STEP_INFO | {"user_id", "target_rank", "reasoning"},
    ),
    "RecPref-v0": Case(
        "RecPref-v0",
        {"recommender": HashJudge(), "reward": "fused", "tau": 0.02},
        0.0,
        1.0,
        _ONE_STEP_INFO | {"user_id", "target_rank"},
    ),
    "RecUser-v0": Case(
        "RecUser-v0",
        {"le": "fake"},
        0.0,
        1.0,
        frozenset(
            {"user", "history_len", "action_mask", "item", "accepted", "p_accept", "seen"}
            | {"rewards", "metrics"}
        ),
    ),
}
ONE_STEP = [i for i in CASES if i != "RecUser-v0"]
COUNTS: Counter[tuple[str, str]] = Counter()  # (env id, "fast" or "slow") -> actions checked


def test_every_registered_env_is_fuzzed() -> None:
    assert set(CASES) == set(recgym.ENVS)


_ENVS: dict[tuple[str, int], Any] = {}


def _env(env_id: str, copy: int = 0) -> Any:
    """The unwrapped env of ``env_id``'s case (``copy`` 1: a second instance)."""
    if (env_id, copy) not in _ENVS:
        _ENVS[env_id, copy] = gym.make(env_id, **CASES[env_id].kwargs).unwrapped
    return _ENVS[env_id, copy]


# ----- strategies -----------------------------------------------------------------------------

_EDGES = (math.nan, math.inf, -math.inf, 0.0, -0.0, 5e-324, -5e-324, 1.0, -1.0, 1e-300)
_HUGE = (3.4028235e38, 1e307, -1e307, 1.7976931348623157e308, -1.7976931348623157e308)
SPECIAL_FLOATS = st.sampled_from(_EDGES + _HUGE)
HOSTILE_FLOATS = st.one_of(SPECIAL_FLOATS, SPECIAL_FLOATS, st.floats())


@st.composite
def score_vectors(draw: st.DrawFn, n: int, hot: Sequence[int]) -> Any:
    """A valid action of ``n`` real scores: a base (constant, uniform, any scale, many ties)
    with hostile values at the target and a few other places, in some real dtype."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["constant", "uniform", "scaled", "ties", "sprinkled"]))
    with np.errstate(all="ignore"):  # a scale of 1e308 overflows to inf: part of the test
        if kind == "constant":
            v = np.full(n, draw(HOSTILE_FLOATS))
        elif kind == "sprinkled":  # special values at a random share of the places
            v = rng.uniform(-1, 1, n)
            where = rng.random(n) < draw(st.sampled_from([0.001, 0.05, 0.5, 1.0]))
            v[where] = rng.choice(np.array(_EDGES + _HUGE), int(where.sum()))
        elif kind == "uniform":
            v = rng.uniform(-1, 1, n)
        elif kind == "scaled":
            scale = draw(st.sampled_from([1e-308, 1e-20, 1.0, 50.0, 1e30, 1e300, 1e307, 1e308]))
            v = rng.standard_normal(n) * scale
        else:
            v = rng.integers(-2, 3, n).astype(np.float64)
        places = st.sampled_from(list(hot)) | st.integers(0, n - 1)
        for place, value in draw(st.lists(st.tuples(places, HOSTILE_FLOATS), max_size=6)):
            v[place] = value
        form = draw(st.sampled_from(["float64", "float32", "float16", "list", "tuple", "ints"]))
        if form == "ints":
            return rng.integers(draw(st.sampled_from([-(2**63), -3, 0])), 2**62, n)
        if form == "list":
            return v.tolist()
        if form == "tuple":
            return tuple(v.tolist())
        return v.astype(form)


def bad_score_vectors(n: int) -> st.SearchStrategy[Any]:
    """Actions that are not ``n`` real scores: each must be refused with a message."""
    wrong_length = st.integers(0, 2 * n).filter(lambda m: m != n)
    return st.one_of(
        st.none(),
        st.text(max_size=30),
        st.binary(max_size=30),
        st.floats(),
        st.integers(),
        st.booleans(),
        st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
        wrong_length.map(np.zeros),
        st.sampled_from([(1, n), (n, 1), (2, n), (n, n)]).map(np.zeros),
        st.just(np.zeros(n, dtype=complex) + 1j),
        st.just(np.array(["0.5"] * n)),
        st.just(["0.5"] * n),
        st.just([[0.5] * n, [0.5]]),
        st.just([{}] * n),
        st.just(np.arange(n).astype("datetime64[s]")),
    )


SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
_ODD = ("\ud800", "\udfff", "\ud83d\ude00", "\udc00\ud800", "\x00", "\u202e\u200b\ufeff", "😀")
_TAGS = ("\U0010ffff", "\ufffd", "\r\n", "<answer>", "</answer>", "<think>", '{"query": ')
SNIPPETS = st.sampled_from((*_ODD, *_TAGS, "\\ud800"))
ANY_TEXT = st.lists(
    st.one_of(
        st.text(st.characters(exclude_categories=()), max_size=40),  # any code point
        st.text(SURROGATES, min_size=1, max_size=3),  # lone or paired surrogates
        SNIPPETS,
    ),
    max_size=8,
).map("".join)
"""Arbitrary Unicode: the union of every code point makes surrogates rare, so they and other
troublemakers are mixed in on purpose."""
NEAR_MISSES = st.sampled_from(
    [
        "<answer>{'query': 'red dress'}</answer>",  # single quotes are not JSON
        '<answer>{"query": "red dress"}</answer',
        '<Answer>{"query": "red dress"}</Answer>',
        '<answer>{"Query": "red dress"}</answer>',
        '<answer>{"query": "red dress",}</answer>',
        '<answer>{"query": ["red", "dress"]}</answer>',
        '<answer>{"query": null}</answer>',
        '<answer>"red dress"</answer>',
        '<answer>{"query": "red dress"}</answer><answer>{"query": "x"}</answer>',
        '</answer>{"query": "red dress"}<answer>',
        '<think><answer>{"query": "red dress"}</answer></think>',
        '<think>x</think></think><answer>{"query": "red dress"}</answer>',
        '＜answer＞{"query": "red dress"}＜/answer＞',
        '<ans\u200bwer>{"query": "red dress"}</answer>',
        '<answer>```json\n{"query": "red dress"}\n```</answer>',
        '<answer>```{"query": "red dress"}</answer>',
        '<answer>{"query": "\\ud800 dress"}</answer>',
        '<answer>{"query": "' + "\\u0000" * 50 + '"}</answer>',
        '<answer>{"query": "red dress"}\x00</answer>',
        '<answer>\n\n {"query": "red dress"} \n</answer>',
    ]
)


@st.composite
def near_miss(draw: st.DrawFn) -> str:
    """A near-miss or valid answer format with arbitrary text around it and in the query."""
    core = draw(NEAR_MISSES | ANY_TEXT.map(format_answer))
    before, after = draw(ANY_TEXT), draw(st.sampled_from(["", "\n", " thanks", "</answer>"]))
    return before + core + after


@st.composite
def huge_text(draw: st.DrawFn) -> str | bytes:
    """A text of up to a megabyte: repeated junk, with a valid answer at either end."""
    unit = draw(ANY_TEXT.filter(bool) | NEAR_MISSES)
    text = unit * ((1 << draw(st.integers(10, 20))) // len(unit) + 1)
    end = draw(st.sampled_from(["", "first", "last", "bytes"]))
    if end == "bytes":
        return text.encode("utf-8", "surrogatepass")
    answer = format_answer("floral summer dress")
    return answer + text if end == "first" else text + answer if end == "last" else text


def _mostly(ok: st.SearchStrategy[Tagged], misuse: st.SearchStrategy[Tagged]) -> Any:
    """Three valid actions to one misuse (``one_of(ok, ok, ok, misuse)`` would not do: it
    keeps each strategy once)."""
    return st.integers(0, 3).flatmap(lambda k: misuse if k == 3 else ok)


def text_actions() -> st.SearchStrategy[Tagged]:
    """Any str or bytes is a valid text action; anything else is refused."""
    valid = st.one_of(
        st.just(""),
        st.text(alphabet=" \t\n\r\x0b\x0c\u00a0\u2028\u3000", max_size=20),
        ANY_TEXT,
        st.binary(max_size=200),
        near_miss(),
        near_miss().map(lambda t: t.encode("utf-8", "surrogatepass")),
        huge_text(),
    )
    misuse = st.one_of(
        st.none(),
        st.integers(),
        st.floats(),
        st.lists(st.text(max_size=5), max_size=3),
        st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
        st.binary(max_size=20).map(bytearray),
    )
    return _mostly(valid.map(lambda a: (a, "ok")), misuse.map(lambda a: (a, "error")))


def vector_actions(env_id: str, env: Any, index: int) -> st.SearchStrategy[Tagged]:
    """Score vectors for ``RecRank-v0`` / ``RecNext-v0`` episode ``index``, hostile values
    placed on the target, the masked history and anywhere."""
    if env_id == "RecRank-v0":
        n, hot = env.n_candidates, [max(env.label(index), 0)]
        ok = score_vectors(n, hot).map(lambda a: (a, "ok"))
        dicts: st.SearchStrategy[Tagged] = st.nothing()
    else:
        n = env.n_items
        hot = [env.target(index), *env.task.splits[env.split].histories[index][-5:].tolist()]
        scores = score_vectors(n, hot)
        ok = st.one_of(
            scores.map(lambda a: (a, "ok")),
            st.tuples(scores, ANY_TEXT | st.none() | st.integers()).map(
                lambda sr: ({"scores": sr[0], "reasoning": sr[1]}, "ok")
            ),
        )
        dicts = st.one_of(  # RecNext-v0 reads dicts, but only with scores
            st.just(({"reasoning": "no scores"}, "error")),
            bad_score_vectors(n).map(lambda b: ({"scores": b}, "error")),
        )
    misuse = st.one_of(
        bad_score_vectors(n).map(lambda a: (a, "error")),
        st.just(([None] * n, "any")),  # NaN as numpy reads None in a float list
        dicts,
    )
    return _mostly(ok, misuse)


def actions_for(env_id: str, index: int) -> st.SearchStrategy[Tagged]:
    """The hostile actions of ``env_id``'s kind for its episode ``index``."""
    if env_id in ("RecRank-v0", "RecNext-v0"):
        return vector_actions(env_id, _env(env_id), index)
    return text_actions()


# ----- the one-step envs ----------------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    """Deep equality of observations, infos and steps (arrays compared by value)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(a, b))
    return bool(a == b)


def _refused(call: Callable[[], Any]) -> type[Exception]:
    """The misuse error ``call`` raises (any other outcome fails)."""
    with pytest.raises(MISUSE) as caught:
        call()
    assert str(caught.value).strip(), "a misuse error needs a message"
    return caught.type


def _check_scores(case: Case, result: Any, n: int) -> None:
    rewards = np.asarray(result.rewards)
    assert rewards.shape == (n,) and np.isfinite(rewards).all(), rewards
    assert ((case.low <= rewards) & (rewards <= case.high)).all(), rewards
    for key, value in result.metrics.items():
        assert np.isfinite(value).all() and ((value >= 0) & (value <= 1)).all(), key


def _check_one_step(
    env_id: str, tagged: list[Tagged], index: int, seed: int, step_every: int = 1
) -> int:
    """Check ``tagged`` on episode ``index``: every misuse (and every ``step_every``-th valid
    action) through ``step``, the valid ones in one batched ``score``, which must give each
    stepped action its step's reward and metrics; then a seeded episode, twice. Returns the
    number of actions checked."""
    case, env = CASES[env_id], _env(env_id)
    split = env.split
    stepped: dict[int, tuple[float, dict[str, float]]] = {}
    for j, (action, expect) in enumerate(tagged):
        if expect == "ok" and j % step_every:
            continue
        env.reset(options={"index": index})
        try:
            _, reward, terminated, truncated, info = env.step(action)
        except MISUSE as err:
            assert expect != "ok", f"a valid action was refused: {err}"
            assert str(err).strip(), "a misuse error needs a message"
            assert _refused(lambda a=action: env.score([a], index, split)) is type(err)
            continue
        assert expect != "error", f"{action!r:.200} was accepted"
        assert terminated and not truncated
        assert case.low <= reward <= case.high and math.isfinite(reward)
        assert case.info_keys <= info.keys(), case.info_keys - info.keys()
        stepped[j] = (reward, info["metrics"])
    kept = [j for j, (_, expect) in enumerate(tagged) if expect == "ok" or j in stepped]
    if kept:
        batch = env.score([tagged[j][0] for j in kept], index, split)
        _check_scores(case, batch, len(kept))
        for row, j in enumerate(kept):  # step == batched score, bit for bit
            if j in stepped:
                assert float(batch.rewards[row]) == stepped[j][0]
                assert {k: float(v[row]) for k, v in batch.metrics.items()} == stepped[j][1]
    # The same seed: the same episode, observation and reward.
    other = _env(env_id, 1)
    obs_a, info_a = env.reset(seed=seed)
    obs_b, info_b = other.reset(seed=seed)
    assert _same(obs_a, obs_b) and _same(info_a, info_b)
    if kept:
        action = tagged[kept[0]][0]
        step_a, step_b = env.step(action), other.step(action)
        assert step_a[1] == step_b[1] and _same(step_a[4], step_b[4])
    return len(tagged)


_FAST = settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("env_id", ONE_STEP)
@_FAST
@given(data=st.data(), row=st.integers(0, 10**9), seed=st.integers(0, 2**31 - 1))
def test_one_step_env_survives_hostile_actions(
    env_id: str, data: st.DataObject, row: int, seed: int
) -> None:
    env = _env(env_id)
    index = row % env.num_episodes()
    tagged = data.draw(st.lists(actions_for(env_id, index), min_size=5, max_size=15))
    COUNTS[env_id, "fast"] += _check_one_step(env_id, tagged, index, seed)


_SLOW_BATCH, _SLOW_EXAMPLES = 80, 130  # x = 10,400 actions per env


# slow: 10,400 actions per env, ~2 minutes for the five on 2 cores; CI runs it.
@pytest.mark.slow
@pytest.mark.parametrize("env_id", ONE_STEP)
@settings(
    max_examples=_SLOW_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data(), row=st.integers(0, 10**9), seed=st.integers(0, 2**31 - 1))
def test_ten_thousand_hostile_actions_per_env(
    env_id: str, data: st.DataObject, row: int, seed: int
) -> None:
    env = _env(env_id)
    index = row % env.num_episodes()
    tagged = data.draw(
        st.lists(actions_for(env_id, index), min_size=_SLOW_BATCH, max_size=_SLOW_BATCH)
    )
    COUNTS[env_id, "slow"] += _check_one_step(env_id, tagged, index, seed, step_every=5)


# ----- RecUser-v0 -----------------------------------------------------------------------------

_N_ITEMS = 100  # the fake LE's catalog


def user_actions() -> st.SearchStrategy[Tagged]:
    """Item indices of every int type and size; anything else is refused."""
    inside, outside = (
        st.integers(0, _N_ITEMS - 1),
        st.integers().filter(lambda i: not 0 <= i < _N_ITEMS),
    )
    dtypes = st.sampled_from([np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint64])
    return st.one_of(
        inside.map(lambda i: (i, "ok")),
        st.tuples(inside, dtypes).map(lambda t: (t[1](t[0]), "ok")),
        inside.map(lambda i: (np.array([i]), "ok")),
        outside.map(lambda i: (i, "error")),
        st.sampled_from([True, False, 1.0, None, "3", b"3", [1, 2], {}, np.array([1.0])]).map(
            lambda a: (a, "error")
        ),
        st.floats().map(lambda f: (f, "error")),
    )


def _play(env: Any, seed: int, tagged: list[Tagged]) -> list[Any]:
    """Play ``tagged`` from ``reset(seed=seed)`` (a new user when one ends); the trajectory."""
    case = CASES["RecUser-v0"]
    obs, info = env.reset(seed=seed)
    trajectory: list[Any] = [(obs, info)]
    done = False
    for action, expect in tagged:
        if done:
            trajectory.append(env.reset())
            done = False
        try:
            obs, reward, terminated, truncated, info = env.step(action)
        except MISUSE as err:
            assert expect == "error" and str(err).strip(), err
            continue
        assert expect == "ok", f"{action!r} was accepted"
        assert case.info_keys <= info.keys()
        if info["seen"]:
            assert reward == env.batch.seen_reward
        else:
            assert 0.0 < reward < 1.0 and reward == info["p_accept"]  # documented: (0, 1)
        assert 0.0 <= info["metrics"]["accept_rate"] <= 1.0
        assert env.observation_space.contains(obs)
        done = terminated or truncated
        trajectory.append((obs, reward, terminated, truncated, info))
    return trajectory


def _check_user(seed: int, tagged: list[Tagged], batch: list[list[int]]) -> int:
    first = _play(_env("RecUser-v0"), seed, tagged)
    again = _play(_env("RecUser-v0", 1), seed, tagged)
    assert len(first) == len(again) and all(map(_same, first, again))  # same seed, same play
    # The vector env (one batched LE call per step) plays the same as single envs.
    n = len(batch[0])
    singles = [gym.make("RecUser-v0", le="fake").unwrapped for _ in range(n)]
    vector = gym.make_vec("RecUser-v0", n, le="fake")
    obs, _ = vector.reset(seed=seed)
    starts = [env.reset(seed=seed + i)[0] for i, env in enumerate(singles)]
    assert np.array_equal(obs, np.stack(starts))
    done = [False] * n
    for actions in batch:
        obs, rewards, terminated, truncated, _ = vector.step(np.array(actions))
        for i, env in enumerate(singles):
            if done[i]:  # next-step autoreset: the action is ignored, the user restarts
                expected, reward, done[i] = env.reset()[0], 0.0, False
                assert not terminated[i] and not truncated[i]
            else:
                expected, reward, term, trunc, _ = env.step(actions[i])
                done[i] = term or trunc
                assert (terminated[i], truncated[i]) == (term, trunc)
            assert np.array_equal(obs[i], expected) and rewards[i] == reward
    vector.close()
    return len(tagged) + len(batch) * n


_USER_BATCH = st.integers(1, 4).flatmap(
    lambda n: st.lists(st.lists(st.integers(0, _N_ITEMS - 1), min_size=n, max_size=n), max_size=8)
)


@_FAST
@given(
    seed=st.integers(0, 2**31 - 1),
    tagged=st.lists(user_actions(), min_size=1, max_size=25),
    batch=_USER_BATCH.filter(bool),
)
def test_recuser_survives_hostile_actions(
    seed: int, tagged: list[Tagged], batch: list[list[int]]
) -> None:
    COUNTS["RecUser-v0", "fast"] += _check_user(seed, tagged, batch)


# slow: 10,400 hostile actions and ~1,000 vector-env steps, ~5 s with the fake LE; CI runs it.
@pytest.mark.slow
@settings(
    max_examples=_SLOW_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    seed=st.integers(0, 2**31 - 1),
    tagged=st.lists(user_actions(), min_size=_SLOW_BATCH, max_size=_SLOW_BATCH),
    batch=_USER_BATCH.filter(bool),
)
def test_ten_thousand_hostile_recuser_actions(
    seed: int, tagged: list[Tagged], batch: list[list[int]]
) -> None:
    COUNTS["RecUser-v0", "slow"] += _check_user(seed, tagged, batch)


# ----- the counts -----------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", list(CASES))
@pytest.mark.parametrize("suite", ["fast", "slow"])
def test_the_fuzzers_checked_enough_actions(env_id: str, suite: str) -> None:
    """Runs after the fuzzers in file order: at least a few hundred actions per env in the
    default suite, 10,000 in the slow one (skipped where that fuzzer was deselected)."""
    if (env_id, suite) not in COUNTS:
        pytest.skip(f"the {suite} fuzzer of {env_id} did not run in this session")
    assert COUNTS[env_id, suite] >= (10_000 if suite == "slow" else 200), COUNTS
    print(json.dumps({"env": env_id, "suite": suite, "actions": COUNTS[env_id, suite]}))
