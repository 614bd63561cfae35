"""Leaderboard rows (see :mod:`benchmarks.runner`) as Markdown: one table per env id.

Rows are sorted by each env's main metric (NDCG@10; for ``RecRank-v0`` its full-ranking
equivalent; for ``RecUser-v0`` the episode return), best first; each metric cell is
``mean ± ci95`` (the 95 % Student-t interval over episodes), and the commands that regenerate
the rows follow each table. Rows that :func:`benchmarks.store.check_rows` found stale (a
non-empty ``stale`` list) are listed under their env's table with the reasons, never ranked in
it. Every string that comes from a row is escaped, so an agent name cannot inject Markdown or HTML.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_METRICS",
    "ENV_METRICS",
    "EnvBoard",
    "agent_label",
    "budget_label",
    "env_boards",
    "env_metrics",
    "markdown_table",
    "sort_metric",
]

DEFAULT_METRICS = ("reward", "ndcg@10", "ndcg@100", "recall@10", "recall@50", "format_ok")
"""The columns of the text envs' tables; the first after ``reward`` orders the rows."""
ENV_METRICS: dict[str, tuple[str, ...]] = {
    "RecRank-v0": (
        "reward",
        "full/ndcg@10",
        "full/recall@10",
        "full/ndcg@20",
        "full/recall@20",
        "cand/recall@1",
        "cand/hit",
    ),
    "RecNext-v0": ("reward", "ndcg@10", "ndcg@20", "hit@5", "hit@10", "hit@20"),
    "RecPref-v0": ("reward", "ndcg@10", "ndcg@5", "hit@1", "hit@5", "hit@10"),
    "RecUser-v0": ("reward", "return", "length", "taken"),
}
"""Columns of the envs whose metrics differ from :data:`DEFAULT_METRICS`."""


def env_metrics(env_id: str) -> tuple[str, ...]:
    """The metric columns of ``env_id``'s table."""
    return ENV_METRICS.get(env_id, DEFAULT_METRICS)


def sort_metric(columns: Sequence[str]) -> str:
    """The metric that orders a table: the first column after ``reward``."""
    return columns[1] if len(columns) > 1 else columns[0]


def _md(text: object) -> str:
    """``text`` safe in a Markdown table cell: HTML-escaped, pipes and newlines neutralised."""
    return html.escape(" ".join(str(text).split())).replace("|", "\\|")


def _fence(lines: Sequence[str]) -> str:
    """A code fence longer than any backtick run in ``lines`` (a command cannot close it)."""
    longest = max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0)
    return "`" * max(3, longest + 1)


def _cell(stats: Mapping[str, Any] | None) -> str:
    if not stats:
        return "–"
    ci = stats.get("ci95")
    return f"{stats['mean']:.4f}" + (f" ± {ci:.4f}" if ci is not None else "")


def _sort_key(row: Mapping[str, Any], metric: str) -> float:
    stats = row.get("metrics", {}).get(metric)
    return -float(stats["mean"]) if stats else float("inf")


def agent_label(row: Mapping[str, Any]) -> str:
    """The agent's name and, if its config names one, its model, else its algorithm (an SB3
    model's class, then its policy class and start, unescaped); a reasoning agent run without
    its reasoning (``"reasoning": false``, R²ec's ablation) says so."""
    config = row.get("agent_config") or {}
    if not isinstance(config, Mapping):
        config = {}
    named = config.get("model") or config.get("algo")
    details = [str(named).rpartition(":")[2]] if named else []
    if config.get("policy"):  # an SB3 model: which policy, and where it started
        start = config.get("policy_start")
        details.append(str(config["policy"]) + (f" from {start}" if start else ""))
    if config.get("reasoning") is False:
        details.append("no reasoning")
    return str(row["agent"]) + (f" ({', '.join(details)})" if details else "")


def budget_label(row: Mapping[str, Any]) -> str:
    """``"12.5 min (NVIDIA H100)"``, or ``"–"`` for an untrained agent (unescaped)."""
    budget = row.get("budget")
    if budget is None:
        return "–"
    device = row.get("budget_device")
    return f"{float(budget):g} min" + (f" ({device})" if device else "")


