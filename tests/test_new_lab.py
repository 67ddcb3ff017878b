"""`lab new`: a scaffolded lab is whole at once (parity, TODOs), honest under `lab verify`, and never half-made."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jinja2
import pytest
from test_parity import assert_lab_parity

from grader import resources as resources_module
from grader.labspec import lab_slugs
from grader.resources import Resources, resources
from grader.scaffold import PythonNames, create_lab, with_index_row

from conftest import tree_digest

ROOT = Path(__file__).resolve().parent.parent
COURSE_FOLDERS = ("labs", "solutions", "grader/checks", "docs")
SLUG = "rate-limits"
APP, PROJECT = "rate_limits", "rate_limits_site"
SLUG_TODO = ("Choose a slug of 3 to 40 lowercase letters, digits and single hyphens that starts with a letter, "
             "e.g. `rate-limits`.")


@pytest.fixture
def course(tmp_path: Path) -> Iterator[Path]:
    """A copy of this checkout's course folders, named by LAB_ROOT."""
    root = tmp_path / "course"
    for folder in COURSE_FOLDERS:
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAB_ROOT", str(root))
        yield root


def lab_files(root: Path) -> dict[str, str]:
    """Digests of every file `lab new` may touch: the lab's places and the docs index."""
    digests = {}
    for folder in ("labs", "solutions", "grader/checks", "docs"):
        digests.update({f"{folder}/{name}": digest for name, digest in tree_digest(root / folder).items()})
    return digests


def test_a_new_lab_passes_parity_at_once(course: Path, run_lab):
    result = run_lab("new", SLUG, cwd=course)
    assert result.exit_code == 0, result.output
    slugs = lab_slugs(course / "labs")
    assert SLUG in slugs and len(slugs) == len(lab_slugs(ROOT / "labs")) + 1
    assert resources() == Resources.course(course)
    for slug in slugs:
        assert_lab_parity(resources(), course / "docs", slug)
    index = (course / "docs" / "index.md").read_text()
    assert index.endswith(f"| {SLUG} | [labs/{SLUG}.md](labs/{SLUG}.md) |\n")
    assert index.count(f"labs/{SLUG}.md") == 2, "one row, written once"


def test_it_lists_what_it_made_and_what_to_do_next(course: Path, run_lab):
    result = run_lab("new", SLUG, "--title", "Too many requests", cwd=course)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:6] == [
        f"Created the lab {SLUG} (Too many requests) in {course} (from LAB_ROOT):",
        f"  labs/{SLUG}/           lab.toml (the spec), README.md (the brief) and starter/ (Django project "
        f"{PROJECT}, app {APP})",
        f"  grader/checks/{SLUG}/  the hidden checks (test_items.py, conftest.py) and seed.py",
        f"  solutions/{SLUG}/      the reference solution, the starter path for path with the fix, and NOTES.md",
        f"  docs/labs/{SLUG}.md    the lab's page in the docs",
        "  docs/index.md               a row for the lab in its table",
    ]
    assert f"  1. lab verify {SLUG}" in lines
    assert (f'     grep -rn "TODO: (author)" labs/{SLUG} grader/checks/{SLUG} solutions/{SLUG} '
            f"docs/labs/{SLUG}.md") in lines
    assert lines[-1] == f"Keep LAB_ROOT={course} set for every `lab` command that should see this lab."
    assert 'title = "Too many requests"' in (course / "labs" / SLUG / "lab.toml").read_text()
    assert run_lab("list").output.count("Too many requests") == 1


