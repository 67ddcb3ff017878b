"""`lab watch`: one run at start, one per burst of saves, a save stops the run in progress, Ctrl-C leaves nothing."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from rich.console import Console
from watchfiles import Change

from grader.watch import CheckRun, WorkspaceFilter, show_log_tail, show_summary, watch

from conftest import ROOT, as_at_a_terminal, run_dirs, run_processes

# A stand-in for `lab check`: records its pid and a child's (in its process group), works for a bounded time,
# writes a result like the grader's, then an end marker. Ctrl-C (SIGINT) ends it before the end marker.
CHECK_SCRIPT = r'''
import json, os, signal, subprocess, sys, time
from pathlib import Path

marks, seconds, mode = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
if mode == "stubborn":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
elif mode == "slow-stop":
    def stop_slowly(signum, frame):
        time.sleep(1.0)
        raise SystemExit(130)
    signal.signal(signal.SIGINT, stop_slowly)
child = subprocess.Popen(["sleep", "60"])
with marks.open("a") as handle:
    handle.write(f"start {os.getpid()} {child.pid}\n")
time.sleep(seconds)
if mode == "result":
    result = {"lab": "race-conditions", "score": {"earned": 1, "max": 2}, "stage_failure": None, "checks": [
        {"id": "no-oversell", "status": "pass", "message": ""},
        {"id": "stock-consistent", "status": "fail", "message": "Sold 12 of 10 units."},
    ]}
    results = Path(".lab", "results")
    results.mkdir(parents=True, exist_ok=True)
    (results / "staged.json").write_text(json.dumps(result))
    (results / "staged.json").replace(results / "latest.json")
child.kill()
child.wait()
print("checked")
with marks.open("a") as handle:
    handle.write(f"end {os.getpid()}\n")
'''

# `lab watch` as a learner runs it, in its own process, so that Ctrl-C reaches it as from a terminal.
DRIVER_SCRIPT = r'''
import json, sys
from pathlib import Path
from rich.console import Console
from grader.watch import watch

root, check_args, command = Path(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
sys.exit(watch(root, check_args, Console(highlight=False, soft_wrap=True), debounce_ms=300, command=command or None))
'''


@pytest.fixture
def workspace_dir(tmp_path: Path) -> Path:
    """A folder that looks like a workspace to the watch: a marker and one file of code."""
    root = tmp_path / "workspace"
    (root / ".lab").mkdir(parents=True)
    (root / ".lab" / "lab.json").write_text(json.dumps({"slug": "race-conditions", "version": "1"}))
    (root / "store").mkdir()
    (root / "store" / "views.py").write_text("VIEWS = 1\n")
    return root


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    """Where the stand-in check records its runs: outside the workspace, so writing it changes nothing watched."""
    return tmp_path / "marks.txt"


@pytest.fixture
def check_command(tmp_path: Path, marks: Path) -> Callable[[float, str], list[str]]:
    script = tmp_path / "check.py"
    script.write_text(CHECK_SCRIPT)
    return lambda seconds, mode="plain": [sys.executable, str(script), str(marks), str(seconds), mode]


def runs(marks: Path) -> list[dict]:
    """The stand-in's runs in order: pid, its child's pid, whether it reached its end."""
    found: dict[int, dict] = {}
    if marks.exists():
        for line in marks.read_text().splitlines():
            fields = line.split()
            if fields[0] == "start":
                found[int(fields[1])] = {"pid": int(fields[1]), "child": int(fields[2]), "ended": False}
            elif fields[0] == "end":
                found[int(fields[1])]["ended"] = True
    return list(found.values())


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie waiting for its parent to reap it does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(condition: Callable[[], bool], seconds: float, what: str, output: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {seconds} s; the watch printed:\n{output()}")


def gone(pids: list[int], seconds: float = 5.0) -> list[int]:
    """The pids still running after `seconds` (a process killed a moment ago may take a moment to go)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


