"""Shared pieces of the load checks: the box office as PostgreSQL has it, one observed load run, replica memory."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from grader.checkkit import Database, Failure, Sampler, condensed, replica_memory_mb
from grader.load import LoadProfile, LoadResult, run_load

CONTRACT = "The brief's API contract lists every endpoint, status code and field."
EVENT_FIELDS = ("id", "name", "venue", "starts_at", "price")
ORDER_FIELDS = ("id", "event", "email", "quantity", "total", "created_at")
CART_FIELDS = ("id", "items", "total")
CONNECTION_BUDGET = 12  # what the brief gives the app, across every replica


class BoxOffice:
    """Events and orders as PostgreSQL has them, in the brief's shapes and orders."""

    def __init__(self, db: Database):
        self.db = db

    def events(self) -> list[dict[str, Any]]:
        return self.db.query("SELECT id, name, venue, starts_at, price FROM tickets_event ORDER BY starts_at, id")

    def event(self, event_id: int) -> dict[str, Any] | None:
        rows = self.db.query("SELECT id, name, venue, starts_at, price FROM tickets_event WHERE id = %s", (event_id,))
        return rows[0] if rows else None

    def order_count(self) -> int:
        return int(self.db.scalar("SELECT count(*) FROM tickets_order"))

    def orders(self, offset: int, limit: int) -> list[dict[str, Any]]:
        return self.db.query("SELECT id, event_id AS event, email, quantity, total, created_at FROM tickets_order "
                             "ORDER BY id DESC OFFSET %s LIMIT %s", (offset, limit))

    def orders_after(self, last_id: int) -> list[dict[str, Any]]:
        return self.db.query("SELECT id, event_id AS event, email, quantity, total FROM tickets_order "
                             "WHERE id > %s ORDER BY id", (last_id,))

    def last_order_id(self) -> int:
        return int(self.db.scalar("SELECT coalesce(max(id), 0) FROM tickets_order"))


class ObservedLoad:
    """One run of the lab's load profile across every replica, with the app's connections sampled meanwhile."""

    def __init__(self, result: LoadResult, connections: Sampler, failures: list[dict[str, Any]]):
        self.result, self.connections, self.failures = result, connections, failures


def _failures(work) -> list[dict[str, Any]]:
    """Locust's failures table: method, name, error and occurrences, most frequent first."""
    import csv

    path = work / "locust_failures.csv"
    if not path.is_file():
        return []
    rows = [{"request": f"{row['Method']} {row['Name']}", "error": condensed(row["Error"], 200),
             "times": int(row["Occurrences"])} for row in csv.DictReader(path.open(newline=""))]
    return sorted(rows, key=lambda row: -row["times"])


@pytest.fixture(scope="session")
def boxoffice(db: Database) -> BoxOffice:
    return BoxOffice(db)


@pytest.fixture
def rng(lab) -> random.Random:
    return random.Random(lab.seed)


@pytest.fixture(scope="session")
def load_data(boxoffice: BoxOffice) -> dict[str, Any]:
    """What the shoppers of the locustfile ask for."""
    return {"events": [event["id"] for event in boxoffice.events()]}


@pytest.fixture(scope="session")
def observed_load(lab, load_data, progress) -> ObservedLoad:
    """The load profile run once for every check that judges it (failures, connections, and the first round of
    under-load's speed), with the app's connections sampled meanwhile."""
    spec = lab.load
    work = lab.work_dir / "observed-load"
    sampler_db = Database(lab.database)
    try:
        with Sampler(sampler_db.app_connections, every=0.05) as connections:
            result = run_load(Path(spec["locustfile"]), lab.replicas, LoadProfile(spec["users"], spec["spawn_rate"],
                                                                            spec["seconds"]), work,
                              progress=progress, data=load_data)
    finally:
        sampler_db.close()
    return ObservedLoad(result, connections, _failures(work))


class Pages:
    """Replies compared with the database, as a fixture (check modules import nothing from each other)."""

    CONTRACT = CONTRACT
    EVENT_FIELDS, ORDER_FIELDS, CART_FIELDS = EVENT_FIELDS, ORDER_FIELDS, CART_FIELDS
    CONNECTION_BUDGET = CONNECTION_BUDGET

    @staticmethod
    def same(actual: Any, expected: Any) -> bool:
        if hasattr(expected, "isoformat"):
            from datetime import datetime

            try:
                return isinstance(actual, str) and datetime.fromisoformat(actual) == expected
            except ValueError:
                return False
        return actual == expected and type(actual) is type(expected)

    @classmethod
    def item(cls, item: Any, expected: dict[str, Any], where: str, fields: tuple[str, ...]) -> None:
        if not isinstance(item, dict):
            raise Failure(f"{where} is not a JSON object: {str(item)[:120]}", help=CONTRACT)
        missing = [name for name in fields if name not in item]
        if missing:
            raise Failure(f"{where} has no field {', '.join(repr(name) for name in missing)}",
                          evidence={"fields": sorted(item)}, help=CONTRACT)
        for name in fields:
            if not cls.same(item[name], expected[name]):
                shown = expected[name].isoformat() if hasattr(expected[name], "isoformat") else expected[name]
                raise Failure(f"{where} says {name} = {item[name]!r}, but the database says {shown!r}",
                              evidence={"field": name, "yours": item[name], "database": shown}, help=CONTRACT)


@pytest.fixture(scope="session")
def pages() -> Pages:
    return Pages()


@pytest.fixture(scope="session")
def memory(lab):
    """The memory (MB) of each replica now (its processes' RSS, or its container's usage); `peak=True`: the
    highest a container's usage has been, where the engine keeps it."""
    return lambda peak=False: [replica_memory_mb(where, peak) for where in lab.replica_processes]
