"""A policy trainer's run folder: adapters, checkpoints, logs, provenance, curves, config CLI.

A run writes into one output folder:

- ``log.jsonl``: one JSON record per optimizer step and per validation;
- ``training.json``: the summary (``finished`` once the run ended);
- the best adapter (PEFT, safetensors) at the folder's top level;
- ``checkpoint/``: adapter, optimizer, schedule, RNG, progress and a copy of the best adapter,
  so a killed run resumes from it; a run started on the same folder with the same recipe does;
- ``curves.png``: the train reward and the validation metric (:func:`plot_run`).

A kill (SIGKILL included) never leaves half a file that a resumed run would read: the summary,
the adapters and the checkpoint are written beside their old version and renamed over it
(:mod:`recgym.utils.atomic`), and a log line a kill cut short is dropped on resume.

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
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch

from recgym.utils import atomic

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
    "remove_checkpoint",
    "save_adapter",
    "save_checkpoint",
    "trim_log",
    "write_summary",
]

C = TypeVar("C")

_ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")
"""The files of a PEFT adapter that a run folder keeps (the best adapter)."""


# ----- adapters and checkpoints ------------------------------------------------------------------


def save_adapter(model: Any, folder: Path) -> None:
    """Save a PEFT model's adapter (safetensors) into ``folder``, each file replaced whole
    (:func:`recgym.utils.atomic.replace_files`), so a kill mid-save leaves the previous one."""

    def write(staging: Path) -> None:
        model.save_pretrained(str(staging), safe_serialization=True)
        (staging / "README.md").unlink(missing_ok=True)  # PEFT's empty model-card template

    atomic.replace_files(folder, write)


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


def load_policy_llm(
    model: Any, model_kwargs: dict[str, Any] | None, adapter: str | None, trainer: str
) -> tuple[Any, dict[str, Any] | None]:
    """The LLM an agent runs: ``model`` (loaded by :func:`recgym.llm.load` when a name), with
    the adapter in ``adapter`` on it, and the adapter's training summary.

    ``model_kwargs={"backend": "ct2", ...}`` with an adapter loads the model with
    transformers, puts the adapter on, then folds and converts it
    (:func:`recgym.llm.ct2.from_hf`): CTranslate2 has no LoRA of its own.
    """
    load_kwargs = dict(model_kwargs or {})
    fold = adapter is not None and load_kwargs.get("backend") == "ct2"
    ct2_kwargs: dict[str, Any] = {}
    if fold:
        ct2_kwargs = {
            k: load_kwargs.pop(k) for k in ("quantization", "threads") if k in load_kwargs
        }
        del load_kwargs["backend"]
    if isinstance(model, str):
        import recgym.llm

        model = recgym.llm.load(model, **load_kwargs)
    training = None
    if adapter is not None:
        model.model, training = load_adapter(model.model, Path(adapter), trainer)
    if fold:
        from recgym.llm.ct2 import from_hf

        model = from_hf(model, **ct2_kwargs)
    return model, training


def save_checkpoint(
    out: Path,
    model: Any,
    trainer_state: dict[str, Any],
    run: dict[str, Any],
    config: Any,
    extra: Callable[[Path], object] | None = None,
) -> None:
    """Write ``out/checkpoint``: the adapter, ``trainer_state`` (torch objects: optimizer,
    schedule...), the RNG states, ``run`` with the config (JSON), a copy of the best adapter
    so far (``out``'s, in ``best/``), and what ``extra(folder)`` adds.

    It is written beside the old one and swapped in (:func:`recgym.utils.atomic.replace_dir`),
    so a kill mid-write leaves the previous checkpoint whole.
    """

    def write(folder: Path) -> None:
        save_adapter(model, folder)
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        saved = {**trainer_state, "rng": torch.get_rng_state(), "cuda_rng": cuda}
        torch.save(saved, folder / "trainer.pt")
        best = [out / name for name in _ADAPTER_FILES if (out / name).is_file()]
        if best:
            (folder / "best").mkdir()
            for path in best:
                shutil.copy2(path, folder / "best" / path.name)
        if extra is not None:
            extra(folder)
        # Last: a checkpoint folder with its state.json is a complete one.
        state = {**run, "config": dataclasses.asdict(config)}
        (folder / "state.json").write_text(json.dumps(state))

    atomic.replace_dir(out / "checkpoint", write)


def load_checkpoint(out: Path, model: Any) -> dict[str, Any]:
    """Load ``out/checkpoint``'s adapter into ``model``, restore the RNG states and put the
    checkpoint's best adapter back in ``out`` (a best adapter saved after the checkpoint
    belongs to steps the resumed run redoes); return the saved trainer state (what
    :func:`save_checkpoint` got as ``trainer_state``)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    folder = out / "checkpoint"
    set_peft_model_state_dict(model, load_file(str(folder / "adapter_model.safetensors")))
    saved: dict[str, Any] = torch.load(folder / "trainer.pt", weights_only=False)
    torch.set_rng_state(saved.pop("rng"))
    cuda = saved.pop("cuda_rng")
    if cuda is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    if (folder / "best").is_dir():
        atomic.replace_files(
            out, lambda staging: shutil.copytree(folder / "best", staging, dirs_exist_ok=True)
        )
    return saved


