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
from typing import TYPE_CHECKING, Protocol

from grader.paths import state_dir
from grader.processes import RunDirectory, free_port, runs_root, stop_group
from grader.sandbox import Confinement, chown_for_app, sandbox_mode

if TYPE_CHECKING:
    from grader.providers.local import PublicAddress


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
    def __init__(self, process: subprocess.Popen, network: dict[str, str] | None = None):
        self.process, self.network = process, network or {}

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
        return {"pid": self.process.pid, **self.network}

    def base_url(self, listener: Listener) -> str:
        return listener.base_url


class LocalRuntime:
    """Child processes of the grader, in their own sessions, recorded in the run directory and confined by the
    machine's sandbox (grader/sandbox.py): they see their project, their HOME and nothing of the grader's."""

    name = "local"
    python = sys.executable
    internal = False
    KEEP = ("PATH", "LANG", "LC_ALL", "TZ", "SYSTEMROOT")

    def __init__(self, run: RunDirectory, public: PublicAddress | None = None):
        self.run = run
        mode = sandbox_mode()
        bwrap = mode.name == "bwrap"
        # A name server of the checks' own (on 127.x.y.z:53, which only root may bind) answers first in the run's
        # resolv.conf, and nsswitch asks the hosts file, then DNS: the checks decide what a name resolves to.
        dns = bwrap and os.geteuid() == 0 and public is not None and bool(public.address)
        self.confinement = Confinement(mode, run.app_uid, hidden=(runs_root(), state_dir()),
                                       hosts=self._copy("hosts") if bwrap else None,
                                       resolv=self._copy("resolv.conf") if dns else None,
                                       nsswitch=self._copy("nsswitch.conf", _files_then_dns) if dns else None)
        self.network = {"hosts": str(self.confinement.hosts)} if self.confinement.hosts else {}
        if self.confinement.resolv and self.confinement.nsswitch:
            self.network["resolv"] = str(self.confinement.resolv)
        if public is not None and public.address:
            self.network.update(public=public.address, public_route=public.proof)
        else:
            self.network["public_why_not"] = public.why_not if public is not None else \
                "this provider adds no public address to this machine's loopback (the local provider does, as root)"
        self.default_home = self.home("home")

    def _copy(self, name: str, change=None) -> Path | None:
        """The run's copy of /etc/<name>, which its commands see in its place: readable by them, written by the
        grader only (a check that decides what a name resolves to rewrites it in place)."""
        machine = Path("/etc") / name
        if not machine.is_file():
            return None
        copy = self.run.path / name
        if not copy.is_file():
            text = machine.read_text(errors="replace")
            copy.write_text(change(text) if change else text)
            copy.chmod(0o644)
        return copy

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
                           self.network)


def _files_then_dns(nsswitch: str) -> str:
    """nsswitch.conf with names looked up in the hosts file, then by DNS, and nothing else."""
    lines = [line for line in nsswitch.splitlines() if not line.strip().startswith("hosts:")]
    return "\n".join([*lines, "hosts:          files dns", ""])
