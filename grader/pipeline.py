"""The grading pipeline: snapshot, services, migrate, seed, serve, hidden checks, teardown.

`grade()` always tears down what it started, on success, failure, time-out,
Ctrl-C (SIGINT) and SIGTERM, and copies the run's logs out before the run
directory goes.
"""

from __future__ import annotations

import random
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from grader.app import LearnerApp, RunningServer
from grader.errors import StageFailure
from grader.labspec import LabSpec
from grader.processes import RunDirectory, reap_abandoned_runs
from grader.providers import Provider, Services, TemplateRecipe, get_provider
from grader.results import RunResult, StageProblem, merge_records
from grader.runner import run_checks
from grader.runtime import Runtime
from grader.workspace import copy_code

LOG_NAMES = ("migrate.log", "seed.log", "server.log", "checks.log", "postgres.log", "redis.log")


class Reporter(Protocol):
    def stage(self, name: str) -> None: ...
    def record(self, record: dict[str, Any]) -> None: ...


class SilentReporter:
    def stage(self, name: str) -> None:
        pass

    def record(self, record: dict[str, Any]) -> None:
        pass


@contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so every `finally` and context manager runs."""
    def handler(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Stages:
    """Times each stage of a run and tells the reporter when one starts."""

    def __init__(self, reporter: Reporter):
        self.reporter, self.durations = reporter, {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.reporter.stage(name)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.durations[name] = time.perf_counter() - started


@dataclass
class Prepared:
    """A learner's service, up and serving against its run's services."""

    services: Services
    server: RunningServer
    manifest: Any
    template: str


@contextmanager
def prepared_service(lab: LabSpec, source: Path, provider: Provider, run: RunDirectory, stages: Stages,
                     seed: int, demo: bool = False, port: int | None = None) -> Iterator[Prepared]:
    """Snapshot `source`, provision services, migrate (on a template miss), seed and serve it.

    Raises StageFailure when the learner's code stops a stage; everything started is stopped on exit.
    """
    with stages("snapshot"):
        snapshot = run.path / "app"
        copy_code(source, snapshot)
    app = LearnerApp(lab, snapshot, run)
    built: list[bool] = []

    def migrate(database: dict[str, Any], runtime: Runtime) -> None:
        built.append(True)
        with stages("migrate"):
            app.migrate(database, runtime)

    with ExitStack() as stack:
        with stages("services"):
            services = stack.enter_context(provider.provision(lab, run, TemplateRecipe(app.migration_key(), migrate)))
        with stages("seed"):
            manifest = app.seed(services, seed, demo=demo)
        with stages("serve"):
            server = app.serve(services, port=port)
        try:
            yield Prepared(services, server, manifest, "built" if built else "cached")
        finally:
            run.stop_all()  # the server first, while the databases are still up


def grade(lab: LabSpec, source: Path, provider_name: str | None = None, seed: int | None = None,
          reporter: Reporter | None = None, logs_dir: Path | None = None) -> RunResult:
    """Grade the project in `source` (a workspace or a starter/solution folder) and return the verdicts."""
    reporter = reporter or SilentReporter()
    provider = get_provider(provider_name)
    seed = seed if seed is not None else random.SystemRandom().randrange(1, 2**31)
    deadline = time.monotonic() + lab.limits.check_seconds
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    stages = Stages(reporter)
    records: dict[str, dict] = {}
    missing: dict[str, str] = {"status": "error", "message": "not run"}
    failure: StageProblem | None = None
    template = ""
    teardown_started: float | None = None
    with terminate_on_sigterm():
        reap_abandoned_runs()
        run = RunDirectory.create()
        try:
            try:
                with prepared_service(lab, source, provider, run, stages, seed) as prepared:
                    template = prepared.template
                    with stages("checks"):
                        context = {"lab": lab.slug, "base_url": prepared.server.base_url,
                                   "database": prepared.services.database, "redis_url": prepared.services.redis_url,
                                   "seed": seed, "seed_data": prepared.manifest,
                                   "request_seconds": lab.limits.request_seconds,
                                   "server": {"workers": lab.server.workers, "threads": lab.server.threads}}
                        records, missing = run_checks(lab, run, context, deadline, reporter.record)
                    reporter.stage("teardown")
                    teardown_started = time.perf_counter()
            except StageFailure as exc:
                failure = StageProblem(exc.stage, exc.message, exc.log_tail, exc.todo)
                missing = {"status": "skip",
                           "message": f"skipped: the service could not be prepared (the {exc.stage} stage failed)"}
        finally:
            teardown_started = teardown_started or time.perf_counter()
            if logs_dir is not None:
                _keep_logs(run.path, logs_dir)
            run.remove()
            stages.durations["teardown"] = time.perf_counter() - teardown_started
    return RunResult(
        lab=lab.slug, lab_version=lab.version, provider=provider.name, seed=seed, started_at=started_at,
        stages=stages.durations, checks=merge_records(lab, records, missing), stage_failure=failure,
        template=template, servers=provider.servers(),
    )


def _keep_logs(run_path: Path, logs_dir: Path) -> None:
    logs_dir.mkdir(parents=True, exist_ok=True)
    for name in LOG_NAMES:
        source = run_path / name
        target = logs_dir / name
        if source.is_file():
            shutil.copyfile(source, target)
        elif target.exists():
            target.unlink()

