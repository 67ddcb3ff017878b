"""What a hidden check is written with.

A check is a pytest function marked with the lab.toml id it implements::

    @check("no-oversell")
    def test_no_oversell(lab, client, db):
        \"\"\"buyers arriving together never oversell\"\"\"
        ...
        raise Failure("sold 13 units of 10", evidence={"stock": -3}, help="...")

`Failure` is a verdict about the learner's service; `Inconclusive` says the
check could not decide and why; any other exception is a bug in the check and
is reported as an error. Fixtures (`lab`, `client`, `db`, `figures`, `load`)
come from the grader's pytest plugin.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg.rows import dict_row

from grader.calibration import LoadFigures, Thresholds, decide
from grader.load import LoadFailure, LoadProfile, LoadResult, run_load

check = pytest.mark.check
"""Mark a test function as the hidden check of one lab.toml check id."""
T = TypeVar("T")


class Failure(Exception):
    """The learner's service does not behave as the brief says."""

    def __init__(self, rationale: str, *, evidence: dict[str, Any] | None = None, help: str | None = None):
        super().__init__(rationale)
        self.rationale = rationale
        self.evidence = evidence or {}
        self.help = help


class Inconclusive(Exception):
    """The check could not decide; the evidence says why."""

    def __init__(self, rationale: str, *, evidence: dict[str, Any] | None = None):
        super().__init__(rationale)
        self.rationale = rationale
        self.evidence = evidence or {}


@dataclass(frozen=True)
class LabContext:
    """What a check knows about the run: where the service is and what was seeded."""

    lab: str
    base_url: str
    database: dict[str, Any]
    redis_url: str
    seed: int
    seed_data: dict[str, Any]
    request_seconds: float
    server: dict[str, int] = field(default_factory=dict)
    replicas: tuple[str, ...] = ()  # every replica's base URL; base_url is the first
    replica_processes: tuple[dict[str, Any], ...] = ()  # where each replica runs: {"pid": n} or {"container": id}
    load: dict[str, Any] | None = None  # the lab's [load] profile, as the load fixture gets it
    app_settings: dict[str, Any] = field(default_factory=dict)  # lab.toml's [app.overrides], as the app has them
    work_dir: Path | None = None  # a folder of the run for the checks' own files


class LoadCheck:
    """The lab's load profile run against the service, judged against the reference's figures.

    Grading, `verdict()` measures (again while too close to call) and raises Failure or Inconclusive
    unless the service is within the calibrated ratios. Calibrating, it only measures: once for the
    starter, the median of several rounds for the reference solution. Either way the figures it
    measured are recorded for the report.
    """

    CALIBRATION_ROUNDS = {"starter": 1, "reference": 3}

    def __init__(self, check_id: str, spec: dict[str, Any], base_urls: tuple[str, ...], work: Path,
                 figures: dict[str, Any], reference: dict[str, Any] | None, calibrating: str | None,
                 progress: Callable[[str], None] | None = None):
        self.check_id, self.spec, self.base_urls, self.work = check_id, spec, base_urls, work
        self.figures, self.reference, self.calibrating, self.progress = figures, reference, calibrating, progress
        self.profile = LoadProfile(users=spec["users"], spawn_rate=spec["spawn_rate"], seconds=spec["seconds"])
        self.thresholds = Thresholds(**spec["thresholds"])
        self.rounds = 0
        self.last: LoadResult | None = None  # the latest round, whose failures a verdict shows

    def measure(self, data: Any = None, measured: LoadResult | None = None) -> LoadFigures:
        """One run of the profile (or `measured`, a run of it made for other checks); its figures become the check's."""
        self.rounds += 1
        result = measured or run_load(Path(self.spec["locustfile"]), self.base_urls, self.profile,
                                      self.work / f"round-{self.rounds}", progress=self.progress, data=data)
        self.last = result
        figures = LoadFigures.of(result)
        self.figures.update(figures.as_figures())
        return figures

    def verdict(self, data: Any = None, first: LoadResult | None = None) -> str:
        """Measure and judge; returns the passing message, raises Failure or Inconclusive otherwise.

        `first`: a run of the lab's profile already made for other checks (one load run feeds every check that
        judges it), taken as the first round; the rounds after it are measured here."""
        given = [first] if first is not None else []

        def measure() -> LoadFigures:
            return self.measure(data, given.pop() if given else None)

        if self.calibrating:
            rounds = [measure() for _ in range(self.CALIBRATION_ROUNDS.get(self.calibrating, 1))]
            self.figures.update(LoadFigures.median(rounds).as_figures())
            return f"measured for calibration over {len(rounds)} round(s), not judged"
        reference = LoadFigures.from_figures(self.reference or {})
        if reference is None:
            raise Inconclusive("there are no figures of the reference solution to compare with: `lab calibrate` "
                               "measures them")
        verdict = decide(measure, reference, self.thresholds)
        message, evidence = verdict.message, verdict.evidence
        if verdict.status != "pass" and self.last is not None and self.last.total.failures:
            evidence = {**evidence, **load_failure_evidence(self.last)}
            if self.last.total.failures > self.thresholds.max_failures and self.last.failures:
                message += f"; the most frequent: {failure_line(self.last.failures[0])}"
        if verdict.status == "fail":
            raise Failure(message, evidence=evidence)
        if verdict.status == "inconclusive":
            raise Inconclusive(message, evidence=evidence)
        return message


