"""Judging load figures fairly: as ratios to the reference solution measured on the same machine.

A bare millisecond threshold passes a fast laptop and fails a slow CI runner for the same code, so a
load check compares the learner's figures with the reference's, measured by the same grader on the
same machine: RPS at least `min_rps_ratio` of the reference's, p50 at most `max_p50_ratio` times the
reference's, and no more than `max_failures` failed requests. A measurement close to a threshold is
repeated; one that stays close after every round is inconclusive, with the numbers.

The starter's and the reference's figures (of every check, the load check's among them) are kept per
lab version, provider and machine (`CalibrationCache`), so a learner's check pays for measuring them
once; `lab calibrate` measures them again. Reports show them beside the learner's own.

A machine busy with other work serves the same code at half its speed or less, so every load round
records how much of the CPU was free for it (`cpu_available`, a short probe just before and just after
the round). A kept calibration measured with much more or much less CPU free than the machine has now is
not used: the reference is measured again, beside the learner's service (`Calibration.why_measure_again`).
A verdict between figures measured with different CPU free, that would go the other way had both had the
same, is measured again and at last inconclusive (`judge`); messages name a busy machine when there was one.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from grader.labspec import Thresholds  # noqa: F401 - where the load checks find it
from grader.paths import cache_dir

MARGIN = 0.15  # within 15% of a threshold a measurement is too close to call, and is repeated
# An idle machine gives a probe on every core nearly all of it (0.87-1.0 measured on 2 cores); two other
# programs spinning gave it about half, a machine at load 10-13 a quarter to a third.
BUSY_BELOW = 0.75  # CPU available under this share: a busy machine
COMPARABLE = 1.5  # figures measured with CPU available more than this factor apart are not compared plainly
PROBE_SECONDS = 0.5


# The names a load check records its figures under (shown side by side in the report).
RPS, P50, P95, P99, REQUESTS, FAILURES = "requests/s", "p50 ms", "p95 ms", "p99 ms", "requests", "failed requests"
CPU = "CPU available %"  # 100 on an idle machine: see cpu_available

# One busy process per core counts the CPU time it is given in a fixed wall time.
_SPIN = ("import sys, time\n"
         "end = time.monotonic() + float(sys.argv[1])\n"
         "start = time.process_time()\n"
         "while time.monotonic() < end:\n"
         "    pass\n"
         "print(time.process_time() - start)\n")


def cpu_available(seconds: float = PROBE_SECONDS) -> float | None:
    """The share of this machine's CPU a burst of work on every core gets now: about 1.0 on an idle machine.

    One spinning process per core, each in a session of its own as a service's processes are (Linux
    shares the CPU between sessions first, with autogroup scheduling), reports the CPU time it was given
    in `seconds`; a steal of the virtual machine's host shows too. None when the probe could not run.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    spinners: list[subprocess.Popen] = []
    given = 0.0
    try:
        for _core in range(cores):
            spinners.append(subprocess.Popen([sys.executable, "-I", "-S", "-c", _SPIN, str(seconds)],
                                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                             stdin=subprocess.DEVNULL, text=True, start_new_session=True))
        for spinner in spinners:
            output, _ = spinner.communicate(timeout=seconds + 15)  # a machine too busy to start one gets 0
            given += float(output.strip() or 0)
    except (OSError, ValueError):
        return None
    except subprocess.TimeoutExpired:
        pass
    finally:
        for spinner in spinners:
            if spinner.poll() is None:
                spinner.kill()
                spinner.wait()
    return round(min(1.0, given / (seconds * cores)), 2)


def cpu_available_now() -> float | None:
    """One probe: enough to tell a machine 1.5 times busier or quieter than when a calibration was made (a load
    run records two, one before and one after it, and keeps the lower)."""
    return cpu_available()


def comparable(mine: float | None, theirs: float | None) -> bool:
    """Whether figures measured with these shares of CPU available compare plainly (unknown ones do)."""
    if mine is None or theirs is None:
        return True
    return max(mine, theirs) / max(min(mine, theirs), 0.01) <= COMPARABLE


