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
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from grader.app import LearnerApp
from grader.errors import StageFailure
from grader.labspec import LabSpec
from grader.processes import RunDirectory, reap_abandoned_runs
from grader.providers import TemplateRecipe, get_provider
from grader.results import RunResult, StageProblem, merge_records
from grader.runner import run_checks
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


class _Stages:
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


def grade(lab: LabSpec, source: Path, provider_name: str | None = None, seed: int | None = None,
          reporter: Reporter | None = None, logs_dir: Path | None = None) -> RunResult:
    """Grade the project in `source` (a workspace or a starter/solution folder) and return the verdicts."""
    reporter = reporter or SilentReporter()
    provider = get_provider(provider_name)
    seed = seed if seed is not None else random.SystemRandom().randrange(1, 2**31)
    deadline = time.monotonic() + lab.limits.check_seconds
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    stages = _Stages(reporter)
    records: dict[str, dict] = {}
    missing = "not run"
    failure: StageProblem | None = None
    template = ""
    with terminate_on_sigterm():
        reap_abandoned_runs()
        run = RunDirectory.create()
        try:
            with ExitStack() as stack:
                try:
                    with stages("snapshot"):
                        snapshot = run.path / "app"
                        copy_code(source, snapshot)
                    app = LearnerApp(lab, snapshot, run)
                    built: list[bool] = []

                    def migrate(database: dict[str, Any]) -> None:
                        built.append(True)
                        with stages("migrate"):
                            app.migrate(database)

                    with stages("services"):
                        services = stack.enter_context(
                            provider.provision(lab, run, TemplateRecipe(app.migration_key(), migrate)))
                    template = "built" if built else "cached"
                    with stages("seed"):
                        manifest = app.seed(services, seed)
                    with stages("serve"):
                        server = app.serve(services)
                    with stages("checks"):
                        context = {"lab": lab.slug, "base_url": server.base_url, "database": services.database,
                                   "redis_url": services.redis_url, "seed": seed, "seed_data": manifest,
                                   "request_seconds": lab.limits.request_seconds,
                                   "server": {"workers": lab.server.workers, "threads": lab.server.threads}}
                        records, missing = run_checks(lab, run, context, deadline, reporter.record)
                except StageFailure as exc:
                    failure = StageProblem(exc.stage, exc.message, exc.log_tail, exc.todo)
                    missing = f"skipped: the service could not be prepared (the {exc.stage} stage failed)"
                    records = {check.id: {"status": "skip", "message": missing} for check in lab.checks}
                with stages("teardown"):
                    run.stop_all()
        finally:
            if logs_dir is not None:
                _keep_logs(run.path, logs_dir)
            run.remove()
    return RunResult(
        lab=lab.slug, lab_version=lab.version, provider=provider.name, seed=seed, started_at=started_at,
        stages=stages.durations, checks=merge_records(lab, records, missing), stage_failure=failure,
        template=template,
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

