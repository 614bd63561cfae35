"""``python -m benchmarks``: evaluate agents into a leaderboard file, print it, or run the demo.

::

    python -m benchmarks run --env RecSeq-v0 --agent history --split test --episodes 200 \\
        --seeds 0 1 2 [--agent-kwargs '{"model": "fake"}'] [--env-kwargs '{"k": 100}'] \\
        --out benchmarks/results/leaderboard.jsonl
    python -m benchmarks table [--results benchmarks/results/leaderboard.jsonl]
    python -m benchmarks report [--results FILE ...] [--out-dir DIR] [--skip-data-check]
    python -m benchmarks demo [--episodes 100] [--max-new-tokens 96] [--llm smollm2-135m]

``--agent`` is a name of ``agents.AGENTS`` (``raw-query``, ``history``, ``zero-shot``, ``sb3``,
...), ``module.path:ClassName`` or ``path/to/file.py:ClassName``, built with the
``--agent-kwargs``. ``recgym bench ARGS`` is the same as ``python -m benchmarks ARGS`` and
``recgym report`` the same as ``python -m benchmarks report``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recgym.error import one_line

if TYPE_CHECKING:
    from recgym.evaluation import EvalSpec

__all__ = ["bench", "main", "run_spec", "user_results"]

_DESCRIPTION = (
    "Evaluate agents on recgym envs into leaderboard rows (run), print rows as Markdown "
    "(table), write the leaderboard pages (report), or run the demo (demo). Each command's "
    "--help lists its options."
)


def user_results() -> Path:
    """The file ``run`` appends to without ``--out``: ``$RECGYM_RESULTS``, else
    ``leaderboard.jsonl`` under ``$XDG_DATA_HOME/recgym`` (``~/.local/share/recgym``). Never a
    file of the current directory: run from a checkout, a row must not land in the tracked
    leaderboard unless ``--out`` says so."""
    if os.environ.get("RECGYM_RESULTS"):
        return Path(os.environ["RECGYM_RESULTS"]).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "recgym" / "leaderboard.jsonl"


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def run_spec(args: argparse.Namespace) -> EvalSpec:
    """The evaluation settings of parsed ``run`` arguments (the inverse of
    :meth:`EvalSpec.command <recgym.evaluation.EvalSpec.command>`)."""
    from recgym.evaluation import EvalSpec

    return EvalSpec(
        args.env,
        args.agent,
        agent_kwargs=args.agent_kwargs,
        split=args.split,
        episodes=args.episodes,
        seeds=args.seeds,
        env_kwargs={
            **args.env_kwargs,
            **({"dataset": args.dataset} if args.dataset is not None else {}),
            **({"dataset_kwargs": args.dataset_kwargs} if args.dataset_kwargs else {}),
        },
        batch_size=args.batch_size,
        budget=args.budget,
        budget_device=args.budget_device,
        training=args.training,
    )


def _run(args: argparse.Namespace) -> int:
    import gymnasium as gym

    import recgym  # noqa: F401 (registers the envs)
    from benchmarks.episodes import split_kwargs
    from benchmarks.runner import append_rows, build_agent, evaluate
    from benchmarks.table import markdown_table

    spec = run_spec(args)
    env = gym.make(spec.env_id, **split_kwargs(spec.env_id, spec.split, spec.env_kwargs))
    agent = build_agent(spec.agent_name, env, spec.agent_kwargs)
    env.close()
    row = evaluate(spec, agent, progress=not args.quiet)
    path = append_rows(args.out or user_results(), [row])
    print(markdown_table([row]))
    print(f"appended to {path}")
    return 0


def _table(args: argparse.Namespace) -> int:
    from benchmarks.runner import load_rows
    from benchmarks.table import markdown_table

    if not Path(args.results).is_file():
        print(f"no results file at {args.results}", file=sys.stderr)
        return 1
    print(markdown_table(load_rows(args.results)))
    return 0


def _report(args: argparse.Namespace) -> int:
    from benchmarks.report import write_report

    paths = write_report(
        args.results, args.out_dir, check_data=not args.skip_data_check, progress=not args.quiet
    )
    for path in paths:
        print(f"wrote {path}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from benchmarks.demo import run_demo

    run_demo(
        episodes=args.episodes,
        max_new_tokens=args.max_new_tokens,
        llm=args.llm,
        batch_size=args.batch_size,
        seeds=args.seeds,
        out=args.out,
        backend=args.backend,
    )
    return 0


def _parser(prog: str = "python -m benchmarks") -> argparse.ArgumentParser:
    from benchmarks import demo
    from benchmarks.store import RESULTS

    parser = argparse.ArgumentParser(prog=prog, description=_DESCRIPTION)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="evaluate one agent on one env; append the row")
    run.add_argument("--env", required=True, help="env id, e.g. RecSeq-v0")
    run.add_argument("--agent", required=True, help="agents.AGENTS name or module:Class")
    run.add_argument("--agent-kwargs", type=_json_object, default={}, metavar="JSON")
    run.add_argument("--split", default="test", choices=("train", "validation", "test"))
    run.add_argument("--episodes", type=int, default=200, help="first N episodes of the split")
    run.add_argument("--seeds", type=int, nargs="+", default=[0])
    run.add_argument("--env-kwargs", type=_json_object, default={}, metavar="JSON")
    run.add_argument(
        "--dataset",
        default=None,
        help="the env's dataset (a registered name, e.g. generic, recbole; the same as "
        "--env-kwargs '{\"dataset\": ...}'), for the envs that take one",
    )
    run.add_argument(
        "--dataset-kwargs",
        type=_json_object,
        default=None,
        metavar="JSON",
        help='its loader\'s arguments, e.g. \'{"path": "dataset/ml-1m"}\'',
    )
    run.add_argument("--batch-size", type=int, default=64, help="episodes per act/score call")
    run.add_argument("--budget", type=float, default=None, help="training budget (minutes)")
    run.add_argument("--budget-device", default=None, help="device the training ran on")
    run.add_argument(
        "--training",
        type=_json_object,
        default=None,
        metavar="JSON",
        help='how the agent was trained: {"command": ..., "config": ..., "log": ...}',
    )
    run.add_argument(
        "--out",
        default=None,
        help="JSON-lines file to append to (default: $RECGYM_RESULTS, else "
        "~/.local/share/recgym/leaderboard.jsonl; the committed leaderboard is "
        "benchmarks/results/leaderboard.jsonl)",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    run.set_defaults(func=_run)

    table = sub.add_parser("table", help="print a results file as Markdown")
    table.add_argument("--results", default=str(RESULTS), help="default: the committed rows")
    table.set_defaults(func=_table)

    report = sub.add_parser("report", help="write leaderboard.md and leaderboard.html")
    report.add_argument("--results", nargs="+", default=[str(RESULTS)], metavar="FILE")
    report.add_argument("--out-dir", default=None, help="default: the first results file's")
    report.add_argument(
        "--skip-data-check",
        action="store_true",
        help="check env versions only, not each row's data digest (no datasets loaded)",
    )
    report.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    report.set_defaults(func=_report)

    dem = sub.add_parser("demo", help="dataset summaries and the baseline leaderboard")
    dem.add_argument("--episodes", type=int, default=demo.EPISODES)
    dem.add_argument("--max-new-tokens", type=int, default=demo.MAX_NEW_TOKENS)
    dem.add_argument("--batch-size", type=int, default=demo.BATCH_SIZE, help="LLM batch size")
    dem.add_argument("--seeds", type=int, nargs="+", default=list(demo.SEEDS))
    dem.add_argument("--llm", default="smollm2-135m", help='model of the zero-shot agent ("fake")')
    dem.add_argument("--out", default=None, help="JSON-lines file (default: in the cache)")
    dem.add_argument(
        "--backend",
        choices=["transformers", "ct2"],
        default=None,
        help="engine of the zero-shot model (default: ct2 when installed, else transformers)",
    )
    dem.set_defaults(func=_demo)
    return parser


def report(argv: Sequence[str] | None = None) -> int:
    """``recgym report ...``: ``python -m benchmarks report ...``."""
    return main(["report", *(sys.argv[1:] if argv is None else argv)], prog="recgym")


def bench(argv: Sequence[str] | None = None) -> int:
    """``recgym bench ...``: ``python -m benchmarks ...``."""
    return main(sys.argv[1:] if argv is None else argv, prog="recgym bench")


def main(argv: Sequence[str] | None = None, prog: str = "python -m benchmarks") -> int:
    """Run the command line; returns the exit status. An error is one line on stderr (its
    traceback with ``--debug``) and exit status 1."""
    args = _parser(prog).parse_args(argv)
    try:
        status: int = args.func(args)
    except Exception as exc:  # the command line's last stop: one clear line, not a traceback
        if args.debug:
            raise
        print(f"{prog}: error: {one_line(exc)} (--debug shows the traceback)", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
