"""Shared fixtures: every test gets its own state folder; grading tests share one cache of clusters."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import signal
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.cli import cli

ROOT = Path(__file__).resolve().parent.parent
# The kit's tests are of the kit's labs: a course author's LAB_ROOT must not stand in for them, even in the
# parametrisations made at collection, before any fixture runs.
os.environ.pop("LAB_ROOT", None)


@pytest.fixture(scope="session", autouse=True)
def private_runs_root() -> Iterator[Path]:
    """This session's run directories, apart from any other grader on the machine, so leftovers are ours."""
    root = Path(tempfile.mkdtemp(prefix="nexus-labs-test-runs-"))
    root.chmod(0o711)  # the PostgreSQL server's user must reach its data folder inside
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAB_RUNS_DIR", str(root))
        from grader.processes import fast_root

        fast = fast_root(create=False)
        yield root
    shutil.rmtree(root, ignore_errors=True)
    if fast is not None:
        shutil.rmtree(fast, ignore_errors=True)


@pytest.fixture(autouse=True)
def isolated_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("LAB_STATE_DIR", str(state))
    monkeypatch.setenv("LAB_CACHE_DIR", str(_shared_cache(tmp_path_factory)))
    monkeypatch.delenv("LAB_PROVIDER", raising=False)
    monkeypatch.delenv("LAB_BINARIES", raising=False)
    return state


def _shared_cache(factory: pytest.TempPathFactory) -> Path:
    path = factory.getbasetemp() / "cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def run_lab(monkeypatch: pytest.MonkeyPatch):
    """Run the `lab` CLI in a folder, as a learner would; returns click's Result."""
    def run(*args: str, cwd: Path | None = None):
        if cwd is not None:
            monkeypatch.chdir(cwd)
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return run


@pytest.fixture
def start_lab(run_lab, tmp_path: Path):
    """Make a fresh workspace of a lab with `lab start`, as a learner makes one; returns its folder."""
    def start(slug: str) -> Path:
        result = run_lab("start", slug, cwd=tmp_path)
        assert result.exit_code == 0, result.output
        return tmp_path / slug
    return start


@pytest.fixture
def workspace(start_lab) -> Path:
    """A fresh race-conditions workspace."""
    return start_lab("race-conditions")


def tree_digest(root: Path, skip: str = ".lab") -> dict[str, str]:
    """sha256 of every file under root, except those under `skip`."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and skip not in path.relative_to(root).parts
    }


def run_processes() -> set[int]:
    """Pids of live processes working in a run directory (command line or working directory under the runs root)."""
    from grader.processes import runs_root

    root = str(runs_root())
    pids = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if cmdline and (root in cmdline or cwd.startswith(root)):
            pids.add(int(proc.name))
    return pids


def run_dirs() -> set[Path]:
    from grader.processes import runs_root

    return set(runs_root().glob("run-*"))


def fast_dirs() -> set[Path]:
    """The folders in memory that hold runs' PostgreSQL data (grader.processes.fast_root)."""
    from grader.processes import fast_root

    fast = fast_root(create=False)
    return set(fast.glob("run-*")) if fast is not None and fast.is_dir() else set()


@pytest.fixture
def no_leftovers():
    """Fail the test if it leaves a run directory or a process of a run behind."""
    dirs_before, pids_before = run_dirs() | fast_dirs(), run_processes()
    yield
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (run_processes() - pids_before or (run_dirs() | fast_dirs()) - dirs_before):
        time.sleep(0.1)
    assert not (run_dirs() | fast_dirs()) - dirs_before, "a run directory (or its data in memory) was left behind"
    assert not run_processes() - pids_before, "a process of the run was left running"


@functools.cache
def docker_unavailable() -> str:
    """Why the container tests cannot run here, or "" when they can; an error where LAB_REQUIRE_DOCKER is set."""
    import docker

    from grader.images import image_set, missing
    from grader.providers import engine_answers

    answers, engine = engine_answers()
    why = "" if answers else f"no Docker engine answers: {engine}"
    if answers:
        client = docker.from_env()
        try:
            absent = missing(client, image_set())
        finally:
            client.close()
        why = f"the engine lacks the images {', '.join(absent)} (`lab images build`)" if absent else ""
    if why and os.environ.get("LAB_REQUIRE_DOCKER"):
        raise RuntimeError(f"LAB_REQUIRE_DOCKER is set but the container tests cannot run: {why}")
    return why


def overlay(fixture: Path, workspace: Path) -> dict:
    """Copy a fixture's files over a workspace (all but variant.toml) and return its variant.toml.

    A variant with `base = "solution"` is the reference solution with the fixture's files changed: the
    solution is copied over the workspace first.
    """
    variant = tomllib.loads((fixture / "variant.toml").read_text())
    if variant.get("base") == "solution":
        from grader.resources import resources

        slug = fixture.parent.parent.name
        shutil.copytree(resources().solution_dir(slug), workspace, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("NOTES.md"))
    for path in fixture.rglob("*"):
        if path.is_file() and path.name != "variant.toml":
            target = workspace / path.relative_to(fixture)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return variant


FIXTURES = ROOT / "tests" / "fixtures"


def as_at_a_terminal() -> None:
    """preexec_fn for a `lab` started by a test that will press Ctrl-C: SIGINT as a terminal delivers it.

    A suite started in the background (`cmd &` in a script, as CI runners may) inherits SIGINT ignored,
    and Python then keeps it ignored in every child, so the test's Ctrl-C would never arrive.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
