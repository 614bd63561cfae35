"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty RECGYM_CACHE for tests that must fetch for real."""
    root = tmp_path / "cache"
    monkeypatch.setenv("RECGYM_CACHE", str(root))
    return root