def busy(available: float | None) -> bool:
    return available is not None and available < BUSY_BELOW


@dataclass(frozen=True)
class LoadFigures:
    """What a load run measured, in the terms the thresholds use."""

    rps: float  # completed requests per second of real duration
    p50_ms: float | None  # None when nothing completed
    requests: int
    failures: int
    p95_ms: float | None = None
    p99_ms: float | None = None
    cpu_available: float | None = None  # the lower of the probes just before and after the run; None unmeasured

    @property
    def completed_nothing(self) -> bool:
        return self.requests - self.failures <= 0

    @classmethod
    def of(cls, result: Any) -> LoadFigures:
        """From a grader.load.LoadResult."""
        total = result.total
        probes = [share for share in getattr(result, "cpu_available", None) or () if share is not None]
        return cls(rps=round(result.rps, 2), p50_ms=total.p50_ms, requests=total.requests, failures=total.failures,
                   p95_ms=total.p95_ms, p99_ms=total.p99_ms, cpu_available=min(probes) if probes else None)

    def as_figures(self) -> dict[str, float | None]:
        figures = {RPS: self.rps, P50: self.p50_ms, P95: self.p95_ms, P99: self.p99_ms, REQUESTS: self.requests,
                   FAILURES: self.failures}
        if self.cpu_available is not None:
            figures[CPU] = round(100 * self.cpu_available)
        return figures

    @classmethod
    def from_figures(cls, figures: dict[str, Any]) -> LoadFigures | None:
        """From figures a load check recorded; None when they are not a load check's."""
        try:
            cpu = figures.get(CPU)
            return cls(rps=float(figures[RPS]), p50_ms=figures[P50], requests=int(figures[REQUESTS]),
                       failures=int(figures[FAILURES]), p95_ms=figures.get(P95), p99_ms=figures.get(P99),
                       cpu_available=None if cpu is None else round(float(cpu) / 100, 2))
        except (KeyError, TypeError, ValueError):
            return None

    @staticmethod
    def median(rounds: list[LoadFigures]) -> LoadFigures:
        """The round whose throughput is the median (an odd count picks the middle one)."""
        ordered = sorted(rounds, key=lambda figures: figures.rps)
        return ordered[(len(ordered) - 1) // 2]


@dataclass(frozen=True)
class Verdict:
    status: str  # "pass", "fail" or "inconclusive"
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)


