"""The static HTML leaderboard page: sortable per-env tables, two plots per env, the commands.

One self-contained file (inline CSS, JavaScript and SVG; nothing fetched), so it opens from
disk, from a CI artifact or from any static host. Every string that comes from a row (agent
names, configs, commands, reasons) goes through :func:`html.escape`; the script only reads
``data-value`` attributes and moves existing rows, it never writes markup, so no row can inject
HTML or script. The output is deterministic (no timestamps): the same rows give the same page.

Plots, per env, of the table's ranking metric:

- *metric vs training budget*: one point per fresh row at its training minutes (0 for an
  untrained agent), the 95 % interval as a vertical bar;
- *per-seed spread*: one line per row, a dot per seed's mean (``seed_means``) and the mean
  with its 95 % interval over episodes.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from benchmarks.table import agent_label, budget_label, env_boards, sort_metric, training_lines

__all__ = ["html_page"]

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 80rem; padding: 0 1rem;
       color: #1d1d1f; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
th, td { padding: .3rem .5rem; border-bottom: 1px solid #eee; text-align: right;
         vertical-align: top; }
th:first-child, td:first-child, td.text { text-align: left; }
th { cursor: pointer; user-select: none; background: #f6f6f8; white-space: nowrap; }
th[aria-sort="ascending"]::after { content: " \\25B2"; }
th[aria-sort="descending"]::after { content: " \\25BC"; }
td.ci { white-space: nowrap; } .pm { color: #777; font-size: .85em; }
code { font-size: .85em; word-break: break-all; }
pre.cmd { font-size: .8em; white-space: pre-wrap; word-break: break-all; width: 28rem;
          text-align: left; background: #f6f6f8; padding: .4rem; margin: .2rem 0; }
details { margin: .2rem 0; } .setting, .note { color: #555; }
.plots { display: flex; flex-wrap: wrap; gap: 1.5rem; }
figure { margin: 0; } figcaption { color: #555; font-size: .9em; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
.stale { background: #fff6e5; }
"""

# The filter box hides the rows whose text lacks one of its words (row.hidden only). Sorting
# reads data-value (numbers as numbers, missing values last) and re-appends the
# existing <tr> elements: no markup is ever built from data.
_JS = """
var filter = document.getElementById("filter");
filter.addEventListener("input", function () {
  var words = filter.value.toLowerCase().split(/\\s+/).filter(Boolean);
  document.querySelectorAll("table.board tbody tr").forEach(function (row) {
    var text = row.textContent.toLowerCase();
    row.hidden = !words.every(function (w) { return text.indexOf(w) >= 0; });
  });
});
document.querySelectorAll("table.board").forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.tabIndex = 0;
    function sort() {
      var numeric = th.dataset.type === "num";
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var v = row.cells[col].dataset.value;
        if (!numeric) { return v === undefined ? "" : v.toLowerCase(); }
        return v === undefined || v === "" ? NaN : parseFloat(v);
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (numeric) {
          if (isNaN(x)) { return isNaN(y) ? 0 : 1; }
          if (isNaN(y)) { return -1; }
          return ascending ? x - y : y - x;
        }
        return ascending ? x.localeCompare(y) : y.localeCompare(x);
      });
      rows.forEach(function (row) { body.appendChild(row); });
    }
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sort(); } });
  });
});
"""

_W, _H, _PAD = 420, 240, 46
_PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _stats(row: Mapping[str, Any], metric: str) -> Mapping[str, Any] | None:
    stats = row.get("metrics", {}).get(metric)
    return stats if isinstance(stats, Mapping) and "mean" in stats else None


def _with_stats(
    rows: Sequence[Mapping[str, Any]], metric: str
) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """``(row, stats)`` for the rows that have ``metric``."""
    pairs = [(row, _stats(row, metric)) for row in rows]
    return [(row, stats) for row, stats in pairs if stats is not None]


def _fmt(x: float) -> str:
    return f"{x:.4f}"


