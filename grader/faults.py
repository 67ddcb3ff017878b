"""Faults of the learner's service named for what they are, not as the grader's own bugs.

A service may break what the grader gave it: drop its schema, empty the lab's tables, shut PostgreSQL or
Redis down. A check that then trips over the wreck is the learner's failure, said in words ("your service
broke its database: the tables store_order and store_product are gone"), never "the check itself broke".
A stage that hangs without a word in its log shows where its Python processes are stuck: the grader asks
each for a stack dump (faulthandler, registered by the settings overlay and the server's config).
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from typing import Any

# The signal that asks a learner process for its stacks: one no server or Django uses.
STACK_SIGNAL = getattr(signal, "SIGPWR", None)
CONNECT_SECONDS = 3
# PostgreSQL answering that every connection is in use: the app's pool is too big, not its database broken.
BUSY = ("too many clients", "remaining connection slots are reserved")
TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"


def table_baseline(database: dict[str, Any]) -> dict[str, bool]:
    """The tables of the lab's database and whether each holds rows: what the service was given."""
    import psycopg
    from psycopg import sql

    try:
        with psycopg.connect(**database, autocommit=True, connect_timeout=CONNECT_SECONDS) as connection:
            tables = [row[0] for row in connection.execute(TABLES)]
            return {table: bool(connection.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(
                sql.Identifier(table))).fetchone()[0]) for table in tables}
    except psycopg.Error:
        return {}  # the database is already broken: the checks' diagnosis says how


def service_faults(database: dict[str, Any], redis_url: str | None, baseline: dict[str, bool] | None,
                   emptied: bool = True) -> list[str]:
    """What is broken now in the services the grader gave the app, in words; [] when nothing is.

    `emptied` also names tables that held rows and hold none (a check that failed on them); a run that
    merely ended with an empty table (a lab whose API deletes) is no fault.
    """
    import psycopg
    import redis
    from psycopg import sql

    faults = []
    try:
        with psycopg.connect(**database, autocommit=True, connect_timeout=CONNECT_SECONDS) as connection:
            now = {row[0] for row in connection.execute(TABLES)}
            gone = sorted(set(baseline or {}) - now)
            if gone:
                faults.append(f"PostgreSQL's tables {_names(gone)} are gone (dropped, or their schema was)")
            if emptied:
                empty = [table for table, had_rows in (baseline or {}).items() if had_rows and table in now
                         and not connection.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(
                             sql.Identifier(table))).fetchone()[0]]
                if empty:
                    faults.append(f"PostgreSQL's tables {_names(empty)} held the lab's rows and are empty now")
    except psycopg.Error as error:
        if not any(busy in str(error) for busy in BUSY):  # a server whose connections are all taken still answers
            faults.append(f"PostgreSQL stopped answering ({_first_line(error)}): was it shut down or killed?")
    if redis_url:
        client = redis.Redis.from_url(redis_url, socket_timeout=CONNECT_SECONDS,
                                      socket_connect_timeout=CONNECT_SECONDS)
        try:
            client.ping()
        except redis.RedisError as error:
            faults.append(f"Redis stopped answering ({_first_line(error)}): was it shut down (SHUTDOWN) or killed?")
        finally:
            client.close()
    return faults


BROKE_DATABASE_HINT = ("Your service must leave the lab's PostgreSQL and Redis running, with the tables the brief "
                       "lists: look for code that drops, truncates or flushes them, or shuts a server down.")


def _names(tables: list[str]) -> str:
    return ", ".join(tables)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


# -- stacks of a stage that hangs ----------------------------------------------------------------------------


def stack_dumps(pids: list[int], log: Path, wait: float = 0.5) -> list[str]:
    """Ask each of `pids` in turn for its Python stacks (it writes them to `log`); the dumps, one per process."""
    if STACK_SIGNAL is None:
        return []
    dumps = []
    for pid in pids:
        before = log.stat().st_size if log.exists() else 0
        try:
            os.kill(pid, STACK_SIGNAL)
        except OSError:
            continue
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and (log.stat().st_size if log.exists() else 0) == before:
            time.sleep(0.02)
        time.sleep(0.05)  # the rest of the dump
        try:
            with log.open("rb") as handle:
                handle.seek(before)
                written = handle.read(64 * 1024).decode(errors="replace")
        except OSError:
            continue
        dumps.append("\n".join(line for line in written.splitlines()
                               if re.match(r"(Current thread|Thread) 0x[0-9a-f]+|  File \"", line)))
    return [dump for dump in dumps if dump]


def learner_processes(run_path: Path, app_uid: int | None) -> list[int]:
    """The run's learner processes that can dump their stacks (not the sandbox's own)."""
    from grader.sandbox import run_processes

    pids = []
    for pid in run_processes(run_path, app_uid):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() != "bwrap":
                pids.append(pid)
        except OSError:
            continue
    return pids


def failed_migration(log: Path) -> str | None:
    """The migration that was being applied when migrate failed ("store.0003_orders"), from its log."""
    try:
        text = log.read_text(errors="replace")[-256 * 1024:]
    except OSError:
        return None
    applying = re.findall(r"^\s*Applying (\S+)\.\.\.(.*)$", text, flags=re.MULTILINE)
    if applying and "OK" not in applying[-1][1]:
        return applying[-1][0]
    return None
