"""The leaderboard runner: rows, statistics, JSON lines, the table, the CLI and the demo."""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import recgym  # noqa: F401 (registers the envs)
from benchmarks.runner import (
    append_rows,
    build_agent,
    evaluate,
    load_rows,
    summarize,
    t_quantile_975,
)
from benchmarks.table import markdown_table
from recgym.envs.text import fenced_block
from recgym.evaluation import EvalSpec

REPO = Path(__file__).resolve().parents[1]
EPISODES = 20
SEEDS = (0, 1)
ROW_KEYS = {
    "env_id",
    "env_version",
    "env_kwargs",
    "agent",
    "agent_config",
    "split",
    "episodes",
    "split_episodes",
    "seeds",
    "metrics",
    "data_version",
    "k",
    "reward",
    "commit",
    "versions",
    "device",
    "wall_seconds",
    "timestamp",
    "budget",
    "budget_device",
    "training",
    "command",
}
INFO_METRICS = ("ndcg@10", "ndcg@100", "recall@10", "recall@50", "recall@100")


class EchoHistoryAgent:
    """A local agent (only ``act``): the watched titles, oldest first, as the query."""

    def act(self, observation: str) -> str:
        titles = [line.split(". ", 1)[-1] for line in fenced_block(observation).splitlines()]
        return "<answer>" + json.dumps({"query": " ".join(titles)}) + "</answer>"


