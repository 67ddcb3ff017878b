"""The race-conditions checks judge behaviour: distinct correct fixes pass them all, plausible wrong ones fail.

Each fixture under tests/fixtures/race-conditions/passing/ or failing/ is an overlay on a fresh starter
workspace. A failing variant's `[expect]` table lists the checks it must fail (or skip, when a check it
depends on fails); every other check must pass.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from click.testing import Result

from conftest import FIXTURES, ROOT, overlay

pytestmark = pytest.mark.slow
VARIANTS = FIXTURES / "race-conditions"
LAB = tomllib.loads((ROOT / "labs" / "race-conditions" / "lab.toml").read_text())
CHECK_IDS = [check["id"] for check in LAB["checks"]]
PASSING = sorted(path.name for path in (VARIANTS / "passing").iterdir() if (path / "variant.toml").is_file())
FAILING = sorted(path.name for path in (VARIANTS / "failing").iterdir() if (path / "variant.toml").is_file())


def graded(run_lab, workspace: Path) -> tuple[Result, dict[str, dict]]:
    """Run `lab check` as the grader does; returns the CLI result and the checks of latest.json by id."""
    result = run_lab("check", "--provider", "local", cwd=workspace)
    report = json.loads((workspace / ".lab" / "results" / "latest.json").read_text())
    return result, {check["id"]: check for check in report["checks"]}


def verdicts(checks: dict[str, dict]) -> str:
    return "\n".join(f"{check_id}: {check['status']}: {check['message']}" for check_id, check in checks.items())


@pytest.mark.parametrize("group, names", [("passing", PASSING), ("failing", FAILING)])
def test_variants_are_described_and_expect_real_checks(group: str, names: list[str]):
    assert len(names) >= 3
    for name in names:
        variant = tomllib.loads((VARIANTS / group / name / "variant.toml").read_text())
        expect = variant.get("expect", {})
        assert variant.get("description"), f"{group}/{name} has no description"
        if group == "passing":
            assert not expect, f"{name}: a passing variant expects every check to pass"
        else:
            assert set(expect) <= set(CHECK_IDS), f"{name} expects unknown checks {set(expect) - set(CHECK_IDS)}"
            assert "fail" in expect.values() and set(expect.values()) <= {"fail", "skip"}, f"{name}: {expect}"


@pytest.mark.parametrize("variant", PASSING)
def test_a_correct_fix_passes_every_check(variant: str, run_lab, workspace: Path, no_leftovers):
    overlay(VARIANTS / "passing" / variant, workspace)
    result, checks = graded(run_lab, workspace)

    statuses = {check_id: check["status"] for check_id, check in checks.items()}
    assert statuses == dict.fromkeys(CHECK_IDS, "pass"), verdicts(checks)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("variant", FAILING)
def test_a_wrong_fix_fails_exactly_the_checks_it_breaks(variant: str, run_lab, workspace: Path, no_leftovers):
    expect = overlay(VARIANTS / "failing" / variant, workspace)["expect"]
    result, checks = graded(run_lab, workspace)

    statuses = {check_id: check["status"] for check_id, check in checks.items()}
    assert statuses == {check_id: expect.get(check_id, "pass") for check_id in CHECK_IDS}, verdicts(checks)
    assert result.exit_code == 1, result.output
