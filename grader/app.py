"""The learner's Django service for one run: overlay, migrate, seed, serve.

The learner's project is never changed: the grader renders a settings overlay
package (`_lab_overlay`) into the run directory that imports the learner's
settings and points them at the run's services, and adds a readiness endpoint
that echoes a per-run token, so the probe knows it is this app answering.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import django
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from grader import dataset
from grader.errors import StageFailure
from grader.faults import failed_migration, learner_processes, stack_dumps
from grader.labspec import LabSpec
from grader.processes import RunDirectory
from grader.providers import Services
from grader.resources import resources
from grader.runtime import Handle, PortTaken, Runtime

OVERLAY_PACKAGE = "_lab_overlay"
SERVER_CONFIG = "gunicorn.conf.py"  # the project's is read only where the lab allows, and only for its shape


@dataclass(frozen=True)
class ServerBounds:
    max_workers: int = 8
    max_threads: int = 32


SERVER_BOUNDS = ServerBounds()
PROJECT_SERVER_CONFIG = """
_project = {{"__file__": {path!r}}}
exec(compile(open({path!r}).read(), {path!r}, "exec"), _project)
workers, threads = _project.get("workers", workers), _project.get("threads", threads)
for _name, _value, _most in (("workers", workers, {max_workers}), ("threads", threads, {max_threads})):
    if isinstance(_value, bool) or not isinstance(_value, int) or not 1 <= _value <= _most:
        raise SystemExit(f"gunicorn.conf.py: {{_name}} must be a whole number from 1 to {{_most}}, got {{_value!r}}")
