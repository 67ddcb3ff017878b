"""The SSRF canary: a loopback listener that records who came, names it resolves, started and stopped cleanly."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from grader.canary import Canary
from grader.processes import RunDirectory
from grader.providers.local import PUBLIC_BLOCKS, PUBLIC_POOL, address_claims, public_address, remove_stale_addresses
from grader.runtime import LocalRuntime, _files_then_dns
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
    where = {"pid": os.getpid(), "public_why_not": "only root may add an address to this machine's loopback"}
    with Canary(where, tmp_path, names=True) as canary:
        assert canary.public == "" and canary.public_why_not == where["public_why_not"]
        assert "own /etc/hosts" in canary.names_why_not
        assert canary.dns_why_not == f"the first answer would be a public address, and there is none: {where['public_why_not']}"
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


needs_root_and_ip = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"),
                                       reason="adding an address to the loopback needs root and iproute2")


def loopback_addresses() -> str:
    return subprocess.run(["ip", "-o", "addr", "show", "dev", "lo"], capture_output=True, text=True).stdout


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LAB_RUNS_DIR", str(tmp_path / "runs"))
    run = RunDirectory.create()
    yield run
    run.remove()


def test_the_local_pool_is_made_of_the_docker_provider_s_global_blocks():
    from grader.providers.docker import GLOBAL_SUBNETS

    blocks = {str(ipaddress.ip_network(subnet).supernet(new_prefix=24)) for subnet in GLOBAL_SUBNETS}
    assert blocks == set(PUBLIC_BLOCKS)
    assert all(ipaddress.ip_address(address).is_global for address in PUBLIC_POOL)
    assert all(any(ipaddress.ip_address(address) in ipaddress.ip_network(subnet) for subnet in GLOBAL_SUBNETS)
               for address in PUBLIC_POOL)


@needs_root_and_ip
def test_a_run_s_public_address_is_local_on_loopback_serves_the_public_hop_and_is_removed(run: RunDirectory,
                                                                                         tmp_path: Path):
    with public_address(run) as public:
        assert public.address and not public.why_not
        assert ipaddress.ip_address(public.address).is_global
        assert f" {public.address}/32 " in loopback_addresses()
        assert public.proof.startswith(f"local {public.address} dev lo")
        where = {"pid": os.getpid(), "public": public.address, "public_route": public.proof}
        with Canary(where, tmp_path / "canary") as canary:
            assert canary.public == public.address and "never leaves the machine" in canary.public_proof
            inner = canary.url("127.0.0.1", "canary-after")
            status, body = fetch(f"{canary.url(canary.public, 'hop')}?to={inner}")
            assert (status, body) == (200, f"canary {canary.secret}")
            assert fetch(canary.url(canary.public, "canary-0")) == (200, "a public server")
            assert [hit["listener"] for hit in canary.hits()] == ["public", "loopback", "public"]
            assert [hit["listener"] for hit in canary.forged()] == ["loopback"]
    assert f" {public.address}/32 " not in loopback_addresses()
    assert not (address_claims() / public.address).exists()


@needs_root_and_ip
def test_the_address_of_a_run_that_is_gone_is_removed_by_a_later_run(run: RunDirectory):
    claimed = public_address(run)
    public = claimed.__enter__()  # then the grader is killed: no teardown
    assert f" {public.address}/32 " in loopback_addresses()
    assert (address_claims() / public.address).read_text() == str(run.path)
    assert public.address not in remove_stale_addresses(shutil.which("ip")), "a live run keeps its address"
    owner = json.loads((run.private / "owner.json").read_text())
    (run.private / "owner.json").write_text(json.dumps({**owner, "pid": 2**22 + 1}))  # its grader killed
    assert public.address in remove_stale_addresses(shutil.which("ip"))
    assert f" {public.address}/32 " not in loopback_addresses()
    assert not (address_claims() / public.address).exists()


def test_a_run_not_graded_as_root_has_no_public_address_and_says_why(run: RunDirectory,
                                                                    monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with public_address(run) as public:
        assert public.address == "" and "only root" in public.why_not
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr("shutil.which", lambda name: None)
    with public_address(run) as public:
        assert public.address == "" and "`ip`" in public.why_not and "apt-get install iproute2" in public.why_not


@needs_root_and_ip
@pytest.mark.skipif(sandbox_mode().name != "bwrap", reason="needs the bwrap sandbox")
def test_a_name_the_canary_answers_resolves_in_the_sandbox_to_one_address_after_the_other(run: RunDirectory,
                                                                                          tmp_path: Path):
    """The run's resolv.conf names the canary's DNS server first; the name is in no hosts file."""
    runtime = LocalRuntime.__new__(LocalRuntime)
    runtime.run = run
    files = {name: runtime._copy(name) for name in ("hosts", "resolv.conf")}
    files["nsswitch.conf"] = runtime._copy("nsswitch.conf", _files_then_dns)
    confinement = Confinement(sandbox_mode(), app_uid=None, hosts=files["hosts"], resolv=files["resolv.conf"],
                              nsswitch=files["nsswitch.conf"])
    lookup = confinement.wrap([sys.executable, "-c", "import socket, sys; print(socket.gethostbyname(sys.argv[1]))",
                               "twice.rebind.test"], cwd=Path("/"), readable=(), writable=())
    original = files["resolv.conf"].read_text()

    def resolved() -> str:
        return subprocess.run(lookup, capture_output=True, text=True, timeout=30).stdout.strip()

    with public_address(run) as public:
        where = {"pid": os.getpid(), "hosts": str(files["hosts"]), "resolv": str(files["resolv.conf"]),
                 "public": public.address}
        with Canary(where, tmp_path / "canary", names=True) as canary:
            assert canary.dns_why_not == "" and canary.nameserver.startswith("127.53.")
            canary.answer("twice.rebind.test", [public.address])
            assert [resolved(), resolved()] == [public.address, public.address]
            canary.answer("twice.rebind.test", [public.address, "127.0.0.1"])
            assert [resolved(), resolved(), resolved()] == [public.address, "127.0.0.1", "127.0.0.1"]
            assert [entry["answer"] for entry in canary.lookups()][-3:] == [public.address, "127.0.0.1", "127.0.0.1"]
    assert files["resolv.conf"].read_text() == original, "the run's resolv.conf is put back"
