"""Leaderboard rows (see :mod:`benchmarks.runner`) as Markdown: one table per env id.

Rows are sorted by each env's main metric (NDCG@10; for ``RecRank-v0`` its full-ranking
equivalent), best first; each metric cell is ``mean ± ci95`` (the 95 % Student-t
interval over episodes), and the commands that regenerate the rows follow each table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["DEFAULT_METRICS", "ENV_METRICS", "markdown_table"]

DEFAULT_METRICS = ("reward", "ndcg@10", "ndcg@100", "recall@10", "recall@50", "format_ok")
"""The columns of the text envs' tables; the first after ``reward`` orders the rows."""
ENV_METRICS: dict[str, tuple[str, ...]] = {
    "RecRank-v0": (
        "reward", "full/ndcg@10", "full/recall@10", "full/ndcg@20", "full/recall@20",
        "cand/recall@1", "cand/hit",
    ),
}  # fmt: skip
"""Columns of the envs whose metrics differ from :data:`DEFAULT_METRICS`."""


def _cell(stats: Mapping[str, Any] | None) -> str:
    if not stats:
        return "–"
    ci = stats.get("ci95")
    return f"{stats['mean']:.4f}" + (f" ± {ci:.4f}" if ci is not None else "")


def _sort_key(row: Mapping[str, Any], metric: str) -> float:
    stats = row.get("metrics", {}).get(metric)
    return -float(stats["mean"]) if stats else float("inf")


def _agent_label(row: Mapping[str, Any]) -> str:
    config = row.get("agent_config") or {}
    model = config.get("model") if isinstance(config, Mapping) else None
    label = str(row["agent"]) + (f" ({model})" if model else "")
    return label.replace("|", "\\|")


def _setting(row: Mapping[str, Any]) -> str:
    return f"k={row.get('k')}, reward={row.get('reward')}, data {row.get('data_version')}"


def markdown_table(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str] | None = None) -> str:
    """One Markdown table per env id (in order of first appearance), best first.

    Columns: the agent (and its model, if any), each of ``metrics`` (default: the env's entry
    of :data:`ENV_METRICS`, else :data:`DEFAULT_METRICS`) as ``mean ± ci95``, then split,
    episodes, seeds and device; rows are ordered by the second metric column. Below each
    table, the command of each row.
    """
    if not rows:
        return "(no results)\n"
    envs: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        envs.setdefault(str(row["env_id"]), []).append(row)
    out: list[str] = []
    for env_id, env_rows in envs.items():
        columns = tuple(metrics or ENV_METRICS.get(env_id, DEFAULT_METRICS))
        main = columns[1] if len(columns) > 1 else columns[0]
        ordered = sorted(env_rows, key=lambda r: _sort_key(r, main))
        settings = sorted({_setting(r) for r in ordered})
        out.append(f"### {env_id}\n")
        out.append(f"{'; '.join(settings)}\n")
        header = ["agent", *columns, "split", "episodes", "seeds", "device"]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join(["---"] + ["---:"] * len(columns) + ["---"] * 4) + "|")
        for row in ordered:
            cells = [_agent_label(row)]
            cells += [_cell(row.get("metrics", {}).get(m)) for m in columns]
            seeds = ",".join(str(s) for s in row.get("seeds", []))
            cells += [str(row.get("split")), str(row.get("episodes")), seeds]
            cells.append(str(row.get("device")))
            out.append("| " + " | ".join(cells) + " |")
        out.append("\nTo regenerate a row:\n")
        out.append("```bash")
        out += [str(row.get("command")) for row in ordered]
        out.append("```\n")
    return "\n".join(out)
