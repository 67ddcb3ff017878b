"""Where the kit's resources (labs, hidden checks, solutions, templates) live.

From a checkout they sit beside the `grader` package; an installed wheel carries
them under `grader/_resources/`. Everything else asks this module, never a path
of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Resources:
    """The folders a lab is made of, found from one root."""

    root: Path

    @property
    def labs(self) -> Path:
        return self.root / "labs"

    @property
    def solutions(self) -> Path:
        return self.root / "solutions"

    @property
    def templates(self) -> Path:
        return self.root / "templates"

    @property
    def checks(self) -> Path:
        return PACKAGE_DIR / "checks"

    def lab_dir(self, slug: str) -> Path:
        return self.labs / slug

    def starter_dir(self, slug: str) -> Path:
        return self.labs / slug / "starter"

    def solution_dir(self, slug: str) -> Path:
        return self.solutions / slug

    def checks_dir(self, slug: str) -> Path:
        return self.checks / slug


@cache
def resources() -> Resources:
    """The resources of this installation: the wheel's copy, else the checkout's."""
    bundled = PACKAGE_DIR / "_resources"
    if (bundled / "labs").is_dir():
        return Resources(bundled)
    return Resources(PACKAGE_DIR.parent)
