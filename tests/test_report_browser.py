"""The HTML leaderboard page in headless Chromium: no console errors, sorting, escaping.

Needs Playwright (the ``dev`` extra) and a Chromium binary: Debian's ``chromium`` package
(``.ci/run`` installs it; Playwright's own browser download is not used), or the path in
``$RECGYM_CHROMIUM``. Without them the test is skipped, unless ``RECGYM_REQUIRE_BROWSER=1``
(CI sets it) turns the skip into a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.page import html_page
from benchmarks.runner import load_rows
from benchmarks.store import RESULTS

HOSTILE = '<img src=x onerror="console.error(\'xss\')"><script>console.error("xss")</script>'
# Chromium's background services reach for the network, which is closed here.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str | None:
    return (
        os.environ.get("RECGYM_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )


def _unavailable(reason: str) -> None:
    if os.environ.get("RECGYM_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser test required (RECGYM_REQUIRE_BROWSER=1) but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[dev]')")
    path = _chromium()
    if path is None:
        _unavailable("no chromium binary (apt-get install chromium, or set RECGYM_CHROMIUM)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed rows plus one with a hostile agent name, as a page on disk."""
    rows = load_rows(RESULTS)
    hostile = {**rows[0], "agent": HOSTILE, "agent_config": {"x": "</details><b>y</b>"}}
    stale = {**rows[1], "stale": ["data 0 differs from the current data 1"]}
    path = tmp_path_factory.mktemp("page") / "leaderboard.html"
    path.write_text(html_page([*rows, hostile, stale]), encoding="utf-8")
    return path


@pytest.fixture
def page(browser: Any, page_file: Path) -> Iterator[Any]:
    page = browser.new_page()
    page.problems = []  # console errors, uncaught exceptions, dialogs (alert) and requests
    page.on("console", lambda m: m.type in ("error", "warning") and page.problems.append(m.text))
    page.on("pageerror", lambda e: page.problems.append(f"pageerror: {e}"))
    page.on("dialog", lambda d: (page.problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("request", lambda r: r.url.startswith("file:") or page.problems.append(r.url))
    page.goto(page_file.as_uri())
    page.wait_for_load_state("load")
    yield page
    page.close()


def _column(page: Any, env_id: str, col: int) -> list[str]:
    """Column ``col`` of the env's first (canonical) ranked table."""
    cells = page.locator(f'table[data-env="{env_id}"][data-kind="ranked"]').first.locator(
        "tbody tr"
    )
    return [
        cells.nth(i).locator("td").nth(col).get_attribute("data-value")
        for i in range(cells.count())
    ]


def test_page_loads_without_errors(page: Any) -> None:
    assert page.title() == "recgym leaderboard"
    assert page.problems == []
    envs = {row["env_id"] for row in load_rows(RESULTS)}
    for env_id in envs:
        tables = page.locator(f'table[data-env="{env_id}"][data-kind="ranked"]').count()
        assert tables >= 1  # one per protocol, each with its two plots
        assert page.locator(f'section[id="{env_id}"] svg').count() == 2 * tables
    # The stale row is shown apart, with its reason.
    assert "data 0 differs" in page.locator('table[data-kind="stale"]').inner_text()


def test_hostile_agent_name_is_text(page: Any) -> None:
    agents = page.locator("span.agent").all_text_contents()
    assert HOSTILE in agents  # rendered as the literal string
    assert page.locator("table img").count() == 0
    assert page.locator("table script, table b").count() == 0
    assert page.problems == []


def test_columns_sort(page: Any) -> None:
    env_id = "RecRank-v0"
    header = page.locator(f'table[data-env="{env_id}"][data-kind="ranked"]').first.locator("th")
    initial = [float(v) for v in _column(page, env_id, 2)]
    assert initial == sorted(initial, reverse=True)  # served best first
    header.nth(2).click()
    assert header.nth(2).get_attribute("aria-sort") == "ascending"
    ascending = [float(v) for v in _column(page, env_id, 2)]
    assert ascending == sorted(initial)
    header.nth(2).click()
    assert [float(v) for v in _column(page, env_id, 2)] == sorted(initial, reverse=True)
    header.nth(0).click()  # text column
    names = _column(page, env_id, 0)
    assert names == sorted(names, key=str.lower)
    assert page.problems == []


def test_filter_box_hides_the_rows_without_its_words(page: Any) -> None:
    rows = page.locator("table.board tbody tr")
    total = rows.count()
    page.fill("#filter", "RANDOM-order")
    shown = [rows.nth(i) for i in range(total) if rows.nth(i).is_visible()]
    assert shown and all("random-order" in row.inner_text() for row in shown)
    page.fill("#filter", "random-order no-such-word")  # every word must be in the row
    assert sum(rows.nth(i).is_visible() for i in range(total)) == 0
    page.fill("#filter", "")
    assert sum(rows.nth(i).is_visible() for i in range(total)) == total
    assert page.problems == []


def test_no_row_string_runs_script_and_every_row_renders(browser: Any, tmp_path: Path) -> None:
    from conftest import HOSTILE_STRINGS, hostile_rows

    from benchmarks.store import check_rows

    rows = check_rows(hostile_rows(load_rows(RESULTS)), check_data=False)
    path = tmp_path / "leaderboard.html"
    path.write_text(html_page(rows, sources=HOSTILE_STRINGS), encoding="utf-8")
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: m.type in ("error", "warning") and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("request", lambda r: r.url.startswith("file:") or problems.append(r.url))
    page.on("frameattached", lambda f: problems.append(f"frame: {f.url}"))
    try:
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        for link in page.locator("nav a").all():  # fragment links, never javascript:
            link.click()
        page.locator("details summary").first.click()
        page.locator("table.board th").first.click()  # the sorter runs over hostile values
        assert page.evaluate("window.pwned") is None
        assert page.evaluate("document.scripts.length") == 1
        assert page.evaluate("getComputedStyle(document.body).display") != "none"
        assert page.locator("img, iframe, table script").count() == 0
        # Every row is rendered once, its agent name as the literal string.
        assert page.locator("table.board tbody tr").count() == len(rows)
        agents = page.locator("span.agent").all_text_contents()
        assert sorted({a.split(" (")[0] for a in agents}) == sorted(HOSTILE_STRINGS)
        assert page.locator("section svg").count() >= 2
        assert problems == []
    finally:
        page.close()
