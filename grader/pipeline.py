"""The grading pipeline: snapshot, services, migrate, seed, serve, hidden checks, teardown.

`grade()` always tears down what it started, on success, failure, time-out,
Ctrl-C (SIGINT) and SIGTERM, and copies the run's logs out before the run
directory goes.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from grader.app import LearnerApp, RunningServer
from grader.calibration import Calibration, CalibrationCache, cpu_available_now, machine_description
from grader.errors import EnvironmentProblem, StageFailure, UsageProblem
from grader.faults import BROKE_DATABASE_HINT, service_faults, table_baseline
from grader.labspec import LabSpec
from grader.processes import RunDirectory, reap_abandoned_runs
from grader.providers import Provider, Services, TemplateRecipe, get_provider
from grader.resources import resources
from grader.results import RunResult, StageProblem, merge_records
from grader.runner import run_checks
from grader.runtime import Runtime
from grader.scheduler import closure
from grader.workspace import code_files, copy_code, readable_by_all

CALIBRATION_SEED = 20261201  # calibration runs use one seed, so they can be replayed
LOG_NAMES = ("migrate.log", "seed.log", "server.log", "checks.log", "postgres.log", "redis.log",
             *(f"server-{replica}.log" for replica in range(2, 9)))
LOG_CAP_BYTES = 1 << 20  # per log kept in .lab/logs: an app that prints without end must not fill the workspace


class Reporter(Protocol):
    def stage(self, name: str) -> None: ...
    def record(self, record: dict[str, Any]) -> None: ...
    def progress(self, line: str) -> None: ...  # a long check's live progress (a load run)
    def note(self, text: str) -> None: ...  # something the user should know that is neither


class SilentReporter:
    def stage(self, name: str) -> None:
        pass

    def record(self, record: dict[str, Any]) -> None:
        pass

    def progress(self, line: str) -> None:
        pass

    def note(self, text: str) -> None:
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
    replicas: list[RunningServer]  # one server for most labs
    manifest: Any
    template: str
    app: LearnerApp
    tables: dict[str, bool]  # the lab's tables once seeded, and whether each holds rows

    @property
    def server(self) -> RunningServer:
        """The first replica: where `lab run` serves and single-address checks go."""
        return self.replicas[0]


@contextmanager
def prepared_service(lab: LabSpec, source: Path, provider: Provider, run: RunDirectory, stages: Stages,
                     seed: int, demo: bool = False, port: int | None = None) -> Iterator[Prepared]:
    """Snapshot `source`, provision services, migrate (on a template miss), seed and serve it.

    Raises StageFailure when the learner's code stops a stage; everything started is stopped on exit.
    """
    with stages("snapshot"):
        snapshot = run.path / "app"
        copy_code(source, snapshot)
        readable_by_all(snapshot)  # the learner's processes may run as another user, and only read it
    app = LearnerApp(lab, snapshot, run, grading=not demo, origin=source)
    built: list[bool] = []

    def migrate(database: dict[str, Any], grader_database: dict[str, Any], runtime: Runtime) -> None:
        built.append(True)
        with stages("migrate"):
            app.migrate(database, runtime, grader_database)

    with ExitStack() as stack:
        with stages("services"):
            services = stack.enter_context(provider.provision(lab, run, TemplateRecipe(app.migration_key(), migrate),
                                                              graded=not demo))
        with stages("seed"):
            manifest = app.seed(services, seed, demo=demo)
            tables = table_baseline(services.database)
        with stages("serve"):
            replicas = app.serve_replicas(services, port=port)
        try:
            yield Prepared(services, replicas, manifest, "built" if built else "cached", app, tables)
        finally:
            run.stop_all()  # the server first, while the databases are still up


def grade(lab: LabSpec, source: Path, provider_name: str | None = None, seed: int | None = None,
          reporter: Reporter | None = None, logs_dir: Path | None = None,
          only: tuple[str, ...] | None = None) -> RunResult:
    """Grade the project in `source` (a workspace or a starter/solution folder) and return the verdicts.

    A lab with a load profile is judged against the reference solution measured on this machine:
    the first grading on a machine measures the starter and the reference (`calibrate`) and keeps them.
    `only`: a partial run of these checks and the checks they depend on (it is calibrated only when one of
    them measures: an `alone` check).
    """
    reporter = reporter or SilentReporter()
    provider = get_provider(provider_name)
    if only is not None:
        if not only:
            raise UsageProblem("A partial run names at least one check.", f"Name one of: {', '.join(lab.check_ids)}.")
        lab.require_checks(only)
    measures = lab.load is not None and (only is None or any(lab.check(check_id).alone
                                                             for check_id in closure(lab.checks, only)))
    calibration = (lambda: calibrate(lab, provider, reporter)) if measures else None
    return _grade(lab, source, provider, seed, reporter, logs_dir, calibration=calibration, only=only)


def calibrate(lab: LabSpec, provider: Provider, reporter: Reporter | None = None, refresh: bool = False) -> Calibration:
    """The starter's and the reference's figures on this machine: from the cache, else measured now and kept."""
    reporter = reporter or SilentReporter()
    cache = CalibrationCache()
    version = f"{lab.version}-{lab_digest(lab)}"
    kept = None if refresh else cache.get(lab.slug, version, provider.name)
    stale = kept.why_measure_again(cpu_available_now()) if kept is not None else None
    if kept is not None and stale is None:
        return kept
    if stale:
        reporter.note(f"Calibrating {lab.slug} {lab.version} again: {stale}, so the reference solution is measured "
                      "again now, beside your service.")
    else:
        reporter.note(f"Calibrating {lab.slug} {lab.version} on this machine with the {provider.name} provider: the "
                      "starter and the reference solution are measured once and kept (`lab calibrate` measures again).")
    sides = {}
    for side, folder in (("starter", resources().starter_dir(lab.slug)), ("reference", resources().solution_dir(lab.slug))):
        if side == "starter" and kept is not None:  # shown beside yours, never judged by: kept as they were
            sides[side] = kept.starter
            continue
        result = _grade(lab, folder, provider, CALIBRATION_SEED, _Calibrating(reporter, side), None, calibrating=side)
        problem = result.stage_failure.message if result.stage_failure else next(
            (f"its check {check.id} was {check.status}: {check.message}" for check in result.checks
             if check.status in ("error", "skip") or (side == "reference" and check.status != "pass")), None)
        if problem:
            raise EnvironmentProblem(
                f"The {side} of {lab.slug} could not be measured on this machine: {problem}",
                "Run `lab verify " + lab.slug + "` to see the whole run; `lab doctor` checks the servers.")
        sides[side] = {check.id: check.figures for check in result.checks if check.figures}
    calibration = Calibration(lab=lab.slug, version=version, provider=provider.name,
                              machine=machine_description(), measured_at=_now(), seed=CALIBRATION_SEED,
                              starter=sides["starter"], reference=sides["reference"])
    cache.put(calibration)
    return calibration


def lab_digest(lab: LabSpec) -> str:
    """A hash of what the figures depend on: lab.toml, the hidden checks, the starter and the solution."""
    digest = hashlib.sha256()
    folders = (lab.directory, resources().checks_dir(lab.slug), resources().solution_dir(lab.slug))
    for folder in folders:
        for relative in code_files(folder):
            digest.update(str(relative).encode() + b"\0" + (folder / relative).read_bytes() + b"\0")
    return digest.hexdigest()[:12]


class _Calibrating:
    """Shows a calibration run's stages as notes, and none of its verdicts (they are not the learner's)."""

    def __init__(self, reporter: Reporter, side: str):
        self.reporter, self.side = reporter, side

    def stage(self, name: str) -> None:
        self.reporter.note(f"calibration, {self.side}: {name}")

    def record(self, record: dict[str, Any]) -> None:
        pass

    def progress(self, line: str) -> None:
        self.reporter.progress(f"calibration, {self.side}: {line}")

    def note(self, text: str) -> None:
        self.reporter.note(text)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _grade(lab: LabSpec, source: Path, provider: Provider, seed: int | None, reporter: Reporter,
           logs_dir: Path | None, calibration: Callable[[], Calibration] | None = None,
           calibrating: str | None = None, only: tuple[str, ...] | None = None) -> RunResult:
    """One grading run. `calibration` gives the reference's figures once the service is up (so that a
    project that does not even start is not kept waiting for a calibration); its time is not the run's."""
    seed = seed if seed is not None else random.SystemRandom().randrange(1, 2**31)
    deadline = time.monotonic() + lab.limits.check_seconds
    started_at = _now()
    calibrated: Calibration | None = None
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
                    if calibration is not None:
                        waited = time.monotonic()
                        calibrated = calibration()
                        deadline += time.monotonic() - waited
                    with stages("checks"):
                        context = {"lab": lab.slug, "base_url": prepared.server.base_url,
                                   "replicas": [replica.base_url for replica in prepared.replicas],
                                   "replica_processes": [replica.process.where() for replica in prepared.replicas],
                                   "database": prepared.services.database, "redis_url": prepared.services.redis_url,
                                   "seed": seed, "seed_data": prepared.manifest,
                                   "request_seconds": lab.limits.request_seconds,
                                   "server": {"workers": lab.server.workers, "threads": lab.server.threads},
                                   "load": _load_context(lab), "calibrating": calibrating,
                                   "app_settings": dict(lab.app_overrides), "tables": prepared.tables,
                                   "reference": calibrated.reference if calibrated else None}
                        timings: dict[str, float] = {}
                        records, missing = run_checks(lab, run, context, deadline, reporter.record, reporter.progress,
                                                      only=frozenset(only) if only is not None else None,
                                                      timings=timings, switches=prepared.services.switches)
                        stages.durations.update(timings)
                        failure = broken_services(prepared)
                    reporter.stage("teardown")
                    teardown_started = time.perf_counter()
            except StageFailure as exc:
                failure = StageProblem(exc.stage, exc.message, exc.log_tail, exc.todo)
                missing = {"status": "skip",
                           "message": f"skipped: the service could not be prepared (the {exc.stage} stage failed)"}
        finally:
            teardown_started = teardown_started or time.perf_counter()
            run.stop_all()  # nothing writes to the logs while they are copied
            if logs_dir is not None:
                _keep_logs(run.path, logs_dir)
            run.remove()
            stages.durations["teardown"] = time.perf_counter() - teardown_started
    return RunResult(
        lab=lab.slug, lab_version=lab.version, provider=provider.name, seed=seed, started_at=started_at,
        stages=stages.durations, stage_failure=failure, template=template, servers=provider.servers(),
        checks=merge_records(lab, records, missing, run=closure(lab.checks, only) if only is not None else None),
        calibration=calibrated, only=tuple(only) if only is not None else None,
    )


