"""The grader's pytest plugin: one JSON record per check id, never scraped from text.

Loaded with `-p grader.pytest_plugin` in the hidden-checks subprocess. It reads
the run context (`--lab-context`), orders the checks as lab.toml declares them,
skips a check whose dependency did not pass, and writes one record per check to
the results pipe as soon as the check ends, so a run cut short still reports
what it finished.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from grader.checkkit import (
    Client,
    Database,
    Expect,
    Failure,
    Inconclusive,
    LabContext,
    LoadCheck,
    RedisEvidence,
    ServiceControl,
    share_grader_backends,
)
from grader.faults import BROKE_DATABASE_HINT, service_faults

_KEY = pytest.StashKey[dict[str, Any]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--lab-context", required=True, help="the run context JSON written by the grader")
    parser.addoption("--lab-results-fd", required=True, type=int,
                     help="the pipe (a file descriptor the grader passed) that takes one JSON line per record")
    parser.addoption("--lab-orders-fd", type=int, default=None,
                     help="the pipe the grader sends the checks to run on, one JSON line each (else: all, in order)")
    parser.addoption("--lab-worker", type=int, default=0, help="this worker's number among the run's")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "check(id): the lab.toml check id this test implements")
    context = json.loads(Path(config.getoption("--lab-context")).read_text())
    config.stash[_KEY] = {
        "context": context,
        "status": {},            # check id -> status of the checks finished so far
        "started": {},
        "figures": {},           # check id -> the figures it measured, for the report
        "results": os.fdopen(config.getoption("--lab-results-fd"), "w", encoding="utf-8", closefd=False),
    }
    if context.get("work_dir"):  # several checks processes: each one's connections are the grader's, not the app's
        share_grader_backends(Path(context["work_dir"]) / "grader-backends")


def _state(config: pytest.Config) -> dict[str, Any]:
    return config.stash[_KEY]


def _check_id(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("check")
    return marker.args[0] if marker and marker.args else None


def _append(config: pytest.Config, line: dict[str, Any]) -> None:
    handle = _state(config)["results"]
    handle.write(json.dumps(line, default=str) + "\n")
    handle.flush()


def _write(config: pytest.Config, record: dict[str, Any]) -> None:
    state = _state(config)
    state["status"][record["id"]] = record["status"]
    figures = state["figures"].get(record["id"])
    if figures:
        record["figures"] = figures
    _append(config, record)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    declared = [check["id"] for check in _state(config)["context"]["checks"]]
    by_id: dict[str, pytest.Item] = {}
    for item in items:
        check_id = _check_id(item)
        if check_id is None or check_id not in declared or check_id in by_id:
            problem = ("has no @check(id) marker" if check_id is None
                       else f"implements {check_id!r}, which lab.toml does not declare" if check_id not in declared
                       else f"implements {check_id!r} a second time")
            raise pytest.UsageError(f"hidden check {item.nodeid} {problem}")
        by_id[check_id] = item
    for check_id in declared:
        if check_id not in by_id:
            _write(config, {"id": check_id, "status": "error", "duration": 0.0, "evidence": {}, "hint": None,
                            "message": "no hidden check implements this id (a bug in the lab, not in your code)"})
    items[:] = [by_id[check_id] for check_id in declared if check_id in by_id]


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    """Run the checks the grader sends, one JSON line each ({"run": id, "passed": [its dependencies]}), until
    the pipe closes; say when ready and when each check is done. Without the pipe, pytest's own loop runs."""
    descriptor = session.config.getoption("--lab-orders-fd")
    if descriptor is None:
        return None
    if session.testsfailed and not session.config.option.continue_on_collection_errors:
        raise session.Interrupted(f"{session.testsfailed} error(s) during the collection of the hidden checks")
    items = {_check_id(item): item for item in session.items}
    state = _state(session.config)
    _append(session.config, {"ready": True, "worker": session.config.getoption("--lab-worker")})
    with os.fdopen(descriptor, "r", encoding="utf-8") as orders:
        state["orders"] = orders  # a check that lets go of its locks reads here when it has them back
        while line := orders.readline():
            order = json.loads(line)
            item = items.get(order["run"])
            if item is not None:
                state["status"].update({dependency: "pass" for dependency in order.get("passed", [])})
                # The session as the next item: this check's own fixtures are torn down, the session's are kept
                # for the next check this worker gets, whichever it is (one load run feeds every check of it).
                item.config.hook.pytest_runtest_protocol(item=item, nextitem=session)
            _append(session.config, {"done": order["run"]})
    return True  # pytest's session finish tears the session's fixtures down


