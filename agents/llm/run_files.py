"""A policy trainer's run folder: adapters, checkpoints, logs, provenance, curves, config CLI.

A run writes into one output folder:

- ``log.jsonl``: one JSON record per optimizer step and per validation;
- ``training.json``: the summary (``finished`` once the run ended);
- the best adapter (PEFT, safetensors) at the folder's top level;
- ``checkpoint/``: adapter, optimizer, schedule, RNG and progress, swapped in atomically, so a
  killed run resumes from it; a run started on the same folder with the same recipe does;
- ``curves.png``: the train reward and the validation metric (:func:`plot_run`).

The trainers' configs are dataclasses; :func:`config_parser` and :func:`parse_config` make a
command line of one. Used by :mod:`agents.llm.training` (the policy trainers) and
:mod:`agents.llm.verbalizer_train`.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import itertools
import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch

__all__ = [
    "CheckpointedRun",
    "config_parser",
    "field_docs",
    "finished",
    "git_commit",
    "load_adapter",
    "load_checkpoint",
    "load_state",
    "log_record",
    "parse_config",
    "plot_run",
    "provenance",
    "read_log",
    "save_adapter",
    "save_checkpoint",
    "trim_log",
]

C = TypeVar("C")


# ----- adapters and checkpoints ------------------------------------------------------------------


def save_adapter(model: Any, folder: Path) -> None:
    """Save a PEFT model's adapter (safetensors) into ``folder``."""
    model.save_pretrained(str(folder), safe_serialization=True)
    (folder / "README.md").unlink(missing_ok=True)  # PEFT's empty model-card template


def load_adapter(model: Any, folder: Path, trainer: str) -> tuple[Any, dict[str, Any] | None]:
    """``model`` wrapped with the LoRA adapter in ``folder``, and the folder's training summary.

    Args:
        model: the base causal LM.
        folder: a trainer's output folder (or any PEFT adapter folder).
        trainer: the function that writes such folders, named in the error when none is there.
    """
    if not (folder / "adapter_config.json").is_file():
        raise FileNotFoundError(
            f"no PEFT adapter in {folder} (adapter_config.json is missing); pass the output_dir "
            f"of {trainer}"
        )
    from peft import PeftModel

    wrapped = PeftModel.from_pretrained(model, str(folder)).eval()
    summary = folder / "training.json"
    training = json.loads(summary.read_text()) if summary.is_file() else None
    return wrapped, training


def save_checkpoint(
    out: Path, model: Any, trainer_state: dict[str, Any], run: dict[str, Any], config: Any
) -> None:
    """Write ``out/checkpoint``: the adapter, ``trainer_state`` (torch objects: optimizer,
    schedule...), the RNG states, and ``run`` with the config (JSON).

    It is written beside the old one and swapped in, so a kill mid-write leaves a whole one.
    """
    folder = out / "checkpoint"
    tmp, old = folder.with_name("checkpoint.tmp"), folder.with_name("checkpoint.old")
    shutil.rmtree(tmp, ignore_errors=True)
    save_adapter(model, tmp)
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    saved = {**trainer_state, "rng": torch.get_rng_state(), "cuda_rng": cuda}
    torch.save(saved, tmp / "trainer.pt")
    state = {**run, "config": dataclasses.asdict(config)}
    (tmp / "state.json").write_text(json.dumps(state))
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(out: Path, model: Any) -> dict[str, Any]:
    """Load ``out/checkpoint``'s adapter into ``model`` and restore the RNG states; return the
    saved trainer state (what :func:`save_checkpoint` got as ``trainer_state``)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    folder = out / "checkpoint"
    set_peft_model_state_dict(model, load_file(str(folder / "adapter_model.safetensors")))
    saved: dict[str, Any] = torch.load(folder / "trainer.pt", weights_only=False)
    torch.set_rng_state(saved.pop("rng"))
    cuda = saved.pop("cuda_rng")
    if cuda is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    return saved


def load_state(out: Path, config: Any, resumable: Sequence[str]) -> dict[str, Any] | None:
    """The progress saved in ``out/checkpoint`` (``None`` if there is none).

    Raises:
        ValueError: the checkpoint was written with another recipe (a field not in
            ``resumable`` differs).
    """
    path = out / "checkpoint" / "state.json"
    if not path.is_file():
        return None
    state: dict[str, Any] = json.loads(path.read_text())
    now = json.loads(json.dumps(dataclasses.asdict(config)))  # tuples as lists, like the file
    # A field added to the recipe after the checkpoint was written counts as its default.
    saved = {**json.loads(json.dumps(dataclasses.asdict(type(config)()))), **state["config"]}
    changed = sorted(k for k in now if k not in resumable and saved[k] != now[k])
    if changed:
        raise ValueError(
            f"{path.parent} was written with another recipe ({', '.join(changed)} differ); "
            "resume with the same settings, or pass another output_dir"
        )
    return {k: v for k, v in state.items() if k != "config"}


class CheckpointedRun:
    """Checkpoint and resume for a trainer that keeps its progress in ``self.run`` (a JSON-able
    dict with ``seconds``) and has ``out``, ``model``, ``optimizer``, ``schedule``, ``config``
    and ``_started`` (the ``perf_counter`` its timing counts from)."""

    out: Path
    model: Any
    optimizer: torch.optim.Optimizer
    schedule: Any
    config: Any
    run: dict[str, Any]
    _started: float

    def save_checkpoint(self) -> None:
        """Write adapter, optimizer, schedule, RNG and progress to ``output_dir/checkpoint``."""
        self.run["seconds"] = time.perf_counter() - self._started
        state = {"optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict()}
        save_checkpoint(self.out, self.model, state, self.run, self.config)

    def restore_checkpoint(self, state: dict[str, Any]) -> None:
        """Load ``output_dir/checkpoint`` (adapter, optimizer, schedule, RNG) and take its
        progress ``state`` (what :func:`load_state` returned) into ``self.run``; a subclass that
        checkpoints more extends it."""
        saved = load_checkpoint(self.out, self.model)
        self.optimizer.load_state_dict(saved["optimizer"])
        self.schedule.load_state_dict(saved["schedule"])
        self.run.update(state)  # in place: a running loop may hold a reference to it


def provenance(config: Any) -> dict[str, Any]:
    """What a run summary records of how it was made: the config, commit and versions."""
    import peft
    import transformers

    return {
        "config": dataclasses.asdict(config),
        "commit": git_commit(),
        "versions": {
            "torch": torch.__version__,
            "peft": peft.__version__,
            "transformers": transformers.__version__,
        },
    }


# ----- logs ----------------------------------------------------------------------------------


def log_record(out: Path, record: dict[str, Any]) -> None:
    """Append one JSON line to ``out/log.jsonl``."""
    with open(out / "log.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


def read_log(out: Path) -> list[dict[str, Any]]:
    """The records of ``out/log.jsonl`` (empty when there is none)."""
    path = out / "log.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def trim_log(path: Path, step: int | None) -> None:
    """Drop log lines past ``step`` (a resumed run redoes those steps); all of them if None."""
    if step is None:
        path.unlink(missing_ok=True)
    elif path.is_file():
        lines = [ln for ln in path.read_text().splitlines() if json.loads(ln)["step"] <= step]
        path.write_text("".join(ln + "\n" for ln in lines))


def finished(out: Path) -> bool:
    """Whether ``out`` holds a finished run's summary."""
    path = out / "training.json"
    return path.is_file() and bool(json.loads(path.read_text()).get("finished"))


