"""Run a lab's hidden checks: pytest in subprocesses that see nothing of the workspace.

A lab's checks run in up to `[grading] parallel` pytest processes (workers), each of which collects
them all and then runs the checks the runner sends it, one at a time, in the order grader.scheduler
decides. Their working directory and rootdir are the lab's checks folder, its config file
is the grader's (`-c`), its PYTHONPATH is the grader's import root, plugin
autoloading is off and the cache provider is disabled: no conftest, ini file,
plugin or module of the learner's can take part. Verdicts come from the JSON
records the grader's plugin writes, one per check id, into a pipe that only its
checks process holds: no file the learner's code could find, append to or replace.
Its context and working files sit in the run's private folder.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from grader.errors import EnvironmentProblem
from grader.labspec import SERVICES, LabSpec
from grader.processes import RunDirectory, stop_group
from grader.resources import PACKAGE_DIR, resources
from grader.scheduler import Schedule

CHECKS_INI = PACKAGE_DIR / "checks" / "pytest.ini"


def run_checks(lab: LabSpec, run: RunDirectory, context: dict[str, Any], deadline: float,
               on_record: Callable[[dict[str, Any]], None] = lambda record: None,
               on_progress: Callable[[str], None] = lambda line: None,
               only: frozenset[str] | None = None, timings: dict[str, float] | None = None,
               switches: Mapping[str, ServiceSwitch] | None = None) -> tuple[dict[str, dict], dict]:
    """Run the checks until done or `deadline` (monotonic), up to `lab.parallel` at once (see grader.scheduler).

    Returns the records by check id, and the record that stands in for a check that has none.
    `on_progress` gets the live progress lines of long checks (a load run). `only`: a partial run of these
    checks and those they depend on; the others get no record. `timings` gets "pytest start": the seconds
    until the first worker was ready to run a check. `switches`: the services a check may stop and start
    again (grader.checkkit.services); one a check left stopped is started again when that check ends.
    """
    schedule = Schedule(lab.checks, workers=lab.parallel, selected=only)
    context_path = run.private / "check-context.json"
    context = {**context, "work_dir": str(run.private / "check-work"),
               "checks": [{"id": check.id, "depends_on": list(check.depends_on), "locks": list(check.locks)}
                          for check in lab.checks]}
    context_path.write_text(json.dumps(context, default=str))
    records: dict[str, dict] = {}
    missing = {"status": "error", "message": "the hidden checks stopped before this one ran (see .lab/logs/checks.log)"}
    started = time.monotonic()
    workers: list[Worker] = []
    outages = Outages(switches or {})
    wanted = min(lab.parallel, max(1, len(schedule.pending)))

    def take(record: dict[str, Any]) -> None:
        if record["id"] in records:  # every worker reports a check no hidden check implements: once is enough
            return
        records[record["id"]] = record
        schedule.finish(record["id"], record["status"])
        on_record(record)

    try:
        for number in range(wanted):
            workers.append(Worker.start(number, lab, run, context_path))
        while not schedule.done:
            while skips := schedule.skips():  # a skip may make its own dependents skips: until none is left
                for skip in skips:
                    take({"id": skip.check_id, "status": "skip", "message": skip.message, "duration": 0.0,
                          "evidence": {}, "hint": None})
            for worker in workers:
                if not worker.exited and not worker.alive:  # it died: the check it ran ends with it
                    worker.exited = True
                    for message in worker.pipe.read(timeout=0):
                        if "id" in message:
                            take(message)
                    check_id = schedule.free(worker.number)
                    if check_id is not None and check_id not in records:
                        take({"id": check_id, "status": "error", "duration": 0.0, "evidence": {}, "hint": None,
                              "message": "the hidden checks stopped while this check ran (see .lab/logs/checks.log)"})
            outages.end_unless_running(schedule.running)
            alive = [worker for worker in workers if not worker.exited]
            if not alive:
                break
            if schedule.home not in {worker.number for worker in alive}:
                schedule.home = alive[0].number
            for number in schedule.grants():  # before new checks: a lock taken back goes to the check that let go
                [worker for worker in workers if worker.number == number][0].send({"granted": True})
            idle = [worker.number for worker in alive if worker.ready and worker.number not in schedule.running]
            for number in schedule.retired(idle):
                # Nothing is left for it (only alone checks, which the home worker runs): it ends now, its
                # session fixtures and database connection with it, before anything measures the service.
                retiring = [worker for worker in workers if worker.number == number][0]
                retiring.stop(wait=True)
                retiring.exited = True
                idle.remove(number)
            for number, check_id in schedule.next_for(idle):
                running = [worker for worker in workers if worker.number == number][0]
                running.dispatch(check_id, list(lab.check(check_id).depends_on))  # each one passed
            if schedule.done:
                break
            for worker, message in _read_any(alive, timeout=0.1):
                if "progress" in message:
                    on_progress(message["progress"])
                elif "ready" in message:
                    worker.ready = True
                    if timings is not None and "pytest start" not in timings:
                        timings["pytest start"] = time.monotonic() - started
                elif "release" in message:
                    schedule.release(worker.number, message["release"])
                elif "take_back" in message:
                    schedule.take_back(worker.number, message["take_back"])
                elif "service" in message:
                    worker.send(outages.handle(worker.number, message["service"], message.get("action")))
                elif "done" in message:
                    check_id = schedule.free(worker.number)
                    if check_id is not None and check_id not in records:
                        take({"id": check_id, "status": "error", "duration": 0.0, "evidence": {}, "hint": None,
                              "message": "the check ended without a verdict (a bug in the lab, not in your code)"})
                else:
                    take(message)
            if time.monotonic() > deadline:
                missing = {"status": "fail", "message": f"not finished within the time limit ({lab.limits.check_seconds} s): "
                                                         "the service answered too slowly or stopped answering"}
                break
    finally:
        for worker in workers:
            worker.stop(wait=schedule.done)  # cut short (time limit, Ctrl-C): stopped at once
        outages.end_all()
        for worker in workers:
            for message in worker.pipe.read(timeout=0):
                if "id" in message:
                    take(message)
            worker.pipe.close()
    return records, missing


class ServiceSwitch(Protocol):
    """A service of the run that a check may stop (as an outage would) and start again on the same address."""

    def stop(self) -> None: ...

    def start(self) -> None: ...


class Outages:
    """The services checks stopped, by the worker whose check asked: each is started again when it asks, or when
    that check is no longer running (it ended, failed or its worker died), so an outage never outlives its check."""

    def __init__(self, switches: Mapping[str, ServiceSwitch]):
        self.switches = switches
        self.stopped: dict[str, int] = {}  # service -> the worker that stopped it

    def handle(self, worker: int, name: str, action: str | None) -> dict[str, Any]:
        """Do what a check asked (stop or start `name`) and say how it went, as the answer the check waits for."""
        switch = self.switches.get(name)
        if switch is None:
            return {"ok": False, "message": f"this provider cannot stop and start {name}" if name in SERVICES
                    else f"there is no service called {name!r}"}
        if action not in ("stop", "start"):
            return {"ok": False, "message": f"unknown action {action!r}"}
        try:
            if action == "stop":
                self.stopped[name] = worker
            switch.stop() if action == "stop" else switch.start()
        except (EnvironmentProblem, OSError) as error:
            if action == "stop":
                self._start(name)  # a stop that went wrong halfway leaves the service as it was
            return {"ok": False, "message": str(error)}
        if action == "start":
            self.stopped.pop(name, None)
        return {"ok": True}

    def end_unless_running(self, running: Mapping[int, str]) -> None:
        for name, worker in list(self.stopped.items()):
            if worker not in running:
                self._start(name)

    def end_all(self) -> None:
        """Start every stopped service again, at the end of the checks (before the services are judged and torn
        down); one that will not start is left to the teardown, so that the error that ended the checks stands."""
        for name in list(self.stopped):
            try:
                self._start(name)
            except (EnvironmentProblem, OSError):
                pass

    def _start(self, name: str) -> None:
        self.stopped.pop(name, None)
        self.switches[name].start()


@dataclass
class Worker:
    """One pytest process of the hidden checks: it collects them all, then runs the ones it is sent, one by one."""

    number: int
    process: subprocess.Popen
    pipe: ResultsPipe  # its records and messages
    orders: int  # the descriptor the runner writes check ids to
    ready: bool = False
    exited: bool = False  # seen dead by the runner, and its check (if any) ended with it

    @classmethod
    def start(cls, number: int, lab: LabSpec, run: RunDirectory, context_path: Path) -> Worker:
        checks_dir = resources().checks_dir(lab.slug)
        results_read, results_write = os.pipe()
        orders_read, orders_write = os.pipe()
        command = [
            sys.executable, "-m", "pytest", str(checks_dir),
            "-c", str(CHECKS_INI), "--rootdir", str(checks_dir), "--confcutdir", str(checks_dir),
            "--import-mode=importlib",
            "-p", "grader.pytest_plugin", "-p", "no:cacheprovider", "-q", "--no-header", "-rN",
            "--lab-context", str(context_path), "--lab-results-fd", str(results_write),
            "--lab-orders-fd", str(orders_read), "--lab-worker", str(number),
        ]
        env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST", "PYTHON", "DJANGO"))}
        env.update({"PYTHONPATH": str(PACKAGE_DIR.parent), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
                    "PYTHONDONTWRITEBYTECODE": "1"})
        try:
            process = run.spawn("checks" if number == 0 else f"checks-{number + 1}", command,
                                log=run.path / "checks.log", cwd=checks_dir, env=env,
                                pass_fds=(results_write, orders_read))
        except BaseException:
            os.close(results_read)
            os.close(orders_write)
            raise
        finally:
            os.close(results_write)
            os.close(orders_read)
        return cls(number, process, ResultsPipe(results_read), orders_write)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def dispatch(self, check_id: str, passed: list[str]) -> None:
        self.send({"run": check_id, "passed": passed})

    def send(self, order: dict[str, Any]) -> None:
        """One line on its orders pipe: a check to run, or the locks its running check asked to take back."""
        try:
            os.write(self.orders, (json.dumps(order) + "\n").encode())
        except OSError:  # it has just died: the loop sees it
            pass

    def stop(self, wait: bool = True) -> None:
        """No more checks: it tears its fixtures down and ends (`wait`: given 5 s for it); then it is stopped."""
        if self.orders >= 0:
            os.close(self.orders)
            self.orders = -1
        if self.process.poll() is None:
            try:
                self.process.wait(timeout=5 if wait else 0.01)
            except subprocess.TimeoutExpired:
                stop_group(self.process.pid, grace=2.0)


def _read_any(workers: list[Worker], timeout: float) -> list[tuple[Worker, dict]]:
    """The messages of whichever workers have some, waiting at most `timeout` for the first."""
    by_descriptor = {worker.pipe.descriptor: worker for worker in workers if worker.pipe.descriptor >= 0}
    if not by_descriptor:
        time.sleep(timeout)
        return []
    ready, _, _ = select.select(list(by_descriptor), [], [], timeout)
    return [(by_descriptor[descriptor], message) for descriptor in ready
            for message in by_descriptor[descriptor].pipe.read(timeout=0)]


class ResultsPipe:
    """The reading end of the checks' results: whole JSON lines as they arrive."""

    def __init__(self, descriptor: int):
        self.descriptor, self.pending = descriptor, b""
        os.set_blocking(descriptor, False)

    def read(self, timeout: float) -> list[dict]:
        if self.descriptor < 0:
            return []
        ready, _, _ = select.select([self.descriptor], [], [], timeout)
        while ready:
            try:
                chunk = os.read(self.descriptor, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.pending += chunk
        *lines, self.pending = self.pending.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]

    def close(self) -> None:
        if self.descriptor >= 0:
            os.close(self.descriptor)
            self.descriptor = -1
