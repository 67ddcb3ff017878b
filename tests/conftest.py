"""Shared fixtures: every test gets its own state folder; grading tests share one cache of clusters."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.cli import cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("LAB_STATE_DIR", str(state))
    monkeypatch.setenv("LAB_CACHE_DIR", str(_shared_cache(tmp_path_factory)))
    monkeypatch.delenv("LAB_PROVIDER", raising=False)
    return state


def _shared_cache(factory: pytest.TempPathFactory) -> Path:
    path = factory.getbasetemp() / "cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def run_lab(monkeypatch: pytest.MonkeyPatch):
    """Run the `lab` CLI in a folder, as a learner would; returns click's Result."""
    def run(*args: str, cwd: Path | None = None):
        if cwd is not None:
            monkeypatch.chdir(cwd)
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return run


def tree_digest(root: Path, skip: str = ".lab") -> dict[str, str]:
    """sha256 of every file under root, except those under `skip`."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and skip not in path.relative_to(root).parts
    }