def broken_services(prepared: Prepared) -> StageProblem | None:
    """The services the app broke during the checks (PostgreSQL or Redis down, the lab's tables gone), if any."""
    for attempt in range(3):  # a busy moment is no fault: it must hold on a second and third look
        faults = service_faults(prepared.services.database, prepared.services.redis_url, prepared.tables,
                                emptied=False)
        if not faults:
            return None
        if attempt < 2:
            time.sleep(1)
    return StageProblem("checks", "your service broke its database during the checks: " + "; ".join(faults),
                        prepared.app.log_excerpt(prepared.server.log), BROKE_DATABASE_HINT)


def _load_context(lab: LabSpec) -> dict[str, Any] | None:
    """The load profile as the hidden checks' process gets it."""
    if lab.load is None:
        return None
    load = lab.load
    return {"users": load.users, "spawn_rate": load.spawn_rate, "seconds": load.seconds,
            "locustfile": str(resources().checks_dir(lab.slug) / load.locustfile),
            "thresholds": asdict(load.thresholds)}


def _keep_logs(run_path: Path, logs_dir: Path) -> None:
    if logs_dir.is_symlink():  # the grader's own folder: a link planted there is not followed
        logs_dir.unlink()
    logs_dir.mkdir(parents=True, exist_ok=True)
    for name in LOG_NAMES:
        source = run_path / name
        target = logs_dir / name
        if source.is_file():
            copy_capped(source, target)
        elif target.exists():
            target.unlink()


def copy_capped(source: Path, target: Path, cap: int = LOG_CAP_BYTES) -> None:
    """Copy a log, keeping at most `cap` bytes of it: its head and its tail, with a line that says what was cut."""
    size = source.stat().st_size
    target.unlink(missing_ok=True)  # a link planted there is replaced, never written through
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with source.open("rb") as reading, os.fdopen(descriptor, "wb") as writing:
        if size <= cap:
            writing.write(reading.read(size))
            return
        head, tail = cap // 4, cap - cap // 4
        writing.write(reading.read(head))
        writing.write(f"\n[... {size - head - tail:,} bytes cut here by the grader: the log was {size:,} bytes, and "
                      f".lab/logs keeps the first {head:,} and the last {tail:,} ...]\n".encode())
        reading.seek(size - tail)
        writing.write(reading.read(tail))
