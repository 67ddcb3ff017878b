"""Evidence read from PostgreSQL: rows, the app's connections, statements counted, plans."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row

from grader.checkkit.verdicts import Inconclusive

T = TypeVar("T")
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