def pytest_runtest_setup(item: pytest.Item) -> None:
    state = _state(item.config)
    check_id = _check_id(item)
    spec = next(check for check in state["context"]["checks"] if check["id"] == check_id)
    for dependency in spec.get("depends_on", []):
        status = state["status"].get(dependency)
        if status != "pass":
            pytest.skip(f"needs '{dependency}', which did not pass ({status or 'not run'})")
    state["started"][check_id] = time.perf_counter()


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    check_id = _check_id(item)
    state = _state(item.config)
    if check_id in state["status"] or (report.when != "call" and report.passed):
        return
    record: dict[str, Any] = {"id": check_id, "evidence": {}, "hint": None,
                              "duration": round(time.perf_counter() - state["started"].get(check_id, time.perf_counter()), 3)}
    error = call.excinfo.value if call.excinfo else None
    if report.skipped:
        reason = error.msg if error is not None and hasattr(error, "msg") else str(report.longrepr)
        record.update(status="skip", message=f"skipped: {reason}")
    elif report.passed:
        record.update(status="pass", message=_first_line(item.obj.__doc__) or "passed",
                      evidence={key: value for name, noted in item.user_properties if name == "evidence"
                                for key, value in noted.items()})  # what a passing check notes: record_property
    elif isinstance(error, Failure):
        record.update(status="fail", message=error.rationale, evidence=error.evidence, hint=error.help)
    elif isinstance(error, Inconclusive):
        record.update(status="inconclusive", message=error.rationale, evidence=error.evidence)
    elif isinstance(error, AssertionError) and report.when == "call":
        record.update(status="fail", message=str(error).strip().splitlines()[0] if str(error).strip() else "assertion failed")
    elif faults := _service_faults(state["context"]):
        record.update(status="fail", message="your service broke its database: " + "; ".join(faults),
                      evidence={"error": f"{type(error).__name__}: {error}"}, hint=BROKE_DATABASE_HINT)
    else:
        record.update(status="error", message=f"the check itself broke: {type(error).__name__}: {error}",
                      evidence={"traceback": "".join(traceback.format_exception(error)) if error else str(report.longrepr)})
    _write(item.config, record)


def _service_faults(context: dict[str, Any]) -> list[str]:
    """Why a check broke, when the cause is the service's: its database or Redis broken or gone."""
    try:
        return service_faults(context["database"], context.get("redis_url"), context.get("tables"))
    except Exception:  # noqa: BLE001 - a diagnosis that fails says nothing; the check's own error stands
        return []


@pytest.fixture(scope="session")
def lab(pytestconfig: pytest.Config) -> LabContext:
    """The run context: the service's URL, the database, Redis and the seeded data."""
    context = _state(pytestconfig)["context"]
    return LabContext(
        lab=context["lab"], base_url=context["base_url"], database=context["database"],
        redis_url=context["redis_url"], seed=context["seed"], seed_data=context["seed_data"],
        request_seconds=context["request_seconds"], server=context.get("server", {}),
        replicas=tuple(context.get("replicas") or [context["base_url"]]),
        replica_processes=tuple(context.get("replica_processes") or ()), load=context.get("load"),
        work_dir=Path(context["work_dir"]) if context.get("work_dir") else None,
        app_settings=dict(context.get("app_settings") or {}),
    )


@pytest.fixture(scope="session")
def client(lab: LabContext) -> Client:
    """An HTTP client for the learner's running service."""
    return Client(lab.base_url, timeout=lab.request_seconds)