class SeededWordsAgent:
    """A local stochastic agent: ``reset(seed)`` decides which words of the prompt it keeps."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(None)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, observation: str) -> str:
        words = fenced_block(observation).split()
        picked = self.rng.choice(words, size=min(5, len(words)), replace=False)
        return "<answer>" + json.dumps({"query": " ".join(picked)}) + "</answer>"


def _history_agent() -> tuple[Any, str]:
    """The registered ``history`` agent when agents/ has it, else the local stand-in."""
    try:
        from agents import AGENTS
    except ImportError:
        AGENTS = {}
    if "history" not in AGENTS:
        return EchoHistoryAgent(), "tests.test_runner:EchoHistoryAgent"
    env = gym.make("RecSeq-v0", split="test")
    return build_agent("history", env, {}), "history"


@pytest.fixture(scope="module")
def history_row() -> dict[str, Any]:
    agent, name = _history_agent()
    return evaluate(
        EvalSpec("RecSeq-v0", name, episodes=EPISODES, seeds=SEEDS, batch_size=8), agent
    )


@pytest.fixture(scope="module")
def scorer() -> Any:
    return gym.make("RecSeq-v0", split="test").unwrapped


def test_row_fields(history_row: dict[str, Any]) -> None:
    row = history_row
    assert set(row) >= ROW_KEYS
    assert row["env_id"] == "RecSeq-v0" and row["env_version"] == "v0"
    assert row["env_kwargs"]["split"] == "test" and "k" in row["env_kwargs"]
    assert row["split"] == "test" and row["episodes"] == EPISODES
    assert row["seeds"] == list(SEEDS)
    assert set(row["metrics"]) == {"reward", "format_ok", *INFO_METRICS}
    for stats in row["metrics"].values():
        assert set(stats) == {"mean", "ci95", "seed_std", "seed_means"}
    assert row["k"] == 5000 and row["reward"] == "rec-r1"
    assert len(row["data_version"]) == 16
    assert row["commit"] == "unknown" or len(row["commit"].removesuffix("+dirty")) == 40
    assert {"python", "recgym", "numpy", "gymnasium"} <= set(row["versions"])
    assert row["device"] == "cpu" or row["device"]
    assert row["budget"] is None and row["wall_seconds"] > 0
    assert row["timestamp"].endswith("+00:00")
    assert row["command"].startswith("python -m benchmarks run --env RecSeq-v0 --agent ")
    json.dumps(row, allow_nan=False)  # serialisable as is


def test_metrics_match_the_scorer(history_row: dict[str, Any], scorer: Any) -> None:
    agent, _ = _history_agent()
    indices = list(range(EPISODES))
    scores = scorer.score(
        [agent.act(o) for o in scorer.observations(indices, "test")], indices, "test"
    )
    expected = {"reward": scores.rewards, "format_ok": scores.format_ok, **scores.metrics}
    t19 = 2.093  # t(0.975, 19)
    for key, values in expected.items():
        values = np.asarray(values, dtype=float)
        stats = history_row["metrics"][key]
        assert stats["mean"] == pytest.approx(values.mean(), abs=1e-12), key
        ci = t19 * values.std(ddof=1) / math.sqrt(EPISODES)
        assert stats["ci95"] == pytest.approx(ci, abs=1e-12), key
        assert stats["seed_std"] == pytest.approx(0.0, abs=1e-12), key  # deterministic agent


def test_seeds_are_averaged_per_episode(scorer: Any) -> None:
    agent = SeededWordsAgent()
    row = evaluate(EvalSpec("RecSeq-v0", "words", episodes=12, seeds=(3, 4), batch_size=5), agent)
    indices = list(range(12))
    per_seed = []
    for seed in (3, 4):
        agent.reset(seed)
        actions = [agent.act(o) for o in scorer.observations(indices, "test")]
        per_seed.append(scorer.score(actions, indices, "test").metrics["ndcg@100"])
    per_episode = np.mean(per_seed, axis=0)
    stats = row["metrics"]["ndcg@100"]
    assert stats["mean"] == pytest.approx(per_episode.mean())
    assert stats["ci95"] == pytest.approx(2.201 * per_episode.std(ddof=1) / math.sqrt(12))
    seed_means = [s.mean() for s in per_seed]
    assert stats["seed_std"] == pytest.approx(np.std(seed_means, ddof=1))
    assert stats["seed_means"] == pytest.approx(seed_means)
    assert row["agent_config"] == {}


def test_summarize_edge_cases() -> None:
    one = summarize(np.array([[0.5]]))
    assert one == {"mean": 0.5, "ci95": None, "seed_std": 0.0, "seed_means": [0.5]}
    with pytest.raises(ValueError):
        summarize(np.zeros((0, 3)))


@pytest.mark.parametrize("df", [1, 2, 5, 19, 30, 35, 50, 99, 150, 1000, 10**6])
def test_t_quantile_matches_scipy(df: int) -> None:
    stats = pytest.importorskip("scipy.stats")
    assert t_quantile_975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1.5e-3)


def test_jsonl_round_trip_and_table(history_row: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "sub" / "rows.jsonl"
    best = {"mean": 9.0, "ci95": 0.1, "seed_std": 0.0}
    other = {
        **history_row,
        "agent": "other",
        "metrics": {**history_row["metrics"], "ndcg@10": best},
    }
    append_rows(path, [history_row])
    append_rows(path, [other])
    assert load_rows(path) == [history_row, other]
    table = markdown_table(load_rows(path))
    assert "### RecSeq-v0" in table and "±" in table
    assert history_row["agent"] in table and history_row["command"] in table
    # Best NDCG@10 first.
    assert table.index("| other ") < table.index(f"| {history_row['agent']} ")


SPECS = [
    EvalSpec("RecSeq-v0", "history"),
    EvalSpec(
        "RecRank-v0",
        "sb3",
        agent_kwargs={"path": "my runs/ppo.zip", "algo": "PPO"},
        split="validation",
        episodes=943,
        seeds=[0, 1, 2],
        env_kwargs={"retriever": "lrurec"},
        batch_size=40,
        budget=41.3,
        budget_device="NVIDIA H100 80GB HBM3",
    ),
    EvalSpec("RecUser-v0", "docs/examples/custom_agent.py:GenreAgent", episodes=1, budget=0.0),
    EvalSpec(
        "RecUser-v0",
        "sb3",
        agent_kwargs={"path": "runs/ppo-seed{seed}.zip", "algo": "PPO"},
        budget=3.5,
        training={
            "command": "python -m my.trainer --out 'my runs' --seeds 0",
            "config": {"lr": 0.001},
            "log": "runs/ppo-seed{seed}.json",
        },
    ),
]


@pytest.mark.parametrize("spec", SPECS)
def test_a_specs_command_parses_back_into_the_spec(spec: EvalSpec) -> None:
    from benchmarks.__main__ import _parser, run_spec

    argv = shlex.split(spec.command(out="rows.jsonl"))
    assert argv[:4] == ["python", "-m", "benchmarks", "run"]
    args = _parser().parse_args(argv[3:])
    assert run_spec(args) == spec and args.out == "rows.jsonl"
    assert spec.command() == spec.command(out="rows.jsonl").rsplit(" --out ", 1)[0]


def test_a_specs_command_is_the_stored_rows_command() -> None:
    from benchmarks.__main__ import _parser, run_spec

    assert SPECS[1].command() == (
        "python -m benchmarks run --env RecRank-v0 --agent sb3 --agent-kwargs "
        '\'{"algo": "PPO", "path": "my runs/ppo.zip"}\' --split validation '
        '--episodes 943 --seeds 0 1 2 --env-kwargs \'{"retriever": "lrurec"}\' '
        "--batch-size 40 --budget 41.3 --budget-device 'NVIDIA H100 80GB HBM3'"
    )
    commands = [
        row["command"]
        for path in sorted((REPO / "benchmarks" / "results").rglob("*.jsonl"))
        for row in load_rows(path)
        if str(row.get("command", "")).startswith("python -m benchmarks run ")
    ]
    assert len(commands) > 10
    for command in commands:
        args = _parser().parse_args(shlex.split(command)[3:])
        out = args.out if " --out " in command else None
        assert run_spec(args).command(out=out) == command


def test_spec_checks_and_normal_forms() -> None:
    spec = EvalSpec("RecSeq-v0", "history", seeds=[1, np.int64(2)], agent_kwargs=None)  # type: ignore[arg-type]
    assert spec.seeds == (1, 2) and spec.agent_kwargs == {} and spec.env_kwargs == {}
    assert spec.replace(episodes=5) == EvalSpec("RecSeq-v0", "history", episodes=5, seeds=(1, 2))
    with pytest.raises(ValueError, match="at least one seed"):
        EvalSpec("RecSeq-v0", "history", seeds=())
    for training in ({"config": "c.json"}, {"command": "x", "lr": 1}):
        with pytest.raises(ValueError, match="training"):
            EvalSpec("RecSeq-v0", "history", training=training)
    with pytest.raises(ValueError, match="must be >= 1"):
        EvalSpec("RecSeq-v0", "history", episodes=0)


def test_the_evaluation_module_is_light() -> None:
    # recgym owns the loop: it must not pull in torch, the agents or the benchmarks.
    heavy = ("torch", "transformers", "stable_baselines3", "agents", "benchmarks")
    code = f"import recgym.evaluation, sys; print(*(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_old_call_of_evaluate_warns_and_gives_the_same_row(history_row: dict[str, Any]) -> None:
    agent, name = _history_agent()
    with pytest.warns(DeprecationWarning, match="pass the settings as one spec"):
        row = evaluate(
            "RecSeq-v0", agent, agent_name=name, episodes=EPISODES, seeds=SEEDS, batch_size=8
        )
    changing = ("wall_seconds", "timestamp")
    assert {k: v for k, v in row.items() if k not in changing} == {
        k: v for k, v in history_row.items() if k not in changing
    }
    with pytest.raises(TypeError, match="takes the settings in the spec"):
        evaluate(EvalSpec("RecSeq-v0", name), agent, episodes=3)


def _run(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_stored_command_regenerates_the_row(history_row: dict[str, Any], tmp_path: Path) -> None:
    args = shlex.split(history_row["command"])
    assert args[:4] == ["python", "-m", "benchmarks", "run"]
    results = tmp_path / "again.jsonl"
    out = _run([sys.executable, *args[1:], "--out", str(results), "--quiet"])
    assert "RecSeq-v0" in out.stdout
    (again,) = load_rows(results)
    assert again["command"] == history_row["command"]
    assert again["data_version"] == history_row["data_version"]
    for key, stats in history_row["metrics"].items():
        assert again["metrics"][key]["mean"] == pytest.approx(stats["mean"], abs=1e-12), key


def test_cli_rejects_bad_json() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "run",
            "--env",
            "RecSeq-v0",
            "--agent",
            "history",
            "--agent-kwargs",
            "[1]",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and "JSON object" in out.stderr


def test_demo_end_to_end_with_the_fake_llm(tmp_path: Path) -> None:
    results = tmp_path / "demo.jsonl"
    out = _run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "demo",
            "--episodes",
            "5",
            "--llm",
            "fake",
            "--out",
            str(results),
        ]
    )
    text = out.stdout
    assert "items 1,682, users 943, interactions 100,000" in text
    for expected in ("### RecSearch-v0", "### RecSeq-v0", "zero-shot (fake)", "±"):
        assert expected in text
    rows = load_rows(results)
    assert [(r["env_id"], r["agent"]) for r in rows] == [
        ("RecSearch-v0", "raw-query"),
        ("RecSearch-v0", "random-words"),
        ("RecSearch-v0", "zero-shot"),
        ("RecSeq-v0", "history"),
        ("RecSeq-v0", "random-words"),
        ("RecSeq-v0", "zero-shot"),
    ]
    assert all(r["episodes"] == 5 for r in rows)
    assert rows[2]["seeds"] == [0, 1, 2] and rows[0]["seeds"] == [0]
    assert '"model": "fake"' in rows[2]["command"]


AGENT_FILE = """
import json


