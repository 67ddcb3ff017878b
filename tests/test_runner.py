"""The checks runner with real pytest workers: a check that lets go of its lock while it waits."""

from __future__ import annotations

import textwrap
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

from grader import runner
from grader.labspec import CheckSpec, load_lab
from grader.processes import RunDirectory
from grader.resources import resources

CHECKS = '''
import time
from pathlib import Path

from grader.checkkit import check

LOG = Path(__file__).parent / "events.log"


def note(what):
    with LOG.open("a") as log:
        log.write(f"{what} {time.monotonic()}\\n")


@check("waits")
def test_waits(locks):
    note("waits-start")
    with locks.released():
        note("released")
        time.sleep(2.0)
        note("taking-back")
    note("back")


@check("quick")
def test_quick():
    note("quick-start")
    time.sleep(0.5)
    note("quick-end")
'''


def run_both(checks: Path, monkeypatch) -> dict[str, dict]:
    """Run the two checks in `checks` (both naming the lock "shared") with two workers; their records."""
    lab = replace(load_lab(resources().lab_dir("race-conditions") / "lab.toml"), parallel=2,
                  checks=(CheckSpec("waits", "waits", locks=("shared",)), CheckSpec("quick", "quick", locks=("shared",))))
    monkeypatch.setattr(runner, "resources", lambda: SimpleNamespace(checks_dir=lambda slug: checks))
    run = RunDirectory.create()
    try:
        records, _ = runner.run_checks(lab, run, {"lab": lab.slug}, time.monotonic() + 60)
    finally:
        run.remove()
    return records


def test_a_check_that_lets_go_of_its_lock_lets_another_run_then_gets_it_back(tmp_path: Path, monkeypatch):
    checks = tmp_path / "checks"
    checks.mkdir()
    (checks / "test_locks.py").write_text(textwrap.dedent(CHECKS))
    records = run_both(checks, monkeypatch)
    assert {check_id: record["status"] for check_id, record in records.items()} == {"waits": "pass", "quick": "pass"}, \
        records
    events = dict(line.split() for line in (checks / "events.log").read_text().splitlines())
    at = {name: float(value) for name, value in events.items()}
    assert at["released"] <= at["quick-start"], "the other check started while the lock was held"
    assert at["quick-end"] <= at["back"], "the lock came back while the other check still ran"
    assert at["quick-start"] < at["taking-back"], "the other check did not run during the wait"


def test_a_lock_taken_back_while_the_other_check_runs_waits_for_it_to_end(tmp_path: Path, monkeypatch):
    checks = tmp_path / "checks"
    checks.mkdir()
    # The wait lasts until the other check has started, then the lock is asked back while it still runs.
    waits_for_quick = ("deadline = time.monotonic() + 20\n"
                       "        while 'quick-start' not in LOG.read_text() and time.monotonic() < deadline:\n"
                       "            time.sleep(0.02)")
    (checks / "test_locks.py").write_text(textwrap.dedent(CHECKS).replace("time.sleep(2.0)", waits_for_quick)
                                          .replace("time.sleep(0.5)", "time.sleep(1.0)"))
    records = run_both(checks, monkeypatch)
    assert {record["status"] for record in records.values()} == {"pass"}, records
    at = {name: float(value) for name, value in
          (line.split() for line in (checks / "events.log").read_text().splitlines())}
    assert at["quick-start"] < at["taking-back"] < at["quick-end"] <= at["back"], at
