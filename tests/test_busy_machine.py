"""Load verdicts do not depend on how busy the machine was when the reference or the learner was measured.

Two other programs spinning on the CPU, each in a session of its own as another user's jobs are, slow the
reference solution of slow-queries to a third of its requests/s on two cores. A calibration made under them
would make every limit lenient for as long as it was kept; one made without them would fail correct fixes
checked under them. Here the lab's fix variants get the verdicts their variant.toml expects either way.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from grader.calibration import BUSY_BELOW, CPU, RPS, Calibration, CalibrationCache, busy
from grader.labspec import load_lab
from grader.resources import resources

from conftest import FIXTURES, overlay

pytestmark = [pytest.mark.slow, pytest.mark.soak]  # about 6 minutes: `make soak` runs it
SLUG = "slow-queries"
PASSING = "select-and-prefetch"
LOAD_CHECKS = ("under-load",)
# The failing variants that fail a load check: the ones whose verdict a calibration could change.
FAILING = sorted(path.name for path in (FIXTURES / SLUG / "failing").iterdir()
                 if any(tomllib.loads((path / "variant.toml").read_text()).get("expect", {}).get(check_id) == "fail"
                        for check_id in LOAD_CHECKS))
HOG_SECONDS = 420  # each spinning program stops by itself after this, should the test be killed before its finally


@contextmanager
def other_programs_spinning(count: int = 2) -> Iterator[None]:
    """`count` processes spinning on the CPU, each in a session of its own; stopped on the way out."""
    spin = f"import time\nend = time.monotonic() + {HOG_SECONDS}\nwhile time.monotonic() < end:\n    pass\n"
    hogs = []
    try:
        for _hog in range(count):
            hogs.append(subprocess.Popen([sys.executable, "-c", spin], start_new_session=True))
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def kept_calibration() -> Calibration:
    kept = list(CalibrationCache().root.glob(f"{SLUG}-*-local-*.json"))
    assert len(kept) == 1, kept
    return Calibration(**json.loads(kept[0].read_text()))


def graded(run_lab, folder: Path, group: str, name: str) -> tuple[str, dict[str, dict], dict[str, str]]:
    """A fresh workspace with the variant over it, checked: the output, the checks by id, and the expected statuses."""
    folder.mkdir(parents=True)
    started = run_lab("start", SLUG, cwd=folder)
    assert started.exit_code == 0, started.output
    workspace = folder / SLUG
    expect = overlay(FIXTURES / SLUG / group / name, workspace).get("expect", {})
    result = run_lab("check", "--provider", "local", cwd=workspace)
    report = json.loads((workspace / ".lab" / "results" / "latest.json").read_text())
    checks = {check["id"]: check for check in report["checks"]}
    ids = load_lab(resources().lab_dir(SLUG) / "lab.toml").check_ids
    return result.output, checks, {check_id: expect.get(check_id, "pass") for check_id in ids}


def load_figures(check: dict) -> dict[str, dict]:
    return {row["name"]: row for row in check["figures"] if row["name"] in (RPS, CPU)}


def expect_verdicts(run_lab, folder: Path, when: str) -> list[str]:
    """Every chosen variant gets the statuses its variant.toml expects; returns a line of figures for each."""
    lines = []
    for group, name in [("passing", PASSING), *(("failing", failing) for failing in FAILING)]:
        output, checks, expected = graded(run_lab, folder / f"{group}-{name}", group, name)
        statuses = {check_id: check["status"] for check_id, check in checks.items()}
        load = checks["under-load"]
        figures = load_figures(load)
        shown = f"{when}, {group}/{name}: {load['status']}: {load['message']} {figures}"
        assert statuses == expected, f"{shown}\n{output}"
        cpu = figures[CPU]
        assert cpu["yours"] and cpu["reference"], f"the report shows the CPU available to each: {shown}"
        if load["status"] != "pass" and (busy(cpu["yours"] / 100) or busy(cpu["reference"] / 100)):
            assert "busy machine" in load["message"], shown
        lines.append(shown)
    return lines


def test_verdicts_are_the_same_whether_the_reference_or_the_learner_was_measured_on_a_busy_machine(
        run_lab, tmp_path: Path, no_leftovers):
    assert FAILING == ["bigger-server"]
    with other_programs_spinning():
        calibrated = run_lab("calibrate", SLUG, "--provider", "local")
    assert calibrated.exit_code == 0, calibrated.output
    busy_then = kept_calibration().cpu_available()
    assert busy_then is not None and busy_then < BUSY_BELOW, calibrated.output
    assert "The reference was measured on a busy machine:" in calibrated.output
    assert CPU in calibrated.output

    # Without them, the busy calibration is not what the checks judge by (unless the machine is as busy anyway).
    quiet = expect_verdicts(run_lab, tmp_path / "quiet", "checked without them")
    # The reverse: the calibration now kept was made without them, and the checks run with them.
    with other_programs_spinning():
        busy_now = expect_verdicts(run_lab, tmp_path / "busy", "checked with two spinning")

    print("\n".join([f"calibrated with two spinning: CPU available {busy_then:.0%}", *quiet, *busy_now]))
