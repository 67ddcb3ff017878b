"""The wheel: built from this checkout and installed in a fresh virtualenv, it carries and grades every lab.

The installed `lab` runs from a folder outside the checkout with an environment that cannot see it (no
PYTHONPATH, no PATH entry inside it, no user site), so every lab, hidden check, solution and template
it uses must come from the wheel.

It is also the suite's proof of every lab on the local provider, through the learner's own commands: each
starter, checked, fails exactly the checks its lab.toml names, and each reference solution passes them all.

Cost, measured on a 2-core machine: building and installing take about 25 s (pip's cache holds the
dependencies); grading the four starters and their references, and one reference with the Gradescope
autograder copied out of the package, about two and a half minutes. Load labs calibrate on their first
check (the starter and the reference graded once, about a minute per lab) and keep the figures in
LAB_CACHE_DIR. The installed kit uses the suite's shared cache (tests/conftest.py): calibrations are
keyed by lab, lab version, a digest of the lab's files (lab.toml, hidden checks, solution), the provider
and the machine, never by where the kit is installed, so a wheel whose lab files are byte for byte the
checkout's is entitled to the figures the checkout measured, exactly as a learner's second check reuses
its first. The module proves that entitlement instead of assuming it
(`test_the_installed_kit_keys_calibrations_as_the_checkout_does`).
Whichever of this module and the grading tests runs first measures, the others reuse; run alone, this
module measures them itself and takes about five minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from grader import __version__
from grader.labspec import LabSpec, lab_slugs, load_lab
from grader.pipeline import lab_digest
from grader.resources import installation
from grader.workspace import code_files

from conftest import tree_digest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
CHECKOUT = installation()
SLUGS = lab_slugs(CHECKOUT.labs)
LABS = {slug: load_lab(CHECKOUT.lab_dir(slug) / "lab.toml") for slug in SLUGS}
BUNDLE = "grader/_resources"
CALIBRATION_SECONDS = 300  # a load lab's first check grades its starter and reference too


def _run(command: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `python -m build` makes from the checkout."""
    dist = tmp_path_factory.mktemp("dist")
    built = _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)], timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    wheels = list(dist.glob("nexus_labs-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@dataclass(frozen=True)
class InstalledKit:
    venv: Path
    home: Path  # a working folder outside the checkout

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def bundle(self) -> Path:
        """Where the wheel put the labs, solutions and templates."""
        return Path(self.evaluate("from grader.resources import resources; print(resources().root)"))

    def env(self) -> dict[str, str]:
        """This process's environment (the test's state, cache and runs folders) with nothing of the checkout."""
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("PYTHON", "VIRTUAL_ENV", "LAB_ROOT", "LAB_PROVIDER"))}
        path = [entry for entry in env.get("PATH", "").split(os.pathsep) if entry and not _inside(Path(entry), ROOT)]
        env.update(PATH=os.pathsep.join([str(self.venv / "bin"), *path]), PYTHONNOUSERSITE="1", COLUMNS="200")
        return env

    def lab(self, *args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return _run([str(self.venv / "bin" / "lab"), *args], timeout=timeout, cwd=cwd or self.home, env=self.env())

    def evaluate(self, code: str) -> str:
        done = _run([str(self.python), "-c", code], timeout=60, cwd=self.home, env=self.env())
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder)


@pytest.fixture(scope="module")
def kit(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> InstalledKit:
    """A fresh virtualenv, outside the checkout, with the wheel and its dependencies from the index."""
    root = tmp_path_factory.mktemp("installed")
    assert not _inside(root, ROOT)
    venv = root / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)], timeout=120, cwd=root)
    assert made.returncode == 0, made.stderr
    home = root / "home"
    home.mkdir()
    kit = InstalledKit(venv, home)
    installed = _run([str(kit.python), "-m", "pip", "install", "--quiet", str(wheel)], timeout=600, cwd=root,
                     env=kit.env())
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return kit