@contextmanager
def watching(root: Path, command: list[str], debounce_ms: int = 400) -> Iterator[tuple[io.StringIO, list[int]]]:
    """The watch in a thread; yields what it prints and, once it has returned, its exit code."""
    output, codes, stop = io.StringIO(), [], threading.Event()
    console = Console(file=output, width=100, highlight=False, soft_wrap=True)
    thread = threading.Thread(target=lambda: codes.append(
        watch(root, [], console, debounce_ms=debounce_ms, stop_event=stop, command=command)), daemon=True)
    thread.start()
    try:
        yield output, codes
    finally:
        stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive(), "the watch did not stop when asked:\n" + output.getvalue()


def save(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def test_filter_ignores_the_graders_files_caches_and_editor_files(tmp_path: Path):
    root = tmp_path / "workspace"
    starts_a_run = WorkspaceFilter(root)
    for ignored in (".lab/results/latest.json", ".lab/logs/watch.log", ".lab", "store/__pycache__/views.cpython-311.pyc",
                    "store/views.pyc", ".git/index", ".pytest_cache/v/cache", "store/.views.py.swp",
                    "store/views.py~", "store/.#views.py", "store/4913"):
        assert not starts_a_run(Change.modified, str(root / ignored)), ignored
    for change in (Change.added, Change.modified, Change.deleted):
        assert starts_a_run(change, str(root / "store" / "views.py")), change
    assert starts_a_run(Change.modified, str(root / "README.md"))
    assert not starts_a_run(Change.modified, str(tmp_path / "elsewhere.py"))
    assert not starts_a_run(Change.deleted, str(root))


def test_filter_judges_paths_inside_the_workspace_only(tmp_path: Path):
    """A workspace kept under a folder named like an ignored one still sees its saves."""
    root = tmp_path / ".venv" / "__pycache__" / "workspace"
    assert WorkspaceFilter(root)(Change.modified, str(root / "store" / "views.py"))


def test_summary_shows_score_each_check_and_the_failed_stage():
    output = io.StringIO()
    console = Console(file=output, width=72, color_system=None, soft_wrap=True)
    show_summary(console, {
        "lab": "race-conditions", "score": {"earned": 2, "max": 5}, "only": ["no-oversell", "payments"],
        "checks": [
            {"id": "no-oversell", "status": "pass", "message": "ok"},
            {"id": "payments", "status": "fail",
             "message": "The gateway was charged twice for order 7, though the order was refused with 409.\n"
                        "Evidence follows on the next line."},
            {"id": "api-contract", "status": "skip", "message": "Skipped: the service did not start."},
        ],
        "stage_failure": {"stage": "serve", "message": "Your service did not answer on /health/.",
                          "log_tail": "", "todo": ""},
    }, 12.34)
    assert output.getvalue().splitlines() == [
        "race-conditions  2/5 points · 1 of 3 checks pass · 12.3 s",
        "Partial run: only no-oversell, payments.",
        "  ✓ no-oversell",
        "  ✗ payments  The gateway was charged twice for order 7, though the ord…",
        "  - api-contract  Skipped: the service did not start.",
        "Stage serve failed: Your service did not answer on /health/.",
        "Details: lab check's output in .lab/logs/watch.log, the report in .lab/report.html.",
    ]


def test_a_run_without_a_result_shows_the_end_of_its_log(tmp_path: Path):
    log = tmp_path / ".lab" / "logs" / "watch.log"
    log.parent.mkdir(parents=True)
    log.write_text("".join(f"line {n}\n" for n in range(40)) + "error: no such option: --frobnicate\n")
    output = io.StringIO()
    show_log_tail(Console(file=output, width=80, height=30, color_system=None, soft_wrap=True), log, 2)
    lines = output.getvalue().splitlines()
    assert lines[0] == "lab check ended with exit code 2 and wrote no result; the end of .lab/logs/watch.log:"
    assert lines[-1] == "  error: no such option: --frobnicate"
    assert len(lines) == 16


def test_one_run_at_start_and_one_per_burst_of_saves(workspace_dir: Path, marks: Path, check_command):
    with watching(workspace_dir, check_command(0.3, "result")) as (output, _codes):
        wait_for(lambda: "Watching" in output.getvalue(), 10, "the first run's summary", output.getvalue)
        time.sleep(1.0)  # the run wrote .lab/results and .lab/logs: that must not start another
        assert len(runs(marks)) == 1, output.getvalue()
        assert "✗ stock-consistent  Sold 12 of 10 units." in output.getvalue()
        assert (workspace_dir / ".lab" / "logs" / "watch.log").read_text() == "checked\n"

        save(workspace_dir / "store" / "views.py", "# first save\n")
        time.sleep(0.1)
        save(workspace_dir / "store" / "views.py", "# the editor's second write\n")
        wait_for(lambda: len(runs(marks)) == 2 and runs(marks)[1]["ended"], 10, "a run after the saves",
                 output.getvalue)
        time.sleep(1.5)
        assert len(runs(marks)) == 2, "two saves within the debounce made more than one run:\n" + output.getvalue()
        assert "Running lab check (store/views.py changed)" in output.getvalue()
        assert output.getvalue().count("Running lab check") == 2
        assert output.getvalue().count("Watching") == 2


def test_a_save_during_a_run_stops_it_and_starts_another(workspace_dir: Path, marks: Path, check_command):
    with watching(workspace_dir, check_command(8)) as (output, _codes):
        wait_for(lambda: len(runs(marks)) == 1, 10, "the first run", output.getvalue)
        (workspace_dir / "store" / "views.py").unlink()  # a deleted file is a change too
        wait_for(lambda: len(runs(marks)) == 2, 10, "a second run", output.getvalue)
        first, second = runs(marks)
        assert not first["ended"]
        assert gone([first["pid"], first["child"]]) == [], "the stopped run left a process"
        assert alive(second["pid"])
        assert "store/views.py changed: stopping the run in progress" in output.getvalue()
    assert gone([second["pid"], second["child"]]) == [], "stopping the watch left the run's processes"
    assert not second["ended"]


def test_saves_while_a_run_is_being_stopped_make_one_new_run(workspace_dir: Path, marks: Path, check_command):
    with watching(workspace_dir, check_command(8, "slow-stop"), debounce_ms=300) as (output, _codes):
        wait_for(lambda: len(runs(marks)) == 1, 10, "the first run", output.getvalue)
        save(workspace_dir / "store" / "views.py", "# save\n")
        wait_for(lambda: "stopping the run in progress" in output.getvalue(), 5, "the stop", output.getvalue)
        time.sleep(0.3)  # the run takes a second to stop: these saves arrive meanwhile
        (workspace_dir / "store" / "models.py").write_text("MODELS = 1\n")
        save(workspace_dir / "store" / "views.py", "# save again\n")
        wait_for(lambda: len(runs(marks)) == 2, 10, "a second run", output.getvalue)
        time.sleep(1.5)
        assert len(runs(marks)) == 2, output.getvalue()
        assert output.getvalue().count("Running lab check") == 2, output.getvalue()
        assert "Running lab check (store/models.py changed and 1 more)" in output.getvalue()


def test_a_run_that_ignores_ctrl_c_is_killed_after_the_grace(workspace_dir: Path, marks: Path, check_command):
    run = CheckRun(workspace_dir, check_command(30, "stubborn"), "start")
    wait_for(lambda: len(runs(marks)) == 1, 10, "the run")
    started = time.monotonic()
    run.stop(grace=1.0)
    assert time.monotonic() - started < 5
    assert gone([runs(marks)[0]["pid"], runs(marks)[0]["child"]]) == []
    assert run.result() is None


def test_the_workspace_disappearing_ends_the_watch(workspace_dir: Path, marks: Path, check_command):
    with watching(workspace_dir, check_command(0.2)) as (output, codes):
        wait_for(lambda: "Watching" in output.getvalue(), 10, "the first run's summary", output.getvalue)
        shutil.rmtree(workspace_dir)
        wait_for(lambda: codes == [2], 5, "the watch ending", output.getvalue)
    assert f"error: the workspace {workspace_dir} is gone (deleted or moved)" in output.getvalue()
    assert len(runs(marks)) == 1


def start_watch(tmp_path: Path, root: Path, check_args: list[str], command: list[str]) -> tuple[subprocess.Popen, Path]:
    """`lab watch` in its own process; returns it and the file its output goes to."""
    driver, log = tmp_path / "driver.py", tmp_path / "watch-output.txt"
    driver.write_text(DRIVER_SCRIPT)
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [sys.executable, str(driver), str(root), json.dumps(check_args), json.dumps(command)],
            stdout=handle, stderr=subprocess.STDOUT, preexec_fn=as_at_a_terminal,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
    return process, log


@pytest.mark.parametrize(("signum", "code", "last_line"), [
    (signal.SIGINT, 130, "Stopped watching and the run in progress."),
    (signal.SIGTERM, 143, "Stopping the run in progress…"),
], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_stops_the_watch_and_the_run_in_progress(tmp_path: Path, workspace_dir: Path, marks: Path,
                                                       check_command, signum: int, code: int, last_line: str):
    process, log = start_watch(tmp_path, workspace_dir, [], check_command(20))
    try:
        wait_for(lambda: len(runs(marks)) == 1, 10, "the first run", log.read_text)
        process.send_signal(signum)
        assert process.wait(timeout=10) == code, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
    run = runs(marks)[0]
    assert gone([run["pid"], run["child"]]) == [], "stopping the watch left a process of the run"
    assert not run["ended"]
    assert log.read_text().splitlines()[-1] == last_line


def workspace_processes(root: Path) -> set[int]:
    """Pids of live processes working in the workspace (a `lab check` started there)."""
    pids = set()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and os.readlink(proc / "cwd") == str(root) and alive(int(proc.name)):
                pids.add(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.mark.slow
def test_watch_grades_again_after_a_save_and_ctrl_c_leaves_nothing(tmp_path: Path, run_lab, monkeypatch):
    """The real `lab check`: a save cancels the first run, the second completes, Ctrl-C mid-run leaves nothing."""
    monkeypatch.setenv("LAB_PROVIDER", "local")
    root = tmp_path / "workspace"
    assert run_lab("start", "race-conditions", "--dir", str(root)).exit_code == 0
    code = root / "store" / "views.py"
    dirs_before, pids_before = run_dirs(), run_processes()
    process, log = start_watch(tmp_path, root, ["--provider", "local"], [])
    try:
        wait_for(lambda: run_dirs() - dirs_before, 60, "the first run's start", log.read_text)
        save(code, "# saved while the first run grades\n")
        latest = root / ".lab" / "results" / "latest.json"
        wait_for(lambda: latest.exists() and "Watching" in log.read_text(), 180, "the second run's result",
                 log.read_text)
        output = log.read_text()
        assert "Running lab check (start)" in output
        assert "store/views.py changed: stopping the run in progress" in output
        assert len(list(latest.parent.glob("*-seed*.json"))) == 1, "the stopped run wrote a result"
        assert json.loads(latest.read_text())["lab"] == "race-conditions"
        assert "race-conditions  " in output and " checks pass · " in output

        grading = run_dirs() - dirs_before
        assert not grading, "a finished run left its folder"
        save(code, "# saved again\n")
        wait_for(lambda: run_dirs() - dirs_before, 60, "the third run's start", log.read_text)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 130, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
    assert not run_dirs() - dirs_before, "Ctrl-C left a run directory"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (run_processes() - pids_before or workspace_processes(root)):
        time.sleep(0.1)
    assert not run_processes() - pids_before, "Ctrl-C left a process of the run"
    assert not workspace_processes(root), "Ctrl-C left a lab check running"
    assert log.read_text().splitlines()[-1] == "Stopped watching and the run in progress."