@pytest.fixture(scope="session")
def replicas(lab: LabContext) -> list[Client]:
    """An HTTP client for each replica of the service (one for most labs), in order."""
    return [Client(url, timeout=lab.request_seconds) for url in lab.replicas]


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> dict[str, Any]:
    """What this check measured, by name (numbers), shown beside the starter's and the reference's."""
    check_id = _check_id(request.node)
    return _state(request.config)["figures"].setdefault(check_id, {})


@pytest.fixture
def load(request: pytest.FixtureRequest, lab: LabContext, figures: dict[str, Any]) -> LoadCheck:
    """The lab's load profile against the service, judged against the reference solution's figures."""
    context = _state(request.config)["context"]
    if not context.get("load"):
        raise pytest.UsageError("the `load` fixture needs a [load] table in lab.toml")
    check_id = _check_id(request.node)
    reference = (context.get("reference") or {}).get(check_id)
    return LoadCheck(check_id, context["load"], lab.replicas, Path(context["work_dir"]) / check_id, figures,
                     reference, context.get("calibrating"),
                     progress=request.getfixturevalue("progress"))


@pytest.fixture(scope="session")
def progress(pytestconfig: pytest.Config) -> Callable[[str], None]:
    """Shows a line of a long check's live progress (a load run) to the learner."""
    return lambda line: _append(pytestconfig, {"progress": line})


@pytest.fixture
def locks(request: pytest.FixtureRequest) -> CheckLocks:
    """The check's lab.toml `locks`, to let go of while it waits on nothing they guard (`with locks.released():`)."""
    check_id = _check_id(request.node)
    spec = next(check for check in _state(request.config)["context"]["checks"] if check["id"] == check_id)
    return CheckLocks(request.config, tuple(spec.get("locks", ())))


class CheckLocks:
    """A running check's locks (grader.scheduler): checks naming one never overlap, except while it lets go."""

    def __init__(self, config: pytest.Config, names: tuple[str, ...]):
        self.config, self.names = config, names

    @contextmanager
    def released(self) -> Iterator[None]:
        """Other checks naming these locks may run while the block does; they are taken back after it, waiting
        for those checks to end (and no new one starts). Outside the grader's scheduler (one check at a time), it
        changes nothing."""
        orders = _state(self.config).get("orders")
        if orders is None or not self.names:
            yield
            return
        _append(self.config, {"release": list(self.names)})
        try:
            yield
        finally:
            _append(self.config, {"take_back": list(self.names)})
            line = orders.readline()  # the runner sends nothing else to a worker whose check runs
            if not line or not json.loads(line).get("granted"):
                raise RuntimeError(f"the grader did not give the locks {list(self.names)} back: {line!r}")


@pytest.fixture(scope="session")
def expect() -> Expect:
    """Expectations about the service's replies, failing with the request, the answer and the contract."""
    return Expect()


@pytest.fixture(scope="session")
def db(lab: LabContext):
    """An autocommit connection to the lab's PostgreSQL database, for evidence."""
    database = Database(lab.database)
    yield database
    database.close()


@pytest.fixture(scope="session")
def redis_server(lab: LabContext):
    """The run's Redis, read for evidence: the keys the app wrote, their TTLs, its memory and commands."""
    evidence = RedisEvidence(lab.redis_url)
    yield evidence
    evidence.close()


@pytest.fixture
def services(request: pytest.FixtureRequest) -> ServiceControl:
    """The run's services, to stop one for a while (`with services.stopped("redis"):`); the check is `alone`."""
    config = request.config
    orders = _state(config).get("orders")
    restarted = []
    if "redis_server" in request.fixturenames:
        restarted.append(request.getfixturevalue("redis_server").reconnect)

    def ask(message: dict[str, Any]) -> dict[str, Any]:
        _append(config, message)
        line = orders.readline()  # the runner sends nothing else to a worker whose check runs
        if not line:
            raise RuntimeError(f"the grader did not answer {message}")
        return json.loads(line)

    return ServiceControl(ask if orders is not None else None, tuple(restarted))