def judge(yours: LoadFigures, reference: LoadFigures, thresholds: Thresholds) -> tuple[Verdict, bool]:
    """One measurement against the reference: the verdict, and whether it was too close to call.

    Also too close to call: a verdict between figures measured with CPU available far apart that would
    go the other way had the learner's service had the reference's share of the CPU (throughput scaled by
    it, the median time by its inverse; a probe overstates a service's slowdown, so this errs toward
    measuring again rather than toward a verdict the machine made).
    """
    evidence = {"yours": asdict(yours), "reference": asdict(reference), "thresholds": asdict(thresholds)}
    if reference.completed_nothing or reference.rps <= 0 or not reference.p50_ms:
        return Verdict("inconclusive", "the reference solution completed no request on this machine, so there "
                       "is nothing to compare with (`lab calibrate` measures it again)", evidence), False
    machine = ""
    if busy(yours.cpu_available) or busy(reference.cpu_available):
        evidence["cpu available"] = {"yours": yours.cpu_available, "reference": reference.cpu_available}
        machine = (f" (measured on a busy machine: {_percent(yours.cpu_available)} of the CPU was free for your "
                   f"load, {_percent(reference.cpu_available)} for the reference's)")
    if yours.completed_nothing:
        return Verdict("fail", f"too slow: not one of {yours.requests or 'the'} requests completed under load, "
                       f"while the reference answered {reference.rps:.0f} per second{machine}", evidence), False
    if yours.failures > thresholds.max_failures:
        return Verdict("fail", f"{yours.failures} of {yours.requests} requests failed under load (at most "
                       f"{thresholds.max_failures} may){machine}", evidence), False
    rps_ratio = yours.rps / reference.rps
    p50_ratio = yours.p50_ms / reference.p50_ms
    evidence["ratios"] = {"rps": round(rps_ratio, 3), "p50": round(p50_ratio, 3)}
    figures = (f"{yours.rps:.0f} req/s and p50 {yours.p50_ms:.0f} ms against the reference's "
               f"{reference.rps:.0f} req/s and {reference.p50_ms:.0f} ms")
    slow_rps = rps_ratio < thresholds.min_rps_ratio
    slow_p50 = p50_ratio > thresholds.max_p50_ratio
    close = (abs(rps_ratio - thresholds.min_rps_ratio) <= MARGIN * thresholds.min_rps_ratio
             or abs(p50_ratio - thresholds.max_p50_ratio) <= MARGIN * thresholds.max_p50_ratio)
    if not comparable(yours.cpu_available, reference.cpu_available):
        share = max(yours.cpu_available, 0.01) / max(reference.cpu_available, 0.01)
        evidence["ratios with the reference's CPU"] = {"rps": round(rps_ratio / share, 3),
                                                       "p50": round(p50_ratio * share, 3)}
        fair_fail = rps_ratio / share < thresholds.min_rps_ratio or p50_ratio * share > thresholds.max_p50_ratio
        if fair_fail != (slow_rps or slow_p50):
            close = True
            machine += ("; with the reference's share of the CPU it might pass: run `lab check` again when the "
                        "machine is quieter" if share < 1 else "; the reference had less of the CPU, so these limits "
                        "may be too lenient: run `lab check` again, which measures the reference again")
    if slow_rps or slow_p50:
        limits = []
        if slow_rps:
            limits.append(f"throughput is {rps_ratio:.2f} of the reference's (at least "
                          f"{thresholds.min_rps_ratio:.2f} needed)")
        if slow_p50:
            limits.append(f"the median response takes {p50_ratio:.1f} times the reference's (at most "
                          f"{thresholds.max_p50_ratio:.1f})")
        return Verdict("fail", f"{'; '.join(limits)}: {figures}{machine}", evidence), close
    return Verdict("pass", f"within the calibrated limits: {figures}{machine}", evidence), close


def _percent(share: float | None) -> str:
    return "an unmeasured share" if share is None else f"{100 * share:.0f}%"


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

    def cpu_available(self) -> float | None:
        """The least CPU the reference's load runs had free (1.0 on an idle machine); None when none says."""
        shares = [figures.cpu_available for check_id in self.reference
                  if (figures := self.reference_load(check_id)) is not None and figures.cpu_available is not None]
        return min(shares) if shares else None

    def has_load(self) -> bool:
        return any(self.reference_load(check_id) is not None for check_id in self.reference)

    def why_measure_again(self, available_now: float | None) -> str | None:
        """Why this kept calibration's reference should not judge a load measured now, if it should not.

        A reference measured on a busy machine makes every limit lenient for as long as it is kept, one
        measured on a quiet machine makes them strict while the machine is busy: so the reference is measured
        again when the CPU available now and then are far apart, or when the calibration does not say.
        """
        if not self.has_load():
            return None
        then = self.cpu_available()
        if then is None:
            return "it does not say how busy the machine was when the reference was measured"
        if available_now is None or comparable(then, available_now):
            return None
        return (f"the reference was measured with {_percent(then)} of the CPU free and {_percent(available_now)} "
                f"is free now")

    def busy_note(self) -> str | None:
        """A line saying the reference was measured on a busy machine, when it was."""
        then = self.cpu_available()
        if not busy(then):
            return None
        return (f"measured on a busy machine: {_percent(then)} of the CPU was free for the reference's load (about "
                f"100% on an idle machine); a check when the machine is quieter measures the reference again")

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
