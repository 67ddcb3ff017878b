"""A service that breaks what it was given, or hangs, is told so in words: never "the check itself broke".

Each fixture in tests/fixtures/race-conditions/faults/ is the starter with an AppConfig that, in the
server, drops the lab's schema, shuts PostgreSQL or Redis down, or loops forever as the project loads.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from grader.labspec import load_lab
from grader.resources import resources

from conftest import FIXTURES, docker_unavailable, overlay

pytestmark = pytest.mark.slow
FAULTS = FIXTURES / "race-conditions" / "faults"
LAB = load_lab(resources().lab_dir("race-conditions") / "lab.toml")
STARTER = {check_id: "fail" if check_id in LAB.starter_fails else "pass" for check_id in LAB.check_ids}


def latest(workspace: Path) -> dict:
    return json.loads((workspace / ".lab" / "results" / "latest.json").read_text())


@pytest.mark.parametrize(("fault", "provider"), [
    ("drop-schema", "local"), ("kill-redis", "local"),
    # The local provider gives the app a role that is no superuser, so it cannot run a program on the database's
    # server; under docker it is the container's superuser, so it can stop its own PostgreSQL (and nothing else).
    pytest.param("kill-postgres", "docker", marks=pytest.mark.docker)])
def test_a_service_that_breaks_its_database_is_told_so(fault: str, provider: str, run_lab, workspace: Path,
                                                       no_leftovers):
    if provider == "docker" and (why := docker_unavailable()):
        pytest.skip(why)
    says = overlay(FAULTS / fault, workspace)["says"]
    result = run_lab("check", "--provider", provider, "--seed", "5", cwd=workspace)

    assert result.exit_code == 1, result.output
    report = latest(workspace)
    failure = report["stage_failure"]
    assert failure["stage"] == "checks", failure
    assert failure["message"].startswith("your service broke its database during the checks: "), failure
    assert says in failure["message"]
    assert "shuts a server down" in failure["todo"]
    assert "The checks stage failed: your service broke its database" in result.output
    assert not [check for check in report["checks"] if check["status"] == "error"], report["checks"]
    assert report["passed"] is False
    if fault != "kill-redis":  # the checks that reach the database fail on it, with the same words
        broken = [check for check in report["checks"] if "your service broke its database" in check["message"]]
        assert broken and all(says in check["message"] for check in broken)


def test_the_local_app_cannot_run_programs_on_its_database_server(run_lab, workspace: Path, no_leftovers):
    overlay(FAULTS / "kill-postgres", workspace)
    result = run_lab("check", "--provider", "local", "--seed", "5", cwd=workspace)

    assert result.exit_code == 1, result.output
    log = (workspace / ".lab" / "logs" / "server.log").read_text()
    assert "tamper: could not shut PostgreSQL down: must be superuser" in log
    report = latest(workspace)
    assert report["stage_failure"] is None
    assert {check["id"]: check["status"] for check in report["checks"]} == STARTER


def test_a_server_that_loops_as_it_loads_shows_where(run_lab, workspace: Path, no_leftovers):
    says = overlay(FAULTS / "busy-import", workspace)["says"]
    result = run_lab("check", "--provider", "local", "--startup-timeout", "8", cwd=workspace)

    assert result.exit_code == 1, result.output
    failure = latest(workspace)["stage_failure"]
    assert failure["stage"] == "serve"
    assert "within 8 s, and its log says nothing of why. Its Python processes were busy at: " in failure["message"]
    assert says in failure["message"] and "wait_for_warm_cache" in failure["message"], failure["message"]


def test_every_fault_fixture_is_tested():
    tested = {"drop-schema", "kill-postgres", "kill-redis", "busy-import"}
    assert {path.name for path in FAULTS.iterdir()} == tested
    for path in FAULTS.iterdir():
        assert tomllib.loads((path / "variant.toml").read_text())["says"]