"""
SEEDING_SCRIPT = Path(__file__).with_name("seeding.py")
NO_REDIS_YET = "redis://127.0.0.1:1/0"
READY_ERRORS_TO_GIVE_UP = 8
SERVER_NOISE = re.compile(r"^(\[\d{4}-\d\d-\d\d [\d:]+ [+-]\d{4}\] \[\d+\] \[(INFO|DEBUG)\]|\S+ - - \[)")


@dataclass
class RunningServer:
    process: Handle
    base_url: str
    log: Path


SERVE_TODO = "Serve it yourself with `lab run` (or `python manage.py check`) and fix the error in the log."


class LearnerApp:
    """One snapshot of a learner's project, prepared and served against one run's services."""

    def __init__(self, lab: LabSpec, snapshot: Path, run: RunDirectory, grading: bool = True,
                 origin: Path | None = None):
        self.lab, self.snapshot, self.run = lab, snapshot, run
        self.origin = origin  # the folder the snapshot was taken from
        self.overrides = lab.app_overrides if grading else ()  # `lab run` serves the learner's own settings
        self.token = secrets.token_hex(16)

    # -- the template database -------------------------------------------------------------

    def migration_key(self) -> str:
        """A hash of everything that decides the template: migration files, the lab's dataset, lab and Django
        versions, and the folder graded. Migrate runs the project's own code, which may leave anything in the
        database it builds: a template serves only the folder that built it, never another submission."""
        digest = hashlib.sha256(f"{self.lab.slug}\0{self.lab.version}\0{django.__version__}\0".encode())
        digest.update(b"origin\0" + str(self.origin.resolve() if self.origin else "").encode() + b"\0")
        for path in sorted(self.snapshot.rglob("migrations/*.py")):
            digest.update(str(path.relative_to(self.snapshot)).encode() + b"\0" + path.read_bytes() + b"\0")
        if self.lab.data is not None:
            digest.update(b"data\0" + self.dataset_module().read_bytes())
        return digest.hexdigest()[:20]

    def dataset_module(self) -> Path:
        return resources().checks_dir(self.lab.slug) / self.lab.data.module

    def migrate(self, database: dict[str, Any], runtime: Runtime, grader_database: dict[str, Any] | None = None) -> None:
        """Apply the learner's migrations to `database` (used to build the cached template).

        A lab with a dataset is migrated in two steps, with its data COPYed in between (from the grader,
        which reaches the database as `grader_database`), then analysed for the planner.
        """
        overlay = self.render_overlay("overlay-migrate", database, NO_REDIS_YET)
        log = self.run.path / "migrate.log"
        command = [runtime.python, "-m", "django", "migrate", "--noinput", "--skip-checks"]
        todo = ("Run `python manage.py migrate` in your workspace against a database (`lab run` gives you one) "
                "and fix the error it shows; `python manage.py makemigrations` after changing models.")
        data = self.lab.data
        if data is None:
            self._run_stage(runtime, "migrate", command, overlay, log, todo=todo)
            return
        keep = (f"Keep the starter's migrations up to {data.after} as they are and put your changes in new "
                "migrations (`python manage.py makemigrations`); the brief lists the tables and columns the data fills.")
        if not (self.snapshot / data.app / "migrations" / f"{data.migration}.py").is_file():
            raise StageFailure("migrate", f"the lab's data is loaded once the migration {data.after} is applied, and "
                               f"your project has no {data.app}/migrations/{data.migration}.py", "", keep)
        self._run_stage(runtime, "migrate", [*command, data.app, data.migration], overlay, log, todo=todo)
        target = grader_database or database
        try:
            loaded = dataset.load(self.dataset_module(), target)
        except dataset.DatasetError as error:
            raise StageFailure("migrate", f"the lab's data could not be loaded into your tables after {data.after}: "
                               f"{error}", "", keep) from None
        with log.open("a") as handle:
            handle.write("Loaded the lab's data in {:.1f} s: {}\n".format(
                loaded.seconds, ", ".join(f"{table} {rows:,} rows" for table, rows in loaded.rows.items())))
        self._run_stage(runtime, "migrate", command, overlay, log, todo=todo)
        dataset.analyze(target)

    # -- seed and serve --------------------------------------------------------------------

    def seed(self, services: Services, seed: int, demo: bool = False) -> Any:
        """Load the lab's seed data through the learner's models; returns the manifest for the checks.

        With `demo`, load the small data `lab run` serves instead and return the lines to show.
        """
        seed_module = resources().checks_dir(self.lab.slug) / "seed.py"
        if not seed_module.is_file():
            return {}
        overlay = self.render_overlay("overlay", *services.for_app())
        scripts = self.run.path / "seeding"
        scripts.mkdir(exist_ok=True)
        script, module = shutil.copy(SEEDING_SCRIPT, scripts), shutil.copy(seed_module, scripts / "lab_seed.py")
        output = self.run.path / "seed.json"
        self._run_stage(
            services.runtime, "seed",
            [services.runtime.python, str(script), str(module), "demo" if demo else "seed", str(seed), str(output)],
            overlay, self.run.path / "seed.log", inputs=(scripts,), outputs=(output,),
            todo="Your project could not be loaded, or the lab's data could not be created through your models: fix "
                 "the error above (`python manage.py check` shows it too) and keep the fields and tables the brief "
                 "fixes (you may add fields, with defaults).",
        )
        return json.loads(output.read_text())

    def serve_replicas(self, services: Services, port: int | None = None) -> list[RunningServer]:
        """Every replica the lab declares, each ready; the first on `port` when one is given.

        Replicas start together: each is launched from this thread (a sandbox that dies with its parent dies
        with the thread that started it), then all are waited for at once. A replica that is not ready is
        started again alone, as `serve` does, which says why when it cannot be."""
        replicas = self.lab.server.replicas
        if replicas == 1:
            return [self.serve(services, port=port)]
        overlay = self._overlay(services)  # written once, before any replica reads it
        launched = [self._launch(services, port if replica == 0 else None, replica, overlay)
                    for replica in range(replicas)]
        with ThreadPoolExecutor(replicas) as waiting:
            outcomes = list(waiting.map(self._wait_ready, [server for server in launched if server is not None]))
        ready = iter(outcomes)
        servers = []
        for replica, server in enumerate(launched):
            outcome = next(ready) if server is not None else "port taken"
            if outcome == "ready":
                servers.append(server)
                continue
            if outcome != "port taken":
                raise self._not_ready(server, outcome)
            if server is not None:
                server.process.stop(grace=3.0)
            servers.append(self.serve(services, port=port if replica == 0 else None, replica=replica,
                                      overlay=overlay))  # another free port, as serve tries
        return servers

    def _launch(self, services: Services, port: int | None, replica: int, overlay: Path) -> RunningServer | None:
        """One replica's server started, not yet known to be ready; None when it could not even start."""
        name, snapshot, env, config = self._server_parts(services, replica, overlay)
        listener = services.runtime.listener(port)
        log = self.run.path / f"{name}.log"
        try:
            handle = services.runtime.start(name, self._server_command(services.runtime, config, listener), log=log,
                                            cwd=snapshot, env=env, inputs=(snapshot, overlay), listener=listener)
        except PortTaken:
            return None
        return RunningServer(handle, handle.base_url(listener), log)

    def _overlay(self, services: Services) -> Path:
        return self.render_overlay("overlay", *services.for_app(), reached_at_own_address=services.runtime.internal)

    def serve(self, services: Services, port: int | None = None, replica: int = 0,
              overlay: Path | None = None) -> RunningServer:
        """gunicorn on `port` (default: a free loopback port), ready when the probe gets this run's token back.

        Replicas after the first get a copy of the snapshot and (as local processes) a HOME and TMPDIR of
        their own, so that, as on separate machines, nothing but the services is shared between them.
        """
        runtime = services.runtime
        overlay = overlay or self._overlay(services)
        name, snapshot, env, config = self._server_parts(services, replica, overlay)
        log = self.run.path / f"{name}.log"
        for _attempt in range(3 if port is None else 1):
            listener = runtime.listener(port)
            try:
                handle = runtime.start(name, self._server_command(runtime, config, listener), log=log, cwd=snapshot, env=env,
                                       inputs=(snapshot, overlay), listener=listener)
            except PortTaken:
                outcome = "port taken"
                continue
            running = RunningServer(handle, handle.base_url(listener), log)
            outcome = self._wait_ready(running)
            if outcome == "ready":
                return running
            if outcome != "port taken":
                raise self._not_ready(running, outcome)
            handle.stop(grace=3.0)
        raise StageFailure("serve", f"the port for {listener.base_url} is taken by another program",
                           self.log_excerpt(log), todo=SERVE_TODO)

    def _not_ready(self, server: RunningServer, outcome: str) -> StageFailure:
        """Why a server did not get ready, as the serve stage's failure; the server is stopped."""
        if outcome.startswith("the server did not answer"):
            outcome += self._where_stuck(server.log)  # its stacks, taken while it still runs
        server.process.stop(grace=3.0)
        return StageFailure("serve", outcome, self.log_excerpt(server.log), todo=SERVE_TODO)

    def _server_parts(self, services: Services, replica: int, overlay: Path) -> tuple[str, Path, dict[str, str], Path]:
        """A replica's name, its copy of the project (replicas after the first get their own), its environment
        and its gunicorn configuration."""
        runtime = services.runtime
        name = "server" if replica == 0 else f"server-{replica + 1}"
        snapshot = self.snapshot
        if replica:
            snapshot = self.run.path / f"app-{replica + 1}"
            if not snapshot.is_dir():
                shutil.copytree(self.snapshot, snapshot, symlinks=True)
        env = self.environment(overlay, runtime, snapshot)
        if replica and runtime.name == "local":
            env.update(runtime.home(f"home-{replica + 1}"))
        return name, snapshot, env, self._server_config(overlay, snapshot)

    def _server_command(self, runtime: Runtime, config: Path, listener: Any) -> list[str]:
        return [runtime.python, "-m", "gunicorn", f"{OVERLAY_PACKAGE}.wsgi:application", "--config", str(config),
                "--bind", listener.bind,
                "--timeout", str(max(30, self.lab.limits.request_seconds * 2)), "--graceful-timeout", "3",
                "--access-logfile", "-", "--error-logfile", "-", "--capture-output"]

    def _wait_ready(self, server: RunningServer) -> str:
        deadline = time.monotonic() + self.lab.limits.startup_seconds
        url = f"{server.base_url}/__lab__/ready"
        errors: list[int] = []
        next_look = time.monotonic() + 1
        while time.monotonic() < deadline:
            if time.monotonic() >= next_look:  # a worker killed for memory is restarted: the server never answers
                next_look = time.monotonic() + 1
                trouble = server.process.trouble()
                if trouble:
                    return f"the server {trouble}"
            code = server.process.poll()
            if code is not None:
                text = read_tail(server.log) if server.log.exists() else ""
                if "Address already in use" in text:
                    return "port taken"
                trouble = server.process.trouble()
                return f"the server exited (code {code}) before it answered" + (f": it {trouble}" if trouble else "")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.read().decode(errors="replace") == self.token:
                        return "ready"
            except urllib.error.HTTPError as error:
                # Django answers, but loading the project fails (an import or URLconf error): every
                # request, the probe included, gets the same error, so waiting longer cannot help.
                errors.append(error.code)
                if len(errors) >= READY_ERRORS_TO_GIVE_UP:
                    return (f"the server started, but answers HTTP {error.code} to every request: your project "
                            "fails when Django loads it (the traceback is in the log)")
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        return f"the server did not answer {url} within {self.lab.limits.startup_seconds} s"

    # -- plumbing ----------------------------------------------------------------------------

    def render_overlay(self, name: str, database: dict[str, Any], redis_url: str,
                       reached_at_own_address: bool = False) -> Path:
        """Write the `_lab_overlay` package for these services into the run directory."""
        root = self.run.path / name
        package = root / OVERLAY_PACKAGE
        package.mkdir(parents=True, exist_ok=True)
        templates = Environment(loader=FileSystemLoader(resources().templates / "overlay"),
                                undefined=StrictUndefined, keep_trailing_newline=True)
        values = {"settings_module": self.lab.settings_module, "database": database,
                  "redis_url": redis_url, "token": self.token, "reached_at_own_address": reached_at_own_address,
                  "overrides": [(name, repr(value)) for name, value in self.overrides]}
        for template in ("__init__.py", "settings.py", "urls.py", "wsgi.py"):
            (package / template).write_text(templates.get_template(f"{template}.j2").render(values))
        return root

    def _server_config(self, overlay: Path, snapshot: Path) -> Path:
        """The grader's gunicorn.conf.py: the lab's workers and threads, or, where the lab lets the project
        tune them, those its own gunicorn.conf.py sets (nothing else of that file counts)."""
        server = self.lab.server
        lines = ["# Written by the grader for this run.", f"workers = {server.workers}", f"threads = {server.threads}",
                 # Idle kept-alive connections stay open longer than a check pauses, so that a client never
                 # sends on a connection the server is closing (a request lost to the race, not to the app).
                 "keepalive = 75",
                 # Stacks on request (faults.STACK_SIGNAL), in the master too: it loads no overlay.
                 "import faulthandler, signal",
                 "hasattr(signal, 'SIGPWR') and faulthandler.register(signal.SIGPWR, all_threads=True)"]
        if server.project_config and (snapshot / SERVER_CONFIG).is_file():
            lines += [PROJECT_SERVER_CONFIG.format(path=str(snapshot / SERVER_CONFIG), **asdict(SERVER_BOUNDS))]
        path = overlay / f"server-{snapshot.name}.conf.py"
        path.write_text("\n".join(lines) + "\n")
        return path

    def log_excerpt(self, log: Path, limit: int = 30) -> str:
        """What a learner needs from a log: its last traceback (else its tail), with paths as in their workspace."""
        try:
            text = read_tail(log)
        except OSError:
            return "(no log)"
        text = text.replace(f"{self.snapshot}{os.sep}", "").replace(str(self.run.path), "<run>")
        lines = text.splitlines()
        starts = [index for index, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
        if starts:
            lines = condense_traceback([line for line in lines[starts[-1]:] if not SERVER_NOISE.match(line)])
        if len(lines) > limit:
            lines = lines[:1] + ["  ..."] + lines[-(limit - 2):]
        return "\n".join(lines).strip() or "(empty log)"

    def environment(self, overlay: Path, runtime: Runtime, snapshot: Path | None = None) -> dict[str, str]:
        """The environment of the learner's processes: what Django needs, nothing that names the grader."""
        env = runtime.environment()
        env.update({
            "PYTHONPATH": os.pathsep.join([str(overlay), str(snapshot or self.snapshot)]),
            "DJANGO_SETTINGS_MODULE": f"{OVERLAY_PACKAGE}.settings",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        })
        return env

    def _run_stage(self, runtime: Runtime, stage: str, command: list[str], overlay: Path, log: Path, todo: str,
                   inputs: tuple[Path, ...] = (), outputs: tuple[Path, ...] = ()) -> None:
        handle = runtime.start(stage, command, log=log, cwd=self.snapshot, env=self.environment(overlay, runtime),
                               inputs=(self.snapshot, overlay, *inputs), outputs=outputs)
        try:
            code = handle.wait(timeout=self.lab.limits.startup_seconds)
        except subprocess.TimeoutExpired:
            raise StageFailure(stage, f"{stage} did not finish within {self.lab.limits.startup_seconds} s"
                               + self._where_stuck(log), self.log_excerpt(log), todo) from None
        finally:
            handle.stop(grace=2.0)
        if code != 0:
            trouble = handle.trouble()
            migration = failed_migration(log) if stage == "migrate" else None
            raise StageFailure(stage, f"{stage} failed (exit code {code})" + (f": it {trouble}" if trouble else "")
                               + (f" while applying the migration {migration}" if migration else ""),
                               self.log_excerpt(log), todo)

    def _where_stuck(self, log: Path) -> str:
        """Where the stage's Python processes are stuck (their stacks), as words to add to its failure."""
        dumps = stack_dumps(learner_processes(self.run.path, self.run.app_uid), log)
        frames = [[line.strip() for line in dump.splitlines() if line.startswith("  File ")] for dump in dumps]
        mine = [[frame for frame in stack if f"{self.snapshot}{os.sep}" in frame] for stack in frames]
        shown = next((stack for stack in mine if stack), None) or next((stack for stack in frames if stack), None)
        if not shown:
            return ""
        shown = shown[:3]  # the innermost first
        return (", and its log says nothing of why. Its Python processes were busy at: "
                + "; ".join(frame.replace(f"{self.snapshot}{os.sep}", "") for frame in shown)
                + " (an endless loop, or a call that never returns, as the project loads?)")


def read_tail(log: Path, size: int = 256 * 1024) -> str:
    """The last `size` bytes of a log as text: a server that printed without end is not read whole."""
    with log.open("rb") as handle:
        handle.seek(max(0, log.stat().st_size - size))
        return handle.read().decode(errors="replace")


def condense_traceback(lines: list[str], library_frames: int = 2) -> list[str]:
    """A traceback with the learner's frames kept, and only the last few of Python's and Django's own."""
    head, frames, tail = lines[:1], [], []
    for line in lines[1:]:
        if line.startswith("  File "):
            frames.append([line])
        elif line.startswith("    ") and frames and not tail:
            frames[-1].append(line)
        else:
            tail.append(line)
    def learners(frame: list[str]) -> bool:
        return not frame[0].startswith(('  File "/', '  File "<frozen', '  File "<run>'))
    kept = [frame for index, frame in enumerate(frames)
            if learners(frame) or index >= len(frames) - library_frames]
    omitted = len(frames) - len(kept)
    body = [line for frame in kept for line in frame]
    note = [f"  ... {omitted} frames of Python and Django left out"] if omitted else []
    return head + note + body + tail
