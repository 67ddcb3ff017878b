"""The load engine: Locust in its own process against a real HTTP server on loopback, figures back as data."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from grader.load import LoadError, LoadProfile, run_load

from conftest import FIXTURES

pytestmark = pytest.mark.slow
LOCUSTFILE = FIXTURES / "locust" / "locustfile.py"
PROFILE = LoadProfile(users=4, spawn_rate=4, seconds=3)


class Handler(BaseHTTPRequestHandler):
    served: list[int] = []  # the port of the server that answered each request

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        Handler.served.append(self.server.server_address[1])
        time.sleep(0.005)
        status = 200 if self.path == "/ok" else 500
        body = b"ok" if status == 200 else b"broken"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@contextmanager
def http_server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server() -> Iterator[str]:
    with http_server() as url:
        yield url


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers, like a service stuck on every request."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


def test_figures_per_endpoint_and_in_total(server: str, tmp_path: Path):
    lines: list[str] = []

    result = run_load(LOCUSTFILE, server, PROFILE, tmp_path, progress=lines.append)

    by_name = {endpoint.name: endpoint for endpoint in result.endpoints}
    assert set(by_name) == {"GET /ok", "GET /broken"}
    ok, broken = by_name["GET /ok"], by_name["GET /broken"]
    assert ok.requests > 50 and ok.failures == 0
    assert broken.requests > 10 and broken.failures == broken.requests
    assert result.total.requests == ok.requests + broken.requests
    assert result.total.failures == broken.failures
    assert 2 < ok.requests / broken.requests < 4.5, "the locustfile's 3:1 weights"
    assert 0 < ok.p50_ms <= ok.p95_ms <= ok.p99_ms
    assert 1.0 < result.duration <= PROFILE.seconds + 1
    assert result.rps == pytest.approx(ok.requests / result.duration)
    assert not result.completed_nothing
    assert any(line.startswith("load: ") for line in lines), lines
    assert result.to_json()["total"]["requests"] == result.total.requests
    assert "gevent" not in sys.modules and "locust" not in sys.modules, "locust ran in this process"


def test_a_service_that_answers_nothing_is_too_slow_not_an_error(silent_server: str, tmp_path: Path):
    started = time.monotonic()

    result = run_load(LOCUSTFILE, silent_server, LoadProfile(users=2, spawn_rate=2, seconds=2), tmp_path)

    assert result.completed_nothing
    assert result.rps == 0 and result.total.p50_ms is None
    assert time.monotonic() - started < 2 + 15, "the run is bounded even when no request ever ends"


def test_a_broken_locustfile_is_the_checks_own_error(server: str, tmp_path: Path):
    with pytest.raises(LoadError, match="module_that_does_not_exist"):
        run_load(FIXTURES / "locust" / "broken_locustfile.py", server, PROFILE, tmp_path)


def test_users_can_spread_their_requests_over_replicas(tmp_path: Path):
    Handler.served.clear()
    with http_server() as first, http_server() as second:
        result = run_load(FIXTURES / "locust" / "replicas_locustfile.py", (first, second), PROFILE, tmp_path)

    ports = {int(url.rsplit(":", 1)[1]) for url in (first, second)}
    assert result.total.failures == 0 and result.total.requests > 20
    assert set(Handler.served) == ports, "both replicas answered"
    assert min(Handler.served.count(port) for port in ports) > result.total.requests / 4


def test_every_replica_must_be_on_loopback(server: str, tmp_path: Path):
    with pytest.raises(ValueError, match="only ever sent to this machine's loopback"):
        run_load(LOCUSTFILE, (server, "http://192.0.2.10:8000"), PROFILE, tmp_path)


@pytest.mark.parametrize("url", ["http://192.0.2.10:8000", "http://example.com", "http://10.0.0.1"])
def test_load_is_only_sent_to_loopback(url: str, tmp_path: Path):
    with pytest.raises(ValueError, match="only ever sent to this machine's loopback"):
        run_load(LOCUSTFILE, url, PROFILE, tmp_path)