def test_every_place_to_write_says_todo(course: Path, run_lab):
    assert run_lab("new", SLUG, cwd=course).exit_code == 0
    project = [f"{APP}/models.py", f"{APP}/serializers.py", f"{APP}/views.py", f"{APP}/urls.py", f"{APP}/apps.py",
               f"{APP}/migrations/0001_initial.py", f"{PROJECT}/settings.py"]
    to_write = [f"labs/{SLUG}/lab.toml", f"labs/{SLUG}/README.md",
                *[f"labs/{SLUG}/starter/{path}" for path in project],
                *[f"solutions/{SLUG}/{path}" for path in [*project, "NOTES.md"]],
                *[f"grader/checks/{SLUG}/{name}" for name in ("conftest.py", "seed.py", "test_items.py")],
                f"docs/labs/{SLUG}.md"]
    for relative in to_write:
        assert "TODO: (author)" in (course / relative).read_text(), relative
    # The learner's mark on the deliberate bug, in the second person; the solution's copy explains its fix.
    starter = (course / "labs" / SLUG / "starter" / APP / "serializers.py").read_text()
    solution = (course / "solutions" / SLUG / APP / "serializers.py").read_text()
    assert "    # TODO: The brief says a quantity is never below zero" in starter
    assert "# TODO: The brief" not in solution and "min_value=0" in solution and "min_value" not in starter


def test_the_starter_is_a_django_project_with_its_migrations(course: Path, run_lab):
    assert run_lab("new", SLUG, cwd=course).exit_code == 0
    env = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO")}
    for project in (course / "labs" / SLUG / "starter", course / "solutions" / SLUG):
        assert os.access(project / "manage.py", os.X_OK)
        made = subprocess.run([sys.executable, "manage.py", "makemigrations", "--check", "--dry-run"], cwd=project,
                              env=env, capture_output=True, text=True, timeout=60)
        assert made.returncode == 0 and "No changes detected" in made.stdout, made.stdout + made.stderr


@pytest.mark.parametrize(("slug", "what"), [
    ("ab", "The slug 'ab' is 2 characters long: a lab slug has 3 to 40."),
    ("a" * 41, f"The slug '{'a' * 41}' is 41 characters long: a lab slug has 3 to 40."),
    ("Rate_Limits", "The slug 'Rate_Limits' contains 'L', 'R', '_': a lab slug has only lowercase letters, digits "
                    "and hyphens."),
    ("9-lives", "The slug '9-lives' does not start with a letter."),
    ("-rate", "The slug '-rate' does not start with a letter."),
    ("rate--limits", "The slug 'rate--limits' has an empty word: hyphens go between letters or digits, one at a time."),
    ("rate-limits-", "The slug 'rate-limits-' has an empty word: hyphens go between letters or digits, one at a time."),
])
def test_a_bad_slug_says_what_is_wrong(course: Path, run_lab, slug: str, what: str):
    before = lab_files(course)
    result = run_lab("new", "--", slug, cwd=course)
    assert result.exit_code == 2
    assert result.output == f"error: {what}\n{SLUG_TODO}\n"
    assert lab_files(course) == before


@pytest.mark.parametrize("title", ["", "   ", "two\nlines"])
def test_a_bad_title_says_what_is_wrong(course: Path, run_lab, title: str):
    result = run_lab("new", SLUG, "--title", title, cwd=course)
    assert result.exit_code == 2
    assert result.output == (f"error: The title {title.strip()!r} is not one line of text.\n"
                             'Give --title a short line a learner reads in `lab list`, e.g. --title "Rate limits".\n')
    assert not (course / "labs" / SLUG).exists()


def test_an_existing_lab_is_never_overwritten(course: Path, run_lab):
    before = lab_files(course)
    result = run_lab("new", "race-conditions", cwd=course)
    assert result.exit_code == 2
    assert result.output == (f"error: There is already a lab called 'race-conditions' "
                             f"({course / 'labs' / 'race-conditions'}).\n"
                             "Choose another slug, or edit that lab; `lab list` shows every lab.\n")
    assert lab_files(course) == before

    assert run_lab("new", SLUG, cwd=course).exit_code == 0
    made = lab_files(course)
    (course / "labs" / SLUG / "README.md").write_text("my brief\n")
    again = run_lab("new", SLUG, cwd=course)
    assert again.exit_code == 2 and "There is already a lab called 'rate-limits'" in again.output
    assert (course / "labs" / SLUG / "README.md").read_text() == "my brief\n"
    assert {name: digest for name, digest in lab_files(course).items() if not name.endswith("README.md")} == \
        {name: digest for name, digest in made.items() if not name.endswith("README.md")}


