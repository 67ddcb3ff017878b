"""Child processes of a run: started in their own session, recorded, and always stopped.

Every process a run starts is written to `processes.jsonl` in the run directory's
private folder (pid, start time, what it is), so that a later run can stop what a
run killed with SIGKILL left behind (see `reap_abandoned_runs`). The private folder
(`.grader/`, mode 0700) also holds the owner record and the checks' context and
working files: nothing the learner's code can reach (see grader/sandbox.py), and
nothing read from it is trusted blindly.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path

RUNS_ROOT_NAME = "nexus-labs-runs"
PRIVATE = ".grader"  # the grader-only part of a run directory


def runs_root() -> Path:
    """Where run directories live: a world-traversable place, since PostgreSQL runs as another user."""
    root = Path(os.environ.get("LAB_RUNS_DIR") or Path(tempfile.gettempdir()) / RUNS_ROOT_NAME)
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o711)
    return root


FAST_ROOM_BYTES = 4 << 30  # a RAM-backed folder is used when it has this much free (slow-queries' cluster: ~0.3 GB)


def fast_root(create: bool = True) -> Path | None:
    """A folder in memory (tmpfs) for a run's PostgreSQL data, where the machine has one with room to spare:
    copying a template cluster there takes a tenth of the time it takes on disk. $LAB_FAST_DIR names another
    (empty: none); None when there is none, and the data stays in the run's folder. With `create` false, the
    folder is only named (it may not exist): for removing, never for a new run's data."""
    chosen = os.environ.get("LAB_FAST_DIR")
    if chosen is not None:
        base = Path(chosen) if chosen else None
    else:
        # One per runs folder (tests and graders with their own $LAB_RUNS_DIR never reap each other's data).
        base = Path("/dev/shm") / f"{RUNS_ROOT_NAME}-{hashlib.sha256(str(runs_root()).encode()).hexdigest()[:12]}"
        try:
            room = os.statvfs(base.parent)
        except OSError:
            return None
        if create and room.f_bavail * room.f_frsize < FAST_ROOM_BYTES:
            return None
    if base is None or not create:
        return base
    try:
        base.mkdir(parents=True, exist_ok=True)
        base.chmod(0o711)  # PostgreSQL's user passes through to its own folder
    except OSError:
        return None
    return base


def _remove_fast_folders(folders) -> None:
    """Remove runs' folders in memory, then the in-memory root itself once no run has a folder there (our own
    root, not one $LAB_FAST_DIR names). A run making its folder meanwhile makes the root again (copy_cluster)."""
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    root = fast_root(create=False)
    if root is not None and os.environ.get("LAB_FAST_DIR") is None:
        with suppress(OSError):
            root.rmdir()  # fails while another run's data is there


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
    """A run's folder: services' data, logs, the snapshot, the learner's HOME, and a private part for the grader."""

    path: Path
    app_uid: int | None = None  # the uid of the learner's processes, when the grader is root

    @classmethod
    def create(cls) -> RunDirectory:
        from grader.sandbox import claim_app_uid

        root = runs_root()
        path = Path(tempfile.mkdtemp(prefix="run-", dir=root))
        path.chmod(0o711)
        (path / PRIVATE).mkdir(mode=0o700)
        run = cls(path)
        owner = {"pid": os.getpid(), "start": process_start_time(os.getpid())}
        _write_json(run.private / "owner.json", owner)
        if os.geteuid() == 0:
            run.app_uid = claim_app_uid(root, path.name)
            _write_json(run.private / "owner.json", {**owner, "app_uid": run.app_uid})
        return run

    @property
    def private(self) -> Path:
        """The grader's own files of this run: the learner's processes can neither read nor write them."""
        return self.path / PRIVATE

    @property
    def records(self) -> Path:
        return self.private / "processes.jsonl"

    def spawn(self, name: str, command: list[str], *, log: Path, **popen_kwargs) -> subprocess.Popen:
        """Start a child in its own session, logging to `log`, and record it."""
        descriptor = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "ab") as handle:  # the grader's alone: other runs' code cannot read it
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
                start_new_session=True, **popen_kwargs,
            )
        with self.records.open("a") as records:
            records.write(json.dumps({"name": name, "pid": process.pid, "start": process_start_time(process.pid)}) + "\n")
        return process

    def stop_all(self) -> None:
        """Stop every recorded process that is still running, the latest first (the server before its database),
        then kill whatever the learner's code started and detached (a new session, a double fork)."""
        from grader.sandbox import kill_run_processes

        for record in reversed(_read_records(self.records)):
            if pid_alive(record["pid"], record["start"]):
                stop_group(record["pid"], grace=3.0)
        kill_run_processes(self.path, self.app_uid)

    def fast(self, name: str) -> Path:
        """A folder of this run's own in memory (fast_root), else in the run's folder; removed with the run."""
        root = fast_root()
        return root / f"{self.path.name}-{name}" if root is not None else self.path / name

    def remove(self) -> None:
        from grader.sandbox import release_app_uid, run_processes

        self.stop_all()
        root = fast_root(create=False)
        _remove_fast_folders(root.glob(f"{self.path.name}-*") if root is not None and root.is_dir() else ())
        shutil.rmtree(self.path, ignore_errors=True)
        if self.app_uid is not None and not run_processes(self.path, self.app_uid):
            release_app_uid(self.path.parent, self.app_uid)  # else kept: no later run gets a uid still in use


def _write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value))


def _read_records(path: Path) -> list[dict]:
    """The process records that are well formed (a pid above 1 and its start time); anything else is skipped."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if (isinstance(record, dict) and isinstance(record.get("pid"), int) and record["pid"] > 1
                and isinstance(record.get("start"), str)):
            records.append(record)
    return records


def _read_owner(run: Path) -> dict | None:
    """A run's owner record (pid, start time, the learner's uid), or None when it is missing or malformed."""
    try:
        owner = json.loads((run / PRIVATE / "owner.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int):
        return None
    uid = owner.get("app_uid")
    return {"pid": owner["pid"], "start": owner.get("start") if isinstance(owner.get("start"), str) else None,
            "app_uid": uid if isinstance(uid, int) and not isinstance(uid, bool) else None}


def reap_abandoned_runs() -> list[Path]:
    """Stop the processes and remove the folders of runs whose grader is gone (killed with -9)."""
    reaped = []
    for run in sorted(runs_root().glob("run-*")):
        owner = _read_owner(run)
        if owner and pid_alive(owner["pid"], owner["start"]):
            continue
        try:
            if owner is None and time.time() - run.stat().st_mtime < 60:
                continue  # still being created by a run that has not written its owner yet
        except OSError:
            continue  # removed meanwhile by its own run
        RunDirectory(run, app_uid=owner["app_uid"] if owner else None).remove()
        reaped.append(run)
    root = fast_root(create=False)
    for folder in sorted(root.glob("run-*")) if root is not None and root.is_dir() else ():
        owner_run = runs_root() / "-".join(folder.name.split("-")[:2])  # run-XXXXXXXX-NAME: run-XXXXXXXX
        try:
            if not owner_run.exists() and time.time() - folder.stat().st_mtime > 60:
                _remove_fast_folders([folder])  # its run's folder is gone: nothing else will remove it
                reaped.append(folder)
        except OSError:
            continue
    return reaped
