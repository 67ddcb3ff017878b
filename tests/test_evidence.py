"""Evidence for checks, from the servers themselves: the SQL statements a request makes, counted by PostgreSQL."""

from __future__ import annotations

import json
import urllib.request

import pytest

from grader.checkkit import Database
from grader.labspec import load_lab
from grader.pipeline import SilentReporter, Stages, prepared_service
from grader.processes import RunDirectory
from grader.providers import engine_answers, get_provider
from grader.resources import resources

pytestmark = pytest.mark.slow
LAB = load_lab(resources().lab_dir("race-conditions") / "lab.toml")


@pytest.fixture(params=[("local", "system"), ("local", "packaged"), ("docker", "")], ids=lambda p: "-".join(p))
def served(request, monkeypatch: pytest.MonkeyPatch):
    """The reference solution served with the system's PostgreSQL, the wheels' and the docker provider's."""
    provider, binaries = request.param
    if provider == "docker" and not engine_answers()[0]:
        pytest.skip("no Docker engine answers")
    monkeypatch.setenv("LAB_BINARIES", binaries or "auto")
    run = RunDirectory.create()
    try:
        with prepared_service(LAB, resources().solution_dir("race-conditions"), get_provider(provider), run,
                              Stages(SilentReporter()), seed=11) as prepared:
            database = Database(prepared.services.database)
            try:
                yield prepared, database
            finally:
                database.close()
    finally:
        run.remove()


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_postgres_counts_the_statements_of_one_request(served):
    prepared, database = served
    product = database.scalar("SELECT min(id) FROM store_product")
    url = f"{prepared.server.base_url}/api/products/{product}/"

    body, statements = database.statements(lambda: get(url))

    assert body["id"] == product
    assert statements.touching("store_product") >= 1, statements.by_query
    query, times = statements.most_repeated()
    assert times >= 1 and query
    assert statements.evidence()["statements"] == statements.total >= 1


def test_two_requests_count_twice_and_the_grader_s_own_queries_do_not_count(served):
    prepared, database = served
    product = database.scalar("SELECT min(id) FROM store_product")
    url = f"{prepared.server.base_url}/api/products/{product}/"

    _, once = database.statements(lambda: get(url))
    _, twice = database.statements(lambda: (get(url), get(url)))
    _, none = database.statements(lambda: database.scalar("SELECT count(*) FROM store_product"))

    assert twice.touching("store_product") == 2 * once.touching("store_product")
    assert none.total == 1, "only the action's own statement, not the counting machinery"
