"""The layout rule: imports flow ``benchmarks -> agents -> recgym``, never back.

``recgym`` (the library: envs and the models that define them) imports neither ``agents`` nor
``benchmarks``; ``agents`` does not import ``benchmarks``. Checked twice: statically, on every
import statement and ``import_module("...")`` literal of the source (inside functions too), and
at run time, by making, resetting and stepping every registered env in a fresh interpreter.
The old paths of the modules that moved into ``recgym.models`` still import, with a warning.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN = {"recgym": ("agents", "benchmarks"), "agents": ("benchmarks",)}
"""Package → the top-level packages its modules must not import."""


def _imported_names(tree: ast.AST) -> list[tuple[int, str]]:
    """``(line, module)`` of every absolute import in ``tree``: statements at any depth and the
    string literals given to ``importlib.import_module`` / ``import_module`` / ``__import__``
    (an f-string counts by its literal start)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name not in ("import_module", "__import__"):
                continue
            arg = node.args[0]
            if isinstance(arg, ast.JoinedStr) and arg.values:
                arg = arg.values[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append((node.lineno, arg.value))
    return found


def _violations(package: str) -> list[str]:
    """``file:line: import module`` for every import of ``package``'s source that breaks the
    rule."""
    bad: list[str] = []
    for path in sorted((ROOT / package).rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        for line, module in _imported_names(tree):
            top = module.split(".")[0]
            if top in FORBIDDEN[package]:
                bad.append(f"{rel}:{line}: import {module}")
    return bad


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_runs_against_the_layout(package: str) -> None:
    bad = _violations(package)
    assert not bad, (
        f"{package}/ must not import {' or '.join(FORBIDDEN[package])} (imports flow "
        "benchmarks -> agents -> recgym); move the code it needs down a layer:\n" + "\n".join(bad)
    )


def test_the_static_check_sees_every_form_of_import() -> None:
    source = textwrap.dedent(
        """
        import agents.baselines
        from benchmarks.runner import evaluate
        from . import sibling
        def f():
            from agents.next_item import ItemScoresAgent
            importlib.import_module("agents.seqrec")
            import_module(f"benchmarks.{name}")
            __import__("agents")
        """
    )
    names = [m for _, m in _imported_names(ast.parse(source))]
    assert names == [
        "agents.baselines",
        "benchmarks.runner",
        "agents.next_item",
        "agents.seqrec",
        "benchmarks.",
        "agents",
    ]


# Makes, resets and steps every registered id with a configuration that trains nothing, then
# prints the agents/benchmarks modules the interpreter holds.
_RUN_EVERY_ENV = """
import json, sys

import gymnasium as gym
import numpy as np

import recgym
import recgym.models.kar, recgym.models.popularity, recgym.models.seqrec


class ZeroJudge:
    def score_candidates(self, histories, texts, candidates):
        return np.zeros(np.shape(candidates), dtype=np.float32)


CHEAP = {
    "RecSearch-v0": ({}, '<answer>{"query": "summer dress"}</answer>'),
    "RecSeq-v0": ({}, '<answer>{"query": "space adventure"}</answer>'),
    "RecRank-v0": ({"retriever": "popularity"}, None),
    "RecNext-v0": ({}, None),
    "RecPref-v0": ({"recommender": ZeroJudge()}, "likes science fiction"),
    "RecUser-v0": ({"le": "fake"}, None),
}
missing = sorted(set(recgym.ENVS) - set(CHEAP))
assert not missing, f"no cheap configuration for {missing}: add one to tests/test_layout.py"
for env_id, (kwargs, action) in CHEAP.items():
    env = gym.make(env_id, **kwargs)
    env.reset(seed=0)
    env.action_space.seed(0)
    env.step(env.action_space.sample() if action is None else action)
    env.close()
envs = gym.make_vec("RecUser-v0", 2, le="fake")
envs.reset(seed=0)
envs.step(envs.action_space.sample())
envs.close()
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("agents", "benchmarks"))))
"""


def test_every_env_runs_without_agents_or_benchmarks() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", _RUN_EVERY_ENV],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == [], f"making and stepping the envs imported {loaded}"


def test_import_recgym_models_stays_light() -> None:
    code = (
        "import sys, recgym, recgym.models; "
        "print(','.join(m for m in ('torch', 'agents', 'benchmarks') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == ""


# ----- the old paths of the moved modules ---------------------------------------------------

MOVED = {
    "agents.seqrec": "recgym.models.seqrec",
    "agents.seqrec.config": "recgym.models.seqrec.config",
    "agents.seqrec.hub": "recgym.models.seqrec.hub",
    "agents.seqrec.lru": "recgym.models.seqrec.lru",
    "agents.seqrec.models": "recgym.models.seqrec.models",
    "agents.seqrec.retriever": "recgym.models.seqrec.retriever",
    "agents.seqrec.train": "recgym.models.seqrec.train",
    "agents.seqrec.kar": "recgym.models.kar",
}


@pytest.fixture
def forget_old_paths() -> None:
    """Drop the old paths from ``sys.modules``, so that importing them warns again."""
    import agents  # noqa: F401 (registers the aliases)

    for old in MOVED:
        sys.modules.pop(old, None)


@pytest.mark.usefixtures("forget_old_paths")
@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_module_paths_import_the_new_modules_and_warn(old: str) -> None:
    new = importlib.import_module(MOVED[old])
    if old != "agents.seqrec":
        with warnings.catch_warnings():
            # The parent's old path warns too; here only the module's own warning is checked.
            warnings.simplefilter("ignore", DeprecationWarning)
            importlib.import_module("agents.seqrec")
    with pytest.warns(DeprecationWarning, match=rf"{old} moved to {MOVED[old]}"):
        module = importlib.import_module(old)
    assert module is new


def test_every_moved_module_has_an_old_path() -> None:
    import agents  # noqa: F401 (registers the aliases)
    from recgym.utils.moved import moved_modules

    assert {k: v for k, v in moved_modules().items() if k.startswith("agents.seqrec")} == MOVED
    for path in (ROOT / "recgym" / "models" / "seqrec").glob("*.py"):
        name = path.stem
        if name == "__main__":  # the command line (python -m), not a module to import
            continue
        new = "recgym.models.seqrec" + ("" if name == "__init__" else f".{name}")
        assert new in MOVED.values(), f"{new} has no old agents.seqrec path in the alias table"


def test_old_popularity_retriever_name_warns() -> None:
    import agents.baselines.ranking as ranking
    from recgym.models.popularity import PopularityRetriever

    with pytest.warns(DeprecationWarning, match="recgym.models.popularity.PopularityRetriever"):
        old = ranking.PopularityRetriever
    assert old is PopularityRetriever
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
            ranking.Nothing  # noqa: B018


AGENT_MOVES = {
    "agents.next_item": ("agents.baselines.next_item", "ItemScoresAgent"),
    "agents.ranking": ("agents.baselines.ranking", "RetrieverOrderAgent"),
    "agents.recuser": ("agents.baselines.recuser", "PopularItemAgent"),
    "agents.sb3_vec": ("agents.sb3.vec_env", "RecUserVecEnv"),
}


@pytest.mark.parametrize("old", sorted(AGENT_MOVES))
def test_old_agent_module_paths_warn_and_are_the_grouped_modules(old: str) -> None:
    new, name = AGENT_MOVES[old]
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=rf"{re.escape(old)} moved to {re.escape(new)}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)


def test_grouped_packages_keep_their_names() -> None:
    """``agents.baselines`` and ``agents.sb3`` were modules; as packages they export the same
    names, and ``import agents.sb3`` still leaves stable-baselines3 unloaded."""
    import agents.baselines
    import agents.baselines.ranking
    import agents.baselines.text

    assert agents.baselines.FixedTextAgent is agents.baselines.text.FixedTextAgent
    assert agents.baselines.RandomOrderAgent is agents.baselines.ranking.RandomOrderAgent
    code = "import agents.sb3, sys; assert 'stable_baselines3' not in sys.modules, 'sb3 loaded'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