def _axis_range(values: Sequence[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if math.isclose(lo, hi):
        lo, hi = lo - 0.5 * (abs(lo) or 1), hi + 0.5 * (abs(hi) or 1)
    pad = 0.05 * (hi - lo)
    return lo - pad, hi + pad


def _budget_plot(rows: Sequence[Mapping[str, Any]], metric: str, labels: Sequence[str]) -> str:
    names = {id(r): label for r, label in zip(rows, labels, strict=True)}
    points = [(float(r.get("budget") or 0.0), s, r) for r, s in _with_stats(rows, metric)]
    if not points:
        return ""
    ys = [s["mean"] + sign * (s.get("ci95") or 0) for _, s, _ in points for sign in (-1, 1)]
    x_lo, x_hi = _axis_range([0.0] + [x for x, _, _ in points])
    y_lo, y_hi = _axis_range(ys)

    def sx(x: float) -> float:
        return _PAD + (x - x_lo) / (x_hi - x_lo) * (_W - 2 * _PAD)

    def sy(y: float) -> float:
        return _H - _PAD + (y - y_lo) / (y_lo - y_hi) * (_H - 2 * _PAD)

    parts = [_axes("training budget (minutes; 0 = untrained)", metric, x_lo, x_hi, y_lo, y_hi)]
    for i, (x, s, row) in enumerate(points):
        color = _PALETTE[i % len(_PALETTE)]
        ci = s.get("ci95") or 0.0
        tip = f"{names[id(row)]}: {_fmt(s['mean'])} ± {_fmt(ci)}, {budget_label(row)}"
        parts.append(
            f"<g><title>{_e(tip)}</title>"
            f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{sy(s["mean"] - ci):.1f}" '
            f'y2="{sy(s["mean"] + ci):.1f}" stroke="{color}" stroke-width="2"/>'
            f'<circle cx="{sx(x):.1f}" cy="{sy(s["mean"]):.1f}" r="4" fill="{color}"/></g>'
        )
    return _svg(parts, f"{metric} vs training budget (95 % interval over episodes)")


def _spread_plot(rows: Sequence[Mapping[str, Any]], metric: str, labels: Sequence[str]) -> str:
    names = {id(r): label for r, label in zip(rows, labels, strict=True)}
    entries = _with_stats(rows, metric)
    if not entries:
        return ""
    xs: list[float] = []
    for _, s in entries:
        ci = s.get("ci95") or 0.0
        xs += [s["mean"] - ci, s["mean"] + ci, *s.get("seed_means", [])]
    x_lo, x_hi = _axis_range(xs)
    left, step = 170, 22
    height = 2 * _PAD + step * len(entries)

    def sx(x: float) -> float:
        return left + (x - x_lo) / (x_hi - x_lo) * (_W - left - 16)

    parts = [
        f'<line x1="{left}" x2="{_W - 16}" y1="{height - _PAD + 6}" y2="{height - _PAD + 6}" '
        'stroke="#999"/>',
        f'<text x="{left}" y="{height - _PAD + 22}">{_e(_fmt(x_lo))}</text>',
        f'<text x="{_W - 16}" y="{height - _PAD + 22}" text-anchor="end">{_e(_fmt(x_hi))}</text>',
        f'<text x="{(left + _W) / 2:.0f}" y="{height - 8}" text-anchor="middle">{_e(metric)}'
        "</text>",
    ]
    for i, (row, s) in enumerate(entries):
        y = _PAD + step * i
        color = _PALETTE[i % len(_PALETTE)]
        ci = s.get("ci95") or 0.0
        seeds = s.get("seed_means") or []
        label = names[id(row)]
        short = label if len(label) <= 26 else label[:25] + "…"
        tip = f"{label}: {_fmt(s['mean'])} ± {_fmt(ci)}; per seed: " + (
            ", ".join(_fmt(v) for v in seeds) if seeds else "not recorded"
        )
        parts.append(f'<g><title>{_e(tip)}</title><text x="4" y="{y + 4}">{_e(short)}</text>')
        parts.append(
            f'<line x1="{sx(s["mean"] - ci):.1f}" x2="{sx(s["mean"] + ci):.1f}" y1="{y}" '
            f'y2="{y}" stroke="{color}" stroke-width="2"/>'
            f'<rect x="{sx(s["mean"]) - 1.5:.1f}" y="{y - 7}" width="3" height="14" '
            f'fill="{color}"/>'
        )
        parts += [
            f'<circle cx="{sx(v):.1f}" cy="{y}" r="3.5" fill="none" stroke="#222"/>' for v in seeds
        ]
        parts.append("</g>")
    return _svg(parts, f"{metric} per seed (circles) and mean ± 95 % interval (bar)", height=height)


def _axes(x_label: str, y_label: str, x_lo: float, x_hi: float, y_lo: float, y_hi: float) -> str:
    b, r = _H - _PAD, _W - _PAD
    return (
        f'<line x1="{_PAD}" x2="{r}" y1="{b}" y2="{b}" stroke="#999"/>'
        f'<line x1="{_PAD}" x2="{_PAD}" y1="{_PAD}" y2="{b}" stroke="#999"/>'
        f'<text x="{_PAD}" y="{b + 16}">{_e(f"{max(x_lo, 0):g}")}</text>'
        f'<text x="{r}" y="{b + 16}" text-anchor="end">{_e(f"{x_hi:.3g}")}</text>'
        f'<text x="{(_PAD + r) / 2:.0f}" y="{_H - 8}" text-anchor="middle">{_e(x_label)}</text>'
        f'<text x="{_PAD - 4}" y="{b}" text-anchor="end">{_e(_fmt(y_lo))}</text>'
        f'<text x="{_PAD - 4}" y="{_PAD + 4}" text-anchor="end">{_e(_fmt(y_hi))}</text>'
        f'<text x="12" y="{_H / 2:.0f}" transform="rotate(-90 12 {_H / 2:.0f})" '
        f'text-anchor="middle">{_e(y_label)}</text>'
    )


def _svg(parts: Sequence[str], caption: str, height: int = _H) -> str:
    return (
        f'<figure><svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{height}" '
        f'viewBox="0 0 {_W} {height}" role="img" aria-label="{_e(caption)}">'
        + "".join(parts)
        + f"</svg><figcaption>{_e(caption)}</figcaption></figure>"
    )


def _metric_cell(stats: Mapping[str, Any] | None) -> str:
    if stats is None:
        return '<td data-value="">–</td>'
    ci = stats.get("ci95")
    pm = f' <span class="pm">± {_e(_fmt(ci))}</span>' if ci is not None else ""
    value = _e(repr(float(stats["mean"])))
    return f'<td class="ci" data-value="{value}">{_e(_fmt(stats["mean"]))}{pm}</td>'


_SAFE_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.{}/-]*")
_REPO_ROOT = "../../"  # from benchmarks/results/leaderboard.html


def _files(row: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(label, repository path)`` of a row's files: its training config and log, and the
    agent's artifacts (``path``, ``adapter``), one per seed where the path holds ``{seed}``.
    Only relative paths inside the repository qualify (no ``..``, no scheme, no absolute
    path), so a link can only point into the checkout the page sits in."""
    config = row.get("agent_config") or {}
    training = row.get("training") or {}
    named = [
        *((key, config.get(key)) for key in ("path", "adapter")),
        *((key, training.get(key)) for key in ("config", "log")),
    ]
    out = []
    for label, value in named:
        if not isinstance(value, str):
            continue
        if "{seed}" in value:
            seeds = [s for s in row.get("seeds") or [] if isinstance(s, int)]
            paths = [(f"{label} (seed {s})", value.replace("{seed}", str(s))) for s in seeds]
        else:
            paths = [(label, value)]
        # Checked after the seed is put in: the link is exactly what the browser follows.
        out += [(name, path) for name, path in paths if _inside(path)]
    return out


def _inside(path: str) -> bool:
    """A relative path that stays inside the repository (no scheme, no ``..``)."""
    return ".." not in path and _SAFE_PATH.fullmatch(path) is not None


def _row_html(
    row: Mapping[str, Any], metrics: Sequence[str], stale: bool, label: str, mark: str
) -> str:
    config = json.dumps(row.get("agent_config") or {}, sort_keys=True)
    budget = row.get("budget")
    cells = [
        f'<td class="text" data-value="{_e(label)}"><span class="agent">{_e(label)}</span>'
        f"<details><summary>config</summary><code>{_e(config)}</code></details></td>",
        *(_metric_cell(_stats(row, m)) for m in metrics),
        f'<td class="text" data-value="{_e(mark)}">{_e(mark)}</td>',
        f'<td class="text" data-value="{_e(row.get("split"))}">{_e(row.get("split"))}</td>',
        f'<td data-value="{_e(row.get("episodes"))}">{_e(row.get("episodes"))}</td>',
        f'<td data-value="{len(row.get("seeds") or [])}">'
        f"{_e(','.join(str(s) for s in row.get('seeds') or []))}</td>",
        f'<td data-value="{_e("" if budget is None else float(budget))}">'
        f"{_e(budget_label(row))}</td>",
        f'<td class="text" data-value="{_e(row.get("device"))}">{_e(row.get("device"))}</td>',
        f'<td class="text"><details><summary>show</summary><pre class="cmd">'
        f"{_e(row.get('command'))}</pre>"
        + "".join(f'<pre class="cmd">{_e(line)}</pre>' for line in training_lines(row))
        + "".join(
            f'<a class="file" href="{_e(_REPO_ROOT + path)}">{_e(label)}</a> '
            for label, path in _files(row)
        )
        + "</details></td>",
    ]
    if stale:
        reasons = "; ".join(str(r) for r in row.get("stale") or [])
        cells.append(f'<td class="text" data-value="{_e(reasons)}">{_e(reasons)}</td>')
    cls = ' class="stale"' if stale else ""
    return f"<tr{cls}>" + "".join(cells) + "</tr>"


def _table_html(
    rows: Sequence[Mapping[str, Any]],
    metrics: Sequence[str],
    *,
    stale: bool,
    env_id: str,
    labels: Sequence[str] | None = None,
    marks: Sequence[str] | None = None,
) -> str:
    labels = labels or [agent_label(r) for r in rows]
    marks = marks or [""] * len(rows)
    heads = [
        ("agent", "text"),
        *((m, "num") for m in metrics),
        ("vs best", "text"),
        ("split", "text"),
        ("episodes", "num"),
        ("seeds", "num"),
        ("budget", "num"),
        ("device", "text"),
        ("command", "text"),
    ]
    if stale:
        heads.append(("stale because", "text"))
    head = "".join(f'<th scope="col" data-type="{t}">{_e(h)}</th>' for h, t in heads)
    body = "".join(
        _row_html(r, metrics, stale, label, mark)
        for r, label, mark in zip(rows, labels, marks, strict=True)
    )
    kind = "stale" if stale else "ranked"
    return (
        f'<table class="board" data-env="{_e(env_id)}" data-kind="{kind}"><thead><tr>{head}'
        f"</tr></thead><tbody>{body}</tbody></table>"
    )


def html_page(rows: Sequence[Mapping[str, Any]], *, sources: Sequence[str] = ()) -> str:
    """The leaderboard page for ``rows`` (runner rows, each optionally with ``stale``)."""
    boards = env_boards(rows)
    nav = " · ".join(f'<a href="#{_e(b.env_id)}">{_e(b.env_id)}</a>' for b in boards)
    sections = []
    for board in boards:
        env_id, metrics, stale = board.env_id, board.metrics, board.stale
        main = sort_metric(metrics)
        parts = [f'<section id="{_e(env_id)}"><h2>{_e(env_id)}</h2>']
        for table in board.tables:
            parts.append(f"<h3>{_e(table.protocol.label)}</h3>")
            parts.append(
                f'<p class="setting">{_e(table.settings)}. Ranked by {_e(main)}; '
                "click a column to sort.</p>"
            )
            parts.append(
                _table_html(
                    table.ranked,
                    metrics,
                    stale=False,
                    env_id=env_id,
                    labels=table.labels,
                    marks=table.marks,
                )
            )
            parts.append(
                '<div class="plots">'
                + _budget_plot(table.ranked, main, table.labels)
                + _spread_plot(table.ranked, main, table.labels)
                + "</div>"
            )
        if stale:
            parts.append(f"<h3>Stale rows ({len(stale)}, not ranked)</h3>")
            parts.append(_table_html(stale, metrics, stale=True, env_id=env_id))
        parts.append("</section>")
        sections.append("".join(parts))
    origin = ", ".join(sources) if sources else "runner rows"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>recgym leaderboard</title><style>{_CSS}</style></head><body>"
        "<h1>recgym leaderboard</h1>"
        f'<p class="note">{len(rows)} rows from {_e(origin)}, written by '
        "<code>python -m benchmarks report</code>. Each metric is the mean over episodes "
        "(averaged over seeds) ± the 95 % Student-t interval over episodes; the command in "
        "each row regenerates it.</p>"
        f"<nav>{nav}</nav>"
        '<p><label>Filter rows: <input type="search" id="filter" '
        'placeholder="words in a row: agent, model, seed, device..."></label></p>'
        + "".join(sections)
        + f"<script>{_JS}</script></body></html>\n"
    )
