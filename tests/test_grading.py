"""Grading for real: PostgreSQL, Redis and gunicorn as local processes, driven through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from grader import formats
from grader.labspec import load_lab
from grader.processes import RunDirectory, runs_root
from grader.providers.postgres import PostgresServer, find_postgres, initdb
from grader.providers.redis import RedisServer, find_redis_server
from grader.resources import resources

from conftest import as_at_a_terminal, tree_digest

pytestmark = pytest.mark.slow
LAB = load_lab(resources().lab_dir("race-conditions") / "lab.toml")
SOLUTION = resources().solution_dir("race-conditions")


def statuses(workspace: Path) -> dict[str, str]:
    result = json.loads((workspace / ".lab" / "results" / "latest.json").read_text())
    return {check["id"]: check["status"] for check in result["checks"]}


def expected_starter_statuses() -> dict[str, str]:
    return {check_id: "fail" if check_id in LAB.starter_fails else "pass" for check_id in LAB.check_ids}


def test_check_changes_nothing_outside_dot_lab_and_ignores_planted_pytest_files(run_lab, workspace: Path):
    # A learner's pytest configuration must not reach the hidden checks: each of these would
    # break or short-circuit a pytest run that collected from the workspace.
    (workspace / "conftest.py").write_text("raise SystemExit('a planted conftest was imported')\n")
    (workspace / "pytest.ini").write_text("[pytest]\naddopts = --collect-only -p no:grader.pytest_plugin\n")
    (workspace / "store" / "conftest.py").write_text(
        "import pytest\n\n@pytest.hookimpl(tryfirst=True)\ndef pytest_runtest_call(item):\n    pass\n")
    before = tree_digest(workspace)
    runs_before = set(runs_root().glob("run-*"))

    result = run_lab("check", "--provider", "local", "--seed", "7", cwd=workspace)

    assert result.exit_code == 1, result.output
    assert tree_digest(workspace) == before
    assert statuses(workspace) == expected_starter_statuses()
    report = json.loads((workspace / ".lab" / "results" / "latest.json").read_text())
    assert report["schema_version"] == 1 and report["seed"] == 7 and report["provider"] == "local"
    jsonschema.validate(report, json.loads(formats.RESULT_SCHEMA.read_text()))
    assert set(report["stages"]) >= {"snapshot", "services", "seed", "serve", "checks", "teardown"}
    oversell = next(check for check in report["checks"] if check["id"] == "no-oversell")
    assert oversell["evidence"] and oversell["hint"]
    assert "FAIL  no-oversell" in result.output and "seed 7" in result.output
    assert set(runs_root().glob("run-*")) <= runs_before, "the run directory was left behind"
    assert (workspace / ".lab" / "logs" / "server.log").is_file()


def test_fixed_workspace_passes_and_records_progress(run_lab, workspace: Path):
    shutil.copytree(SOLUTION, workspace, dirs_exist_ok=True, ignore=shutil.ignore_patterns("NOTES.md"))
    result = run_lab("check", "--provider", "local", cwd=workspace)
    assert result.exit_code == 0, result.output
    assert "all required checks pass" in result.output
    assert set(statuses(workspace).values()) == {"pass"}
    assert "passed" in run_lab("list").output


def test_only_runs_the_named_checks_with_their_dependencies_and_records_no_result(run_lab, workspace: Path):
    from grader.state import Progress

    shutil.copytree(SOLUTION, workspace, dirs_exist_ok=True, ignore=shutil.ignore_patterns("NOTES.md"))
    result = run_lab("check", "--provider", "local", "--seed", "11", "--only", "idempotent-concurrent", cwd=workspace)

    assert result.exit_code == 0, result.output
    # idempotent-concurrent depends on idempotent-replay, which depends on single-order: all three run, nothing else.
    assert statuses(workspace) == {"single-order": "pass", "idempotent-replay": "pass", "idempotent-concurrent": "pass"}
    report = json.loads((workspace / ".lab" / "results" / "latest.json").read_text())
    jsonschema.validate(report, json.loads(formats.RESULT_SCHEMA.read_text()))
    assert report["only"] == ["idempotent-concurrent"] and report["score"] == {"earned": 4, "max": 4}
    assert "A partial run of idempotent-concurrent" in result.output and "not recorded" in result.output
    assert Progress().status("race-conditions") == "started", "a partial run is not the lab's result"
    assert "passed" not in run_lab("list").output
    assert "(a partial run of idempotent-concurrent)" in run_lab("status", cwd=workspace).output

    gradescope = run_lab("check", "--only", "single-order", "--gradescope", str(workspace.parent / "gs.json"),
                         cwd=workspace)
    assert gradescope.exit_code == 2 and "no Gradescope result" in gradescope.output
    assert not (workspace.parent / "gs.json").exists()
    unknown = run_lab("check", "--provider", "local", "--only", "no-such-check", cwd=workspace)
    assert unknown.exit_code == 2 and "has no check 'no-such-check'" in unknown.output
    assert "idempotent-concurrent" in unknown.output, "the message lists the lab's checks"

    whole = run_lab("check", "--provider", "local", "--seed", "11", cwd=workspace)
    assert whole.exit_code == 0, whole.output
    assert json.loads((workspace / ".lab" / "results" / "latest.json").read_text())["only"] is None
    assert Progress().status("race-conditions") == "passed"


def test_a_syntax_error_is_a_failed_stage_with_the_log(run_lab, workspace: Path):
    (workspace / "store" / "views.py").write_text("def broken(:\n")
    result = run_lab("check", "--provider", "local", cwd=workspace)
    assert result.exit_code == 1
    assert "stage failed" in result.output and "SyntaxError" in result.output
    assert set(statuses(workspace).values()) == {"skip"}


@pytest.fixture
def external_servers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """A PostgreSQL and a Redis that the kit did not start for the run, as CI service containers would be."""
    run = RunDirectory.create()
    binaries = find_postgres()
    initdb(binaries, run.path / "cluster", run.path / "initdb.log")
    try:
        with PostgresServer(binaries, run.path / "cluster", run, name="external-pg") as postgres, \
                RedisServer(str(find_redis_server().path), run, name="external-redis") as redis_server:
            monkeypatch.setenv("LAB_DATABASE_URL", postgres.get_connection_url())
            monkeypatch.setenv("LAB_REDIS_URL", redis_server.get_connection_url())
            yield postgres
    finally:
        run.remove()


def test_external_provider_grades_against_given_servers(run_lab, workspace: Path, external_servers):
    result = run_lab("check", "--provider", "external", "--seed", "11", cwd=workspace)
    assert result.exit_code == 1, result.output
    assert statuses(workspace) == expected_starter_statuses()
    import psycopg

    with psycopg.connect(**external_servers.params(), autocommit=True) as connection:
        names = [row[0] for row in connection.execute("SELECT datname FROM pg_database")]
    assert not [name for name in names if name.startswith("nl_run_")], "the run's database was not dropped"
    assert [name for name in names if name.startswith("nl_tpl_race_conditions_")], "the template stays cached"


def test_lab_run_serves_demo_data_until_ctrl_c(workspace: Path):
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    from grader.processes import free_port

    port = free_port()
    runs_before = set(runs_root().glob("run-*"))
    process = subprocess.Popen([sys.executable, "-m", "grader", "run", "--provider", "local", "--port", str(port)],
                               cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               preexec_fn=as_at_a_terminal, env={**os.environ, "COLUMNS": "200"})
    try:
        deadline = time.monotonic() + 60
        lines = []
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if "  redis: " in line or not line:  # the last line about the run, after the demo data
                break
        assert f"Serving race-conditions at http://127.0.0.1:{port}" in "".join(lines), "".join(lines)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/products/1/", timeout=10) as response:
            assert json.loads(response.read())["stock"] == 5
        printed = [line.split("psql ", 1)[1].strip() for line in lines if "database: psql " in line]
        assert printed, "".join(lines)
        import psycopg

        with psycopg.connect(printed[0], connect_timeout=10) as connection:  # the command it prints works as printed
            assert connection.execute("SELECT stock FROM store_product WHERE id = 1").fetchone() == (5,)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # Ctrl-C did not stop it: SIGTERM, which also cleans up, then fail
            process.terminate()
            process.communicate(timeout=30)
            raise
    assert "Stopped; the databases of this run are gone." in output
    assert set(runs_root().glob("run-*")) <= runs_before
