"""Leaderboard rows (see :mod:`benchmarks.runner`) as Markdown: per env id, one table per
evaluation protocol (:mod:`benchmarks.protocol`), the canonical one first.

Rows are sorted by each env's main metric (NDCG@10; for ``RecRank-v0`` its full-ranking
equivalent; for ``RecUser-v0`` the episode return), best first; each metric cell is
``mean ± ci95`` (the 95 % Student-t interval over episodes), and the commands that regenerate
the rows follow each table. Rows that :func:`benchmarks.store.check_rows` found stale (a
non-empty ``stale`` list) are listed under their env's table with the reasons, never ranked in
it. Every string that comes from a row is escaped, so an agent name cannot inject Markdown or HTML.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.protocol import Protocol, protocol_of

__all__ = [
    "DEFAULT_METRICS",
    "ENV_METRICS",
    "EnvBoard",
    "ProtocolTable",
    "agent_label",
    "budget_label",
    "env_boards",
    "env_metrics",
    "markdown_table",
    "overlaps_best",
    "row_labels",
    "sort_metric",
    "training_lines",
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
    "RecNext-v0": (
        "reward",
        "ndcg@10",
        "ndcg@20",
        "hit@10",
        "hit@20",
        "unmasked/ndcg@10",
        "unmasked/hit@10",
    ),
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


_RUN_ONLY = frozenset({"batch_size"})
"""Agent settings that change how fast a row runs, not what it measures: named in a label
only when nothing else tells two rows apart."""


def _value(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 40 else "…" + text[-39:]


def row_labels(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """A unique label per row of one table: :func:`agent_label`, and for rows that share it
    what differs between them (agent settings, seeds, training budget), else ``#2``, ``#3``."""
    labels = [agent_label(row) for row in rows]
    groups: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)
    for members in groups.values():
        if len(members) < 2:
            continue
        configs = [dict(rows[i].get("agent_config") or {}) for i in members]
        keys = sorted({k for c in configs for k in c})
        differ = [k for k in keys if len({_value(c.get(k)) for c in configs}) > 1]
        shown = [k for k in differ if k not in _RUN_ONLY] or differ
        for i, config in zip(members, configs, strict=True):
            details = [f"{k}={_value(config.get(k))}" for k in shown]
            if len({tuple(rows[j].get("seeds") or []) for j in members}) > 1:
                details.append("seeds " + ",".join(str(s) for s in rows[i].get("seeds") or []))
            if len({rows[j].get("budget") for j in members}) > 1:
                details.append(budget_label(rows[i]))
            if details:
                labels[i] += f" [{'; '.join(details)}]"
    seen: dict[str, int] = {}
    for i, label in enumerate(labels):
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            labels[i] = f"{label} #{seen[label]}"
    return labels


def overlaps_best(rows: Sequence[Mapping[str, Any]], metric: str) -> list[str]:
    """Per row of a ranked table: ``"best"`` for the first row with ``metric``, ``"overlaps"``
    where the row's 95 % interval overlaps the best row's (no clear difference), else ``""``."""
    best = next((r["metrics"][metric] for r in rows if r.get("metrics", {}).get(metric)), None)
    marks = []
    for row in rows:
        stats = row.get("metrics", {}).get(metric)
        if best is None or not stats:
            marks.append("")
        elif stats is best:
            marks.append("best")
        else:
            gap = float(best["mean"]) - float(stats["mean"])
            reach = float(best.get("ci95") or 0.0) + float(stats.get("ci95") or 0.0)
            marks.append("overlaps" if abs(gap) <= reach else "")
    return marks


@dataclass(frozen=True)
class ProtocolTable:
    """The fresh rows of one protocol (:mod:`benchmarks.protocol`), ranked.

    Attributes:
        protocol: what the rows measured.
        ranked: the rows, best first.
        labels: a unique label per ranked row (:func:`row_labels`).
        marks: per ranked row, :func:`overlaps_best` of the ranking metric.
        settings: the rows' distinct ``k``, reward and data digest, ``"; "``-joined.
    """

    protocol: Protocol
    ranked: list[Mapping[str, Any]]
    labels: list[str]
    marks: list[str]
    settings: str


@dataclass(frozen=True)
class EnvBoard:
    """One env's part of a leaderboard (what both the Markdown and the HTML report show).

    Attributes:
        env_id: the env id.
        metrics: the metric columns; the ranking metric is :func:`sort_metric` of them.
        tables: one table per protocol of the fresh rows, the canonical protocol first, then
            the others by episodes played (most first).
        stale: the rows with a non-empty ``stale`` list, in input order (never ranked).
    """

    env_id: str
    metrics: tuple[str, ...]
    tables: list[ProtocolTable]
    stale: list[Mapping[str, Any]]

    @property
    def ranked(self) -> list[Mapping[str, Any]]:
        """Every fresh row, table after table."""
        return [row for table in self.tables for row in table.ranked]