def test_a_leftover_place_of_the_slug_stops_it(course: Path, run_lab):
    leftover = course / "solutions" / SLUG
    leftover.mkdir()
    (leftover / "draft.py").write_text("mine\n")
    before = lab_files(course)
    result = run_lab("new", SLUG, cwd=course)
    assert result.exit_code == 2
    assert result.output == (f"error: {leftover} already exists, though there is no lab 'rate-limits'.\n"
                             "Move it out of the way (nothing is ever overwritten), or choose another slug.\n")
    assert lab_files(course) == before
    assert not list(course.glob(".lab-new-*"))


def test_a_template_that_fails_leaves_nothing(course: Path, tmp_path: Path):
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates" / "new-lab", templates / "new-lab")
    (templates / "new-lab" / "solutions" / "__slug__" / "zz-late.md.j2").write_text("{{ no_such_variable }}\n")
    before = lab_files(course)
    broken = Resources(course, course / "grader" / "checks", templates)
    with pytest.raises(jinja2.UndefinedError):
        create_lab(SLUG, course=broken)
    assert lab_files(course) == before
    assert sorted(path.name for path in course.iterdir()) == ["docs", "grader", "labs", "solutions"]


@pytest.mark.parametrize("failing", ["rename", "replace"])
def test_a_failure_while_moving_into_place_takes_everything_back(course: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 failing: str):
    """The third item fails to move, or the docs index cannot be written: the moved ones are taken back."""
    before = lab_files(course)
    real = getattr(os, failing)
    calls = []

    def flaky(source, destination):
        calls.append(destination)
        if failing == "replace" or len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(source, destination)

    monkeypatch.setattr(os, failing, flaky)
    with pytest.raises(OSError, match="No space left on device"):
        create_lab(SLUG, course=Resources.course(course))
    monkeypatch.undo()
    assert calls
    assert lab_files(course) == before
    assert sorted(path.name for path in course.iterdir()) == ["docs", "grader", "labs", "solutions"]
    assert not list((course / "docs").glob(".*"))


def test_a_new_course_gets_its_folders_and_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_lab):
    monkeypatch.setenv("LAB_ROOT", str(tmp_path))
    result = run_lab("new", SLUG, cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert_lab_parity(resources(), tmp_path / "docs", SLUG)
    assert (tmp_path / "docs" / "index.md").read_text() == (
        f"# Documentation\n\n## Labs\n| lab | page |\n|---|---|\n| {SLUG} | [labs/{SLUG}.md](labs/{SLUG}.md) |\n")


def test_an_installed_wheel_is_not_a_course(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_lab):
    package = tmp_path / "site-packages" / "grader"
    (package / "_resources" / "labs").mkdir(parents=True)
    monkeypatch.delenv("LAB_ROOT", raising=False)
    monkeypatch.setattr(resources_module, "PACKAGE_DIR", package)
    resources.cache_clear()
    try:
        result = run_lab("new", SLUG, cwd=tmp_path)
    finally:
        monkeypatch.undo()
        resources.cache_clear()
    assert result.exit_code == 2
    assert result.output == (
        f"error: This installation's labs live inside its Python package ({package / '_resources'}), not in a "
        "course folder that `lab new` can write to.\n"
        "Set LAB_ROOT to your course checkout (a folder with labs/, solutions/, grader/checks/ and docs/) and run "
        "`lab new` again.\n")
    assert sorted(path.name for path in (package / "_resources").iterdir()) == ["labs"]


def test_lab_root_must_be_a_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_lab):
    monkeypatch.setenv("LAB_ROOT", str(tmp_path / "nowhere"))
    result = run_lab("list")
    assert result.exit_code == 2
    assert result.output == (
        f"error: LAB_ROOT is '{tmp_path / 'nowhere'}', which is not a folder.\n"
        "Set LAB_ROOT to your course checkout (a folder with labs/, solutions/, grader/checks/ and docs/), or unset "
        "it to use the labs of this installation.\n")


