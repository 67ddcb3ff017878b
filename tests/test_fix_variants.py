"""The checks judge behaviour: distinct correct fixes pass them all, plausible wrong ones fail.

Each fixture under tests/fixtures/<lab>/passing/ or failing/ is an overlay on a fresh starter workspace of
that lab (or, with `base = "solution"`, on the reference solution copied into one). A failing variant's
`[expect]` table lists the checks it must fail (or skip, when a check it depends on fails); every other
check must pass.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from click.testing import Result

from grader.labspec import lab_slugs, load_lab
from grader.resources import resources

from conftest import FIXTURES, overlay

pytestmark = pytest.mark.slow
LABS = [slug for slug in lab_slugs(resources().labs) if (FIXTURES / slug / "passing").is_dir()]


def check_ids(slug: str) -> list[str]:
    return list(load_lab(resources().lab_dir(slug) / "lab.toml").check_ids)


def variants(group: str) -> list[tuple[str, str]]:
    return [(slug, path.name) for slug in LABS for path in sorted((FIXTURES / slug / group).iterdir())
            if (path / "variant.toml").is_file()]


def graded(run_lab, workspace: Path) -> tuple[Result, dict[str, dict]]:
    """Run `lab check` as the grader does; returns the CLI result and the checks of latest.json by id."""
    result = run_lab("check", "--provider", "local", cwd=workspace)
    report = json.loads((workspace / ".lab" / "results" / "latest.json").read_text())
    return result, {check["id"]: check for check in report["checks"]}


def verdicts(checks: dict[str, dict]) -> str:
    return "\n".join(f"{check_id}: {check['status']}: {check['message']}" for check_id, check in checks.items())


def test_every_lab_has_fix_variants():
    assert set(LABS) == set(lab_slugs(resources().labs)), "a lab without tests/fixtures/<lab>/passing"


@pytest.mark.parametrize("slug", LABS)
@pytest.mark.parametrize("group", ["passing", "failing"])
def test_variants_are_described_and_expect_real_checks(slug: str, group: str):
    names = [name for lab, name in variants(group) if lab == slug]
    assert len(names) >= 3, f"{slug} needs at least three {group} variants"
    for name in names:
        variant = tomllib.loads((FIXTURES / slug / group / name / "variant.toml").read_text())
        expect = variant.get("expect", {})
        assert variant.get("description"), f"{group}/{name} has no description"
        assert variant.get("base", "starter") in ("starter", "solution"), f"{name}: base is the starter or the solution"
        if group == "passing":
            assert not expect, f"{name}: a passing variant expects every check to pass"
        else:
            unknown = set(expect) - set(check_ids(slug))
            assert not unknown, f"{name} expects unknown checks {unknown}"
            assert "fail" in expect.values() and set(expect.values()) <= {"fail", "skip"}, f"{name}: {expect}"


@pytest.mark.parametrize(("slug", "variant"), variants("passing"), ids=[f"{s}/{v}" for s, v in variants("passing")])
def test_a_correct_fix_passes_every_check(slug: str, variant: str, run_lab, start_lab, no_leftovers):
    workspace = start_lab(slug)
    overlay(FIXTURES / slug / "passing" / variant, workspace)
    result, checks = graded(run_lab, workspace)

    statuses = {check_id: check["status"] for check_id, check in checks.items()}
    assert statuses == dict.fromkeys(check_ids(slug), "pass"), verdicts(checks)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("slug", "variant"), variants("failing"), ids=[f"{s}/{v}" for s, v in variants("failing")])
def test_a_wrong_fix_fails_exactly_the_checks_it_breaks(slug: str, variant: str, run_lab, start_lab, no_leftovers):
    workspace = start_lab(slug)
    expect = overlay(FIXTURES / slug / "failing" / variant, workspace)["expect"]
    result, checks = graded(run_lab, workspace)

    statuses = {check_id: check["status"] for check_id, check in checks.items()}
    assert statuses == {check_id: expect.get(check_id, "pass") for check_id in check_ids(slug)}, verdicts(checks)
    assert result.exit_code == 1, result.output
