"""The leaderboard store and report: latest rows, stale rows, escaping, the committed report."""

from __future__ import annotations

import copy
import functools
import json
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

import recgym  # noqa: F401 (registers the envs)
from benchmarks.page import html_page
from benchmarks.report import write_report
from benchmarks.runner import append_rows, evaluate, load_rows
from benchmarks.store import RESULTS, check_rows, latest_rows, row_key
from benchmarks.table import agent_label, markdown_table
from recgym.evaluation import EvalSpec

REPO = Path(__file__).resolve().parents[1]
HOSTILE = '<img src=x onerror="console.error(1)"><script>alert("x")</script> | **bold** `tick'


@pytest.fixture(scope="module")
def row() -> dict[str, Any]:
    """A real, cheap RecSeq-v0 row (the history agent on 10 test episodes, two seeds)."""
    from agents import make_agent

    agent = make_agent("history", gym.make("RecSeq-v0", split="test"))
    return evaluate(EvalSpec("RecSeq-v0", "history", episodes=10, seeds=(0, 1)), agent)


@pytest.fixture
def versioned_env() -> Iterator[str]:
    """``RecgymStaleTest-v0`` and ``-v1`` registered (RecSeq-v0's class) for the test only."""
    entry = gym.spec("RecSeq-v0").entry_point
    for version in (0, 1):
        gym.register(f"RecgymStaleTest-v{version}", entry_point=entry)
    yield "RecgymStaleTest"
    for version in (0, 1):
        del gym.registry[f"RecgymStaleTest-v{version}"]


def test_a_rerun_replaces_its_row(row: dict[str, Any]) -> None:
    rerun = {**row, "timestamp": "later", "wall_seconds": 9.0, "command": "spelt otherwise"}
    other = {**row, "budget": 1.0}
    kept = latest_rows([row, other, rerun])
    assert [r["timestamp"] for r in kept] == ["later", row["timestamp"]]
    assert kept[0]["wall_seconds"] == 9.0 and kept[1]["budget"] == 1.0
    for field, value in [("seeds", [9]), ("episodes", 3), ("agent_config", {"a": 1})]:
        assert row_key({**row, field: value}) != row_key(row), field


def test_fresh_row_passes_the_checks(row: dict[str, Any]) -> None:
    (checked,) = check_rows([row])
    assert checked["stale"] == []
    assert {k: v for k, v in checked.items() if k != "stale"} == row


def test_changed_data_is_flagged(row: dict[str, Any]) -> None:
    old = {**row, "data_version": "0123456789abcdef"}
    (checked,) = check_rows([old])
    assert len(checked["stale"]) == 1
    assert "data 0123456789abcdef differs from the current data" in checked["stale"][0]
    assert row["data_version"] in checked["stale"][0]
    # Without the data check, only versions are checked.
    assert check_rows([old], check_data=False)[0]["stale"] == []


def test_env_versions_are_checked(row: dict[str, Any], versioned_env: str) -> None:
    superseded = {**row, "env_id": f"{versioned_env}-v0", "env_version": "v0"}
    current = {**row, "env_id": f"{versioned_env}-v1", "env_version": "v1"}
    gone = {**row, "env_id": f"{versioned_env}-v7", "env_version": "v7"}
    mislabeled = {**row, "env_version": "v3"}
    checked = check_rows([superseded, current, gone, mislabeled], check_data=False)
    assert checked[0]["stale"] == [f"superseded by {versioned_env}-v1"]
    assert checked[1]["stale"] == []
    assert checked[2]["stale"] == [
        f"{versioned_env}-v7 is no longer registered (registered: {versioned_env}-v1)"
    ]
    assert checked[3]["stale"] == ["env_version 'v3' does not match RecSeq-v0"]


def test_unbuildable_env_is_flagged(row: dict[str, Any]) -> None:
    broken = copy.deepcopy(row)
    broken["env_kwargs"]["k"] = -5
    (checked,) = check_rows([broken])
    assert checked["stale"] and checked["stale"][0].startswith("cannot rebuild RecSeq-v0")
    assert "k must be >= 1" in checked["stale"][0]


def test_stale_rows_are_not_ranked(row: dict[str, Any]) -> None:
    best_but_stale = {
        **row,
        "agent": "stale-agent",
        "budget": 3.0,
        "metrics": {**row["metrics"], "ndcg@10": {"mean": 0.99, "ci95": 0.0}},
        "stale": ["superseded by RecSeq-v1"],
    }
    fresh = {**row, "stale": []}
    table = markdown_table([best_but_stale, fresh])
    ranked, _, stale_part = table.partition("Stale rows of RecSeq-v0")
    assert "| history |" in ranked and "stale-agent" not in ranked
    assert "- stale-agent: superseded by RecSeq-v1" in stale_part
    page = html_page([best_but_stale, fresh])
    ranked_html, _, stale_html = page.partition('data-kind="stale"')
    assert "stale-agent" not in ranked_html and "stale-agent" in stale_html


def test_user_strings_are_escaped(row: dict[str, Any]) -> None:
    hostile = {
        **row,
        "agent": HOSTILE,
        "agent_config": {"note": "</code><script>x()</script>"},
        "command": "python -m benchmarks run ```\n<b>",
    }
    table = markdown_table([hostile])
    assert "<img" not in table and "<script" not in table
    assert "&lt;img src=x" in table and "\\|" in table
    fence = "````"  # longer than the ``` inside the command, so the command cannot close it
    assert f"{fence}bash\npython -m benchmarks run ```" in table
    page = html_page([hostile])
    body = page[: page.index("<script>")]  # the page's own script comes last
    assert "<img" not in body and "<script" not in body and "<b>" not in body
    assert "&lt;img src=x onerror=&quot;console.error(1)&quot;&gt;" in body
    assert "&lt;/code&gt;&lt;script&gt;x()&lt;/script&gt;" in body


