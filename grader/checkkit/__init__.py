"""What a hidden check is written with.

A check is a pytest function marked with the lab.toml id it implements::

    @check("no-oversell")
    def test_no_oversell(lab, client, db):
        \"\"\"buyers arriving together never oversell\"\"\"
        ...
        raise Failure("sold 13 units of 10", evidence={"stock": -3}, help="...")

`Failure` is a verdict about the learner's service; `Inconclusive` says the
check could not decide and why; any other exception is a bug in the check and
is reported as an error. Fixtures (`lab`, `client`, `replicas`, `db`, `redis_server`, `services`,
`figures`, `load`, `locks`) come from the grader's pytest plugin.

One module a concern: `http` (the client, sessions, bursts), `database` (rows, statements, plans),
`redis` (keys, TTLs, memory, commands), `services` (stopping a service mid-check), `sampling` (figures
sampled meanwhile, replica memory), `load` (load checks), `expect` (expectations that fail with
evidence), `verdicts`, `context`.
"""

import pytest

from grader.checkkit.context import LabContext
from grader.checkkit.database import Database, Plan, Statement, Statements, share_grader_backends
from grader.checkkit.expect import Expect, attempt_line, json_items, server_errors, status_counts
from grader.checkkit.http import Call, Client, Reply, Session, bearer, condensed
from grader.checkkit.load import LoadCheck, failure_line, load_failure_evidence
from grader.checkkit.redis import Key, RedisEvidence
from grader.checkkit.sampling import Sampler, replica_memory_mb
from grader.checkkit.services import ServiceControl
from grader.checkkit.verdicts import Failure, Inconclusive

check = pytest.mark.check
"""Mark a test function as the hidden check of one lab.toml check id."""

__all__ = [
    "Call", "Client", "Database", "Expect", "Failure", "Inconclusive", "Key", "LabContext", "LoadCheck", "Plan",
    "RedisEvidence", "Reply", "Sampler", "ServiceControl", "Session", "Statement", "Statements", "attempt_line",
    "bearer", "check", "condensed", "failure_line", "json_items", "load_failure_evidence", "replica_memory_mb",
    "server_errors", "share_grader_backends", "status_counts",
]
