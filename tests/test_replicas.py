"""A lab may be served as several replicas: separate servers sharing only the run's services."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import replace

import psycopg
import pytest

from grader.labspec import PostgresSettings, load_lab
from grader.pipeline import SilentReporter, Stages, prepared_service
from grader.processes import RunDirectory
from grader.providers import get_provider
from grader.resources import resources

pytestmark = pytest.mark.slow
LAB = load_lab(resources().lab_dir("race-conditions") / "lab.toml")


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_replicas_are_separate_servers_on_one_database_with_the_lab_s_connection_limit():
    lab = replace(LAB, server=replace(LAB.server, replicas=2, workers=1, threads=2),
                  postgres=PostgresSettings(max_connections=17))
    run = RunDirectory.create()
    try:
        with prepared_service(lab, resources().solution_dir(lab.slug), get_provider("local"), run,
                              Stages(SilentReporter()), seed=3) as prepared:
            first, second = prepared.replicas
            assert prepared.server is first and first.base_url != second.base_url
            assert first.process.poll() is None and second.process.poll() is None
            product = prepared.manifest["single_order"]["product"]
            assert get(f"{first.base_url}/api/products/{product['id']}/") == \
                get(f"{second.base_url}/api/products/{product['id']}/"), "one database behind both"
            assert (run.path / "app-2").is_dir() and (run.path / "home-2" / "tmp").is_dir(), \
                "the second replica has a copy of the project and a home of its own"
            assert (run.path / "server-2.log").is_file()
            with psycopg.connect(**prepared.services.database) as connection:
                assert connection.execute("SHOW max_connections").fetchone()[0] == "17"
    finally:
        run.remove()
