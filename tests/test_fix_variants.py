"""The checks judge behaviour: distinct correct fixes pass them all, plausible wrong ones fail.

Each fixture under tests/fixtures/<lab>/passing/ or failing/ is an overlay on a fresh starter workspace of
that lab (or, with `base = "solution"`, on the reference solution copied into one). A failing variant's
`[expect]` table lists the checks it must fail (or skip, when a check it depends on fails); every other
check must pass.

A lab that measures no speed (no `[load]` table) has its variants graded two at a time, all of them before
its first test asserts anything, by `lab check` in processes of their own: its checks judge what the service
did, not how fast, so a busy machine changes no verdict, and the batch is done before any other test runs.
A lab with a `[load]` table is graded one variant at a time, inside its own test, on a machine left quiet.
A variant marked `soak = true` is one more of a class of wrong fixes another variant already proves; `make soak`
grades those (pytest -m soak), to keep CI within its time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from grader.labspec import lab_slugs, load_lab
from grader.resources import resources

from conftest import FIXTURES, overlay, run_dirs, run_processes

pytestmark = pytest.mark.slow
LABS = [slug for slug in lab_slugs(resources().labs) if (FIXTURES / slug / "passing").is_dir()]


BATCH_JOBS = 2  # variants of a lab without [load] graded at once


def check_ids(slug: str) -> list[str]:
    return list(load_lab(resources().lab_dir(slug) / "lab.toml").check_ids)


def measures_speed(slug: str) -> bool:
    return load_lab(resources().lab_dir(slug) / "lab.toml").load is not None


def variants(group: str) -> list[tuple[str, str]]:
    return [(slug, path.name) for slug in LABS for path in sorted((FIXTURES / slug / group).iterdir())
            if (path / "variant.toml").is_file()]


def params(group: str) -> list:
    """The variants of a group as test parameters; one marked `soak = true` (one more of a class another variant
    already proves in CI) runs under `make soak` only."""
    return [pytest.param(slug, name, id=f"{slug}/{name}",
                         marks=[pytest.mark.soak] if tomllib.loads(
                             (FIXTURES / slug / group / name / "variant.toml").read_text()).get("soak") else [])
            for slug, name in variants(group)]


@dataclass(frozen=True)
class Graded:
    exit_code: int
    output: str
    checks: dict[str, dict]  # latest.json's checks by id


def grade(workspace: Path, env: dict[str, str] | None = None) -> Graded:
    """Run `lab check` in a workspace, as the grader does, in a process of its own."""
    lab = Path(sys.executable).with_name("lab")
    completed = subprocess.run([str(lab), "check", "--provider", "local"], cwd=workspace, capture_output=True,
                               text=True, timeout=900, env={**os.environ, **(env or {})})
    latest = workspace / ".lab" / "results" / "latest.json"
    output = completed.stdout + completed.stderr
    assert latest.is_file(), output
    report = json.loads(latest.read_text())
    return Graded(completed.returncode, output, {check["id"]: check for check in report["checks"]})


def prepared(slug: str, group: str, variant: str, parent: Path) -> tuple[Path, dict]:
    """A fresh workspace of the lab with the variant laid over it, and the variant's variant.toml."""
    workspace = parent / variant
    started = subprocess.run([str(Path(sys.executable).with_name("lab")), "start", slug, "--dir", str(workspace)],
                             capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stdout + started.stderr
    return workspace, overlay(FIXTURES / slug / group / variant, workspace)


class BatchGrader:
    """The variants of a lab without [load] this session runs, graded BATCH_JOBS at a time the first time one of
    them is asked for."""

    def __init__(self, root: Path, selected: list[tuple[str, str, str]]):
        self.root = root
        self.selected = selected
        self.results: dict[tuple[str, str, str], Graded] = {}

    def result(self, slug: str, group: str, variant: str) -> Graded:
        if (slug, group, variant) not in self.results:
            self._grade_lab(slug)
        return self.results[slug, group, variant]

    def _grade_lab(self, slug: str) -> None:
        dirs_before, pids_before = run_dirs(), run_processes()
        todo = [key for key in self.selected if key[0] == slug]

        def one(key: tuple[str, str, str]) -> Graded:
            folder = Path(tempfile.mkdtemp(prefix=f"{key[2]}-", dir=self.root))
            workspace, _ = prepared(*key, folder)
            (folder / "state").mkdir()
            return grade(workspace, env={"LAB_STATE_DIR": str(folder / "state")})

        with ThreadPoolExecutor(max_workers=BATCH_JOBS) as pool:
            self.results.update(zip(todo, pool.map(one, todo), strict=True))
        assert not run_dirs() - dirs_before, "a run directory was left behind"
        assert not run_processes() - pids_before, "a process of a run was left running"


GROUP_OF_TEST = {"test_a_correct_fix_passes_every_check": "passing",
                 "test_a_wrong_fix_fails_exactly_the_checks_it_breaks": "failing"}


@pytest.fixture(scope="session")
def batch(tmp_path_factory: pytest.TempPathFactory, request) -> BatchGrader:
    selected = [(item.callspec.params["slug"], GROUP_OF_TEST[item.originalname], item.callspec.params["variant"])
                for item in request.session.items if getattr(item, "originalname", None) in GROUP_OF_TEST]
    return BatchGrader(tmp_path_factory.mktemp("variants"), selected)


def graded(slug: str, group: str, variant: str, batch: BatchGrader, tmp_path: Path, request) -> tuple[Graded, dict]:
    """The verdicts on a variant and its variant.toml: from the lab's batch, or graded here and now."""
    toml = tomllib.loads((FIXTURES / slug / group / variant / "variant.toml").read_text())
    if not measures_speed(slug):
        return batch.result(slug, group, variant), toml
    request.getfixturevalue("no_leftovers")
    workspace, _ = prepared(slug, group, variant, tmp_path)
    return grade(workspace), toml


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


@pytest.mark.parametrize(("slug", "variant"), params("passing"))
def test_a_correct_fix_passes_every_check(slug: str, variant: str, batch, tmp_path: Path, request):
    result, _ = graded(slug, "passing", variant, batch, tmp_path, request)

    statuses = {check_id: check["status"] for check_id, check in result.checks.items()}
    assert statuses == dict.fromkeys(check_ids(slug), "pass"), verdicts(result.checks)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("slug", "variant"), params("failing"))
def test_a_wrong_fix_fails_exactly_the_checks_it_breaks(slug: str, variant: str, batch, tmp_path: Path, request):
    result, toml = graded(slug, "failing", variant, batch, tmp_path, request)
    expect = toml["expect"]

    statuses = {check_id: check["status"] for check_id, check in result.checks.items()}
    assert statuses == {check_id: expect.get(check_id, "pass") for check_id in check_ids(slug)}, \
        verdicts(result.checks)
    assert result.exit_code == 1, result.output
