"""Judging load figures fairly: as ratios to the reference solution measured on the same machine.

A bare millisecond threshold passes a fast laptop and fails a slow CI runner for the same code, so a
load check compares the learner's figures with the reference's, measured by the same grader on the
same machine: RPS at least `min_rps_ratio` of the reference's, p50 at most `max_p50_ratio` times the
reference's, and no more than `max_failures` failed requests. A measurement close to a threshold is
repeated; one that stays close after every round is inconclusive, with the numbers.

The starter's and the reference's figures (of every check, the load check's among them) are kept per
lab version, provider and machine (`CalibrationCache`), so a learner's check pays for measuring them
once; `lab calibrate` measures them again. Reports show them beside the learner's own.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from grader.paths import cache_dir

MARGIN = 0.15  # within 15% of a threshold a measurement is too close to call, and is repeated


# The names a load check records its figures under (shown side by side in the report).
RPS, P50, P95, P99, REQUESTS, FAILURES = "requests/s", "p50 ms", "p95 ms", "p99 ms", "requests", "failed requests"


@dataclass(frozen=True)
class LoadFigures:
    """What a load run measured, in the terms the thresholds use."""

    rps: float  # completed requests per second of real duration
    p50_ms: float | None  # None when nothing completed
    requests: int
    failures: int
    p95_ms: float | None = None
    p99_ms: float | None = None

    @property
    def completed_nothing(self) -> bool:
        return self.requests - self.failures <= 0

    @classmethod
    def of(cls, result: Any) -> LoadFigures:
        """From a grader.load.LoadResult."""
        total = result.total
        return cls(rps=round(result.rps, 2), p50_ms=total.p50_ms, requests=total.requests, failures=total.failures,
                   p95_ms=total.p95_ms, p99_ms=total.p99_ms)

    def as_figures(self) -> dict[str, float | None]:
        return {RPS: self.rps, P50: self.p50_ms, P95: self.p95_ms, P99: self.p99_ms, REQUESTS: self.requests,
                FAILURES: self.failures}

    @classmethod
    def from_figures(cls, figures: dict[str, Any]) -> LoadFigures | None:
        """From figures a load check recorded; None when they are not a load check's."""
        try:
            return cls(rps=float(figures[RPS]), p50_ms=figures[P50], requests=int(figures[REQUESTS]),
                       failures=int(figures[FAILURES]), p95_ms=figures.get(P95), p99_ms=figures.get(P99))
        except (KeyError, TypeError, ValueError):
            return None

    @staticmethod
    def median(rounds: list[LoadFigures]) -> LoadFigures:
        """The round whose throughput is the median (an odd count picks the middle one)."""
        ordered = sorted(rounds, key=lambda figures: figures.rps)
        return ordered[(len(ordered) - 1) // 2]


@dataclass(frozen=True)
class Thresholds:
    min_rps_ratio: float = 1 / 3
    max_p50_ratio: float = 3.0
    max_failures: int = 0


@dataclass(frozen=True)
class Verdict:
    status: str  # "pass", "fail" or "inconclusive"
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)


