"""What a hidden check is written with.

A check is a pytest function marked with the lab.toml id it implements::

    @check("no-oversell")
    def test_no_oversell(lab, client, db):
        \"\"\"buyers arriving together never oversell\"\"\"
        ...
        raise Failure("sold 13 units of 10", evidence={"stock": -3}, help="...")

`Failure` is a verdict about the learner's service; `Inconclusive` says the
check could not decide and why; any other exception is a bug in the check and
is reported as an error. Fixtures (`lab`, `client`, `db`) come from the grader's
pytest plugin.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg.rows import dict_row

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

    @property
    def is_5xx(self) -> bool:
        return self.status is not None and self.status >= 500

    def describe(self) -> str:
        if self.error:
            return f"{self.method} {self.path} -> {self.error}"
        return f"{self.method} {self.path} -> {self.status} {self.text[:200]}"


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
        except (OSError, http.client.HTTPException) as exc:
            return Reply(call.method, call.path, None, error=f"{type(exc).__name__}: {exc}",
                         elapsed=time.perf_counter() - started)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        return Reply(call.method, call.path, response.status, body, raw, elapsed=time.perf_counter() - started)

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


class Database:
    """Read-mostly SQL access to the lab's database, for evidence."""

    def __init__(self, params: dict[str, Any]):
        self.connection = psycopg.connect(**params, autocommit=True, row_factory=dict_row)

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
            "SELECT query, calls FROM pg_stat_statements "
            "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND query NOT ILIKE '%pg_stat_statements%' ORDER BY calls DESC, query")
        return result, Statements(tuple((row["query"], int(row["calls"])) for row in rows))

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

    def close(self) -> None:
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

    def evidence(self) -> dict[str, Any]:
        return {"query": self.query[:300], "plan": [f"{node['Node Type']} on {node.get('Relation Name', '')}".strip()
                                                   + (f" using {node['Index Name']}" if "Index Name" in node else "")
                                                   for node in self.nodes()]}


@dataclass(frozen=True)
class Statements:
    """The statements PostgreSQL ran during an action: normalised text and how often, most often first."""

    by_query: tuple[tuple[str, int], ...]

    @property
    def total(self) -> int:
        return sum(calls for _query, calls in self.by_query)

    def most_repeated(self) -> tuple[str, int] | None:
        return self.by_query[0] if self.by_query else None

    def touching(self, table: str) -> int:
        """How many of them name `table`."""
        return sum(calls for query, calls in self.by_query if table in query)

    def evidence(self, limit: int = 5) -> dict[str, Any]:
        return {"statements": self.total, "most_run": [{"query": query[:300], "times": calls}
                                                       for query, calls in self.by_query[:limit]]}


def server_errors(replies: list[Reply]) -> list[str]:
    """The replies that are 5xx or no answer at all, described for evidence."""
    return [reply.describe() for reply in replies if reply.is_5xx or reply.error]
