"""recgym.utils.moved: old module paths import the moved module, once, with a warning."""

from __future__ import annotations

import importlib
import sys
import warnings
from pathlib import Path

import pytest

from recgym.utils.moved import alias_modules, moved_modules


@pytest.fixture
def packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "newpkg_t").mkdir()
    (tmp_path / "newpkg_t" / "__init__.py").write_text("")
    (tmp_path / "newpkg_t" / "mod.py").write_text("VALUE = 41\n\ndef f():\n    return VALUE\n")
    (tmp_path / "oldpkg_t").mkdir()
    (tmp_path / "oldpkg_t" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith(("newpkg_t", "oldpkg_t"))]:
        del sys.modules[name]


def test_old_path_is_the_new_module_with_a_deprecation_warning(packages: Path) -> None:
    alias_modules({"oldpkg_t.mod": "newpkg_t.mod"})
    with pytest.warns(DeprecationWarning, match=r"oldpkg_t\.mod moved to newpkg_t\.mod"):
        old = importlib.import_module("oldpkg_t.mod")
    new = importlib.import_module("newpkg_t.mod")
    assert old is new
    assert new.__spec__.name == "newpkg_t.mod"  # the real module keeps its own spec
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from oldpkg_t.mod import VALUE  # cached: no second warning

    assert VALUE == 41
    assert moved_modules()["oldpkg_t.mod"] == "newpkg_t.mod"


def test_patching_the_old_path_patches_the_running_code(
    packages: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alias_modules({"oldpkg_t.mod": "newpkg_t.mod"})
    with pytest.warns(DeprecationWarning):
        old = importlib.import_module("oldpkg_t.mod")
    monkeypatch.setattr(old, "VALUE", 7)
    assert importlib.import_module("newpkg_t.mod").f() == 7


def test_unknown_paths_are_left_alone(packages: Path) -> None:
    alias_modules({"oldpkg_t.mod": "newpkg_t.mod"})
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("oldpkg_t.nothing")


def test_python_dash_m_runs_the_moved_script(packages: Path) -> None:
    import subprocess

    (packages / "newpkg_t" / "script.py").write_text(
        "import sys\nprint('ran', __name__, sys.argv[0])\n"
    )
    (packages / "oldpkg_t" / "__init__.py").write_text(
        "from recgym.utils.moved import alias_modules\n"
        "alias_modules({'oldpkg_t.script': 'newpkg_t.script'})\n"
    )
    env = {**__import__("os").environ, "PYTHONPATH": f"{packages}:{Path.cwd()}"}
    done = subprocess.run(
        [sys.executable, "-W", "always", "-m", "oldpkg_t.script"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    # argv[0] is the moved script's file, as argparse expects of ``python -m``.
    assert done.stdout.strip() == f"ran __main__ {packages / 'newpkg_t' / 'script.py'}"
    assert "oldpkg_t.script moved to newpkg_t.script" in done.stderr


def test_moved_names_warn_and_resolve() -> None:
    from recgym.envs import text
    from recgym.envs.one_step import SPLITS, split_name

    with pytest.warns(DeprecationWarning, match=r"recgym\.envs\.text\.SPLITS moved to"):
        assert text.SPLITS is SPLITS
    with pytest.warns(DeprecationWarning):
        from recgym.envs.text import split_name as old

    assert old is split_name
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        text.nothing  # noqa: B018
