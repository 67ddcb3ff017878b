"""The result of one grading run, and its JSON form (schema version 1)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from grader.calibration import Calibration
from grader.labspec import LabSpec

SCHEMA_VERSION = 1
STATUSES = ("pass", "fail", "skip", "error", "inconclusive")


@dataclass
class CheckResult:
    id: str
    title: str
    status: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    hint: str | None = None
    duration: float = 0.0
    weight: int = 1
    required: bool = True
    figures: dict[str, Any] = field(default_factory=dict)  # what the check measured, by name

    @property
    def passed(self) -> bool:
        return self.status == "pass"


def figure_rows(check_id: str, yours: dict[str, Any], calibration: Calibration | None) -> list[dict[str, Any]]:
    """Each figure a check measured, the starter's, yours and the reference's side by side (None where unmeasured)."""
    starter = calibration.starter.get(check_id, {}) if calibration else {}
    reference = calibration.reference.get(check_id, {}) if calibration else {}
    names = list(dict.fromkeys([*yours, *reference, *starter]))
    return [{"name": name, "starter": starter.get(name), "yours": yours.get(name), "reference": reference.get(name)}
            for name in names]


@dataclass
class StageProblem:
    """A stage of the pipeline that failed because of the learner's code (`checks`: the service broke what the
    checks run against, e.g. its database, and the checks' verdicts are kept beside it)."""

    stage: str
    message: str
    log_tail: str
    todo: str


NESTED_STAGES = {"migrate": "services", "pytest start": "checks"}  # a stage timed inside another: its parent


@dataclass
class RunResult:
    lab: str
    lab_version: str
    provider: str
    seed: int
    started_at: str
    stages: dict[str, float]
    checks: list[CheckResult]
    stage_failure: StageProblem | None = None
    template: str = ""
    servers: dict[str, str] = field(default_factory=dict)
    calibration: Calibration | None = None
    only: tuple[str, ...] | None = None  # a partial run (`lab check --only`): the checks named; None for a whole run

    @property
    def seconds(self) -> float:
        """The whole run: its stages, not counting those timed inside another (NESTED_STAGES)."""
        return sum(seconds for name, seconds in self.stages.items() if name not in NESTED_STAGES)

    @property
    def partial(self) -> bool:
        return self.only is not None

    @property
    def score(self) -> int:
        return sum(check.weight for check in self.checks if check.passed)

    @property
    def max_score(self) -> int:
        return sum(check.weight for check in self.checks)

    @property
    def passed(self) -> bool:
        """True when every required check passes and no stage failed: the exit code 0 condition."""
        return self.stage_failure is None and all(check.passed for check in self.checks if check.required)

    def statuses(self) -> dict[str, str]:
        return {check.id: check.status for check in self.checks}

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "lab": self.lab,
            "lab_version": self.lab_version,
            "provider": self.provider,
            "seed": self.seed,
            "started_at": self.started_at,
            "passed": self.passed,
            "score": {"earned": self.score, "max": self.max_score},
            "stages": {name: round(seconds, 3) for name, seconds in self.stages.items()},
            "template": self.template,
            "servers": self.servers,
            "stage_failure": asdict(self.stage_failure) if self.stage_failure else None,
            "calibration": self.calibration.summary() if self.calibration else None,
            "only": list(self.only) if self.only is not None else None,
            "checks": [{**asdict(check), "figures": figure_rows(check.id, check.figures, self.calibration)}
                       for check in self.checks],
        }


def merge_records(lab: LabSpec, records: dict[str, dict[str, Any]], missing: dict[str, str],
                  run: set[str] | None = None) -> list[CheckResult]:
    """One CheckResult per lab.toml check (of those in `run`, in a partial run), in its order; a check with no
    record gets the `missing` record."""
    results = []
    for spec in lab.checks:
        if run is not None and spec.id not in run:
            continue
        record = records.get(spec.id)
        if record is None:
            record = missing
        hint = record.get("hint") or (spec.hint if record["status"] in ("fail", "inconclusive") else None)
        results.append(CheckResult(
            id=spec.id, title=spec.title, status=record["status"], message=record.get("message", ""),
            evidence=record.get("evidence") or {}, hint=hint or None, duration=float(record.get("duration", 0.0)),
            weight=spec.weight, required=spec.required, figures=record.get("figures") or {},
        ))
    return results