def failure_line(failure: LoadFailure) -> str:
    """A failure of a load run in a line: the request, its error and how often."""
    return f"{failure.request}: {condensed(failure.error)} ({failure.times} time{'s' if failure.times != 1 else ''})"


def load_failure_evidence(result: LoadResult, limit: int = 5) -> dict[str, Any]:
    """What failed under load, per endpoint: how many of its requests failed and the errors they met."""
    return {"failures": [{"request": failure.request, "error": condensed(failure.error), "times": failure.times}
                         for failure in result.failures[:limit]],
            "by endpoint": {endpoint.name: f"{endpoint.failures} of {endpoint.requests} failed"
                            for endpoint in result.endpoints if endpoint.failures}}


@dataclass
class Reply:
    """One HTTP answer, or the error that stood in for it."""

    method: str
    path: str
    status: int | None
    body: Any = None
    text: str = ""
    error: str | None = None
    elapsed: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)  # the answer's headers, by lowercase name

    @property
    def is_5xx(self) -> bool:
        return self.status is not None and self.status >= 500

    def describe(self) -> str:
        if self.error:
            return f"{self.method} {self.path} -> {self.error}"
        return f"{self.method} {self.path} -> {self.status} {condensed(self.text, 200)}"


@dataclass(frozen=True)
class Call:
    """One request to send: method, path, JSON body and extra headers."""

    method: str
    path: str
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class Client:
    """A small HTTP client for the service under test, with a barrier-released burst."""

    def __init__(self, base_url: str, timeout: float):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.timeout = timeout

    def _connection(self) -> http.client.HTTPConnection:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        connection.connect()
        return connection

    @staticmethod
    def _send(connection: http.client.HTTPConnection, call: Call) -> Reply:
        started = time.perf_counter()
        headers = {"Accept": "application/json", **call.headers}
        payload = None
        if call.json is not None:
            payload = json.dumps(call.json).encode()
            headers["Content-Type"] = "application/json"
        try:
            connection.request(call.method, call.path, body=payload, headers=headers)
            response = connection.getresponse()
            raw = response.read().decode("utf-8", "replace")
        except TimeoutError:
            return Reply(call.method, call.path, None, elapsed=time.perf_counter() - started,
                         error=f"timed out: no answer within the request limit of {connection.timeout:g} s; the view "
                               "may hang (a lock never released, a deadlock, an endless loop, a call that never returns)")
        except (OSError, http.client.HTTPException) as exc:
            return Reply(call.method, call.path, None, error=f"{type(exc).__name__}: {exc}",
                         elapsed=time.perf_counter() - started)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {name.lower(): value for name, value in response.getheaders()}
        return Reply(call.method, call.path, response.status, body, raw, elapsed=time.perf_counter() - started,
                     headers=headers)

    def session(self) -> Session:
        """Requests over one kept-alive connection (close it when done)."""
        return Session(self)

    def request(self, method: str, path: str, json: Any = None, headers: dict[str, str] | None = None) -> Reply:
        connection = self._connection()
        try:
            return self._send(connection, Call(method, path, json, headers or {}))
        finally:
            connection.close()

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Reply:
        return self.request("POST", path, json=json, **kwargs)

    def burst(self, calls: list[Call]) -> list[Reply]:
        """Send every call at once: each on its own connection, opened first, released by one barrier."""
        barrier = threading.Barrier(len(calls))
        replies: list[Reply | None] = [None] * len(calls)

        def send(index: int, call: Call) -> None:
            try:
                connection = self._connection()
            except OSError as exc:
                replies[index] = Reply(call.method, call.path, None, error=f"cannot connect: {exc}")
                barrier.abort()
                return
            try:
                barrier.wait(timeout=self.timeout)
                replies[index] = self._send(connection, call)
            except threading.BrokenBarrierError:
                replies[index] = Reply(call.method, call.path, None, error="not sent: another request could not connect")
            finally:
                connection.close()

        threads = [threading.Thread(target=send, args=(i, call), daemon=True) for i, call in enumerate(calls)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(self.timeout * 2 + 5)
        return [reply or Reply(call.method, call.path, None, error="no answer in time")
                for reply, call in zip(replies, calls, strict=True)]


class Session:
    """Requests over one kept-alive connection: as a browser does, to one replica, one worker."""

    def __init__(self, client: "Client"):
        self.client = client
        self.connection = client._connection()

    def request(self, method: str, path: str, json: Any = None, headers: dict[str, str] | None = None) -> Reply:
        reply = self.client._send(self.connection, Call(method, path, json, headers or {}))
        if reply.error:  # the server closed the idle connection: one new one, then the same request again
            self.connection.close()
            self.connection = self.client._connection()
            reply = self.client._send(self.connection, Call(method, path, json, headers or {}))
        return reply

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Reply:
        return self.request("POST", path, json=json, **kwargs)

    def close(self) -> None:
        self.connection.close()


class Sampler:
    """Calls `measure` every `every` seconds in a thread while a block runs; keeps the samples."""

    def __init__(self, measure: Callable[[], float], every: float = 0.05):
        self.measure, self.every = measure, every
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(float(self.measure()))
            except Exception:  # noqa: BLE001 - a sample that could not be read is left out
                pass
            self._stop.wait(self.every)

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def peak(self) -> float | None:
        return max(self.samples) if self.samples else None


CONNECT_SECONDS = 10
GRADER_BACKENDS: set[int] = set()  # PostgreSQL backends of this process's own connections, not the app's
_SHARED_BACKENDS: Path | None = None  # where the run's other checks processes list theirs (share_grader_backends)


def share_grader_backends(folder: Path) -> None:
    """List this process's PostgreSQL backends in `folder` (the run's private folder), and count those the other
    checks processes of the run list there as the grader's too: their connections are not the app's."""
    global _SHARED_BACKENDS
    folder.mkdir(parents=True, exist_ok=True)
    _SHARED_BACKENDS = folder
    for pid in GRADER_BACKENDS:
        (folder / str(pid)).touch()


def _grader_backends() -> list[int]:
    shared = set()
    if _SHARED_BACKENDS is not None:
        shared = {int(entry.name) for entry in _SHARED_BACKENDS.iterdir() if entry.name.isdigit()}
    return sorted(GRADER_BACKENDS | shared)


class Database:
    """Read-mostly SQL access to the lab's database, for evidence."""

    def __init__(self, params: dict[str, Any]):
        # A server that is gone (a stopped container's address answers nothing) fails in seconds, not minutes.
        self.connection = psycopg.connect(**params, autocommit=True, row_factory=dict_row,
                                          connect_timeout=CONNECT_SECONDS)
        GRADER_BACKENDS.add(self.connection.info.backend_pid)
        if _SHARED_BACKENDS is not None:
            (_SHARED_BACKENDS / str(self.connection.info.backend_pid)).touch()

    def app_connections(self) -> int:
        """Client connections open to this database now, the grader's own left out."""
        return int(self.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend' AND NOT (pid = ANY(%s))", (_grader_backends(),)))

    def query(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def scalar(self, sql: str, params: Any = None) -> Any:
        rows = self.query(sql, params)
        return next(iter(rows[0].values())) if rows else None

    def statements(self, action: Callable[[], T]) -> tuple[T, Statements]:
        """Run `action` (say, one request) and count the SQL statements the server ran meanwhile.

        The count comes from PostgreSQL's own statistics (pg_stat_statements), not from the app, so
        the learner's code can neither hide statements nor fake them. Raises Inconclusive where the
        server does not keep them (an external server without the module loaded).
        """
        try:
            self.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            self.query("SELECT pg_stat_statements_reset()")
        except psycopg.Error as error:
            raise Inconclusive(f"PostgreSQL does not count statements here: {error}".strip(),
                               evidence={"needs": "shared_preload_libraries = 'pg_stat_statements'"}) from None
        result = action()
        rows = self.query(
            "SELECT query, calls, rows FROM pg_stat_statements "
            "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND query NOT ILIKE '%pg_stat_statements%' ORDER BY calls DESC, query")
        return result, Statements(tuple(Statement(row["query"], int(row["calls"]), int(row["rows"])) for row in rows))

    def plan(self, query: str) -> Plan:
        """The plan PostgreSQL makes for a statement as pg_stat_statements shows it (constants as $1, $2...).

        A generic plan, the one that does not depend on the values: the statement is prepared with its
        parameters untyped and explained with plan_cache_mode forced to generic (what EXPLAIN
        (GENERIC_PLAN) does on PostgreSQL 16), inside a transaction that is rolled back.
        """
        parameters = max((int(n) for n in re.findall(r"\$(\d+)", query)), default=0)
        name = f"lab_plan_{abs(hash(query)) % 10**9}"
        with self.connection.transaction(force_rollback=True), self.connection.cursor() as cursor:
            cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            cursor.execute(f"PREPARE {name} AS {query}")
            arguments = ", ".join(["NULL"] * parameters)
            cursor.execute(f"EXPLAIN (FORMAT JSON) EXECUTE {name}" + (f"({arguments})" if parameters else ""))
            document = cursor.fetchone()
            cursor.execute(f"DEALLOCATE {name}")
        tree = next(iter(document.values())) if isinstance(document, dict) else document[0]
        return Plan(query, tree[0]["Plan"])

    def table_sizes(self, *tables: str) -> dict[str, dict[str, Any]]:
        """Rows (the planner's estimate, exact after ANALYZE) and bytes on disk of each table, for evidence."""
        rows = self.query("SELECT c.relname AS name, c.reltuples::bigint AS rows, "
                          "pg_size_pretty(pg_total_relation_size(c.oid)) AS size FROM pg_class c "
                          "WHERE c.relname = ANY(%s) AND c.relkind = 'r'", (list(tables),))
        return {row["name"]: {"rows": max(int(row["rows"]), 0), "size": row["size"]} for row in rows}

    def close(self) -> None:
        GRADER_BACKENDS.discard(self.connection.info.backend_pid)
        if _SHARED_BACKENDS is not None:
            (_SHARED_BACKENDS / str(self.connection.info.backend_pid)).unlink(missing_ok=True)
        self.connection.close()


@dataclass(frozen=True)
class Plan:
    """An EXPLAIN tree, with the questions checks ask of it."""

    query: str
    root: dict[str, Any]

    def nodes(self) -> list[dict[str, Any]]:
        found, stack = [], [self.root]
        while stack:
            node = stack.pop()
            found.append(node)
            stack.extend(reversed(node.get("Plans", [])))
        return found

    def seq_scans(self) -> list[str]:
        """The tables the plan reads whole."""
        return [node["Relation Name"] for node in self.nodes() if node["Node Type"] == "Seq Scan"]

    def index_scans(self) -> list[tuple[str, str]]:
        """(table, index) of every index the plan uses."""
        kinds = ("Index Scan", "Index Only Scan", "Bitmap Index Scan")
        scans = [node for node in self.nodes() if node["Node Type"] in kinds]
        return [(node.get("Relation Name", ""), node["Index Name"]) for node in scans]

    def index_conditions(self) -> list[str]:
        """What the plan's indexes answer ("((reviewer)::text = $1)"), one entry per index node with a condition."""
        return [node["Index Cond"] for node in self.nodes() if "Index Cond" in node]

    def evidence(self) -> dict[str, Any]:
        return {"query": self.query[:300], "plan": [f"{node['Node Type']} on {node.get('Relation Name', '')}".strip()
                                                   + (f" using {node['Index Name']}" if "Index Name" in node else "")
                                                   for node in self.nodes()]}


@dataclass(frozen=True)
class Statement:
    """One normalised statement (constants as $1, $2...), how often it ran and the rows it returned."""

    query: str
    calls: int
    rows: int


@dataclass(frozen=True)
class Statements:
    """The statements PostgreSQL ran during an action, most often run first."""

    statements: tuple[Statement, ...]

    @property
    def by_query(self) -> tuple[tuple[str, int], ...]:
        """(query, times) pairs, most often run first."""
        return tuple((statement.query, statement.calls) for statement in self.statements)

    @property
    def total(self) -> int:
        return sum(statement.calls for statement in self.statements)

    @property
    def rows(self) -> int:
        """Rows the server sent back (or wrote) for all of them together."""
        return sum(statement.rows for statement in self.statements)

    def most_repeated(self) -> tuple[str, int] | None:
        return self.by_query[0] if self.statements else None

    def naming(self, table: str) -> list[Statement]:
        """The statements whose text names `table`."""
        return [statement for statement in self.statements if re.search(rf"(?<!\w){re.escape(table)}(?!\w)", statement.query)]

    def touching(self, table: str) -> int:
        """How many times statements naming `table` ran."""
        return sum(statement.calls for statement in self.naming(table))

    def evidence(self, limit: int = 5) -> dict[str, Any]:
        return {"statements": self.total, "most_run": [{"query": statement.query[:300], "times": statement.calls}
                                                       for statement in self.statements[:limit]]}


SERVER_ERROR_HELP = ("The traceback of each 500 is in .lab/logs/server.log. Something that works for one request at "
                     "a time can fail when other requests are using the same rows.")


HTML_TAG = re.compile(r"<[!/?a-zA-Z][^>]*(?:>|$)")  # a tag cut off at the end of a shortened body goes too
# What a browser does not show in the page: an HTML error page's <title> repeats its heading
# (Django's "Server Error (500)"), so the body alone says it once.
UNSHOWN_HTML = re.compile(r"<(title|script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)


def condensed(text: str, limit: int = 200) -> str:
    """A reply body made readable in one line: HTML tags, the page's title and runs of whitespace dropped."""
    if HTML_TAG.search(text):
        shown = HTML_TAG.sub(" ", UNSHOWN_HTML.sub(" ", text))
        text = shown if shown.strip() else HTML_TAG.sub(" ", text)  # a page that is only a title keeps it
    return " ".join(text.split())[:limit]


def status_counts(replies: list[Reply]) -> dict[str, int]:
    """How many replies had each status, for evidence ("no answer" for errors)."""
    counts = Counter(str(reply.status) if reply.status is not None else "no answer" for reply in replies)
    return dict(sorted(counts.items()))


class Expect:
    """Expectations about replies that raise a Failure naming the request, the answer and the contract."""

    counts = staticmethod(status_counts)

    @staticmethod
    def status(reply: Reply, expected: int, doing: str, *, sent: Any = None, help: str | None = None) -> None:
        """The reply has the expected status; `doing` says what the request was, for the learner."""
        if reply.status == expected:
            return
        evidence = {"request": f"{reply.method} {reply.path}", "expected_status": expected}
        if sent is not None:
            evidence["sent"] = sent
        if reply.error:
            evidence["error"] = reply.error
            raise Failure(f"{reply.method} {reply.path} {doing} got no answer ({reply.error}); expected {expected}",
                          evidence=evidence, help=help)
        evidence.update(status=reply.status, reply=condensed(reply.text, 300))
        raise Failure(f"{reply.method} {reply.path} {doing} answered {reply.status}, expected {expected}",
                      evidence=evidence, help=help)

    @staticmethod
    def fields(reply: Reply, fields: tuple[str, ...], *, help: str | None = None) -> dict[str, Any]:
        """The reply is a JSON object with at least these fields; returns it."""
        body = reply.body
        if not isinstance(body, dict):
            raise Failure(f"{reply.method} {reply.path} answered {reply.status} without a JSON object",
                          evidence={"expected_fields": list(fields), "reply": condensed(reply.text, 300)},
                          help=help)
        missing = [name for name in fields if name not in body]
        if missing:
            names = ", ".join(f"'{name}'" for name in missing)
            raise Failure(f"{reply.method} {reply.path} answered without the field(s) {names}",
                          evidence={"expected_fields": list(fields), "fields": sorted(body), "missing": missing},
                          help=help)
        return body

    @staticmethod
    def values(reply: Reply, expected: dict[str, Any], source: str, *, help: str | None = None) -> None:
        """The reply's fields equal the expected values; `source` says where the expected values come from."""
        body = reply.body if isinstance(reply.body, dict) else {}
        wrong = {name: {"expected": value, "actual": body.get(name)}
                 for name, value in expected.items() if body.get(name) != value}
        if wrong:
            name, pair = next(iter(wrong.items()))
            raise Failure(f"{reply.method} {reply.path} says {name} = {pair['actual']!r}, but {source} is "
                          f"{pair['expected']!r}", evidence={"mismatched": wrong, "reply": condensed(reply.text, 300)},
                          help=help)

    @staticmethod
    def sample(call: Call, reply: Reply) -> str:
        """One request and its answer in a line, for evidence."""
        sent = f" {json.dumps(call.json)}" if call.json is not None else ""
        if reply.error:
            return f"{call.method} {call.path}{sent} -> {reply.error}"
        return f"{call.method} {call.path}{sent} -> {reply.status} {condensed(reply.text, 160)}"

    @classmethod
    def burst_answered(cls, calls: list[Call], replies: list[Reply], what: str, round_number: int,
                       *, help: str | None = None) -> None:
        """Every request of a burst was sent and answered without a 5xx; otherwise Inconclusive or Failure."""
        unsent = [reply for reply in replies
                  if reply.error and reply.error.startswith(("cannot connect", "not sent"))]
        if unsent:
            raise Inconclusive(f"round {round_number}: the {len(replies)} {what} could not all be connected before "
                               f"they were released, so nothing was sent ({unsent[0].error})",
                               evidence={"round": round_number, "requests": len(replies), "unsent": len(unsent)})
        broken = [(call, reply) for call, reply in zip(calls, replies, strict=True) if reply.is_5xx or reply.error]
        if broken:
            first = broken[0][1]
            answer = first.error if first.error else f"{first.status}"
            raise Failure(f"{len(broken)} of {len(replies)} {what} sent together answered with a server error or "
                          f"not at all (first: {answer}; round {round_number})",
                          evidence={"round": round_number, "replies": status_counts(replies),
                                    "samples": [cls.sample(call, reply) for call, reply in broken[:3]]},
                          help=help or SERVER_ERROR_HELP)

    @classmethod
    def only_statuses(cls, calls: list[Call], replies: list[Reply], allowed: tuple[int, ...], what: str,
                      round_number: int, *, help: str | None = None) -> None:
        """Every reply of a burst has one of the allowed statuses."""
        odd = [(call, reply) for call, reply in zip(calls, replies, strict=True) if reply.status not in allowed]
        if odd:
            allowed_text = " or ".join(str(status) for status in allowed)
            raise Failure(f"{len(odd)} of {len(replies)} {what} sent together answered {odd[0][1].status} "
                          f"(expected {allowed_text}; round {round_number})",
                          evidence={"round": round_number, "replies": status_counts(replies),
                                    "samples": [cls.sample(call, reply) for call, reply in odd[:3]]}, help=help)


def replica_memory_mb(where: dict[str, Any], peak: bool = False) -> float:
    """The memory a replica uses now, in MB: the RSS of its processes (a local server and every descendant),
    or its container's usage less the page cache it could give back.

    With `peak`, a container's highest usage since it started where the engine keeps one (cgroup v1's
    max_usage): the engine refreshes its figures about once a second, so a sampler alone can miss a peak
    that lasts less. Local processes are read directly, often enough to see it."""
    if "container" in where:
        import docker

        direct = _cgroup_memory_mb(where["container"], peak)
        if direct is not None:
            return direct
        stats = docker.from_env().containers.get(where["container"]).stats(stream=False, one_shot=True)
        memory = stats.get("memory_stats", {})
        extra = memory.get("stats", {})
        cache = extra.get("total_inactive_file", extra.get("inactive_file", 0))
        used = max(memory.get("usage", 0), memory.get("max_usage", 0)) if peak else memory.get("usage", 0)
        return (used - cache) / 2**20
    return sum(_rss_kb(pid) for pid in _process_tree(int(where["pid"]))) / 1024


CGROUP_FOLDERS = ("/sys/fs/cgroup/memory/docker/{id}", "/sys/fs/cgroup/memory/system.slice/docker-{id}.scope",
                  "/sys/fs/cgroup/system.slice/docker-{id}.scope", "/sys/fs/cgroup/docker/{id}")


def _cgroup_memory_mb(container_id: str, peak: bool) -> float | None:
    """A container's memory read from its cgroup on this machine, as the engine reports it (usage less the
    inactive page cache; with `peak`, the high-water mark where the kernel keeps one), without the engine's
    stats call, which waits up to a second for its next sample. None when the engine runs elsewhere."""
    for pattern in CGROUP_FOLDERS:
        folder = Path(pattern.format(id=container_id))
        try:
            stat = dict(line.split() for line in (folder / "memory.stat").read_text().splitlines() if " " in line)
            if (folder / "memory.usage_in_bytes").exists():  # cgroup v1
                used = int((folder / "memory.usage_in_bytes").read_text())
                if peak:
                    used = max(used, int((folder / "memory.max_usage_in_bytes").read_text()))
                cache = int(stat.get("total_inactive_file", 0))
            else:  # cgroup v2
                used = int((folder / "memory.current").read_text())
                if peak and (folder / "memory.peak").exists():
                    used = max(used, int((folder / "memory.peak").read_text()))
                cache = int(stat.get("inactive_file", 0))
        except (OSError, ValueError):
            continue
        return (used - cache) / 2**20
    return None


def _process_tree(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(parents.get(pid, []))
    return tree


def _rss_kb(pid: int) -> int:
    try:
        line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0
    return int(line.split()[1])


def bearer(token: str) -> dict[str, str]:
    """The header that carries a bearer token."""
    return {"Authorization": f"Bearer {token}"}


def json_items(value: Any, path: str = "$"):
    """Every (path, key, value) of a JSON document, depth first: where a leaked field sits, for evidence."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield path, key, item
            yield from json_items(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from json_items(item, f"{path}[{index}]")


def attempt_line(reply: Reply, who: str, sent: Any = None) -> str:
    """An attempted exploit in one line, for evidence: request, body, as whom, and the status it got."""
    body = f" {json.dumps(sent)}" if sent is not None else ""
    return f"{reply.method} {reply.path}{body} as {who} -> {reply.status if reply.error is None else reply.error}"


def server_errors(replies: list[Reply]) -> list[str]:
    """The replies that are 5xx or no answer at all, described for evidence."""
    return [reply.describe() for reply in replies if reply.is_5xx or reply.error]
