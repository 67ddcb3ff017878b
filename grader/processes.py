"""Child processes of a run: started in their own session, recorded, and always stopped.

Every process a run starts is written to `processes.jsonl` in its run directory
(pid, start time, what it is), so that a later run can stop what a run killed
with SIGKILL left behind (see `reap_abandoned_runs`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

RUNS_ROOT_NAME = "nexus-labs-runs"


def runs_root() -> Path:
    """Where run directories live: a world-traversable place, since PostgreSQL runs as another user."""
    root = Path(os.environ.get("LAB_RUNS_DIR") or Path(tempfile.gettempdir()) / RUNS_ROOT_NAME)
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o711)
    return root


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether a server could bind 127.0.0.1:`port` right now."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of a process, to tell it from a later one with the same pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def pid_alive(pid: int, start_time: str | None = None) -> bool:
    current = process_start_time(pid)
    if current is None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return start_time is None
    return start_time is None or current == start_time


def stop_group(pid: int, grace: float = 5.0, sig: int = signal.SIGTERM) -> None:
    """Stop a process and its session: `sig` first, SIGKILL after `grace` seconds."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            waited, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            waited = pid if not pid_alive(pid) else 0
        if waited == pid:
            break
        time.sleep(0.02)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class RunDirectory:
    """A run's private folder: services' data, logs, the snapshot and the process records."""

    path: Path

    @classmethod
    def create(cls) -> RunDirectory:
        path = Path(tempfile.mkdtemp(prefix="run-", dir=runs_root()))
        path.chmod(0o711)
        (path / "owner.json").write_text(json.dumps({"pid": os.getpid(), "start": process_start_time(os.getpid())}))
        return cls(path)

    @property
    def records(self) -> Path:
        return self.path / "processes.jsonl"

    def spawn(self, name: str, command: list[str], *, log: Path, **popen_kwargs) -> subprocess.Popen:
        """Start a child in its own session, logging to `log`, and record it."""
        with log.open("ab") as handle:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
                start_new_session=True, **popen_kwargs,
            )
        with self.records.open("a") as records:
            records.write(json.dumps({"name": name, "pid": process.pid, "start": process_start_time(process.pid)}) + "\n")
        return process

    def stop_all(self) -> None:
        """Stop every recorded process that is still running, the latest first (the server before its database)."""
        for record in reversed(_read_records(self.records)):
            if pid_alive(record["pid"], record.get("start")):
                stop_group(record["pid"], grace=3.0)

    def remove(self) -> None:
        self.stop_all()
        shutil.rmtree(self.path, ignore_errors=True)


def _read_records(path: Path) -> list[dict]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


def reap_abandoned_runs() -> list[Path]:
    """Stop the processes and remove the folders of runs whose grader is gone (killed with -9)."""
    reaped = []
    for run in sorted(runs_root().glob("run-*")):
        try:
            owner = json.loads((run / "owner.json").read_text())
        except (OSError, ValueError):
            owner = None
        if owner and pid_alive(owner["pid"], owner.get("start")):
            continue
        if owner is None and time.time() - run.stat().st_mtime < 60:
            continue  # still being created by a run that has not written its owner yet
        RunDirectory(run).remove()
        reaped.append(run)
    return reaped
