"""Every benchmark script runs end to end on a tiny budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import bm25_throughput, reward_scoring
from benchmarks.perf import grpo_step, reward_sweep, rollout


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
        ["--corpora", "zipf-3000", "--prompts", "3", "--group", "4", "--k", "50",
         "--repeats", "1", "--reference-queries", "2", "--vocab", "2000", "--profile"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "zipf-3000: 3000 documents, 12 completions, NDCG@50" in out
    # The three ways score the same rewards (rank-bm25 on its timed rows).
    assert "max |NDCG difference| vs recgym: bm25s 0.00e+00, rank-bm25 0.00e+00" in out
    assert "zipf-3000        recgym" in out and "rank-bm25" in out.split("summary")[1]
    assert "kernel, 1 thread(s), depth 1 " in out and "NDCG" in out


def test_rollout_smoke(tiny_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rollout.main(["--model", str(tiny_dir), "--batch-sizes", "2", "--max-new-tokens", "4",
                  "--repeats", "1", "--device", "cpu", "--profile"])  # fmt: skip
    out = capsys.readouterr().out
    assert "batch 2:" in out and "recgym vs generate" in out
    assert out.count("tokens/s") == 2  # no static+compile row on CPU
    assert "profile of one recgym call (by cpu_time_total)" in out


def test_grpo_step_smoke(tiny_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    means = grpo_step.main(["--model", str(tiny_dir), "--prompts", "2", "--group", "2",
                            "--max-new-tokens", "4", "--steps", "1"])  # fmt: skip
    assert set(means) == set(grpo_step.PARTS) and all(v > 0 for v in means.values())
    assert "scoring share" in capsys.readouterr().out
