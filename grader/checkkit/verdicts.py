"""What a check concludes besides passing: a Failure of the service, or Inconclusive."""

from __future__ import annotations

from typing import Any


class Failure(Exception):
    """The learner's service does not behave as the brief says."""

    def __init__(self, rationale: str, *, evidence: dict[str, Any] | None = None, help: str | None = None):
        super().__init__(rationale)
        self.rationale = rationale
        self.evidence = evidence or {}
        self.help = help


class Inconclusive(Exception):
    """The check could not decide; the evidence says why."""

    def __init__(self, rationale: str, *, evidence: dict[str, Any] | None = None):
        super().__init__(rationale)
        self.rationale = rationale
        self.evidence = evidence or {}
