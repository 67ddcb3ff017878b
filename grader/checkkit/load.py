"""Load checks: the lab's load profile run against the service and judged against the reference."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from grader.calibration import LoadFigures, Thresholds, decide
from grader.checkkit.http import condensed
from grader.checkkit.verdicts import Failure, Inconclusive
from grader.load import LoadFailure, LoadProfile, LoadResult, run_load


class LoadCheck:
    """The lab's load profile run against the service, judged against the reference's figures.

    Grading, `verdict()` measures (again while too close to call) and raises Failure or Inconclusive
    unless the service is within the calibrated ratios. Calibrating, it only measures: once for the
    starter, the median of several rounds for the reference solution. Either way the figures it
    measured are recorded for the report.
    """

    CALIBRATION_ROUNDS = {"starter": 1, "reference": 3}

    def __init__(self, check_id: str, spec: dict[str, Any], base_urls: tuple[str, ...], work: Path,
                 figures: dict[str, Any], reference: dict[str, Any] | None, calibrating: str | None,
                 progress: Callable[[str], None] | None = None):
        self.check_id, self.spec, self.base_urls, self.work = check_id, spec, base_urls, work
        self.figures, self.reference, self.calibrating, self.progress = figures, reference, calibrating, progress
        self.profile = LoadProfile(users=spec["users"], spawn_rate=spec["spawn_rate"], seconds=spec["seconds"])
        self.thresholds = Thresholds(**spec["thresholds"])
        self.rounds = 0
        self.last: LoadResult | None = None  # the latest round, whose failures a verdict shows

    def measure(self, data: Any = None, measured: LoadResult | None = None) -> LoadFigures:
        """One run of the profile (or `measured`, a run of it made for other checks); its figures become the check's."""
        self.rounds += 1
        result = measured or run_load(Path(self.spec["locustfile"]), self.base_urls, self.profile,
                                      self.work / f"round-{self.rounds}", progress=self.progress, data=data)
        self.last = result
        figures = LoadFigures.of(result)
        self.figures.update(figures.as_figures())
        return figures

    def verdict(self, data: Any = None, first: LoadResult | None = None) -> str:
        """Measure and judge; returns the passing message, raises Failure or Inconclusive otherwise.

        `first`: a run of the lab's profile already made for other checks (one load run feeds every check that
        judges it), taken as the first round; the rounds after it are measured here."""
        given = [first] if first is not None else []

        def measure() -> LoadFigures:
            return self.measure(data, given.pop() if given else None)

        if self.calibrating:
            rounds = [measure() for _ in range(self.CALIBRATION_ROUNDS.get(self.calibrating, 1))]
            self.figures.update(LoadFigures.median(rounds).as_figures())
            return f"measured for calibration over {len(rounds)} round(s), not judged"
        reference = LoadFigures.from_figures(self.reference or {})
        if reference is None:
            raise Inconclusive("there are no figures of the reference solution to compare with: `lab calibrate` "
                               "measures them")
        verdict = decide(measure, reference, self.thresholds)
        message, evidence = verdict.message, verdict.evidence
        if verdict.status != "pass" and self.last is not None and self.last.total.failures:
            evidence = {**evidence, **load_failure_evidence(self.last)}
            if self.last.total.failures > self.thresholds.max_failures and self.last.failures:
                message += f"; the most frequent: {failure_line(self.last.failures[0])}"
        if verdict.status == "fail":
            raise Failure(message, evidence=evidence)
        if verdict.status == "inconclusive":
            raise Inconclusive(message, evidence=evidence)
        return message


def failure_line(failure: LoadFailure) -> str:
    """A failure of a load run in a line: the request, its error and how often."""
    return f"{failure.request}: {condensed(failure.error)} ({failure.times} time{'s' if failure.times != 1 else ''})"


def load_failure_evidence(result: LoadResult, limit: int = 5) -> dict[str, Any]:
    """What failed under load, per endpoint: how many of its requests failed and the errors they met."""
    return {"failures": [{"request": failure.request, "error": condensed(failure.error), "times": failure.times}
                         for failure in result.failures[:limit]],
            "by endpoint": {endpoint.name: f"{endpoint.failures} of {endpoint.requests} failed"
                            for endpoint in result.endpoints if endpoint.failures}}
