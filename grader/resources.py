"""Where the kit's resources (labs, hidden checks, solutions, docs, templates) live.

From a checkout they sit beside the `grader` package; an installed wheel carries
them under `grader/_resources/`. A course kept in a folder of its own is named by
the environment variable LAB_ROOT: a folder laid out like the checkout (labs/,
solutions/, grader/checks/, docs/), whose labs, solutions, hidden checks and docs
are used instead of the installation's; the kit's own templates (report,
overlay, docker, new-lab) stay the installation's. Everything else asks this
module, never a path of its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from grader.errors import UsageProblem

PACKAGE_DIR = Path(__file__).resolve().parent
ROOT_VARIABLE = "LAB_ROOT"
COURSE_LAYOUT = "a folder with labs/, solutions/, grader/checks/ and docs/"


@dataclass(frozen=True)
class Resources:
    """The folders a lab is made of: the course's labs, solutions, hidden checks and docs, and the kit's templates."""

    root: Path
    checks: Path  # the hidden checks, one folder per lab
    templates: Path  # the kit's own templates, whatever the course
    is_course: bool = True  # a course's own folder, which `lab new` may write into (not a wheel's copy)

    @classmethod
    def course(cls, root: Path) -> Resources:
        """A course laid out like the kit's checkout, with this installation's templates."""
        return cls(root, root / "grader" / "checks", installation().templates, is_course=True)

    @property
    def labs(self) -> Path:
        return self.root / "labs"

    @property
    def solutions(self) -> Path:
        return self.root / "solutions"

    @property
    def docs(self) -> Path:
        return self.root / "docs"

    def lab_dir(self, slug: str) -> Path:
        return self.labs / slug

    def starter_dir(self, slug: str) -> Path:
        return self.labs / slug / "starter"

    def solution_dir(self, slug: str) -> Path:
        return self.solutions / slug

    def checks_dir(self, slug: str) -> Path:
        return self.checks / slug


def installation() -> Resources:
    """The resources this installation carries: the wheel's copy, else the checkout's."""
    bundled = PACKAGE_DIR / "_resources"
    if (bundled / "labs").is_dir():
        return Resources(bundled, PACKAGE_DIR / "checks", bundled / "templates", is_course=False)
    return Resources(PACKAGE_DIR.parent, PACKAGE_DIR / "checks", PACKAGE_DIR.parent / "templates")


def resources() -> Resources:
    """The resources in use: the course LAB_ROOT names, else this installation's."""
    override = os.environ.get(ROOT_VARIABLE, "")
    return _resources(str(Path(override).expanduser().absolute()) if override else "")


@cache
def _resources(course_root: str) -> Resources:
    if not course_root:
        return installation()
    root = Path(course_root)
    if not root.is_dir():
        raise UsageProblem(f"{ROOT_VARIABLE} is {course_root!r}, which is not a folder.",
                           f"Set {ROOT_VARIABLE} to your course checkout ({COURSE_LAYOUT}), or unset it to use "
                           "the labs of this installation.")
    return Resources.course(root)


resources.cache_clear = _resources.cache_clear  # for tests that change the installation itself
