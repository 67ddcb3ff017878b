"""Where the learner's code runs: migrate, seed and the server, as local processes or in containers.

A provider hands the pipeline a `Runtime` with its services. Commands name files by
their path in the run directory; a runtime that runs them elsewhere (a container)
copies the `inputs` there under the same paths, and copies the `outputs` back.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from grader.paths import state_dir
from grader.processes import RunDirectory, free_port, runs_root, stop_group
from grader.sandbox import Confinement, chown_for_app, sandbox_mode


class PortTaken(Exception):
    """The port a server was to listen on was taken before it could bind; try another."""


@dataclass(frozen=True)
class Listener:
    """Where a server binds (in its own place) and where the grader reaches it."""

    bind: str
    base_url: str
    port: int  # the port on this machine that base_url names


class Handle(Protocol):
    """A started command."""

    def poll(self) -> int | None: ...  # its exit code, or None while it runs
    def wait(self, timeout: float) -> int: ...  # raises subprocess.TimeoutExpired
    def stop(self, grace: float = 3.0) -> None: ...
    def trouble(self) -> str: ...  # what the place it runs in saw go wrong ("ran out of memory: ..."), or ""
    def where(self) -> dict: ...  # how a check finds it: {"pid": n} or {"container": id}
    def base_url(self, listener: Listener) -> str: ...  # where the grader reaches the server it started


class Runtime(Protocol):
    name: str
    python: str  # the interpreter that runs the learner's project
    internal: bool  # the app runs on a network with no way out, reached at its own address there

    def environment(self) -> dict[str, str]: ...
    def listener(self, port: int | None) -> Listener: ...
    def start(self, name: str, command: list[str], *, log: Path, cwd: Path, env: dict[str, str],
              inputs: tuple[Path, ...] = (), outputs: tuple[Path, ...] = (),
              listener: Listener | None = None) -> Handle: ...


class LocalHandle:
    def __init__(self, process: subprocess.Popen, hosts: Path | None = None):
        self.process, self.hosts = process, hosts

    def poll(self) -> int | None:
        return self.process.poll()

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self, grace: float = 3.0) -> None:
        if self.process.poll() is None:
            stop_group(self.process.pid, grace=grace)

    def trouble(self) -> str:
        return ""

    def where(self) -> dict:
        return {"pid": self.process.pid, **({"hosts": str(self.hosts)} if self.hosts else {})}

    def base_url(self, listener: Listener) -> str:
        return listener.base_url


class LocalRuntime:
    """Child processes of the grader, in their own sessions, recorded in the run directory and confined by the
    machine's sandbox (grader/sandbox.py): they see their project, their HOME and nothing of the grader's."""

    name = "local"
    python = sys.executable
    internal = False
    KEEP = ("PATH", "LANG", "LC_ALL", "TZ", "SYSTEMROOT")

    def __init__(self, run: RunDirectory):
        self.run = run
        mode = sandbox_mode()
        self.confinement = Confinement(mode, run.app_uid, hidden=(runs_root(), state_dir()),
                                       hosts=self._hosts_file() if mode.name == "bwrap" else None)
        self.default_home = self.home("home")

    def _hosts_file(self) -> Path | None:
        """The run's copy of /etc/hosts, which its commands see in its place: readable by them, written by the
        grader only (a check that decides what a name resolves to rewrites it in place)."""
        machine = Path("/etc/hosts")
        if not machine.is_file():
            return None
        hosts = self.run.path / "hosts"
        if not hosts.is_file():
            hosts.write_bytes(machine.read_bytes())
            hosts.chmod(0o644)
        return hosts

    def home(self, name: str) -> dict[str, str]:
        """A fresh HOME (with its TMPDIR) in the run directory that only the learner's processes may write."""
        home = self.run.path / name
        if not home.is_dir():
            (home / "tmp").mkdir(parents=True)
            for folder in (home, home / "tmp"):
                chown_for_app(folder, self.confinement)
                folder.chmod(0o700)
        return {"HOME": str(home), "TMPDIR": str(home / "tmp")}

    def environment(self) -> dict[str, str]:
        env = {key: os.environ[key] for key in self.KEEP if key in os.environ}
        env.update(self.default_home)
        return env

    def listener(self, port: int | None) -> Listener:
        port = port or free_port()
        return Listener(f"127.0.0.1:{port}", f"http://127.0.0.1:{port}", port)

    def start(self, name: str, command: list[str], *, log: Path, cwd: Path, env: dict[str, str],
              inputs: tuple[Path, ...] = (), outputs: tuple[Path, ...] = (),
              listener: Listener | None = None) -> LocalHandle:
        for folder in inputs:  # the project, the overlay (with this run's passwords): its user's alone
            if folder.is_dir() and folder.parent == self.run.path:
                chown_for_app(folder, self.confinement)
                folder.chmod(0o700)
        for output in outputs:  # written by the learner's user: made for it beforehand
            output.unlink(missing_ok=True)
            output.touch(mode=0o600)
            chown_for_app(output, self.confinement)
        command = self.confinement.wrap(command, cwd=cwd, readable=inputs, writable=(Path(env["HOME"]), *outputs))
        return LocalHandle(self.run.spawn(name, command, log=log, cwd=cwd, env=env, **self.confinement.popen_kwargs()),
                           self.confinement.hosts)
