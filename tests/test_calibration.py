"""Load verdicts as ratios to the reference measured on the same machine; too close to call is inconclusive."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.calibration import Figures, ReferenceCache, Thresholds, decide, judge, machine_key

REFERENCE = Figures(rps=300.0, p50_ms=20.0, requests=4500, failures=0)
LIMITS = Thresholds(min_rps_ratio=1 / 3, max_p50_ratio=3.0, max_failures=0)


def test_a_service_within_the_ratios_passes():
    verdict, close = judge(Figures(rps=250.0, p50_ms=25.0, requests=3700, failures=0), REFERENCE, LIMITS)

    assert verdict.status == "pass" and not close
    assert verdict.evidence["ratios"] == {"rps": pytest.approx(0.833, abs=0.001), "p50": 1.25}
    assert "250 req/s" in verdict.message and "300 req/s" in verdict.message


@pytest.mark.parametrize(("yours", "words"), [
    (Figures(rps=40.0, p50_ms=30.0, requests=600, failures=0), "throughput is 0.13 of the reference's"),
    (Figures(rps=200.0, p50_ms=140.0, requests=3000, failures=0), "takes 7.0 times the reference's"),
    (Figures(rps=290.0, p50_ms=21.0, requests=4400, failures=3), "3 of 4400 requests failed"),
    (Figures(rps=0.0, p50_ms=None, requests=0, failures=0), "too slow: not one of the requests completed"),
    (Figures(rps=0.0, p50_ms=None, requests=12, failures=12), "too slow: not one of 12 requests completed"),
])
def test_too_slow_or_failing_fails_with_the_numbers(yours: Figures, words: str):
    verdict, _close = judge(yours, REFERENCE, LIMITS)

    assert verdict.status == "fail"
    assert words in verdict.message
    assert verdict.evidence["reference"]["rps"] == 300.0


def test_a_reference_that_completed_nothing_decides_nothing():
    verdict, _ = judge(REFERENCE, Figures(rps=0.0, p50_ms=None, requests=0, failures=0), LIMITS)

    assert verdict.status == "inconclusive" and "lab calibrate" in verdict.message


def test_a_measurement_close_to_a_limit_is_measured_again():
    measurements = iter([Figures(rps=105.0, p50_ms=30.0, requests=1500, failures=0),   # 0.35: close to 1/3
                         Figures(rps=200.0, p50_ms=25.0, requests=3000, failures=0)])   # clearly within

    verdict = decide(lambda: next(measurements), REFERENCE, LIMITS)

    assert verdict.status == "pass" and verdict.evidence["rounds"] == 2


def test_still_too_close_after_every_round_is_inconclusive_with_the_numbers():
    calls = []

    def measure() -> Figures:
        calls.append(1)
        return Figures(rps=98.0, p50_ms=30.0, requests=1400, failures=0)  # 0.327: a hair under 1/3

    verdict = decide(measure, REFERENCE, LIMITS, rounds=3)

    assert verdict.status == "inconclusive" and len(calls) == 3
    assert "after 3 rounds" in verdict.message and "98 req/s" in verdict.message
    assert len(verdict.evidence["rounds"]) == 3


def test_a_clear_failure_is_not_measured_again():
    calls = []

    def measure() -> Figures:
        calls.append(1)
        return Figures(rps=10.0, p50_ms=900.0, requests=150, failures=0)

    assert decide(measure, REFERENCE, LIMITS).status == "fail" and len(calls) == 1


def test_reference_figures_are_kept_per_lab_version_provider_and_machine(tmp_path: Path):
    cache = ReferenceCache(tmp_path)

    assert cache.get("slow-queries", "1.0.0", "local", "under-load") is None
    cache.put("slow-queries", "1.0.0", "local", "under-load", REFERENCE)

    assert cache.get("slow-queries", "1.0.0", "local", "under-load") == REFERENCE
    assert cache.get("slow-queries", "1.0.1", "local", "under-load") is None, "a new lab version measures again"
    assert cache.get("slow-queries", "1.0.0", "docker", "under-load") is None, "so does another provider"
    assert machine_key("local") != machine_key("docker") and machine_key("local") == machine_key("local")