def judge(yours: LoadFigures, reference: LoadFigures, thresholds: Thresholds) -> tuple[Verdict, bool]:
    """One measurement against the reference: the verdict, and whether it was too close to call."""
    evidence = {"yours": asdict(yours), "reference": asdict(reference), "thresholds": asdict(thresholds)}
    if reference.completed_nothing or reference.rps <= 0 or not reference.p50_ms:
        return Verdict("inconclusive", "the reference solution completed no request on this machine, so there "
                       "is nothing to compare with (`lab calibrate` measures it again)", evidence), False
    if yours.completed_nothing:
        return Verdict("fail", f"too slow: not one of {yours.requests or 'the'} requests completed under load, "
                       f"while the reference answered {reference.rps:.0f} per second", evidence), False
    if yours.failures > thresholds.max_failures:
        return Verdict("fail", f"{yours.failures} of {yours.requests} requests failed under load (at most "
                       f"{thresholds.max_failures} may)", evidence), False
    rps_ratio = yours.rps / reference.rps
    p50_ratio = yours.p50_ms / reference.p50_ms
    evidence["ratios"] = {"rps": round(rps_ratio, 3), "p50": round(p50_ratio, 3)}
    figures = (f"{yours.rps:.0f} req/s and p50 {yours.p50_ms:.0f} ms against the reference's "
               f"{reference.rps:.0f} req/s and {reference.p50_ms:.0f} ms")
    slow_rps = rps_ratio < thresholds.min_rps_ratio
    slow_p50 = p50_ratio > thresholds.max_p50_ratio
    close = (abs(rps_ratio - thresholds.min_rps_ratio) <= MARGIN * thresholds.min_rps_ratio
             or abs(p50_ratio - thresholds.max_p50_ratio) <= MARGIN * thresholds.max_p50_ratio)
    if slow_rps or slow_p50:
        limits = []
        if slow_rps:
            limits.append(f"throughput is {rps_ratio:.2f} of the reference's (at least "
                          f"{thresholds.min_rps_ratio:.2f} needed)")
        if slow_p50:
            limits.append(f"the median response takes {p50_ratio:.1f} times the reference's (at most "
                          f"{thresholds.max_p50_ratio:.1f})")
        return Verdict("fail", f"{'; '.join(limits)}: {figures}", evidence), close
    return Verdict("pass", f"within the calibrated limits: {figures}", evidence), close


def decide(measure: Callable[[], LoadFigures], reference: LoadFigures, thresholds: Thresholds, rounds: int = 3) -> Verdict:
    """Measure until a verdict is clear, at most `rounds` times; a verdict still too close is inconclusive."""
    seen: list[dict[str, Any]] = []
    verdict = Verdict("inconclusive", "not measured")
    for _round in range(rounds):
        verdict, close = judge(measure(), reference, thresholds)
        seen.append(verdict.evidence)
        if not close:
            return Verdict(verdict.status, verdict.message, {**verdict.evidence, "rounds": len(seen)})
    return Verdict("inconclusive", f"too close to the limits to call after {rounds} rounds; the last one: "
                   f"{verdict.message}", {"rounds": seen})


def _machine() -> tuple[str, int, int, str]:
    """This machine's processor, cores, GiB of memory and system."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    return cpu, os.cpu_count() or 0, memory // 2**30, platform.system()


def machine_key(provider: str) -> str:
    """What makes figures comparable: this machine's processor, cores and memory, and the provider."""
    text = json.dumps([*_machine(), provider])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def machine_description() -> str:
    cpu, cores, memory, system = _machine()
    return f"{cpu}, {cores} cores, {memory} GiB, {system}"


@dataclass(frozen=True)
class Calibration:
    """The starter's and the reference solution's figures for every check of a lab, measured on this machine."""

    lab: str
    version: str
    provider: str
    machine: str
    measured_at: str
    seed: int
    starter: dict[str, dict[str, Any]]  # check id -> figure name -> value
    reference: dict[str, dict[str, Any]]

    def reference_load(self, check_id: str) -> LoadFigures | None:
        return LoadFigures.from_figures(self.reference.get(check_id, {}))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> dict[str, Any]:
        """Where the figures come from, for a result."""
        return {"measured_at": self.measured_at, "machine": self.machine, "provider": self.provider,
                "seed": self.seed}


class CalibrationCache:
    """Calibrations per lab, lab version, provider and machine; `lab calibrate` replaces one."""

    def __init__(self, root: Path | None = None):
        self.root = root or cache_dir() / "calibration"

    def path(self, lab: str, version: str, provider: str) -> Path:
        return self.root / f"{lab}-{version}-{provider}-{machine_key(provider)}.json"

    def get(self, lab: str, version: str, provider: str) -> Calibration | None:
        try:
            return Calibration(**json.loads(self.path(lab, version, provider).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def put(self, calibration: Calibration) -> Path:
        path = self.path(calibration.lab, calibration.version, calibration.provider)
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_suffix(f".{os.getpid()}.tmp")
        staging.write_text(json.dumps(calibration.to_json(), indent=2))
        staging.replace(path)
        return path
