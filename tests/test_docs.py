"""The MkDocs site: it builds with ``--strict``, every env id has a page generated from its
docstring, and the generating hook refuses a docstring without the required headings."""

from __future__ import annotations

import html as html_lib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import gymnasium as gym
import pytest

import recgym

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
HOOK = DOCS / "hooks" / "envdoc.py"


def _load_hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("recgym_docs_envdoc", HOOK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


envdoc = _load_hook()


def _text(fragment: str) -> str:
    """The text of an HTML fragment (tags removed, entities decoded)."""
    return html_lib.unescape(re.sub(r"<[^>]+>", "", fragment))


def _recgym_ids() -> list[str]:
    recgym.ENVS  # noqa: B018 (the import registers the ids)
    ids = [
        env_id
        for env_id, spec in gym.registry.items()
        if isinstance(spec.entry_point, str) and spec.entry_point.startswith("recgym")
    ]
    assert ids, "recgym registered no env ids"
    return sorted(ids)


def _env_pages() -> dict[str, Path]:
    """Env id -> the docs page holding its marker."""
    pages = {}
    for page in sorted(DOCS.rglob("*.md")):
        for match in envdoc.ENV_MARKER.finditer(page.read_text(encoding="utf-8")):
            pages[match.group(1)] = page
    return pages


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once with ``mkdocs build --strict``."""
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert result.returncode == 0, (
        f"mkdocs build --strict failed (rc {result.returncode}):\n{result.stderr}\n{result.stdout}"
    )
    return out


def test_strict_build_succeeds(site: Path) -> None:
    assert (site / "index.html").is_file()


@pytest.mark.parametrize("env_id", _recgym_ids())
def test_every_env_id_has_a_page(env_id: str) -> None:
    pages = _env_pages()
    assert env_id in pages, (
        f"no docs page has the marker <!-- recgym-env: {env_id} -->; add docs/envs/<name>.md "
        "with it and list the page in mkdocs.yml's nav"
    )
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert pages[env_id].relative_to(DOCS).as_posix() in nav


@pytest.mark.parametrize("env_id", _recgym_ids())
def test_built_env_page_has_every_heading(site: Path, env_id: str) -> None:
    page = _env_pages()[env_id].relative_to(DOCS).with_suffix("")
    html = (site / page / "index.html").read_text(encoding="utf-8")
    assert "recgym-env:" not in html, "the marker was not replaced"
    assert f"<code>{envdoc.env_class(env_id).__module__}:" in html  # the spec table
    headings = [_text(h).rstrip("¶").strip() for h in re.findall(r"<h2[^>]*>(.*?)</h2>", html)]
    for heading in envdoc.REQUIRED_HEADINGS:
        assert heading in headings, f"{env_id}: the built page has no '{heading}' heading"
    assert "``" not in re.sub(r"<(pre|code)>.*?</\1>", "", html, flags=re.DOTALL)


def test_leaderboard_page_includes_the_results_file(site: Path) -> None:
    source = (ROOT / "benchmarks" / "results" / "leaderboard.md").read_text(encoding="utf-8")
    html = (site / "leaderboard" / "index.html").read_text(encoding="utf-8")
    assert "recgym-include:" not in html
    first_env_table = re.search(r"^### (\S+)", source, re.MULTILINE)
    if first_env_table:
        assert first_env_table.group(1) in html


def test_custom_agent_guide_shows_the_example(site: Path) -> None:
    html = (site / "guides" / "custom-agent" / "index.html").read_text(encoding="utf-8")
    assert "class GenreAgent:" in _text(html)  # the included example, highlighted
    assert (site / "examples" / "custom_agent.py").is_file()


DOC = """A test env.

## Description
It does nothing.

## Observation Space
``Text``.

## Action Space
``Text``.

## Rewards
None.

## Episode End
After one step.

## Arguments
- ``split``: ``"train"``.

## Version History
- v0: initial version.
"""


def test_hook_renders_a_complete_docstring() -> None:
    out = envdoc.docstring_markdown(DOC, "Test-v0")
    assert "`Text`" in out and "``" not in out
    assert '- `split`: `"train"`.' in out
    assert "## Rewards" in out


@pytest.mark.parametrize("heading", envdoc.REQUIRED_HEADINGS)
def test_hook_refuses_a_missing_heading(heading: str) -> None:
    doc = DOC.replace(f"## {heading}\n", "")
    with pytest.raises(envdoc.EnvDocError, match=rf"Test-v0.*'## {heading}'"):
        envdoc.docstring_markdown(doc, "Test-v0")


def test_hook_wants_level_two_headings() -> None:
    with pytest.raises(envdoc.EnvDocError, match="'## Rewards'"):
        envdoc.docstring_markdown(DOC.replace("## Rewards", "# Rewards"), "Test-v0")


def test_hook_refuses_an_empty_docstring() -> None:
    with pytest.raises(envdoc.EnvDocError, match="no docstring"):
        envdoc.docstring_markdown(None, "Test-v0")


def test_hook_refuses_an_unknown_env_id() -> None:
    with pytest.raises(envdoc.EnvDocError, match=r"'NoSuchEnv-v0'.*not registered"):
        envdoc.env_markdown("NoSuchEnv-v0")


def test_hook_puts_a_blank_line_before_lists() -> None:
    doc = DOC.replace(
        "## Observation Space\n``Text``.", "## Observation Space\n``Dict``:\n- a\n  b\n- c"
    )
    out = envdoc.docstring_markdown(doc, "Test-v0")
    assert "`Dict`:\n\n- a\n  b\n- c" in out


def test_hook_converts_roles() -> None:
    doc = DOC.replace(
        "It does nothing.", "See :func:`recgym.rewards.parse_completion` and :class:`~a.B`."
    )
    out = envdoc.docstring_markdown(doc, "Test-v0")
    assert "See `recgym.rewards.parse_completion` and `B`." in out


def test_include_rewrites_links_that_leave_the_site(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "page.md").write_text(
        "[a](a.html) [b](b.html) [c](https://x.org) [d](#d)\n"
    )
    out = envdoc.include_markdown(
        tmp_path, "sub/page.md", "https://github.com/o/r", page_dir="", site={"a.html"}
    )
    assert out == (
        "[a](a.html) [b](https://github.com/o/r/blob/main/sub/b.html) [c](https://x.org) [d](#d)\n"
    )


def test_include_wraps_code_and_refuses_a_missing_file(tmp_path: Path) -> None:
    (tmp_path / "x.py").write_text("print(1)\n")
    assert envdoc.include_markdown(tmp_path, "x.py") == "```python\nprint(1)\n```"
    with pytest.raises(envdoc.PluginError, match=r"missing\.md"):
        envdoc.include_markdown(tmp_path, "missing.md")
