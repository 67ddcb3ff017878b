"""A lab's data at realistic volume, streamed into PostgreSQL with COPY once per template database.

A lab that declares `[data]` in lab.toml ships a dataset module beside its hidden checks. Its
`tables(rng)` yields `Table`s in load order (parents before children), each with the columns
the brief fixes and an iterable of rows generated from `rng`, so the data is the same on every
machine. The grader loads it from its own process, not through the learner's code, right after
the migration lab.toml names (the schema the starter ships); the learner's later migrations
(a new index, a backfilled counter column) then run against the real rows, as they would in
production. The template database that results is cached, so a check run does not pay for it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class Table:
    """Rows for one table, in the column order given."""

    name: str
    columns: tuple[str, ...]
    rows: Iterable[tuple[Any, ...]]


@dataclass(frozen=True)
class Loaded:
    rows: dict[str, int]  # table -> rows loaded
    seconds: float


class DatasetError(Exception):
    """The learner's tables refused the lab's data: a column is missing, renamed or newly required."""


def seed_of(module_path: Path) -> int:
    """The dataset's random seed: fixed by the module's text, so a changed generator makes new data."""
    return int.from_bytes(hashlib.sha256(module_path.read_bytes()).digest()[:4], "big")


def _tables(module_path: Path) -> Iterator[Table]:
    spec = importlib.util.spec_from_file_location(f"_lab_dataset_{abs(hash(module_path))}", module_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return iter(module.tables(random.Random(seed_of(module_path))))


def load(module_path: Path, database: dict[str, Any]) -> Loaded:
    """COPY every table of the dataset into `database` in one transaction; set the id sequences past the rows.

    Raises DatasetError, naming the table, when the schema does not take the rows.
    """
    started = time.perf_counter()
    counts: dict[str, int] = {}
    with psycopg.connect(**database) as connection:
        for table in _tables(module_path):
            statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, table.columns)))
            count = 0
            try:
                with connection.cursor() as cursor, cursor.copy(statement) as copy:
                    for row in table.rows:
                        copy.write_row(row)
                        count += 1
            except psycopg.Error as error:
                message = (getattr(error.diag, "message_primary", None) or str(error)).strip()
                raise DatasetError(f"table {table.name}: {message}") from None
            counts[table.name] = count
            if "id" in table.columns:
                connection.execute(sql.SQL("SELECT setval(pg_get_serial_sequence({}, 'id'), max(id)) FROM {}").format(
                    sql.Literal(table.name), sql.Identifier(table.name)))
    return Loaded(counts, time.perf_counter() - started)


def analyze(database: dict[str, Any]) -> None:
    """VACUUM ANALYZE: planner statistics for the loaded rows, and a visibility map for index-only scans."""
    with psycopg.connect(**database, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")
