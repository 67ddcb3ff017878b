"""Load verdicts as ratios to the reference measured on the same machine; too close to call is inconclusive."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from grader.calibration import (
    BUSY_BELOW,
    CPU,
    Calibration,
    CalibrationCache,
    LoadFigures,
    Thresholds,
    busy,
    cpu_available,
    decide,
    judge,
    machine_key,
)

REFERENCE = LoadFigures(rps=300.0, p50_ms=20.0, requests=4500, failures=0)
LIMITS = Thresholds(min_rps_ratio=1 / 3, max_p50_ratio=3.0, max_failures=0)


def test_a_service_within_the_ratios_passes():
    verdict, close = judge(LoadFigures(rps=250.0, p50_ms=25.0, requests=3700, failures=0), REFERENCE, LIMITS)

    assert verdict.status == "pass" and not close
    assert verdict.evidence["ratios"] == {"rps": pytest.approx(0.833, abs=0.001), "p50": 1.25}
    assert "250 req/s" in verdict.message and "300 req/s" in verdict.message


@pytest.mark.parametrize(("yours", "words"), [
    (LoadFigures(rps=40.0, p50_ms=30.0, requests=600, failures=0), "throughput is 0.13 of the reference's"),
    (LoadFigures(rps=200.0, p50_ms=140.0, requests=3000, failures=0), "takes 7.0 times the reference's"),
    (LoadFigures(rps=290.0, p50_ms=21.0, requests=4400, failures=3), "3 of 4400 requests failed"),
    (LoadFigures(rps=0.0, p50_ms=None, requests=0, failures=0), "too slow: not one of the requests completed"),
    (LoadFigures(rps=0.0, p50_ms=None, requests=12, failures=12), "too slow: not one of 12 requests completed"),
])
def test_too_slow_or_failing_fails_with_the_numbers(yours: LoadFigures, words: str):
    verdict, _close = judge(yours, REFERENCE, LIMITS)

    assert verdict.status == "fail"
    assert words in verdict.message
    assert verdict.evidence["reference"]["rps"] == 300.0


def test_a_reference_that_completed_nothing_decides_nothing():
    verdict, _ = judge(REFERENCE, LoadFigures(rps=0.0, p50_ms=None, requests=0, failures=0), LIMITS)

    assert verdict.status == "inconclusive" and "lab calibrate" in verdict.message


def test_a_measurement_close_to_a_limit_is_measured_again():
    measurements = iter([LoadFigures(rps=105.0, p50_ms=30.0, requests=1500, failures=0),   # 0.35: close to 1/3
                         LoadFigures(rps=200.0, p50_ms=25.0, requests=3000, failures=0)])   # clearly within

    verdict = decide(lambda: next(measurements), REFERENCE, LIMITS)

    assert verdict.status == "pass" and verdict.evidence["rounds"] == 2


def test_still_too_close_after_every_round_is_inconclusive_with_the_numbers():
    calls = []

    def measure() -> LoadFigures:
        calls.append(1)
        return LoadFigures(rps=98.0, p50_ms=30.0, requests=1400, failures=0)  # 0.327: a hair under 1/3

    verdict = decide(measure, REFERENCE, LIMITS, rounds=3)

    assert verdict.status == "inconclusive" and len(calls) == 3
    assert "after 3 rounds" in verdict.message and "98 req/s" in verdict.message
    assert len(verdict.evidence["rounds"]) == 3


def test_a_clear_failure_is_not_measured_again():
    calls = []

    def measure() -> LoadFigures:
        calls.append(1)
        return LoadFigures(rps=10.0, p50_ms=900.0, requests=150, failures=0)

    assert decide(measure, REFERENCE, LIMITS).status == "fail" and len(calls) == 1


def calibration(version: str = "1.0.0", provider: str = "local") -> Calibration:
    return Calibration(lab="slow-queries", version=version, provider=provider, machine="test machine",
                       measured_at="2026-12-01T00:00:00+00:00", seed=1,
                       starter={"under-load": LoadFigures(2.0, 900.0, 30, 0).as_figures()},
                       reference={"under-load": REFERENCE.as_figures(), "queries-constant": {"statements": 3}})


def test_calibrations_are_kept_per_lab_version_provider_and_machine(tmp_path: Path):
    cache = CalibrationCache(tmp_path)

    assert cache.get("slow-queries", "1.0.0", "local") is None
    cache.put(calibration())

    kept = cache.get("slow-queries", "1.0.0", "local")
    assert kept == calibration()
    assert kept.reference_load("under-load") == REFERENCE
    assert kept.reference_load("queries-constant") is None, "figures that are not a load check's"
    assert cache.get("slow-queries", "1.0.1", "local") is None, "a new lab version measures again"
    assert cache.get("slow-queries", "1.0.0", "docker") is None, "so does another provider"
    assert machine_key("local") != machine_key("docker") and machine_key("local") == machine_key("local")


def test_a_damaged_calibration_is_measured_again(tmp_path: Path):
    cache = CalibrationCache(tmp_path)
    cache.put(calibration())
    cache.path("slow-queries", "1.0.0", "local").write_text("{not json")

    assert cache.get("slow-queries", "1.0.0", "local") is None


def test_the_median_round_is_the_middle_one_by_throughput():
    rounds = [LoadFigures(rps, 100.0, 1000, 0) for rps in (90.0, 40.0, 60.0)]

    assert LoadFigures.median(rounds).rps == 60.0


QUIET, BUSY = 0.95, 0.45  # CPU available: an idle machine, and one with two other programs spinning


def test_a_failure_a_busier_machine_may_explain_is_measured_again_and_says_so():
    reference = LoadFigures(rps=300.0, p50_ms=20.0, requests=4500, failures=0, cpu_available=QUIET)
    yours = LoadFigures(rps=90.0, p50_ms=45.0, requests=1300, failures=0, cpu_available=BUSY)  # 0.30 of it

    verdict, close = judge(yours, reference, LIMITS)

    assert verdict.status == "fail" and close, "with the reference's CPU it would be 0.63: not the learner's doing"
    assert "(measured on a busy machine: 45% of the CPU was free for your load, 95% for the reference's)" \
        in verdict.message
    assert "run `lab check` again when the machine is quieter" in verdict.message
    assert verdict.evidence["cpu available"] == {"yours": BUSY, "reference": QUIET}
    assert decide(lambda: yours, reference, LIMITS).status == "inconclusive"


def test_a_failure_no_busy_machine_explains_stands_and_names_the_busy_machine():
    reference = LoadFigures(rps=65.0, p50_ms=140.0, requests=390, failures=0, cpu_available=QUIET)
    starter = LoadFigures(rps=1.7, p50_ms=1100.0, requests=13, failures=0, cpu_available=BUSY)

    verdict, close = judge(starter, reference, LIMITS)

    assert verdict.status == "fail" and not close
    assert "throughput is 0.03 of the reference's" in verdict.message and "busy machine" in verdict.message
    failing = replace(starter, failures=3)
    assert judge(failing, reference, LIMITS)[0].message == ("3 of 13 requests failed under load (at most 0 may) "
                                                            "(measured on a busy machine: 45% of the CPU was free "
                                                            "for your load, 95% for the reference's)")


def test_a_pass_only_a_busy_reference_allows_is_measured_again():
    reference = LoadFigures(rps=30.0, p50_ms=270.0, requests=180, failures=0, cpu_available=0.40)
    yours = LoadFigures(rps=14.0, p50_ms=500.0, requests=85, failures=0, cpu_available=QUIET)  # 0.47 of it

    verdict, close = judge(yours, reference, LIMITS)

    assert verdict.status == "pass" and close
    assert "the reference had less of the CPU, so these limits may be too lenient" in verdict.message
    assert verdict.evidence["ratios with the reference's CPU"]["rps"] == pytest.approx(0.197, abs=0.002)


@pytest.mark.parametrize(("mine", "theirs"), [(QUIET, 0.88), (0.30, 0.40), (None, BUSY)])
def test_figures_measured_with_like_shares_of_the_cpu_are_judged_plainly(mine, theirs):
    reference = LoadFigures(rps=300.0, p50_ms=20.0, requests=4500, failures=0, cpu_available=theirs)
    yours = LoadFigures(rps=150.0, p50_ms=30.0, requests=2200, failures=0, cpu_available=mine)

    verdict, close = judge(yours, reference, LIMITS)

    assert verdict.status == "pass" and not close
    assert ("busy machine" in verdict.message) == (busy(mine) or busy(theirs))


def test_the_cpu_available_is_kept_with_the_figures_and_shown_as_a_percentage():
    class Measured:  # a grader.load.LoadResult, as far as figures go
        total = type("Total", (), {"p50_ms": 30.0, "requests": 600, "failures": 0, "p95_ms": 80.0, "p99_ms": 95.0})
        rps, cpu_available = 100.0, (0.93, 0.41)

    figures = LoadFigures.of(Measured())

    assert figures.cpu_available == 0.41, "the lower of the probes before and after the run"
    assert figures.as_figures()[CPU] == 41
    assert LoadFigures.from_figures(figures.as_figures()) == figures
    assert CPU not in REFERENCE.as_figures(), "a run that was not probed shows no such row"


def test_a_kept_calibration_is_measured_again_when_the_cpu_available_has_changed_or_is_unknown():
    def kept(available: float | None) -> Calibration:
        reference = LoadFigures(65.0, 140.0, 390, 0, cpu_available=available).as_figures()
        return replace(calibration(), reference={"under-load": reference, "queries-constant": {"statements": 3}})

    assert kept(0.31).why_measure_again(QUIET) == \
        "the reference was measured with 31% of the CPU free and 95% is free now"
    assert kept(QUIET).why_measure_again(0.31) == \
        "the reference was measured with 95% of the CPU free and 31% is free now"
    assert kept(None).why_measure_again(QUIET) == \
        "it does not say how busy the machine was when the reference was measured"
    assert kept(QUIET).why_measure_again(0.88) is None
    assert kept(0.31).why_measure_again(0.40) is None, "as busy then as now: comparable"
    assert kept(0.31).why_measure_again(None) is None, "no probe now: the kept one stands"
    assert replace(calibration(), reference={"queries-constant": {"statements": 3}}).why_measure_again(0.3) is None
    assert kept(0.31).busy_note().startswith("measured on a busy machine: 31% of the CPU was free")
    assert kept(QUIET).busy_note() is None


def test_the_probe_sees_other_programs_spinning():
    hogs = [subprocess.Popen([sys.executable, "-c", "import time\nend = time.monotonic() + 20\n"
                              "while time.monotonic() < end: pass"], start_new_session=True) for _ in range(2)]
    try:
        busy_share = cpu_available()
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()

    assert busy_share is not None and 0 < busy_share < BUSY_BELOW, busy_share


@pytest.mark.slow
def test_lab_calibrate_measures_starter_and_reference_and_check_shows_them_beside_yours(run_lab, start_lab):
    from grader.resources import resources

    result = run_lab("calibrate", "slow-queries", "--provider", "local")

    assert result.exit_code == 0, result.output
    assert "Calibrating slow-queries" in result.output
    assert "under-load" in result.output and "requests/s" in result.output
    kept = list(CalibrationCache().root.glob("slow-queries-*-local-*.json"))
    assert len(kept) == 1
    calibration = Calibration(**json.loads(kept[0].read_text()))
    starter, reference = (LoadFigures.from_figures(side["under-load"])
                          for side in (calibration.starter, calibration.reference))
    assert reference.failures == 0 and reference.rps > 5 * starter.rps, (starter, reference)
    assert calibration.starter["queries-constant"]["statements, books, page of 25"] > \
        calibration.starter["queries-constant"]["statements, books, page of 5"]

    workspace = start_lab("slow-queries")
    shutil.copytree(resources().solution_dir("slow-queries"), workspace, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("NOTES.md"))
    checked = run_lab("check", "--provider", "local", cwd=workspace)

    assert checked.exit_code == 0, checked.output
    assert "Calibrating" not in checked.output, "the kept calibration is used"
    assert "starter" in checked.output and "reference" in checked.output and "p50 ms" in checked.output
    report = json.loads((workspace / ".lab" / "results" / "latest.json").read_text())
    assert report["calibration"]["measured_at"] == calibration.measured_at
    load = next(check for check in report["checks"] if check["id"] == "under-load")
    rows = {row["name"]: row for row in load["figures"]}
    assert set(rows) >= {"requests/s", "p50 ms", "p95 ms", "failed requests"}
    assert all(rows["requests/s"][side] for side in ("starter", "yours", "reference")), rows["requests/s"]
    assert rows["failed requests"]["yours"] == 0