def _setting(row: Mapping[str, Any]) -> str:
    k = "" if row.get("k") is None else f"k={row.get('k')}, "  # an interactive env has no k
    return f"{k}reward={row.get('reward')}, data {row.get('data_version')}"


@dataclass(frozen=True)
class EnvBoard:
    """One env's part of a leaderboard (what both the Markdown and the HTML report show).

    Attributes:
        env_id: the env id.
        metrics: the metric columns; the ranking metric is :func:`sort_metric` of them.
        ranked: the fresh rows, best first.
        stale: the rows with a non-empty ``stale`` list, in input order (never ranked).
        settings: the ranked rows' distinct ``k``, reward and data digest, ``"; "``-joined.
    """

    env_id: str
    metrics: tuple[str, ...]
    ranked: list[Mapping[str, Any]]
    stale: list[Mapping[str, Any]]
    settings: str


def env_boards(
    rows: Sequence[Mapping[str, Any]], metrics: Sequence[str] | None = None
) -> list[EnvBoard]:
    """Rows grouped per env id (in order of first appearance), ranked rows apart from stale.

    ``metrics`` overrides every env's :func:`env_metrics`.
    """
    envs: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        envs.setdefault(str(row["env_id"]), []).append(row)
    boards = []
    for env_id, env_rows in envs.items():
        columns = tuple(metrics or env_metrics(env_id))
        fresh = [r for r in env_rows if not r.get("stale")]
        ranked = sorted(fresh, key=lambda r: _sort_key(r, sort_metric(columns)))
        settings = "; ".join(sorted({_setting(r) for r in ranked}))
        stale = [r for r in env_rows if r.get("stale")]
        boards.append(EnvBoard(env_id, columns, ranked, stale, settings))
    return boards


def markdown_table(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str] | None = None) -> str:
    """One Markdown table per env id (in order of first appearance), best first.

    Columns: the agent (and its model, if any), each of ``metrics`` (default: the env's
    :func:`env_metrics`) as ``mean ± ci95``, then split, episodes, seeds, training budget and
    device; rows are ordered by :func:`sort_metric`. Below each table, the command of each
    row, then the stale rows (those with a non-empty ``stale`` list) with their reasons.
    """
    if not rows:
        return "(no results)\n"
    out: list[str] = []
    for board in env_boards(rows, metrics):
        columns, ordered, stale, env_id = board.metrics, board.ranked, board.stale, board.env_id
        out.append(f"### {_md(env_id)}\n")
        if ordered:
            out.append(f"{_md(board.settings)}\n")
            header = ["agent", *columns, "split", "episodes", "seeds", "budget", "device"]
            out.append("| " + " | ".join(header) + " |")
            out.append("|" + "|".join(["---"] + ["---:"] * len(columns) + ["---"] * 5) + "|")
            for row in ordered:
                cells = [_md(agent_label(row))]
                cells += [_cell(row.get("metrics", {}).get(m)) for m in columns]
                seeds = ",".join(str(s) for s in row.get("seeds", []))
                cells += [_md(row.get("split")), _md(row.get("episodes")), _md(seeds)]
                cells += [_md(budget_label(row)), _md(row.get("device"))]
                out.append("| " + " | ".join(cells) + " |")
            commands = [str(row.get("command")) for row in ordered]
            fence = _fence(commands)
            out += ["\nTo regenerate a row:\n", f"{fence}bash", *commands, f"{fence}\n"]
        if stale:
            out.append(f"Stale rows of {_md(env_id)} (not ranked; re-run their commands):\n")
            for row in stale:
                reasons = "; ".join(str(reason) for reason in row["stale"])
                out.append(f"- {_md(agent_label(row))}: {_md(reasons)}")
            commands = [str(row.get("command")) for row in stale]
            fence = _fence(commands)
            out += ["", f"{fence}bash", *commands, f"{fence}\n"]
    return "\n".join(out)