def test_report_writes_both_files(row: dict[str, Any], tmp_path: Path) -> None:
    results = tmp_path / "rows.jsonl"
    append_rows(results, [row, {**row, "data_version": "old"}])  # the re-run replaces the first
    append_rows(results, [{**row, "agent": "other"}])
    md, page = write_report([results], tmp_path / "out")
    text = md.read_text()
    assert text.startswith("# recgym leaderboard") and "### RecSeq-v0" in text
    # The latest "history" row has the old data: it is listed as stale, "other" is ranked.
    assert "- history: data old differs from the current data" in text
    assert "| other |" in text
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and html.count("<svg") == 2
    assert "ndcg@10 per seed" in html


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_committed_report_is_up_to_date(tmp_path: Path) -> None:
    """``python -m benchmarks report`` rebuilds the committed files byte for byte."""
    _cli("benchmarks", "report", "--out-dir", str(tmp_path), "--skip-data-check", "--quiet")
    for name in ("leaderboard.md", "leaderboard.html"):
        committed = (RESULTS.parent / name).read_text()
        assert (tmp_path / name).read_text() == committed, (
            f"benchmarks/results/{name} is out of date: run python -m benchmarks report"
        )


def test_recgym_cli_aliases(tmp_path: Path) -> None:
    _cli("recgym.cli", "report", "--out-dir", str(tmp_path), "--skip-data-check", "--quiet")
    assert (tmp_path / "leaderboard.html").read_text().startswith("<!DOCTYPE html>")
    out = _cli("recgym.cli", "bench", "table", "--results", str(RESULTS))
    assert "### RecSeq-v0" in out.stdout


def test_agent_labels_name_the_model_and_a_missing_reasoning() -> None:
    assert agent_label({"agent": "history", "agent_config": {}}) == "history"
    with_model = {"agent": "rec-head", "agent_config": {"model": "smollm2-135m"}}
    assert agent_label(with_model) == "rec-head (smollm2-135m)"
    with_model["agent_config"]["reasoning"] = False
    assert agent_label(with_model) == "rec-head (smollm2-135m, no reasoning)"


class _Page(HTMLParser):
    """What a browser's parser makes of a page: elements, attributes, text and scripts."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str]] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [(name, value or "") for name, value in attrs]
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data
        else:
            self.text.append(data)

    def handle_comment(self, data: str) -> None:
        raise AssertionError(f"a comment reached the page: {data!r}")


def test_every_row_string_reaches_the_page_as_text() -> None:
    from conftest import HOSTILE_STRINGS, hostile_rows

    rows = load_rows(RESULTS)
    hostile = hostile_rows(rows)
    page = _Page(html_page(check_rows(hostile, check_data=False), sources=HOSTILE_STRINGS))
    # The same rows with a plain word for each hostile string: the page's structure.
    plain = [
        json.loads(
            functools.reduce(
                lambda text, pair: text.replace(json.dumps(pair[1])[1:-1], f"plain{pair[0]}"),
                enumerate(HOSTILE_STRINGS),
                json.dumps(row),
            )
        )
        for row in hostile
    ]
    sources = [f"plain{i}" for i in range(len(HOSTILE_STRINGS))]
    reference = _Page(html_page(check_rows(plain, check_data=False), sources=sources))
    assert page.tags == reference.tags  # no element added, none closed early
    assert [name for name, _ in page.attrs] == [name for name, _ in reference.attrs]
    assert not [name for name, _ in page.attrs if name.startswith("on")]
    # Links: the page's own anchors, or files inside the checkout (never a scheme or "..").
    hrefs = [value for name, value in page.attrs if name == "href"]
    for href in hrefs:
        inside = href.startswith("../../") and ".." not in href[6:] and ":" not in href
        assert href.startswith("#") or inside, href
    assert page.scripts == reference.scripts and len(page.scripts) == 1  # the sorter only
    text = "".join(page.text)
    values = {value for _, value in page.attrs}
    for s in HOSTILE_STRINGS:  # shown as the literal string, in text and in data-value
        assert s in text and s in values, s


def test_a_rows_files_are_linked_inside_the_checkout_only() -> None:
    from benchmarks.page import _files

    row = {
        "seeds": [0, 1],
        "agent_config": {"path": "benchmarks/results/run/ppo-seed{seed}.zip"},
        "training": {"command": "x", "config": "benchmarks/results/run/study.json"},
    }
    assert _files(row) == [
        ("path (seed 0)", "benchmarks/results/run/ppo-seed0.zip"),
        ("path (seed 1)", "benchmarks/results/run/ppo-seed1.zip"),
        ("config", "benchmarks/results/run/study.json"),
    ]
    for bad in ("/work/runs/adapter", "../secrets", "javascript:alert(1)", "a b", "x/../../y"):
        assert _files({"seeds": [0], "agent_config": {"adapter": bad}}) == [], bad
    # A seed is put into the path before the check: a hostile one never makes a link.
    hostile = {"seeds": ["x:alert(1)", "../..", 2], "agent_config": {"path": "r/m-{seed}.zip"}}
    assert _files(hostile) == [("path (seed 2)", "r/m-2.zip")]
