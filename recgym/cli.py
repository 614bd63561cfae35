"""The ``recgym`` command line: ``data list``, ``data fetch NAME``, ``info``, ``demo``, and the
commands that installed packages add through the ``recgym.commands`` entry-point group (recgym's
own distribution adds ``bench ...`` and ``report``, aliases of ``python -m benchmarks ...``)."""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import platform
import sys
import time
from collections.abc import Sequence

from recgym import __version__
from recgym.error import RecGymError, one_line

__all__ = ["main"]

_VERSIONED = (
    *("numpy", "pandas", "gymnasium", "bm25s", "rank-bm25"),
    *("torch", "transformers", "peft", "gguf", "stable-baselines3"),
)
COMMANDS_GROUP = "recgym.commands"
"""The entry-point group of plug-in commands: ``name = "module:function"``, where ``function``
takes the command's arguments (a list of strings) and returns an exit status."""


def _data_list(_: argparse.Namespace) -> int:
    from recgym.data import list_datasets
    from recgym.data.artifacts import get_artifact

    for spec in list_datasets():
        kind = "embedded" if spec.artifact else "local files"
        print(f"{spec.name:22s} {kind:12s} {spec.description}")
        if spec.artifact:
            for src in get_artifact(spec.artifact).sources:
                print(f"{'':36s}source: {src.describe()}")
    return 0


def _data_fetch(args: argparse.Namespace) -> int:
    from recgym.data import DATASETS, fetch, list_datasets

    list_datasets()  # registers the built-in datasets
    spec = DATASETS.get(args.name)
    artifact = spec.artifact if spec is not None else args.name
    if artifact is None:
        raise RecGymError(f"{args.name!r} reads local files; there is nothing to fetch")
    fetched = fetch(artifact, force=args.force)
    print(f"{artifact}: from {fetched.source.describe()}")
    for name, path in fetched.files.items():
        print(f"  {name}: {path}")
    return 0


def _info(_: argparse.Namespace) -> int:
    from recgym.data.cache import cache_dir

    print(f"recgym {__version__} (Python {platform.python_version()}, {platform.platform()})")
    for dist in _VERSIONED:
        try:
            print(f"  {dist:18s} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            print(f"  {dist:18s} not installed")
    root = cache_dir()
    print(f"cache: {root}")
    for folder in sorted((root / "artifacts").glob("*/*")) + sorted((root / "models").glob("*")):
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        print(f"  {folder.relative_to(root)}  {size / 2**20:.1f} MiB")
    try:
        import torch
    except ImportError:
        print("device: torch not installed")
    else:
        cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
        print(f"device: cpu ({torch.get_num_threads()} threads), cuda: {cuda}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from recgym.demo import run_demo

    run_demo(max_new_tokens=args.max_new_tokens)
    return 0


def _plugins() -> dict[str, importlib.metadata.EntryPoint]:
    """The plug-in commands of the installed distributions, by name."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=COMMANDS_GROUP)}


def _run_plugin(entry: importlib.metadata.EntryPoint, argv: Sequence[str]) -> int:
    """Load a plug-in command and hand it ``argv``."""
    try:
        command = entry.load()
    except ImportError as exc:
        raise RecGymError(
            f"the command {entry.name!r} ({entry.value}) cannot be imported: {exc}; run from a "
            "recgym checkout (pip install -e .) or reinstall the package that provides it"
        ) from exc
    return int(command(list(argv)))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recgym",
        description="recgym's command line: list and fetch datasets, show versions and the "
        "cache, run the demo, and the commands of installed plug-ins (recgym's own: bench, the "
        "leaderboard runner, and report, its pages). Each command's --help lists its options.",
    )
    parser.add_argument("--version", action="version", version=f"recgym {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    data = sub.add_parser("data", help="list and fetch datasets").add_subparsers(
        dest="data_command", required=True
    )
    data.add_parser("list", help="registered datasets and their sources").set_defaults(
        func=_data_list
    )
    fetch = data.add_parser("fetch", help="fetch a dataset or artifact into the cache")
    fetch.add_argument("name")
    fetch.add_argument("--force", action="store_true", help="fetch again even if cached")
    fetch.set_defaults(func=_data_fetch)
    sub.add_parser("info", help="versions, cache and device").set_defaults(func=_info)
    demo = sub.add_parser(
        "demo",
        help="fetch the embedded data and model, summarise, generate (the baseline leaderboard: "
        "python -m benchmarks demo)",
    )
    demo.add_argument("--max-new-tokens", type=int, default=48)
    demo.set_defaults(func=_demo)
    # Listed for --help; main() forwards their arguments untouched before parsing.
    for name, entry in sorted(_plugins().items()):
        sub.add_parser(name, help=f"a plug-in command ({entry.value}); recgym {name} --help")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status. An error is one line on stderr (its traceback
    with ``--debug``, given before the command) and exit status 1."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv[:1]
    if debug:
        argv = argv[1:]
    plugins = _plugins()
    start = time.perf_counter()
    try:
        if argv[:1] and argv[0] in plugins:
            return _run_plugin(plugins[argv[0]], argv[1:])
        args = _parser().parse_args(argv)
        status: int = args.func(args)
    except Exception as exc:  # the command line's last stop: one clear line, not a traceback
        if debug:
            raise
        print(
            f"recgym: error: {one_line(exc)} (recgym --debug ... shows the traceback)",
            file=sys.stderr,
        )
        return 1
    if args.command == "demo":
        print(f"\ndone in {time.perf_counter() - start:.1f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
