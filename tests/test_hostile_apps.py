"""Hostile starters change no verdict and leave nothing behind: as root, as a normal user and under docker.

Each fixture in tests/fixtures/race-conditions/tamper/ is the starter (which oversells) with an AppConfig
that attacks the grader from every process of the app: forging verdicts into every file it can reach,
rewriting the workspace's latest result, signalling the processes above it, detaching children. The
verdicts must be the starter's own, exactly, and nothing it started may outlive the run.
"""

from __future__ import annotations

import json
import os
import pwd
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from grader.labspec import load_lab
from grader.resources import resources
from grader.sandbox import _blocked_ancestors, python_paths, sandbox_mode

from conftest import FIXTURES, docker_unavailable, overlay

pytestmark = pytest.mark.slow
LAB = load_lab(resources().lab_dir("race-conditions") / "lab.toml")
EXPECTED = {check_id: "fail" if check_id in LAB.starter_fails else "pass" for check_id in LAB.check_ids}
TAMPER = FIXTURES / "race-conditions" / "tamper"
ATTACKS = ("forge-results", "rewrite-latest", "signal-parents")
NOT_DEFENDED = "the `none` sandbox (not root, no bubblewrap) does not defend against the app; see docs/security.md"


def hostile(workspace: Path, attack: str, marker: str = "599.5") -> Path:
    """Turn a race-conditions workspace into the hostile starter `attack`, aimed at this workspace."""
    overlay(TAMPER / attack, workspace)
    (workspace / "tamper.json").write_text(json.dumps(
        {"workspace": str(workspace), "check_ids": list(LAB.check_ids), "marker": marker}))
    return workspace


def latest(workspace: Path) -> dict:
    return json.loads((workspace / ".lab" / "results" / "latest.json").read_text())


def assert_starter_verdict(workspace: Path) -> dict:
    """The starter's exact verdict, and proof from the server's log that the attack ran."""
    log = (workspace / ".lab" / "logs" / "server.log").read_text()
    assert "tamper: " in log, "the hostile code never ran (else this test proves nothing):\n" + log[-3000:]
    result = latest(workspace)
    assert {check["id"]: check["status"] for check in result["checks"]} == EXPECTED
    assert not [check for check in result["checks"] if check["message"] == "forged"]
    assert result["passed"] is False and result["seed"] == 5
    assert not (workspace / ".lab" / "results" / "forged.json").exists() or result["stage_failure"] is None
    return result


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_hostile_app_graded_as_root_gets_the_starters_verdict(attack: str, run_lab, workspace: Path):
    if os.geteuid() != 0:
        pytest.skip("the grader is not root here")
    hostile(workspace, attack)
    result = run_lab("check", "--provider", "local", "--seed", "5", cwd=workspace)
    assert result.exit_code == 1, result.output
    assert "sandbox bwrap" in assert_starter_verdict(workspace)["servers"]["app"] or sandbox_mode().name == "user"


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_hostile_app_graded_by_a_normal_user_gets_the_starters_verdict(attack: str, normal_user):
    workspace = normal_user.workspace()
    hostile(workspace, attack)
    normal_user.give(workspace)
    finished = normal_user.run(["check", "--provider", "local", "--seed", "5"], cwd=workspace)
    assert finished.returncode == 1, finished.stdout
    result = assert_starter_verdict(workspace)
    if "sandbox none" in result["servers"]["app"]:
        pytest.skip(NOT_DEFENDED)


@pytest.mark.docker
@pytest.mark.parametrize("attack", ATTACKS)
def test_a_hostile_app_graded_under_docker_gets_the_starters_verdict(attack: str, run_lab, workspace: Path):
    if why := docker_unavailable():
        pytest.skip(why)
    hostile(workspace, attack)
    result = run_lab("check", "--provider", "docker", "--seed", "5", cwd=workspace)
    assert result.exit_code == 1, result.output
    assert_starter_verdict(workspace)


