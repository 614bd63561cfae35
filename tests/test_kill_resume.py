"""Killed training loses nothing (issue 28): SIGKILL mid-run, the same command again, same end.

For every trainer, the real command runs in a subprocess on a tiny model or the fake backend;
it is killed with SIGKILL once it has written a checkpoint, started again with the same command
to the end, and compared with an uninterrupted run of that command (started alongside, each
process on one torch thread): the same weights, bit for bit, the same summary metrics and the
same log, timings aside. The resumed process must say that it resumed. Where a trainer is
only reachable through Python (the fake generator of GRPO and DPO, a registered tiny LE), a
``-c`` driver sets it up and runs the command's ``main``. Those are ``slow`` (subprocesses that
import torch and train for real; about 4 minutes in all on 2 busy cores); the fast tests check
the atomic writes (a write killed midway leaves the previous version readable, its leftovers
are ignored and cleaned), the refusal of a checkpoint of other settings, and what a resume
restores.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from recgym.utils import atomic
from recgym.utils.checkpoint import load_state, save_state

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


# ----- running and killing commands -------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    """The subprocesses' environment: this checkout first, one thread (bit-exact and fair)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env.update(extra)
    return env


def _start(argv: Sequence[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 600) -> tuple[str, str]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"{proc.args} failed:\n{err[-3000:]}"
    return out, err


def _kill_when(
    argv: Sequence[str], env: dict[str, str], ready: Callable[[], bool], timeout: float = 600
) -> str:
    """Start the command, and SIGKILL it as soon as ``ready()`` (its checkpoint is there)."""
    proc = _start(argv, env)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and not ready():
        assert time.monotonic() < deadline, f"no checkpoint after {timeout} s"
        time.sleep(0.02)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, (
        f"the run ended ({proc.returncode}) before it was killed: make it longer\n{err[-2000:]}"
    )
    return err


def _kill_and_resume(
    argv: Sequence[str],
    reference: Sequence[str],
    env: dict[str, str],
    ready: Callable[[], bool] | Sequence[Callable[[], bool]],
) -> str:
    """Run ``reference`` uninterrupted while ``argv`` is killed (once per ``ready``) and run
    again to the end; returns the stderr of the runs after the first, which must each say they
    resumed."""
    straight = _start(reference, env)
    errs = [
        _kill_when(argv, env, condition) for condition in ([ready] if callable(ready) else ready)
    ]
    errs.append(_finish(_start(argv, env))[1])
    _, straight_err = _finish(straight)
    assert "recgym: resuming" not in errs[0] + straight_err
    for err in errs[1:]:
        assert "recgym: resuming" in err, err[-2000:]
    return "".join(errs[1:])


def _untimed(value: Any) -> Any:
    """``value`` without its timings (keys ending in seconds / minutes) and the leaderboard
    command (its budget is a timing)."""
    if isinstance(value, dict):
        return {
            k: _untimed(v)
            for k, v in value.items()
            if not k.endswith(("seconds", "minutes", "_command")) and not k.startswith("minutes/")
        }
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def _log(out: Path) -> list[Any]:
    return [_untimed(json.loads(line)) for line in (out / "log.jsonl").read_text().splitlines()]


def _assert_same_tensors(a: Path, b: Path) -> None:
    from safetensors.torch import load_file

    torch = pytest.importorskip("torch")
    left, right = load_file(str(a)), load_file(str(b))
    assert left.keys() == right.keys()
    for key in left:
        assert torch.equal(left[key], right[key]), key


def _assert_same_run(resumed: Path, straight: Path) -> None:
    """Two LLM trainer folders ended the same: best adapter, summary, log, no checkpoint."""
    _assert_same_tensors(
        resumed / "adapter_model.safetensors", straight / "adapter_model.safetensors"
    )
    summary, expected = (json.loads((f / "training.json").read_text()) for f in (resumed, straight))
    assert summary["finished"]
    for record in (summary, expected):
        record["config"].pop("output_dir")
    assert _untimed(summary) == _untimed(expected)
    log = _log(resumed)
    assert log == _log(straight)
    steps = [(r["step"], "eval" in r, r.get("update")) for r in log]
    assert len(steps) == len(set(steps)), "a step is logged twice"
    assert not (resumed / "checkpoint").exists()
    assert not [p for p in resumed.iterdir() if ".tmp-" in p.name]


def _checkpoint_at(out: Path, step: int) -> Callable[[], bool]:
    """Ready once ``out/checkpoint`` holds step ``step`` or later."""

    def ready() -> bool:
        try:
            return bool(json.loads((out / "checkpoint" / "state.json").read_text())["step"] >= step)
        except (OSError, ValueError):
            return False

    return ready


# A driver that runs a trainer's command line with the fake backend sampling the rollouts (the
# tiny model only writes malformed text: every group would tie and nothing would train).
FAKE_GENERATOR = """
import functools, sys
import agents.llm.{module} as trainer
from recgym.llm import FakeLLM
trainer.{function} = functools.partial(trainer.{function}, generator=FakeLLM("mixed"))
trainer.main(sys.argv[1:])
"""


def _llm_args(tiny_dir: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--model",
        str(tiny_dir),
        "--lr",
        "1e-2",
        "--lora-r",
        "4",
        "--eval-episodes",
        "1",
        "--eval-batch-size",
        "1",
        "--test-episodes",
        "1",
        "--output-dir",
        str(out),
        "--device",
        "cpu",
        "--no-progress",
        *extra,
    ]


# ----- the trainers ---------------------------------------------------------------------------


# GRPO's command (with the fake backend) and a hook in the checkpoint writer: SIGKILL inside the
# second write, once the adapter is in the staging folder and before the state is.
DIE_IN_SECOND_CHECKPOINT = """
import functools, os, signal, sys
import agents.llm.grpo as trainer
import agents.llm.run_files as run_files
from recgym.llm import FakeLLM
save_adapter, writes = run_files.save_adapter, []
def dying(model, folder):
    save_adapter(model, folder)
    if folder.name.startswith(".checkpoint.tmp-"):
        writes.append(folder)
        if len(writes) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
run_files.save_adapter = dying
trainer.train_grpo = functools.partial(trainer.train_grpo, generator=FakeLLM("mixed"))
trainer.main(sys.argv[1:])
"""


@pytest.mark.slow  # three trainer processes (~1.5 min on 2 busy cores)
def test_grpo_killed_inside_a_checkpoint_write_resumes_to_the_same_end(
    tiny_dir: Path, tmp_path: Path
) -> None:
    """GRPO killed while it writes its second checkpoint resumes from the first, and ends as
    an uninterrupted run (the kill inside the write is the run's own, from a hook: the
    external kills of the other tests land anywhere, this one where it hurts most)."""
    extra = ["--env", "RecSeq-v0", "--env-kwargs", '{"history_len": 2}', "--eval-temperature"]
    extra += ["0", "--prompts-per-step", "2", "--samples-per-prompt", "4", "--max-new-tokens"]
    extra += ["128", "--micro-batch-size", "4", "--max-steps", "3", "--eval-every", "1"]
    resumed, straight = tmp_path / "resumed", tmp_path / "straight"
    driver = ["-c", FAKE_GENERATOR.format(module="grpo", function="train_grpo")]
    reference = _start([*driver, *_llm_args(tiny_dir, straight, *extra)], _env())
    args = _llm_args(tiny_dir, resumed, *extra)
    killed = _start(["-c", DIE_IN_SECOND_CHECKPOINT, *args], _env())
    _, err = killed.communicate(timeout=600)
    assert killed.returncode == -signal.SIGKILL, err[-2000:]
    # The half-written checkpoint is a staging folder; the step-1 one is whole.
    assert [p.name for p in resumed.iterdir() if p.name.startswith(".checkpoint.tmp-")]
    assert json.loads((resumed / "checkpoint" / "state.json").read_text())["step"] == 1
    _, err = _finish(_start([*driver, *args], _env()))
    _finish(reference)
    assert "recgym: resuming" in err and "from its checkpoint (step 1)" in err
    _assert_same_run(resumed, straight)
    history = json.loads((resumed / "training.json").read_text())["history"]
    assert [h["step"] for h in history] == [0, 1, 2, 3]


@pytest.mark.slow  # three trainer processes (~1 min on 2 busy cores)
def test_dpo_killed_resumes_to_the_same_end(tiny_dir: Path, tmp_path: Path) -> None:
    driver = ["-c", FAKE_GENERATOR.format(module="dpo", function="train_dpo")]
    extra = ["--env", "RecSeq-v0", "--env-kwargs", '{"history_len": 2}', "--rounds", "3"]
    extra += ["--users-per-round", "2", "--prompts-per-step", "2", "--samples-per-prompt", "4"]
    extra += ["--max-new-tokens", "128", "--beta", "0.5", "--epochs", "2"]
    extra += ["--pair-batch-size", "1", "--micro-batch-size", "1"]
    resumed, straight = tmp_path / "resumed", tmp_path / "straight"
    _kill_and_resume(
        [*driver, *_llm_args(tiny_dir, resumed, *extra)],
        [*driver, *_llm_args(tiny_dir, straight, *extra)],
        _env(),
        _checkpoint_at(resumed, 1),
    )
    _assert_same_run(resumed, straight)
    for r in (1, 2, 3):  # every round's own adapter too
        _assert_same_tensors(
            resumed / "rounds" / str(r) / "adapter_model.safetensors",
            straight / "rounds" / str(r) / "adapter_model.safetensors",
        )


@pytest.mark.slow  # three trainer processes (~1 min on 2 busy cores)
def test_recpo_killed_resumes_to_the_same_end(tiny_dir: Path, tmp_path: Path) -> None:
    # RecPO samples its own traces (the tiny model's): the item head's rewards still differ.
    command = ["-m", "agents.llm.recpo"]
    extra = ["--env-kwargs", '{"reward": "fused", "history_len": 5}', "--prompts-per-step", "2"]
    extra += ["--samples-per-prompt", "4", "--max-new-tokens", "12", "--micro-batch-size", "4"]
    extra += ["--max-steps", "3", "--eval-every", "2"]  # each validation rebuilds the item table
    resumed, straight = tmp_path / "resumed", tmp_path / "straight"
    _kill_and_resume(
        [*command, *_llm_args(tiny_dir, resumed, *extra)],
        [*command, *_llm_args(tiny_dir, straight, *extra)],
        _env(),
        _checkpoint_at(resumed, 2),
    )
    _assert_same_run(resumed, straight)


@pytest.mark.slow  # three trainer processes (~1 min on 2 busy cores)
def test_verbalizer_sft_killed_resumes_to_the_same_end(tiny_dir: Path, tmp_path: Path) -> None:
    command = ["-m", "agents.llm.verbalizer_train", "--model", str(tiny_dir)]
    command += ["--retriever", "popularity", "--lr", "3e-2", "--warmup-steps", "0"]
    command += ["--batch-size", "4", "--train-examples", "8", "--max-steps", "6"]
    command += ["--eval-every", "1", "--eval-episodes", "4", "--device", "cpu", "--no-progress"]
    resumed, straight = tmp_path / "resumed", tmp_path / "straight"
    _kill_and_resume(
        [*command, "--output-dir", str(resumed)],
        [*command, "--output-dir", str(straight)],
        _env(),
        _checkpoint_at(resumed, 2),
    )
    _assert_same_run(resumed, straight)


# The LE hub trains registered names only: the driver registers a tiny one, then runs the hub's
# command line (its cache is the test's, with the real cache's dataset artifacts).
LE_HUB = """
import sys
from recgym.le import hub
from recgym.le.train import LEConfig
hub.CONFIGS["tiny"] = LEConfig(
    model=sys.argv[1], users=24, eval_users=60, max_items=60, window=4, state_dim=8, lora_r=2,
    sm_epochs=2, rm_epochs=2, batch_size=8,
)
hub.main(sys.argv[2:])
"""


@pytest.mark.slow  # three LE trainings on the tiny model (~1 min on 2 busy cores)
def test_le_hub_killed_resumes_to_the_same_le(tiny_dir: Path, tmp_path: Path) -> None:
    from recgym.data.cache import cache_dir

    caches = {}
    for name in ("resumed", "straight"):
        caches[name] = tmp_path / name
        caches[name].mkdir()
        (caches[name] / "artifacts").symlink_to(cache_dir("artifacts"))
    argv = ["-c", LE_HUB, str(tiny_dir), "tiny", "--device", "cpu", "--checkpoint-minutes", "0"]

    def ready() -> bool:  # the first stage done, the second one going on
        state = caches["resumed"] / "le"
        return (
            any(
                p.name.endswith(".checkpoint") and (p / "state.pt").is_file()
                for p in state.glob("*")
            )
            and _le_stage(state) == "sm"
        )

    straight = _start(argv, _env(RECGYM_CACHE=str(caches["straight"])))
    _kill_when(argv, _env(RECGYM_CACHE=str(caches["resumed"])), ready)
    out, err = _finish(_start(argv, _env(RECGYM_CACHE=str(caches["resumed"]))))
    straight_out, _ = _finish(straight)
    assert "recgym: resuming the LE training" in err and "sm pass" in err
    assert _untimed(json.loads(out)) | {"folder": None} == _untimed(json.loads(straight_out)) | {
        "folder": None
    }
    (entry,) = (p for p in (caches["resumed"] / "le").glob("tiny-*") if "." not in p.name)
    (reference,) = (p for p in (caches["straight"] / "le").glob("tiny-*") if "." not in p.name)
    _assert_same_tensors(entry / "le.safetensors", reference / "le.safetensors")
    meta, expected = (json.loads((f / "le.json").read_text()) for f in (entry, reference))
    assert _untimed(meta) == _untimed(expected)
    assert sorted(p.name for p in entry.parent.iterdir()) == [entry.name, entry.name + ".lock"]


def _le_stage(cache: Path) -> str | None:
    """The stage the LE checkpoint under ``cache`` is inside (``None``: none or between)."""
    import torch

    for folder in cache.glob("*.checkpoint"):
        try:
            position = torch.load(folder / "state.pt", weights_only=False)["position"]
        except (OSError, RuntimeError, EOFError, KeyError):
            return None
        return None if position is None else str(position["stage"])
    return None


@pytest.mark.slow  # four study processes (~1 min on 2 busy cores)
def test_rl4rec_ablation_killed_twice_resumes_to_the_same_table(tmp_path: Path) -> None:
    command = ["-m", "benchmarks.studies.rl4rec_ablation", "--users", "60", "--max-epochs", "8"]
    command += ["--seeds", "0", "--le", "fake", "--le-kwargs", '{"n_items": 1682}']
    command += ["--max-len", "20", "--variants", "base", "rating", "--algos", "sqn", "sa2c"]
    command += ["--set", "warmup_epochs=2"]
    resumed, straight = tmp_path / "resumed", tmp_path / "straight"

    def killed_in(algos: tuple[str, ...]) -> Callable[[], bool]:  # after an epoch of one
        def ready() -> bool:
            done = {p.stem for p in (resumed / "checkpoint" / "runs").glob("*.json")}
            going = {p.parent.name[4:] for p in (resumed / "checkpoint").glob("fit-*/state.pt")}
            return any(name.split("-")[0] in algos for name in going - done)

        return ready

    # The CE backbone (the base row, recgym.models.seqrec.fit), then SQN or SA2C after it.
    err = _kill_and_resume(
        [*command, "--out", str(resumed)],
        [*command, "--out", str(straight)],
        _env(),
        [killed_in(("ce",)), killed_in(("sqn", "sa2c"))],
    )
    assert "the gru4rec training in" in err  # the CE run resumed midway
    assert "run in" in err and "after epoch" in err  # an SQN / SA2C run too
    record, expected = (json.loads((f / "results.json").read_text()) for f in (resumed, straight))
    for r in (record, expected):
        r.pop("command")  # the output folders differ
    assert _untimed(record) == _untimed(expected)
    assert [(r["algo"], r["variant"]) for r in record["rows"]] == [
        ("ce", "base"),
        ("sqn", "rating"),
        ("sa2c", "rating"),
    ]
    assert not (resumed / "checkpoint").exists()


@pytest.mark.slow  # four study processes with SB3 (~1.5 min on 2 busy cores)
def test_sb3_study_killed_twice_resumes_to_the_same_rows(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    command = ["-m", "benchmarks.studies.recuser_sb3", "--le", "fake", "--le-kwargs"]
    command += ['{"n_items": 20}', "--seeds", "0", "--algos", "DQN", "sb3_contrib:MaskablePPO"]
    command += ["--timesteps", "6144", "--n-envs", "4", "--episodes", "8", "--policies", "mlp"]
    command += ["--checkpoint-minutes", "0", "--eval-every", "1024", "--valid-users", "8"]
    resumed, straight = tmp_path / "resumed", tmp_path / "straight"

    def training(name: str, steps: int) -> Callable[[], bool]:  # killed inside its training
        def ready() -> bool:
            path = resumed / "checkpoint" / name / "state.pt"
            try:
                return bool(torch.load(path, weights_only=False)["num_timesteps"] >= steps)
            except (OSError, RuntimeError, EOFError, KeyError):
                return False

        return ready

    args = [*command, "--out", str(resumed)]
    reference = [*command, "--out", str(straight)]
    # Off-policy (DQN, learning from its replay buffer after 2,000 steps), then on-policy with
    # masks (MaskablePPO, after its first rollout of 2,048 steps; DQN is done by then).
    kills = [training("dqn-mlp-seed0", 2400), training("maskableppo-mlp-seed0", 2048)]
    err = _kill_and_resume(args, reference, _env(), kills)
    assert "resuming the DQN training" in err and "resuming the MaskablePPO training" in err
    record, expected = (json.loads((f / "results.json").read_text()) for f in (resumed, straight))
    assert _untimed(record) == _untimed(expected)
    agents = ["random-item", "popular-item", "sm-greedy", "DQN", "MaskablePPO"]
    assert [r["agent"] for r in record["rows"]] == agents
    from sb3_contrib import MaskablePPO
    from stable_baselines3 import DQN

    for cls, name in ((DQN, "dqn-mlp-seed0.zip"), (MaskablePPO, "maskableppo-mlp-seed0.zip")):
        a = cls.load(resumed / "runs" / name, device="cpu").policy.state_dict()
        b = cls.load(straight / "runs" / name, device="cpu").policy.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert not (resumed / "checkpoint").exists()


# ----- a kill during a checkpoint write --------------------------------------------------------


def test_a_write_killed_midway_leaves_the_previous_folder(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint"
    atomic.replace_dir(folder, lambda f: (f / "state.json").write_text('{"step": 1}'))
    # A kill inside the next write (here: SIGKILL from the writer itself) leaves a staging
    # folder that no reader takes for the checkpoint.
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from recgym.utils import atomic\n"
        "def write(f):\n"
        "    (f / 'state.json').write_text('{\"st')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "atomic.replace_dir(Path(sys.argv[1]), write)\n"
    )
    proc = subprocess.run([PYTHON, "-c", script, str(folder)], env=_env(), cwd=ROOT, check=False)
    assert proc.returncode == -signal.SIGKILL
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]  # the half write
    assert atomic.complete_dir(folder)
    assert json.loads((folder / "state.json").read_text()) == {"step": 1}
    # The next write cleans the leftover up.
    atomic.replace_dir(folder, lambda f: (f / "state.json").write_text('{"step": 2}'))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]
    assert json.loads((folder / "state.json").read_text()) == {"step": 2}


