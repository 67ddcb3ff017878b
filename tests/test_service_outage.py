"""A check stops Redis for a while and gets it back: through the runner, with real pytest workers and a real
redis-server; a stop never outlives the check that asked for it, even one whose worker dies inside the block."""

from __future__ import annotations

import socket
import textwrap
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis

from grader import runner
from grader.labspec import CheckSpec, load_lab
from grader.processes import RunDirectory
from grader.providers.redis import RedisServer, find_redis_server
from grader.resources import resources

pytestmark = pytest.mark.slow

CHECKS = '''
import os
import socket
from urllib.parse import urlsplit

from grader.checkkit import check


def refused(url):
    address = urlsplit(url)
    try:
        socket.create_connection((address.hostname, address.port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


@check("outage")
def test_outage(lab, services, redis_server):
    redis_server._client().set("before", "1", ex=60)
    assert redis_server.key_count() == 1 and [key.ttl > 0 for key in redis_server.keys()] == [True]
    with services.stopped("redis"):
        assert refused(lab.redis_url), "Redis still answered while stopped"
    assert redis_server.key_count() == 0, "Redis came back with its keys: not started again"
    assert redis_server.command_calls().get("info", 0) >= 1


@check("dies-inside")
def test_dies_inside(lab, services):
    with services.stopped("redis"):
        assert refused(lab.redis_url)
        os._exit(3)


@check("unknown-service")
def test_unknown_service(services):
    with services.stopped("memcached"):
        pass
'''


def answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        return bool(client.ping())
    except redis.exceptions.ConnectionError:
        return False
    finally:
        client.close()


def test_a_check_stops_redis_and_the_runner_starts_it_again_whatever_the_check_does(tmp_path: Path, monkeypatch):
    checks = tmp_path / "checks"
    checks.mkdir()
    (checks / "test_outage.py").write_text(textwrap.dedent(CHECKS))
    ids = ("unknown-service", "outage", "dies-inside")  # the last one ends its worker
    lab = replace(load_lab(resources().lab_dir("race-conditions") / "lab.toml"), parallel=1,
                  checks=tuple(CheckSpec(check_id, check_id, alone=True) for check_id in ids))
    monkeypatch.setattr(runner, "resources", lambda: SimpleNamespace(checks_dir=lambda slug: checks))
    run = RunDirectory.create()
    try:
        with RedisServer(str(find_redis_server().path), run) as server:
            url = server.get_connection_url()
            context = {"lab": lab.slug, "base_url": "http://127.0.0.1:9", "database": {}, "redis_url": url,
                       "seed": 1, "seed_data": {}, "request_seconds": 5}
            records, _ = runner.run_checks(lab, run, context, time.monotonic() + 120,
                                           switches={"redis": server})
            statuses = {check_id: record["status"] for check_id, record in records.items()}
            assert statuses == {"outage": "pass", "dies-inside": "error", "unknown-service": "inconclusive"}, records
            assert "no service called 'memcached'" in records["unknown-service"]["message"]
            assert answers(url), "Redis was left stopped after the check whose worker died inside the outage"
            assert server.get_connection_url() == url, "Redis came back on another address"
    finally:
        run.remove()


class Switch:
    """A service switch that only counts (the pure logic of runner.Outages)."""

    def __init__(self, fails: bool = False):
        self.calls: list[str] = []
        self.fails = fails

    def stop(self) -> None:
        self.calls.append("stop")
        if self.fails:
            raise OSError("the engine went away")

    def start(self) -> None:
        self.calls.append("start")


def test_an_outage_ends_when_its_check_stops_running_or_the_run_ends():
    switch = Switch()
    outages = runner.Outages({"redis": switch})
    assert outages.handle(0, "redis", "stop") == {"ok": True}
    outages.end_unless_running({0: "cache-optional"})
    assert switch.calls == ["stop"], "started again while the check that stopped it still runs"
    outages.end_unless_running({1: "another"})
    assert switch.calls == ["stop", "start"]
    outages.handle(1, "redis", "stop")
    outages.end_all()
    assert switch.calls == ["stop", "start", "stop", "start"]
    outages.end_all()
    assert switch.calls[-1] == "start" and len(switch.calls) == 4, "started twice"


def test_a_stop_that_fails_is_said_and_leaves_the_service_running():
    switch = Switch(fails=True)
    outages = runner.Outages({"redis": switch})
    answer = outages.handle(0, "redis", "stop")
    assert answer == {"ok": False, "message": "the engine went away"} and switch.calls == ["stop", "start"]
    assert outages.handle(0, "postgres", "stop") == {"ok": False,
                                                    "message": "this provider cannot stop and start postgres"}
    assert outages.handle(0, "redis", "pause") == {"ok": False, "message": "unknown action 'pause'"}
    assert not outages.stopped


def test_a_local_redis_server_starts_again_on_its_port_empty(tmp_path: Path):
    run = RunDirectory.create()
    try:
        with RedisServer(str(find_redis_server().path), run) as server:
            client = redis.Redis(port=server.port, socket_timeout=2)
            client.set("kept", "no")
            port = server.port
            server.stop()
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
            server.start()
            assert server.port == port and client.dbsize() == 0
            client.close()
    finally:
        run.remove()
