"""Evidence read from the run's Redis: the keys the app wrote, their TTLs, its memory and the commands it ran.

Read through the grader's own connection, never through the app: what the service stored is what Redis says
it holds. Every logical database is read, since an app may pick any of them in its URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis
from redis.connection import parse_url

SOCKET_SECONDS = 10  # a Redis that answers nothing fails the check in seconds, not minutes
SCAN_COUNT = 1000  # keys asked for per SCAN call
NO_EXPIRY = -1  # what TTL answers for a key that never expires


@dataclass(frozen=True)
class Key:
    """One key as Redis holds it: its logical database, its name and its time to live in seconds (-1: none)."""

    db: int
    name: str
    ttl: int

    @property
    def expires(self) -> bool:
        return self.ttl != NO_EXPIRY

    def describe(self) -> str:
        lifetime = "never expires" if not self.expires else f"expires in {self.ttl} s"
        return f"{self.name!r} (db {self.db}) {lifetime}"


class RedisEvidence:
    """The run's Redis server as the app uses it, read for evidence."""

    def __init__(self, url: str):
        self.options = {key: value for key, value in parse_url(url).items() if key != "db"}
        self._clients: dict[int, redis.Redis] = {}

    def _client(self, db: int = 0) -> redis.Redis:
        if db not in self._clients:
            self._clients[db] = redis.Redis(**self.options, db=db, socket_timeout=SOCKET_SECONDS,
                                            socket_connect_timeout=SOCKET_SECONDS, decode_responses=True)
        return self._clients[db]

    def databases(self) -> list[int]:
        """The logical databases that hold at least one key."""
        keyspace = self._client().info("keyspace")
        return sorted(int(name[2:]) for name in keyspace if name.startswith("db"))

    def keys(self, limit: int = 100_000) -> list[Key]:
        """Every key of every logical database with its TTL, at most `limit` of them (SCAN, never KEYS)."""
        found: list[Key] = []
        for db in self.databases():
            client = self._client(db)
            names = []
            for name in client.scan_iter(count=SCAN_COUNT):
                names.append(name)
                if len(found) + len(names) >= limit:
                    break
            with client.pipeline(transaction=False) as pipeline:
                for name in names:
                    pipeline.ttl(name)
                ttls = pipeline.execute()
            # A key that expired between SCAN and TTL answers -2: it is gone, so it is not listed.
            found.extend(Key(db, name, int(ttl)) for name, ttl in zip(names, ttls, strict=True) if int(ttl) != -2)
            if len(found) >= limit:
                break
        return found

    def key_count(self) -> int:
        """How many keys the server holds, over every logical database (DBSIZE of each)."""
        keyspace = self._client().info("keyspace")
        return sum(int(entry["keys"]) for name, entry in keyspace.items() if name.startswith("db"))

    def memory_bytes(self) -> int:
        """The memory Redis uses for its data, in bytes (INFO memory: used_memory)."""
        return int(self._client().info("memory")["used_memory"])

    def command_calls(self) -> dict[str, int]:
        """How often each command has run since the server started, e.g. {"get": 120, "set": 4} (INFO commandstats)."""
        stats = self._client().info("commandstats")
        return {name.removeprefix("cmdstat_"): int(entry["calls"]) for name, entry in stats.items()}

    def flush(self) -> None:
        """Remove every key of every logical database: a cold cache."""
        self._client().flushall()

    def evidence(self, keys: list[Key], limit: int = 5) -> dict[str, Any]:
        """A few keys and their TTLs, for a failure's evidence."""
        return {"keys": [key.describe() for key in keys[:limit]], "of": len(keys)}

    def reconnect(self) -> None:
        """Drop the connections, so that the next call opens new ones (after the server was restarted)."""
        self.close()

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
