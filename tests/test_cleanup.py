"""Whatever ends a run, nothing of it stays: no process, no port, no run directory."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader.resources import resources

from conftest import as_at_a_terminal, fast_dirs, run_dirs, run_processes

pytestmark = pytest.mark.slow
SOLUTION = resources().solution_dir("race-conditions")


@pytest.fixture
def fixed_workspace(run_lab, tmp_path: Path) -> Path:
    """A workspace with the reference fix: its checks take long enough to be interrupted."""
    assert run_lab("start", "race-conditions", cwd=tmp_path).exit_code == 0
    workspace = tmp_path / "race-conditions"
    shutil.copytree(SOLUTION, workspace, dirs_exist_ok=True, ignore=shutil.ignore_patterns("NOTES.md"))
    return workspace


def start_check(workspace: Path) -> subprocess.Popen:
    """`lab check` as a learner starts it, in its own process."""
    return subprocess.Popen([sys.executable, "-m", "grader", "check", "--provider", "local"], cwd=workspace,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=as_at_a_terminal)


def wait_for_checks(process: subprocess.Popen, dirs_before: set[Path]) -> tuple[list[str], Path]:
    """Read the output until the hidden checks are running; return it and the run's directory."""
    output = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        output.append(line)
        if "PASS" in line:  # the first check has finished: the run is mid-check
            new = run_dirs() - dirs_before
            assert len(new) == 1, new
            return output, new.pop()
    raise AssertionError("the checks never started:\n" + "".join(output))


def listening_ports(pids: set[int]) -> set[int]:
    """Ports the given processes listen on (from /proc/net/tcp and their sockets)."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:
            ports.add(int(fields[1].split(":")[1], 16))
    return ports


def port_is_closed(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 128 + signal.SIGTERM)])
def test_a_signal_mid_check_leaves_nothing_behind(signum: int, exit_code: int, fixed_workspace: Path):
    dirs_before, pids_before = run_dirs(), run_processes()
    process = start_check(fixed_workspace)
    try:
        output, run_dir = wait_for_checks(process, dirs_before)
        pids = run_processes() - pids_before
        ports = listening_ports(pids)
        assert pids and ports, "the run's servers should be up mid-check"
        process.send_signal(signum)
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == exit_code, "".join(output) + rest
    assert not run_dir.exists()
    assert not {folder for folder in fast_dirs() if folder.name.startswith(f"{run_dir.name}-")}, \
        "the run's data in memory was left behind"
    assert not run_processes() - pids_before
    assert all(port_is_closed(port) for port in ports)


def shared_memory_segments() -> set[Path]:
    """PostgreSQL's POSIX shared memory segments: a killed server would leave them in /dev/shm for good."""
    return set(Path("/dev/shm").glob("PostgreSQL.*"))


def test_a_run_after_a_killed_one_cleans_up_what_it_left(fixed_workspace: Path, run_lab, tmp_path: Path):
    dirs_before, pids_before, segments_before = run_dirs(), run_processes(), shared_memory_segments()
    process = start_check(fixed_workspace)
    try:
        _, run_dir = wait_for_checks(process, dirs_before)
        process.kill()  # SIGKILL: the grader gets no chance to clean up
        process.wait(timeout=10)
        left = run_processes() - pids_before
        assert run_dir.exists() and left, "a SIGKILLed run leaves its servers behind"
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()

    assert run_lab("start", "race-conditions", "--dir", str(tmp_path / "next"), cwd=tmp_path).exit_code == 0
    result = run_lab("check", "--provider", "local", cwd=tmp_path / "next")
    assert result.exit_code == 1, result.output
    assert not run_dir.exists()
    assert not {folder for folder in fast_dirs() if folder.name.startswith(f"{run_dir.name}-")}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and run_processes() & left:
        time.sleep(0.1)
    assert not run_processes() & left, "the next run did not stop the killed run's processes"
    assert not shared_memory_segments() - segments_before, "a killed PostgreSQL left shared memory behind"


def test_the_last_run_of_a_runs_folder_removes_its_folder_in_memory(tmp_path: Path, monkeypatch):
    from grader.processes import RunDirectory, fast_root

    monkeypatch.setenv("LAB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("LAB_FAST_DIR", raising=False)
    if fast_root() is None:
        pytest.skip("no room in /dev/shm: runs keep their data on disk")
    first, second = RunDirectory.create(), RunDirectory.create()
    for run in (first, second):
        data = run.fast("postgres-data")
        data.mkdir()
        (data / "PG_VERSION").write_text("15")
    root = fast_root(create=False)
    first.remove()
    assert root.is_dir() and second.fast("postgres-data").is_dir(), "another run's data went with the first run"
    second.remove()
    assert not root.exists(), "an empty folder in memory stayed after the last run"