def plot_run(out: Path, unit: str = "step", metric: str = "ndcg@10") -> Path | None:
    """``out/curves.png``: train reward per ``unit`` (the records of ``log.jsonl`` with a
    ``reward``) and the validation ``metric`` (the run's ``select_metric``) per evaluation.

    Needs matplotlib (the ``llm`` extra); returns ``None`` without it.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    records = read_log(out)
    steps = [r for r in records if "reward" in r]
    evals = [r["eval"] for r in records if "eval" in r]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    if steps:
        x = [r["step"] for r in steps]
        marker = "o" if len(x) < 20 else None  # a few rounds: points, not a line
        left.plot(x, [r["reward"] for r in steps], lw=1, marker=marker, label="train reward")
        left.plot(x, [r["format_ok"] for r in steps], lw=1, marker=marker, label="train format ok")
    left.set_xlabel(unit)
    left.legend()
    if evals:
        right.plot([e["step"] for e in evals], [e[metric] for e in evals], "o-", label="val")
        right.axhline(evals[0][metric], color="grey", ls="--", lw=1, label=f"{unit} 0")
    right.set_xlabel(unit)
    right.set_ylabel(f"validation {metric}")
    right.legend()
    fig.suptitle(out.name)
    fig.tight_layout()
    path = out / "curves.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def git_commit() -> str | None:
    """The commit of the checkout this code runs from (``None`` outside git)."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


# ----- command line ----------------------------------------------------------------------------


def field_docs(cls: type) -> dict[str, str]:
    """Each dataclass field's docstring (the string under it), for ``--help``; a subclass's
    docstring of a field replaces its base's."""
    docs = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        body = ast.parse(inspect.getsource(klass)).body[0].body  # type: ignore[attr-defined]
        for node, after in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
            ):
                text = re.sub(r"(:\w+:)?`+([^`]+)`+", r"\2", str(after.value.value))  # no markup
                docs[node.target.id] = " ".join(text.split())
    return docs


def config_parser(
    cls: type, prog: str, description: str, exclude: Sequence[str] = ()
) -> argparse.ArgumentParser:
    """An argument parser with one ``--flag`` per field of the config dataclass ``cls`` (but
    those in ``exclude``, which keep their defaults).

    Booleans get ``--flag/--no-flag``, tuples take several values, dicts take a JSON object,
    ``X | None`` fields take X.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    docs = field_docs(cls)
    for field in dataclasses.fields(cls):
        if field.name in exclude:
            continue
        default = field.default
        if default is dataclasses.MISSING and field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        flag, help_ = "--" + field.name.replace("_", "-"), f"{docs.get(field.name, '')} "
        help_ += f"(default: {default})".replace("%", "%%")
        kind = str(field.type)
        if kind == "bool":
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=default, help=help_
            )
        elif kind.startswith("tuple"):
            parser.add_argument(flag, nargs="+", default=default, help=help_)
        elif kind.startswith("dict"):
            parser.add_argument(flag, type=_json_object, default=default, help=help_ + " (JSON)")
        else:
            cast = {"int": int, "float": float}.get(kind.split(" |")[0], str)
            parser.add_argument(flag, type=cast, default=default, help=help_)
    return parser


def _json_object(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f'expected a JSON object such as {{"k": 100}}; got {text}')
    return value


def parse_config(cls: Callable[..., C], args: dict[str, Any]) -> C:
    """Build the config from parsed arguments (tuple fields come back from argparse as lists)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values = {
        k: tuple(v) if str(fields[k].type).startswith("tuple") and v is not None else v
        for k, v in args.items()
    }
    return cls(**values)
