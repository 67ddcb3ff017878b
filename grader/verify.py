"""`lab verify`: a lab proves itself. Its starter fails exactly what lab.toml says; its solution passes all."""

from __future__ import annotations

from dataclasses import dataclass

from grader.labspec import LabSpec
from grader.pipeline import Reporter, grade
from grader.resources import resources
from grader.results import RunResult


@dataclass
class Verdict:
    lab: LabSpec
    starter: RunResult
    solution: RunResult

    @property
    def starter_problems(self) -> list[str]:
        problems = []
        for check in self.starter.checks:
            expected = "fail" if check.id in self.lab.starter_fails else "pass"
            if check.status != expected:
                problems.append(f"starter: {check.id} should {expected} but was {check.status}: {check.message}")
        return problems

    @property
    def solution_problems(self) -> list[str]:
        return [f"solution: {check.id} should pass but was {check.status}: {check.message}"
                for check in self.solution.checks if check.status != "pass"]

    @property
    def ok(self) -> bool:
        return not self.starter_problems and not self.solution_problems


def verify_lab(lab: LabSpec, provider: str | None = None, seed: int | None = None,
               reporter: Reporter | None = None) -> Verdict:
    """Grade the lab's starter and its reference solution with the same seed."""
    starter = grade(lab, resources().starter_dir(lab.slug), provider, seed, reporter)
    solution = grade(lab, resources().solution_dir(lab.slug), provider, starter.seed, reporter)
    return Verdict(lab, starter, solution)
