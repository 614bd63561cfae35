"""Every benchmark script runs end to end on a tiny budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.perf import (
    bm25_throughput,
    grpo_step,
    long_run_memory,
    reward_scoring,
    reward_sweep,
    rollout,
)


def test_bm25_throughput_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    bm25_throughput.main(
        ["--docs-from", "synthetic", "--queries", "8", "--k", "5", "--repeats", "1"]
    )
    out = capsys.readouterr().out
    assert "queries/s" in out
    assert "identical top-5 lists 1.0000" in out


def test_reward_scoring_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    reward_scoring.main(["--env", "all", "--prompts", "2", "--group", "3", "--repeats", "1"])
    out = capsys.readouterr().out
    assert "RecSearch-v0: k=1000" in out and "RecSeq-v0: k=5000" in out
    assert out.count("2 prompts x 3 completions = 6") == 2
    assert out.count("same rewards: True") == 2


def test_reward_sweep_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    reward_sweep.main(
        [
            "--corpora",
            "zipf-3000",
            "--prompts",
            "3",
            "--group",
            "4",
            "--k",
            "50",
            "--repeats",
            "1",
            "--reference-queries",
            "2",
            "--vocab",
            "2000",
            "--profile",
        ]
    )
    out = capsys.readouterr().out
    assert "zipf-3000: 3000 documents, 12 completions, NDCG@50" in out
    # The three ways score the same rewards (rank-bm25 on its timed rows).
    assert "max |NDCG difference| vs recgym: bm25s 0.00e+00, rank-bm25 0.00e+00" in out
    assert "zipf-3000        recgym" in out and "rank-bm25" in out.split("summary")[1]
    assert "kernel, 1 thread(s), depth 1 " in out and "NDCG" in out


def test_long_run_memory_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--user-steps", "640", "--num-envs", "8", "--search-steps", "30", "--warmup", "16"]
    # A tiny run measures noise, not a trend: the smoke test checks the report, not the limit.
    assert long_run_memory.main([*args, "--completions", "12", "--max-growth", "10"]) == 0
    out = capsys.readouterr().out
    assert "RecUser-v0 (le='fake', num_envs=8): 640 steps in" in out
    assert "RecSearch-v0 (reset + step, 12 completions): 30 steps in" in out
    assert out.count("| RSS (MiB) |") == 2 and out.count("| Python blocks |") == 2
    assert out.count("RSS at the start and after each of 10 even parts (MiB): ") == 2
    assert "largest RSS growth" in out and ": flat" in out


def test_rollout_smoke(tiny_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rollout.main(
        [
            "--model",
            str(tiny_dir),
            "--batch-sizes",
            "2",
            "--max-new-tokens",
            "4",
            "--repeats",
            "1",
            "--device",
            "cpu",
            "--profile",
        ]
    )
    out = capsys.readouterr().out
    assert "batch 2:" in out and "recgym vs generate" in out
    assert out.count("tokens/s") == 2  # no static+compile row on CPU
    assert "profile of one recgym call (by cpu_time_total)" in out


def test_grpo_step_smoke(tiny_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    means = grpo_step.main(
        [
            "--model",
            str(tiny_dir),
            "--prompts",
            "2",
            "--group",
            "2",
            "--max-new-tokens",
            "4",
            "--steps",
            "1",
        ]
    )
    assert set(means) == set(grpo_step.PARTS) and all(v > 0 for v in means.values())
    assert "scoring share" in capsys.readouterr().out


# ------------------------------------------------------- old paths of the moved scripts (issue 23)

MOVED = {
    "benchmarks.bm25_throughput": "benchmarks.perf.bm25_throughput",
    "benchmarks.recuser_throughput": "benchmarks.perf.recuser_throughput",
    "benchmarks.reward_scoring": "benchmarks.perf.reward_scoring",
    "benchmarks.recpo_refresh_bias": "benchmarks.studies.recpo_refresh_bias",
    "benchmarks.recpref_lift": "benchmarks.studies.recpref_lift",
    "benchmarks.recuser_sb3": "benchmarks.studies.recuser_sb3",
    "benchmarks.rl4rec_ablation": "benchmarks.studies.rl4rec_ablation",
    "benchmarks.seqrec": "benchmarks.studies.seqrec",
}


def test_every_moved_script_is_registered_and_lives_at_its_new_path() -> None:
    import importlib.util

    import benchmarks
    from recgym.utils.moved import moved_modules

    registered = {k: v for k, v in moved_modules().items() if k.startswith("benchmarks.")}
    assert registered == MOVED
    root = Path(benchmarks.__file__).parent
    for old, new in MOVED.items():
        assert not (root / f"{old.split('.')[-1]}.py").exists()  # no shim file left behind
        assert importlib.util.find_spec(new) is not None


def test_an_old_script_path_imports_the_moved_module_with_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib
    import sys

    monkeypatch.delitem(sys.modules, "benchmarks.reward_scoring", raising=False)
    with pytest.warns(DeprecationWarning, match=r"benchmarks\.reward_scoring moved to benchmarks"):
        old = importlib.import_module("benchmarks.reward_scoring")
    assert old is reward_scoring
    assert old.timed is reward_scoring.timed


def test_python_dash_m_of_an_old_script_path_runs_the_moved_script() -> None:
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-W",
            "always::DeprecationWarning",
            "-m",
            "benchmarks.recuser_throughput",
            "--le",
            "fake",
            "--le-kwargs",
            '{"n_items": 20}',
            "--steps",
            "2",
            "--sizes",
            "2",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert "run python -m benchmarks.perf.recuser_throughput" in done.stderr
    assert "torch threads" in done.stdout