def env_boards(
    rows: Sequence[Mapping[str, Any]], metrics: Sequence[str] | None = None
) -> list[EnvBoard]:
    """Rows grouped per env id (in order of first appearance), then per protocol; stale rows
    apart. A row of an env id that is no longer registered is always stale.

    ``metrics`` overrides every env's :func:`env_metrics`.
    """
    envs: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        envs.setdefault(str(row["env_id"]), []).append(row)
    boards = []
    for env_id, env_rows in envs.items():
        columns = tuple(metrics or env_metrics(env_id))
        metric = sort_metric(columns)
        protocols: dict[tuple[Any, ...], tuple[Protocol, list[Mapping[str, Any]]]] = {}
        for row in env_rows:
            if not row.get("stale"):
                protocol = protocol_of(row)
                protocols.setdefault(protocol.key, (protocol, []))[1].append(row)
        tables = []
        for protocol, members in sorted(
            protocols.values(), key=lambda pair: (not pair[0].canonical, -(pair[0].episodes or 0))
        ):
            ranked = sorted(members, key=lambda r: _sort_key(r, metric))
            settings = "; ".join(sorted({_setting(r) for r in ranked}))
            marks = overlaps_best(ranked, metric)
            tables.append(ProtocolTable(protocol, ranked, row_labels(ranked), marks, settings))
        stale = [r for r in env_rows if r.get("stale")]
        boards.append(EnvBoard(env_id, columns, tables, stale))
    return boards


def training_lines(row: Mapping[str, Any]) -> list[str]:
    """How a trained row's agent was trained (its ``training``: command, config, log), one
    line each, unescaped; ``[]`` for a row without."""
    training = row.get("training")
    if not isinstance(training, Mapping):
        return []
    lines = [f"train: {training.get('command')}"]
    for key in ("config", "log"):
        if training.get(key) is not None:
            value = training[key]
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            lines.append(f"{key}: {text}")
    return lines


def _commands(row: Mapping[str, Any], label: str) -> list[str]:
    """A row's lines in the "to regenerate" block: for a trained row, its training as shell
    comments, then the evaluation command."""
    trained = training_lines(row)
    if not trained:
        return [str(row.get("command"))]
    comments = [f"# {' '.join(label.split())}", *(f"#   {' '.join(t.split())}" for t in trained)]
    return [*comments, str(row.get("command"))]


def markdown_table(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str] | None = None) -> str:
    """One Markdown section per env id (in order of first appearance), one table per protocol.

    Each table (canonical protocol first) ranks rows of one protocol, best first by
    :func:`sort_metric`. Columns: the agent's unique label (:func:`row_labels`), each of
    ``metrics`` (default: the env's :func:`env_metrics`) as ``mean ± ci95``, whether the row's
    interval overlaps the best's (:func:`overlaps_best`), split, episodes, seeds, training
    budget and device. Below each table, the command of each row; below the env's tables, its
    stale rows (those with a non-empty ``stale`` list) with their reasons.
    """
    if not rows:
        return "(no results)\n"
    out: list[str] = []
    for board in env_boards(rows, metrics):
        columns, env_id = board.metrics, board.env_id
        out.append(f"### {_md(env_id)}\n")
        for table in board.tables:
            out.append(f"#### {_md(table.protocol.label)}\n")
            out.append(f"{_md(table.settings)}\n")
            header = ["agent", *columns, "vs best", "split", "episodes", "seeds", "budget"]
            out.append("| " + " | ".join([*header, "device"]) + " |")
            out.append("|" + "|".join(["---"] + ["---:"] * len(columns) + ["---"] * 6) + "|")
            for row, label, mark in zip(table.ranked, table.labels, table.marks, strict=True):
                cells = [_md(label)]
                cells += [_cell(row.get("metrics", {}).get(m)) for m in columns]
                seeds = ",".join(str(s) for s in row.get("seeds", []))
                cells += [mark, _md(row.get("split")), _md(row.get("episodes")), _md(seeds)]
                cells += [_md(budget_label(row)), _md(row.get("device"))]
                out.append("| " + " | ".join(cells) + " |")
            commands = [
                line
                for row, label in zip(table.ranked, table.labels, strict=True)
                for line in _commands(row, label)
            ]
            fence = _fence(commands)
            out += ["\nTo regenerate a row:\n", f"{fence}bash", *commands, f"{fence}\n"]
        if board.stale:
            out.append(f"Stale rows of {_md(env_id)} (not ranked; re-run their commands):\n")
            for row in board.stale:
                reasons = "; ".join(str(reason) for reason in row["stale"])
                out.append(f"- {_md(agent_label(row))}: {_md(reasons)}")
            commands = [str(row.get("command")) for row in board.stale]
            fence = _fence(commands)
            out += ["", f"{fence}bash", *commands, f"{fence}\n"]
    return "\n".join(out)
