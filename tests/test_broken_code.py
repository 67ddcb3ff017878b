"""A learner's broken code is reported as the stage that failed, with its log and what to try."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conftest import FIXTURES, overlay

pytestmark = pytest.mark.slow
BROKEN = FIXTURES / "race-conditions" / "broken"
STAGE_CASES = sorted(path.name for path in BROKEN.iterdir() if "stage" in (path / "variant.toml").read_text())


def latest(workspace: Path) -> dict:
    return json.loads((workspace / ".lab" / "results" / "latest.json").read_text())


@pytest.mark.parametrize("case", STAGE_CASES)
def test_broken_code_names_the_failed_stage(case: str, run_lab, workspace: Path, no_leftovers):
    variant = overlay(BROKEN / case, workspace)
    result = run_lab("check", "--provider", "local", cwd=workspace)

    assert result.exit_code == 1, result.output
    report = latest(workspace)
    failure = report["stage_failure"]
    assert failure["stage"] in variant["stage"].split("|"), failure
    assert variant["log_contains"] in failure["log_tail"]
    assert variant.get("message_contains", "") in failure["message"]
    assert failure["todo"]
    assert f"The {failure['stage']} stage failed:" in result.output
    assert variant["log_contains"] in result.output
    assert "What to try:" in result.output
    assert {check["status"] for check in report["checks"]} == {"skip"}
    assert all(f"the {failure['stage']} stage failed" in check["message"] for check in report["checks"])
    # Failing fast: no stage waited out its time limit.
    assert sum(report["stages"].values()) < 30, report["stages"]


def test_a_hanging_view_fails_on_the_request_time_out_within_the_time_limit(run_lab, workspace: Path, no_leftovers):
    overlay(BROKEN / "hanging-view", workspace)
    time_limit = 40
    started = time.monotonic()
    result = run_lab("check", "--provider", "local", "--request-timeout", "2", "--time-limit", str(time_limit),
                     cwd=workspace)
    elapsed = time.monotonic() - started

    assert result.exit_code == 1, result.output
    statuses = {check["id"]: check for check in latest(workspace)["checks"]}
    assert statuses["product-detail"]["status"] == "fail"
    assert "timed out: no answer within the request limit of 2 s; the view may hang" in \
        statuses["product-detail"]["message"]
    # The time limit covers the whole run; teardown may add a few seconds after it.
    assert elapsed < time_limit + 10, f"took {elapsed:.1f}s with a {time_limit}s limit"