class FirstLineAgent:
    \"\"\"A third-party agent in its own file: the newest title in the prompt as the query.\"\"\"

    def __init__(self, suffix: str = "") -> None:
        self.suffix = suffix

    def config(self) -> dict:
        return {"suffix": self.suffix}

    def act(self, observation: str) -> str:
        lines = observation.split("```")[1].strip().splitlines()
        query = lines[-1].split(". ", 1)[-1] + self.suffix
        return "<answer>" + json.dumps({"query": query}) + "</answer>"
"""


def test_agent_from_a_file_gets_a_row(tmp_path: Path) -> None:
    """A custom agent written in a temporary file is evaluated by the CLI into a row."""
    agent_file = tmp_path / "my_agent.py"
    agent_file.write_text(AGENT_FILE)
    results = tmp_path / "rows.jsonl"
    spec = f"{agent_file}:FirstLineAgent"
    out = _run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "run",
            "--env",
            "RecSeq-v0",
            "--agent",
            spec,
            "--agent-kwargs",
            '{"suffix": " drama"}',
            "--episodes",
            "15",
            "--out",
            str(results),
            "--quiet",
        ]
    )
    assert "FirstLineAgent" in out.stdout
    (row,) = load_rows(results)
    assert row["agent"] == spec and row["agent_config"] == {"suffix": " drama"}
    assert row["episodes"] == 15 and row["metrics"]["format_ok"]["mean"] == 1.0
    # The row's metrics are the scorer's on the same completions.
    env = gym.make("RecSeq-v0", split="test")
    agent = build_agent(spec, env, {"suffix": " drama"})
    scorer: Any = env.unwrapped
    actions = [agent.act(o) for o in scorer.observations(list(range(15)), "test")]
    expected = scorer.score(actions, list(range(15)), "test").metrics["ndcg@10"].mean()
    assert row["metrics"]["ndcg@10"]["mean"] == pytest.approx(expected, abs=1e-12)
    assert shlex.split(row["command"])[7] == spec


def test_bad_agent_specs_say_what_was_expected(tmp_path: Path) -> None:
    env = gym.make("RecSeq-v0", split="test")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_agent(f"{tmp_path}/missing.py:Agent", env)
    (tmp_path / "empty.py").write_text("")
    with pytest.raises(AttributeError, match="has no attribute 'Agent'"):
        build_agent(f"{tmp_path}/empty.py:Agent", env)
    with pytest.raises(KeyError, match=r"path/to/file\.py:Class"):
        build_agent("no-such-agent", env)


_WRITER = """
import sys, time
from pathlib import Path
from benchmarks.runner import append_rows
path, writer, count, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
while not go.exists():  # start together, so the writes overlap
    time.sleep(0.01)
