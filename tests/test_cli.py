"""The command lines as a user meets them: help texts, one-line errors, where rows land."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.__main__ import user_results
from benchmarks.runner import load_rows
from benchmarks.store import RESULTS

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    "argv",
    [
        ("recgym.cli", "--help"),
        ("recgym.cli", "bench", "--help"),
        ("recgym.cli", "bench", "run", "--help"),
        ("benchmarks", "--help"),
        ("benchmarks", "report", "--help"),
    ],
)
def test_help_is_plain_text(argv: tuple[str, ...]) -> None:
    out = _run(*argv)
    assert out.returncode == 0, out.stderr
    assert "``" not in out.stdout and ":func:" not in out.stdout and "::" not in out.stdout
    if argv[1] == "bench":
        assert out.stdout.startswith("usage: recgym bench")


def test_an_error_is_one_line_and_debug_shows_the_traceback() -> None:
    out = _run("recgym.cli", "bench", "run", "--env", "RecSeq-v0", "--agent", "nope")
    assert out.returncode == 1
    (line,) = [line for line in out.stderr.splitlines() if line.strip()]
    assert line.startswith("recgym bench: error: no agent named 'nope'") and "--debug" in line
    debug = _run("benchmarks", "--debug", "run", "--env", "RecSeq-v0", "--agent", "nope")
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    fetch = _run("recgym.cli", "data", "fetch", "nope")
    assert fetch.returncode == 1 and fetch.stderr.count("\n") == 1
    assert fetch.stderr.startswith("recgym: error: no artifact named 'nope'")


def test_an_agent_that_cannot_play_the_env_says_so(tmp_path: Path) -> None:
    out = _run(
        "benchmarks",
        "run",
        "--env",
        "RecRank-v0",
        "--agent",
        "history",
        "--episodes",
        "2",
        "--quiet",
        env={"RECGYM_RESULTS": str(tmp_path / "rows.jsonl")},
    )
    assert out.returncode == 1
    assert "agent 'history' cannot play RecRank-v0" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "rows.jsonl").exists()


def test_run_appends_to_the_user_results_not_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    committed = RESULTS.read_bytes()
    target = tmp_path / "mine" / "rows.jsonl"
    argv = ("benchmarks", "run", "--env", "RecSeq-v0", "--agent", "history", "--episodes", "2")
    out = _run(*argv, "--quiet", env={"RECGYM_RESULTS": str(target)})
    assert out.returncode == 0, out.stderr
    assert f"appended to {target}" in out.stdout
    assert [row["agent"] for row in load_rows(target)] == ["history"]
    assert RESULTS.read_bytes() == committed
    monkeypatch.delenv("RECGYM_RESULTS", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert user_results() == tmp_path / "xdg" / "recgym" / "leaderboard.jsonl"
