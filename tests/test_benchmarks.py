"""Every benchmark script runs end to end on a tiny budget."""

from __future__ import annotations

import pytest

from benchmarks import bm25_throughput


def test_bm25_throughput_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    bm25_throughput.main(
        ["--docs-from", "synthetic", "--queries", "8", "--k", "5", "--repeats", "1"]
    )
    out = capsys.readouterr().out
    assert "queries/s" in out
    assert "identical top-5 lists 1.0000" in out