def test_an_app_that_prints_200_mb_leaves_at_most_the_cap_in_the_workspace(run_lab, workspace: Path):
    from grader.pipeline import LOG_CAP_BYTES

    hostile(workspace, "flood-logs")
    result = run_lab("check", "--provider", "local", "--seed", "5", cwd=workspace)
    assert result.exit_code == 1, result.output
    assert_starter_verdict(workspace)
    logs = workspace / ".lab" / "logs"
    sizes = {path.name: path.stat().st_size for path in logs.iterdir()}
    assert all(size <= LOG_CAP_BYTES + 200 for size in sizes.values()), sizes
    assert "bytes cut here by the grader: the log was 2" in (logs / "server.log").read_text()


def test_a_run_after_a_forging_app_grades_the_reference_as_it_does_alone(run_lab, workspace: Path):
    hostile(workspace, "forge-results")
    assert run_lab("check", "--provider", "local", "--seed", "5", cwd=workspace).exit_code == 1
    reference = workspace.parent / "reference"
    assert run_lab("start", "race-conditions", "--dir", str(reference), cwd=workspace.parent).exit_code == 0
    shutil.copytree(resources().solution_dir("race-conditions"), reference, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("NOTES.md"))
    result = run_lab("check", "--provider", "local", cwd=reference)
    assert result.exit_code == 0, result.output
    assert all(check["status"] == "pass" for check in latest(reference)["checks"])


# -- detached children -------------------------------------------------------------------------------------


def sleepers(marker: str) -> set[int]:
    """Live `sleep MARKER` processes, wherever they run (the host's /proc sees every namespace)."""
    found = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", marker.encode()]:
                    found.add(int(proc.name))
            except OSError:
                continue
    return found


def unique_marker() -> str:
    return f"59{random.randrange(10)}.{random.randrange(10**6):06d}"


def start_check(workspace: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "grader", "check", "--provider", "local", "--seed", "5"],
                            cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.fixture
def kill_sleepers() -> Iterator[list[str]]:
    """Markers of this test's sleepers, killed at the end whatever happened (a failing test leaves none)."""
    markers: list[str] = []
    yield markers
    for marker in markers:
        for pid in sleepers(marker):
            os.kill(pid, signal.SIGKILL)


def test_children_that_detach_end_with_the_run(workspace: Path, kill_sleepers: list[str]):
    marker = unique_marker()
    kill_sleepers.append(marker)
    hostile(workspace, "detach-children", marker)
    seen: set[int] = set()
    process = start_check(workspace)
    try:
        while process.poll() is None:
            seen |= sleepers(marker)
            time.sleep(0.1)
        output = process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, output
    assert len(seen) >= 20, f"the app should have started 20 detached children (else this proves nothing): {output}"
    time.sleep(1)
    assert not sleepers(marker), "detached children outlived lab check by a second"


def test_the_run_after_a_killed_one_leaves_no_detached_child(workspace: Path, kill_sleepers: list[str]):
    marker = unique_marker()
    kill_sleepers.append(marker)
    hostile(workspace, "detach-children", marker)
    process = start_check(workspace)
    try:
        assert wait_for(lambda: len(sleepers(marker)) >= 20, 90), "the app never started its children"
        process.kill()  # SIGKILL: the grader gets no chance to clean up
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()
    following = workspace.parent / "following"
    subprocess.run([sys.executable, "-m", "grader", "start", "race-conditions", "--dir", str(following)],
                   cwd=workspace.parent, check=True, capture_output=True)
    output, _ = start_check(following).communicate(timeout=300)
    assert "Score" in output, output
    assert not sleepers(marker), "a child of the killed run is still alive after the next run"


# -- a normal user -----------------------------------------------------------------------------------------


