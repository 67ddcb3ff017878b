"""The SSRF canary: a loopback listener that records who came, names it resolves, started and stopped cleanly."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from grader.canary import Canary
from grader.sandbox import Confinement, sandbox_mode


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


def test_the_canary_records_every_request_and_answers_with_its_secret(tmp_path: Path):
    with Canary(None, tmp_path) as canary:
        status, body = fetch(canary.url("127.0.0.1", "canary-0"))
        assert (status, body) == (200, f"canary {canary.secret}")
        status, body = fetch(f"{canary.url('localhost', 'hop')}?to={canary.url('127.0.0.1', 'canary-after')}")
        assert status == 200 and canary.secret in body, "the hop redirects, urllib follows"
        hits = canary.hits()
    assert [hit["path"] for hit in hits] == [f"/canary-0/{canary.secret}", f"/hop/{canary.secret}",
                                             f"/canary-after/{canary.secret}"]
    assert all(hit["peer"] in ("127.0.0.1", "::1") for hit in hits)


def this_machine_s_address() -> str | None:
    """An address of this machine that is not loopback (a UDP socket's route; nothing is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 9))
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_the_canary_listens_on_loopback_only_and_leaves_nothing_behind(tmp_path: Path):
    with Canary(None, tmp_path) as canary:
        pid = canary.process.pid
        if canary.ipv6:
            assert fetch(canary.url("[::1]"))[0] == 200
        outside = this_machine_s_address()
        if outside:
            with pytest.raises(OSError):
                socket.create_connection((outside, canary.port), timeout=2).close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not list(tmp_path.iterdir()), "its log is removed"


def test_a_canary_that_cannot_start_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("grader.canary.SCRIPT", "raise SystemExit(3)")
    with pytest.raises(RuntimeError, match="did not start: it exited with status 3"):
        Canary(None, tmp_path, lifetime=5).__enter__()


def test_without_a_run_s_own_hosts_file_or_docker_names_and_the_public_address_say_why_not(tmp_path: Path):
    with Canary(None, tmp_path, names=True) as canary:
        assert canary.public == "" and "local provider" in canary.public_why_not
        assert "own /etc/hosts" in canary.names_why_not and "public address" in canary.dns_why_not
        with pytest.raises(RuntimeError, match="names cannot be pointed here"):
            canary.point("anything.test", "127.0.0.1")
        status, _ = fetch(canary.url("127.0.0.1", "canary-0"))
        assert status == 200 and [hit["listener"] for hit in canary.forged()] == ["loopback"]


@pytest.mark.skipif(sandbox_mode().name != "bwrap", reason="needs the bwrap sandbox")
def test_a_name_the_canary_points_resolves_so_in_the_sandbox_at_every_lookup(tmp_path: Path):
    """The run's hosts file, bound over the sandbox's /etc/hosts, rewritten in place between two lookups."""
    hosts = tmp_path / "hosts"
    original = Path("/etc/hosts").read_text()
    hosts.write_text(original)
    confinement = Confinement(sandbox_mode(), app_uid=None, hosts=hosts)
    lookup = confinement.wrap([sys.executable, "-c", "import socket, sys; print(socket.gethostbyname(sys.argv[1]))",
                               "hooks.rebind.test"], cwd=Path("/"), readable=(), writable=())

    def resolved() -> str:
        return subprocess.run(lookup, capture_output=True, text=True, timeout=30).stdout.strip()

    with Canary({"pid": os.getpid(), "hosts": str(hosts)}, tmp_path / "canary", names=True) as canary:
        assert canary.names_why_not == ""
        canary.point("hooks.rebind.test", "93.184.215.14")
        assert resolved() == "93.184.215.14"
        canary.point("hooks.rebind.test", "127.0.0.1")
        assert resolved() == "127.0.0.1"
    assert hosts.read_text() == original, "the hosts file is put back"