for i in range(count):
    # A row larger than a pipe buffer or a page, as a real row with its command and config is.
    append_rows(path, [{"writer": writer, "i": i, "pad": "x" * (8192 + 97 * writer)}])
"""


def test_concurrent_writers_lose_no_row_and_readers_see_whole_lines(tmp_path: Path) -> None:
    path, go = tmp_path / "board.jsonl", tmp_path / "go"
    writers, count = 5, 40
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), str(w), str(count), str(go)], cwd=REPO
        )
        for w in range(writers)
    ]
    go.touch()
    seen = 0
    while any(p.poll() is None for p in procs):  # read while they write: always whole lines
        if path.exists():
            rows = load_rows(path)  # raises on a half-written line
            assert len(rows) >= seen  # rows are only ever added
            seen = len(rows)
    assert [p.wait() for p in procs] == [0] * writers
    rows = load_rows(path)
    assert len(rows) == writers * count
    for w in range(writers):  # every row of every writer, in its order
        assert [r["i"] for r in rows if r["writer"] == w] == list(range(count))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["board.jsonl", "board.jsonl.lock", "go"]


def test_a_failed_append_leaves_the_file_as_it_was(
    history_row: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rows.jsonl"
    append_rows(path, [history_row])
    before = path.read_bytes()
    with pytest.raises(ValueError, match="Out of range float"):  # NaN is not JSON
        append_rows(path, [history_row, {**history_row, "metrics": {"x": math.nan}}])
    assert path.read_bytes() == before

    def killed(fd: int) -> None:  # the process dies between writing and renaming
        raise KeyboardInterrupt

    monkeypatch.setattr("os.fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        append_rows(path, [history_row])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.jsonl", "rows.jsonl.lock"]
    path.write_bytes(before.rstrip(b"\n"))  # edited by hand, last newline lost
    monkeypatch.undo()
    append_rows(path, [history_row])
    assert load_rows(path) == [history_row, history_row]