def load_state(out: Path, config: Any, resumable: Sequence[str]) -> dict[str, Any] | None:
    """The progress saved in ``out/checkpoint`` (``None`` if there is none).

    Raises:
        ValueError: the checkpoint was written with another recipe (a field not in
            ``resumable`` differs).
    """
    path = out / "checkpoint" / "state.json"
    if not atomic.complete_dir(path.parent) or not path.is_file():
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
        save_checkpoint(self.out, self.model, state, self.run, self.config, self.checkpoint_extra)

    def checkpoint_extra(self, folder: Path) -> None:
        """Write what else a checkpoint needs into ``folder`` (the checkpoint being written;
        nothing here); a subclass that checkpoints more fills it in and reads it back in
        :meth:`restore_checkpoint`."""

    def restore_checkpoint(self, state: dict[str, Any]) -> None:
        """Load ``output_dir/checkpoint`` (adapter, optimizer, schedule, RNG) and take its
        progress ``state`` (what :func:`load_state` returned) into ``self.run``; a subclass that
        checkpoints more extends it."""
        saved = load_checkpoint(self.out, self.model)
        self.optimizer.load_state_dict(saved["optimizer"])
        self.schedule.load_state_dict(saved["schedule"])
        self.run.update(state)  # in place: a running loop may hold a reference to it


def remove_checkpoint(out: Path) -> None:
    """Delete ``out/checkpoint`` (the run ended) without leaving a partial one to resume."""
    atomic.remove_dir(out / "checkpoint")


def write_summary(out: Path, summary: dict[str, Any]) -> None:
    """Write ``out/training.json`` atomically."""
    atomic.write_text(out / "training.json", json.dumps(summary, indent=2) + "\n")


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


def _records(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """The whole JSON lines of ``path`` and their records: a line a kill cut short is
    skipped."""
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append((line, json.loads(line)))
        except ValueError:
            continue
    return records


def read_log(out: Path) -> list[dict[str, Any]]:
    """The records of ``out/log.jsonl`` (empty when there is none)."""
    path = out / "log.jsonl"
    return [record for _, record in _records(path)] if path.is_file() else []


def trim_log(path: Path, step: int | None) -> None:
    """Drop log lines past ``step`` (a resumed run redoes those steps), and a last line a kill
    cut short; all of them if None. The log is rewritten atomically."""
    if step is None:
        path.unlink(missing_ok=True)
    elif path.is_file():
        kept = [line for line, record in _records(path) if record["step"] <= step]
        atomic.write_text(path, "".join(line + "\n" for line in kept))


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


def config_command(config: Any, prog: str, exclude: Sequence[str] = ()) -> str:
    """The command line that :func:`config_parser` (with ``prog``) parses back into ``config``:
    ``prog`` and a ``--flag`` for each field that differs from its default, shell-quoted."""
    args = prog.split()
    for field in dataclasses.fields(config):
        if field.name in exclude:
            continue
        value = getattr(config, field.name)
        default = field.default
        if default is dataclasses.MISSING and field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        if value == default:
            continue
        flag, kind = "--" + field.name.replace("_", "-"), str(field.type)
        if kind == "bool":
            args.append(flag if value else "--no-" + field.name.replace("_", "-"))
        elif value is None:
            raise ValueError(f"{field.name}=None cannot be given on the command line")
        elif kind.startswith("tuple"):
            args += [flag, *map(str, value)]
        elif kind.startswith("dict"):
            args += [flag, json.dumps(value, sort_keys=True)]
        else:
            args += [flag, str(value)]
    return shlex.join(args)


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