class NormalUser:
    """Runs `lab` as `nobody`, with a folder of its own for the workspace, state, cache and runs."""

    def __init__(self, base: Path, account: pwd.struct_passwd):
        self.base, self.account = base, account

    def workspace(self) -> Path:
        target = self.base / "race-conditions"
        subprocess.run([sys.executable, "-m", "grader", "start", "race-conditions", "--dir", str(target)],
                       cwd=self.base, check=True, capture_output=True)
        return target

    def give(self, path: Path) -> None:
        for folder, dirs, files in os.walk(path):
            for name in [folder, *(os.path.join(folder, entry) for entry in dirs + files)]:
                os.lchown(name, self.account.pw_uid, self.account.pw_gid)

    def run(self, arguments: list[str], cwd: Path) -> subprocess.CompletedProcess:
        env = {"PATH": os.environ["PATH"], "HOME": str(self.base / "home"), "LANG": "C.UTF-8",
               "LAB_STATE_DIR": str(self.base / "state"), "LAB_CACHE_DIR": str(self.base / "cache"),
               "LAB_RUNS_DIR": str(self.base / "runs")}
        return subprocess.run([*self.prefix(), sys.executable, "-m", "grader", *arguments], cwd=cwd, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)

    def prefix(self) -> list[str]:
        """setpriv to the user, inside a mount namespace that shows it the interpreter where needed."""
        switch = ["setpriv", f"--reuid={self.account.pw_uid}", f"--regid={self.account.pw_gid}", "--clear-groups"]
        return [*python_for_everyone(), *switch]


def python_for_everyone() -> list[str]:
    """A command prefix under which every user can reach this interpreter: where it sits in a folder only root
    enters (/root/.pyenv), a mount namespace (bubblewrap) in which that folder shows just the interpreter."""
    masks = {blocked for path in python_paths() for blocked in _blocked_ancestors(path)}
    if not masks:
        return []
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        pytest.skip(f"the interpreter is under {sorted(masks)[0]}, which only root enters, and bwrap is missing")
    arguments = [bwrap, "--dev-bind", "/", "/"]
    for mask in sorted(masks):
        arguments += ["--perms", "0755", "--tmpfs", str(mask)]
    for path in python_paths():
        if any(mask in path.parents for mask in masks):
            for folder in reversed(path.parents):
                if any(mask in folder.parents for mask in masks):
                    arguments += ["--perms", "0755", "--dir", str(folder)]
            arguments += ["--ro-bind", str(path), str(path)]
    return [*arguments, "--"]


@pytest.fixture
def normal_user() -> Iterator[NormalUser]:
    if os.geteuid() != 0:
        pytest.skip("these tests switch to a normal user, which needs root")
    account = pwd.getpwnam("nobody")
    base = Path(tempfile.mkdtemp(prefix="nexus-labs-normal-user-"))
    user = NormalUser(base, account)
    for name in ("home", "state", "cache", "runs"):
        (base / name).mkdir()
    user.give(base)
    try:
        yield user
    finally:
        subprocess.run(["pkill", "-KILL", "-u", str(account.pw_uid), "-f", str(base)], check=False)
        shutil.rmtree(base, ignore_errors=True)


# -- root without bubblewrap -------------------------------------------------------------------------------


@pytest.mark.parametrize("attack", ["forge-results", "detach-children"])
def test_without_bubblewrap_a_root_grader_runs_the_app_as_its_own_user(attack: str, workspace: Path,
                                                                       kill_sleepers: list[str]):
    if os.geteuid() != 0:
        pytest.skip("the grader is not root here")
    marker = unique_marker()
    kill_sleepers.append(marker)
    hostile(workspace, attack, marker)
    env = {**os.environ, "LAB_SANDBOX": "user"}
    finished = subprocess.run([*python_for_everyone(), sys.executable, "-m", "grader", "check", "--provider", "local",
                               "--seed", "5"], cwd=workspace, env=env, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 1, finished.stdout + finished.stderr
    result = assert_starter_verdict(workspace) if attack == "forge-results" else latest(workspace)
    assert "sandbox user" in result["servers"]["app"]
    time.sleep(1)
    assert not sleepers(marker), "a detached child of the app's own user outlived the run"