def test_a_kill_between_the_two_renames_is_finished_by_the_reader(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint"
    atomic.replace_dir(folder, lambda f: (f / "state.json").write_text('{"step": 1}'))
    # Killed after the old folder was moved aside and before the new one took its name.
    os.replace(folder, tmp_path / ".checkpoint.old")
    staging = tmp_path / ".checkpoint.tmp-x"
    staging.mkdir()
    (staging / "state.json").write_text('{"step": 2}')
    assert atomic.complete_dir(folder)
    assert json.loads((folder / "state.json").read_text()) == {"step": 1}
    # Killed while the old folder was being deleted: the complete one stays.
    (tmp_path / ".checkpoint.old").mkdir()
    assert atomic.complete_dir(folder) and not (tmp_path / ".checkpoint.old").exists()
    atomic.remove_dir(folder)
    assert not folder.exists() and not atomic.complete_dir(folder)
    assert list(tmp_path.iterdir()) == []


def test_files_and_states_are_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "training.json"
    atomic.write_text(path, "old")

    def failing(f: Path) -> None:
        (f / "adapter_model.safetensors").write_bytes(b"half")
        raise OSError("disk full")

    (tmp_path / "adapter_model.safetensors").write_bytes(b"old")
    with pytest.raises(OSError, match="disk full"):
        atomic.replace_files(tmp_path, failing)
    assert (tmp_path / "adapter_model.safetensors").read_bytes() == b"old"
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter_model.safetensors", path.name]
    # A state of another configuration is refused, naming what differs.
    pytest.importorskip("torch")
    save_state(tmp_path / "state", {"epoch": 3}, {"lr": 0.1, "seeds": (0, 1)})
    assert load_state(tmp_path / "state", {"lr": 0.1, "seeds": [0, 1]}, "run") == {"epoch": 3}
    with pytest.raises(ValueError, match=r"unfinished run with another configuration \(lr differ"):
        load_state(tmp_path / "state", {"lr": 0.2, "seeds": [0, 1]}, "run")
    assert load_state(tmp_path / "none", {}, "run") is None


# ----- resuming with other settings, and what a resume restores ---------------------------------


def test_a_study_or_training_of_other_settings_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from benchmarks.studies import recuser_sb3, rl4rec_ablation
    from recgym.le.train import LEConfig, TrainingCheckpoint

    out = tmp_path / "ablation"
    atomic.write_text(out / "checkpoint" / "study.json", json.dumps({"seeds": [0, 1]}))
    with pytest.raises(ValueError, match="unfinished rl4rec ablation with another configuration"):
        rl4rec_ablation.main(["--seeds", "0", "--users", "5", "--le", "fake", "--out", str(out)])
    out = tmp_path / "sb3"
    atomic.write_text(out / "study.json", json.dumps({"timesteps": 1}))
    argv = [
        "--le",
        "fake",
        "--le-kwargs",
        '{"n_items": 20}',
        "--algos",
        "A2C",
        "--episodes",
        "2",
        "--valid-users",
        "8",
    ]
    with pytest.raises(ValueError, match=r"SB3 study with another configuration \(.*timesteps"):
        recuser_sb3.main([*argv, "--seeds", "0", "--out", str(out)])
    save_state(tmp_path / "le", {"position": None}, dataclasses.asdict(LEConfig(users=7)))
    with pytest.raises(ValueError, match=r"LE training with another configuration \(users differ"):
        TrainingCheckpoint(tmp_path / "le", LEConfig())


def test_a_verbalizer_resumed_after_its_patience_ran_out_stops(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("peft")
    import agents.llm.verbalizer_train as verbalizer

    config = verbalizer.VerbalizerTrainConfig(
        model=str(tiny_dir),
        retriever="popularity",
        lr=1e-12,  # no validation improves on step 0's: patience 1 stops at step 1
        warmup_steps=0,
        batch_size=2,
        train_examples=4,
        max_steps=4,
        eval_every=1,
        eval_episodes=2,
        patience=1,
        output_dir=str(tmp_path),
        device="cpu",
        progress=False,
    )
    with monkeypatch.context() as patch:  # killed after the stop's checkpoint, before its end
        patch.setattr(verbalizer, "remove_checkpoint", lambda out: None)
        assert verbalizer.train_verbalizer(config)["steps"] == 1
    assert (tmp_path / "checkpoint" / "state.json").is_file()
    assert verbalizer.train_verbalizer(config)["steps"] == 1  # not four
    assert not (tmp_path / "checkpoint").exists()
