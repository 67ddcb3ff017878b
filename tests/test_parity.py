"""Every lab exists in all its places, and its checks match lab.toml one to one.

The assertions are plain functions over a course (a Resources root and its docs folder): the tests below
run them on this checkout, and tests/test_new_lab.py on a course with a lab fresh from `lab new`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from grader.labspec import lab_slugs, load_lab
from grader.resources import Resources, resources
from grader.workspace import code_files

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SLUGS = lab_slugs(resources().labs)


def hidden_check_ids(course: Resources, slug: str) -> list[str]:
    """The check ids the lab's hidden test modules implement, one entry per marked function."""
    ids = []
    for module_path in sorted(course.checks_dir(slug).glob("test_*.py")):
        spec = importlib.util.spec_from_file_location(f"_parity_{slug}_{module_path.stem}".replace("-", "_"), module_path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # as an import would: dataclasses look their module up there
        try:
            spec.loader.exec_module(module)
        finally:
            del sys.modules[spec.name]
        for name, function in vars(module).items():
            if name.startswith("test_") and callable(function):
                marks = [mark for mark in getattr(function, "pytestmark", []) if mark.name == "check"]
                assert len(marks) == 1, f"{module_path}:{name} must carry exactly one @check(id)"
                ids.append(marks[0].args[0])
    return ids


def assert_lab_has_every_place(course: Resources, docs: Path, slug: str) -> None:
    lab_dir = course.lab_dir(slug)
    assert (lab_dir / "README.md").is_file(), "the brief"
    assert (lab_dir / "starter" / "manage.py").is_file(), "a starter Django project"
    assert course.checks_dir(slug).is_dir(), "hidden checks in grader/checks/<slug>/"
    assert course.solution_dir(slug).is_dir(), "a reference solution in solutions/<slug>/"
    assert (course.solution_dir(slug) / "NOTES.md").is_file(), "NOTES.md on why the fix works"
    assert (docs / "labs" / f"{slug}.md").is_file(), "a page in docs/labs/"
    assert f"labs/{slug}.md" in (docs / "index.md").read_text(), "listed in docs/index.md"


def assert_solution_mirrors_starter(course: Resources, slug: str) -> None:
    starter = set(code_files(course.starter_dir(slug)))
    solution = set(code_files(course.solution_dir(slug)))
    missing = sorted(str(path) for path in starter - solution)
    assert not missing, f"solutions/{slug} lacks starter files: {missing}"


def assert_each_check_id_has_exactly_one_hidden_check(course: Resources, slug: str) -> None:
    lab = load_lab(course.lab_dir(slug) / "lab.toml")
    implemented = hidden_check_ids(course, slug)
    duplicates = sorted({check_id for check_id in implemented if implemented.count(check_id) > 1})
    assert not duplicates, f"implemented twice: {duplicates}"
    assert sorted(implemented) == sorted(lab.check_ids)


def assert_every_check_has_a_learner_message(course: Resources, slug: str) -> None:
    lab = load_lab(course.lab_dir(slug) / "lab.toml")
    for check in lab.checks:
        assert check.title and check.hint, f"{check.id} needs a title and a hint"


def assert_lab_parity(course: Resources, docs: Path, slug: str) -> None:
    """Every assertion of this module, for one lab of a course."""
    assert_lab_has_every_place(course, docs, slug)
    assert_solution_mirrors_starter(course, slug)
    assert_each_check_id_has_exactly_one_hidden_check(course, slug)
    assert_every_check_has_a_learner_message(course, slug)


def test_there_are_labs():
    assert SLUGS


@pytest.mark.parametrize("slug", SLUGS)
def test_lab_has_every_place(slug: str):
    assert_lab_has_every_place(resources(), DOCS, slug)


@pytest.mark.parametrize("slug", SLUGS)
def test_solution_mirrors_starter(slug: str):
    assert_solution_mirrors_starter(resources(), slug)


@pytest.mark.parametrize("slug", SLUGS)
def test_each_check_id_has_exactly_one_hidden_check(slug: str):
    assert_each_check_id_has_exactly_one_hidden_check(resources(), slug)


@pytest.mark.parametrize("slug", SLUGS)
def test_every_check_has_a_learner_message(slug: str):
    assert_every_check_has_a_learner_message(resources(), slug)