def test_lab_root_names_the_course_and_keeps_the_kit_templates(course: Path):
    assert resources() == Resources(course, course / "grader" / "checks", ROOT / "templates", is_course=True)
    assert resources().checks_dir(SLUG) == course / "grader" / "checks" / SLUG
    assert resources().docs == course / "docs"


@pytest.mark.parametrize(("slug", "project", "app", "config"), [
    ("rate-limits", "rate_limits_site", "rate_limits", "RateLimitsConfig"),
    ("email", "email_site", "email_app", "EmailConfig"),  # the standard library's
    ("rest-framework", "rest_framework_site", "rest_framework_app", "RestFrameworkConfig"),  # DRF's
    ("auth", "auth_site", "auth_app", "AuthConfig"),  # django.contrib.auth's app label
    ("class", "class_site", "class_app", "ClassConfig"),  # a keyword
    ("web-2fa", "web_2fa_site", "web_2fa", "Web2faConfig"),
])
def test_python_names_shadow_nothing(slug: str, project: str, app: str, config: str):
    assert PythonNames.of(slug) == PythonNames(project=project, app=app, app_config=config)


def test_the_index_gets_one_row_at_the_end_of_its_labs_table():
    index = "# Docs\n\n## Labs\n| lab | page |\n|---|---|\n| one | [labs/one.md](labs/one.md) |\n\n## More\ntext\n"
    assert with_index_row(index, "two") == (
        "# Docs\n\n## Labs\n| lab | page |\n|---|---|\n| one | [labs/one.md](labs/one.md) |\n"
        "| two | [labs/two.md](labs/two.md) |\n\n## More\ntext\n")
    assert with_index_row(with_index_row(index, "two"), "two") == with_index_row(index, "two")
    assert with_index_row("# Docs\n\n- a link\n", "two") == (
        "# Docs\n\n- a link\n\n## Labs\n| lab | page |\n|---|---|\n| two | [labs/two.md](labs/two.md) |\n")


def lab_command(*args: str) -> subprocess.CompletedProcess:
    """The `lab` CLI in a process of its own, with this test's environment (LAB_ROOT among it)."""
    return subprocess.run([sys.executable, "-m", "grader", *args], capture_output=True, text=True, timeout=600,
                          cwd=ROOT, env={**os.environ, "COLUMNS": "200"})


@pytest.mark.slow
def test_lab_verify_passes_a_new_lab_out_of_the_box(course: Path, run_lab, no_leftovers):
    assert run_lab("new", SLUG, cwd=course).exit_code == 0
    verified = lab_command("verify", SLUG, "--provider", "local")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert (f"  ✓ {SLUG}: the starter fails exactly quantity-validated; the solution passes all 2 checks"
            in verified.stdout.splitlines())


@pytest.mark.slow
def test_lab_verify_tells_when_the_scaffold_is_broken(course: Path, run_lab, no_leftovers):
    """The starter given the fix and the solution given the bug: verify names both, and exits 1."""
    assert run_lab("new", SLUG, cwd=course).exit_code == 0
    starter = course / "labs" / SLUG / "starter" / APP / "serializers.py"
    solution = course / "solutions" / SLUG / APP / "serializers.py"
    buggy, fixed = starter.read_text(), solution.read_text()
    starter.write_text(fixed)
    solution.write_text(buggy)
    verified = lab_command("verify", SLUG, "--provider", "local")
    assert verified.returncode == 1, verified.stdout + verified.stderr
    lines = verified.stdout.splitlines()
    assert "  ✗ starter: quantity-validated should fail but was pass: New items are created with 201; a negative " \
           "quantity is refused with 400 and nothing is stored" in lines
    assert any(line.startswith("  ✗ solution: quantity-validated should pass but was fail: POST /api/items/ with "
                               "quantity -") and line.endswith("a quantity below 0 must be refused with 400, storing "
                                                               "nothing") for line in lines), verified.stdout
    assert not any("✓" in line for line in lines)