def test_the_wheel_carries_every_lab_its_hidden_checks_solution_and_the_templates(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    for slug in SLUGS:
        assert f"{BUNDLE}/labs/{slug}/lab.toml" in names and f"{BUNDLE}/labs/{slug}/README.md" in names, slug
        for folder, inside in ((CHECKOUT.starter_dir(slug), f"{BUNDLE}/labs/{slug}/starter"),
                               (CHECKOUT.checks_dir(slug), f"grader/checks/{slug}"),
                               (CHECKOUT.solution_dir(slug), f"{BUNDLE}/solutions/{slug}")):
            expected = {f"{inside}/{relative}" for relative in code_files(folder)}
            assert expected, f"{folder} is empty"
            assert not expected - names, f"missing from the wheel: {sorted(expected - names)}"
    templates = {f"{BUNDLE}/templates/{relative}": CHECKOUT.templates / relative
                 for relative in code_files(CHECKOUT.templates)}
    expected = set(templates) | {f"grader/{relative}" for relative in code_files(ROOT / "grader")
                                 if relative.parts[0] != "_resources"}
    assert not expected - names, f"missing from the wheel: {sorted(expected - names)}"
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    modes = {info.filename: info.external_attr >> 16 for info in zipfile.ZipFile(wheel).infolist()}
    runnable = {name for name, source in templates.items() if os.access(source, os.X_OK)}
    assert runnable, "the Gradescope scripts are runnable templates"
    assert {name for name in runnable if not modes[name] & 0o111} == set(), "a script lost its executable bit"


def test_the_installed_kit_is_the_virtualenvs_own(kit: InstalledKit):
    found = json.loads(kit.evaluate(
        "import json, sys, grader, grader.cli; from grader.resources import resources; r = resources(); "
        "print(json.dumps({'package': grader.__file__, 'cli': grader.cli.__file__, 'root': str(r.root), "
        "'checks': str(r.checks), 'templates': str(r.templates), 'path': sys.path, 'prefix': sys.prefix}))"))
    assert Path(found["prefix"]) == kit.venv
    for key in ("package", "cli", "root", "checks", "templates"):
        assert _inside(Path(found[key]), kit.venv) and not _inside(Path(found[key]), ROOT), (key, found[key])
    assert Path(found["root"]).name == "_resources"
    assert not [entry for entry in found["path"] if entry and _inside(Path(entry), ROOT)], found["path"]
    version = kit.lab("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"lab, version {__version__}", version


def test_the_installed_kit_keys_calibrations_as_the_checkout_does(kit: InstalledKit):
    """The lab digest (lab.toml, hidden checks, solution) names the cached calibration: equal digests, same figures."""
    installed = json.loads(kit.evaluate(
        "import json; from grader import catalog; from grader.pipeline import lab_digest; "
        "print(json.dumps({lab.slug: lab_digest(lab) for lab in catalog.load_all()}))"))
    assert installed == {slug: lab_digest(lab) for slug, lab in LABS.items()}


def test_the_installed_lab_lists_and_starts_every_lab(kit: InstalledKit, tmp_path: Path):
    listed = kit.lab("list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines() if line.split() and line.split()[0] in LABS] \
        == SLUGS, listed.stdout
    for slug in SLUGS:
        started = kit.lab("start", slug, cwd=tmp_path)
        assert started.returncode == 0, started.stdout + started.stderr
        workspace = tmp_path / slug
        assert json.loads((workspace / ".lab" / "lab.json").read_text())["slug"] == slug
        mine = tree_digest(workspace)
        assert mine.pop("README.md") == tree_digest(CHECKOUT.lab_dir(slug))["README.md"]
        assert mine == tree_digest(CHECKOUT.starter_dir(slug))


def _grade(kit: InstalledKit, lab: LabSpec, workspace: Path) -> tuple[subprocess.CompletedProcess, dict]:
    timeout = lab.limits.check_seconds + (CALIBRATION_SECONDS if lab.load is not None else 0)
    checked = kit.lab("check", "--provider", "local", cwd=workspace, timeout=timeout)
    latest = workspace / ".lab" / "results" / "latest.json"
    assert latest.is_file(), checked.stdout + checked.stderr
    result = latest.read_text()
    assert str(ROOT) not in result, "a path of the checkout reached the result"
    assert (workspace / ".lab" / "report.html").is_file(), "the HTML report, from the wheel's templates"
    return checked, json.loads(result)


@pytest.mark.parametrize("slug", SLUGS)
def test_the_installed_lab_proves_each_lab_as_lab_toml_says(kit: InstalledKit, slug: str, tmp_path: Path):
    """A learner's loop with the installed kit, for every lab: the starter, checked, fails exactly the checks
    lab.toml names; the wheel's reference solution, copied over it, passes them all. This is the suite's proof
    of every lab on the local provider (the docker provider's is tests/test_docker.py)."""
    lab = LABS[slug]
    assert kit.lab("start", slug, cwd=tmp_path).returncode == 0
    workspace = tmp_path / slug
    started = time.monotonic()
    checked, result = _grade(kit, lab, workspace)
    output = checked.stdout + checked.stderr
    assert checked.returncode == 1, output
    assert result["lab"] == slug and result["provider"] == "local" and result["stage_failure"] is None, output
    expected = {check_id: "fail" if check_id in lab.starter_fails else "pass" for check_id in lab.check_ids}
    assert {check["id"]: check["status"] for check in result["checks"]} == expected, output

    shutil.copytree(kit.bundle / "solutions" / slug, workspace, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("NOTES.md"))
    checked, result = _grade(kit, lab, workspace)
    output = checked.stdout + checked.stderr
    assert checked.returncode == 0, output
    assert result["passed"] and {check["id"]: check["status"] for check in result["checks"]} == \
        {check_id: "pass" for check_id in lab.check_ids}, output
    print(f"{slug}: starter and reference graded by the installed kit in {time.monotonic() - started:.1f} s")


def test_the_installed_kits_gradescope_autograder_gives_a_reference_full_marks(kit: InstalledKit, tmp_path: Path):
    """The autograder a course copies out of the installed package, with the kit where its setup.sh puts it."""
    slug = next(slug for slug, lab in LABS.items() if lab.load is None)
    root = tmp_path / "autograder"
    shutil.copytree(kit.bundle / "templates" / "gradescope", root / "source")
    shutil.copytree(kit.bundle / "labs" / slug / "starter", root / "submission")
    shutil.copytree(kit.bundle / "solutions" / slug, root / "submission", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("NOTES.md"))
    env = {**kit.env(), "AUTOGRADER_ROOT": str(root), "NEXUS_LABS_HOME": str(kit.venv.parent), "LAB_SLUG": slug}
    env.pop("LAB", None)
    done = _run([str(root / "source" / "run_autograder")], timeout=LABS[slug].limits.check_seconds + 60,
                cwd=kit.home, env=env)
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["score"] == sum(check.weight for check in LABS[slug].checks), done.stdout + done.stderr
    assert {test["status"] for test in results["tests"]} == {"passed"}
