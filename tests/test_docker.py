"""The docker provider on a real engine: the same verdicts as local, limits that hold, nothing left behind.

Needs a Docker engine holding the images LAB_POSTGRES_IMAGE, LAB_REDIS_IMAGE and LAB_PYTHON_IMAGE name
(`.ci/run` starts one and builds them from Debian packages); skipped, with the reason, where there is none
or it lacks them, unless LAB_REQUIRE_DOCKER is set (CI), where that is an error.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest
from testcontainers.core.network import Network

from grader import catalog
from grader.images import image_set
from grader.labspec import load_lab
from grader.processes import RunDirectory
from grader.providers.containers import LABEL_RUNS, container_address, run_labels
from grader.providers.docker import GLOBAL_SUBNETS, RedisSwitch, redis_container
from grader.resources import resources

from conftest import FIXTURES, as_at_a_terminal, docker_unavailable, overlay

WHY_NOT = docker_unavailable()
pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.skipif(bool(WHY_NOT), reason=WHY_NOT)]
LAB = load_lab(resources().lab_dir("race-conditions") / "lab.toml")
SOLUTION = resources().solution_dir("race-conditions")


def ours() -> list[str]:
    """Every container and network a run of these tests made that still exists (not another grader's)."""
    mine = {"label": f"{LABEL_RUNS}={os.environ['LAB_RUNS_DIR']}"}
    client = docker.from_env()
    try:
        containers = [f"container {c.name}" for c in client.containers.list(all=True, filters=mine)]
        networks = [f"network {n.name}" for n in client.networks.list(filters=mine)]
    finally:
        client.close()
    return containers + networks


def volumes() -> set[str]:
    client = docker.from_env()
    try:
        return {volume.name for volume in client.volumes.list()}
    finally:
        client.close()


@pytest.fixture(autouse=True)
def nothing_of_ours_left():
    assert not ours(), "a previous test left containers or networks behind"
    volumes_before = volumes()
    yield
    assert not ours(), "the run left containers or networks behind"
    assert not {v for v in volumes() - volumes_before if _labelled_ours(v)}, "the run left volumes behind"


def _labelled_ours(volume: str) -> bool:
    """A volume of one of our containers: anonymous volumes carry no labels, so ask which container uses it."""
    client = docker.from_env()
    try:
        users = client.containers.list(all=True, filters={"volume": volume})
        return not users or any(c.labels.get(LABEL_RUNS) == os.environ["LAB_RUNS_DIR"] for c in users)
    finally:
        client.close()


def latest(workspace: Path) -> dict:
    return json.loads((workspace / ".lab" / "results" / "latest.json").read_text())


def test_verify_every_lab_under_docker_gives_the_verdicts_local_gives(run_lab):
    result = run_lab("verify", "--provider", "docker")

    assert result.exit_code == 0, result.output
    for lab in catalog.load_all():
        assert f"✓ {lab.slug}: the starter fails exactly" in result.output


def test_check_under_docker_records_its_containers(run_lab, workspace: Path):
    shutil.copytree(SOLUTION, workspace, dirs_exist_ok=True, ignore=shutil.ignore_patterns("NOTES.md"))

    result = run_lab("check", "--provider", "docker", cwd=workspace)

    assert result.exit_code == 0, result.output
    report = latest(workspace)
    assert report["provider"] == "docker"
    assert {check["status"] for check in report["checks"]} == {"pass"}
    assert report["servers"]["app"].startswith("container nexus-labs/app:")


def test_an_app_that_allocates_without_bound_is_stopped_as_out_of_memory(run_lab, workspace: Path):
    overlay(FIXTURES / "race-conditions" / "docker-only" / "memory-hog", workspace)

    started = time.monotonic()
    result = run_lab("check", "--provider", "docker", cwd=workspace)

    assert result.exit_code == 1, result.output
    failure = latest(workspace)["stage_failure"]
    assert failure is not None, result.output
    assert "out of memory" in failure["message"], failure
    assert f"{LAB.server.memory_mb} MiB" in failure["message"]
    assert time.monotonic() - started < LAB.limits.startup_seconds + 60, "it waited like a hung check"


def test_ctrl_c_mid_check_under_docker_leaves_no_container_or_network(workspace: Path):
    shutil.copytree(SOLUTION, workspace, dirs_exist_ok=True, ignore=shutil.ignore_patterns("NOTES.md"))
    process = subprocess.Popen([sys.executable, "-m", "grader", "check", "--provider", "docker"], cwd=workspace,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=as_at_a_terminal)
    output = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            output.append(line)
            if "PASS" in line or not line:
                break
        assert ours(), "the run's containers should exist mid-check:\n" + "".join(output)
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, "".join(output) + rest


def test_a_later_run_removes_what_a_killed_one_left(run_lab, workspace: Path):
    shutil.copytree(SOLUTION, workspace, dirs_exist_ok=True, ignore=shutil.ignore_patterns("NOTES.md"))
    process = subprocess.Popen([sys.executable, "-m", "grader", "check", "--provider", "docker"], cwd=workspace,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=as_at_a_terminal)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and "PASS" not in process.stdout.readline():
        pass
    process.kill()
    process.wait(timeout=10)
    assert ours(), "a killed run leaves its containers (the next run is what removes them)"

    result = run_lab("check", "--provider", "docker", cwd=workspace)

    assert result.exit_code == 0, result.output


def test_doctor_shows_the_engine_its_images_and_why_auto_takes_docker(run_lab):
    result = run_lab("doctor", "--json")

    found = json.loads(result.output)
    assert result.exit_code == 0, result.output
    assert found["engine"]["reachable"] and found["engine"]["detail"].startswith("Docker ")
    assert found["provider"] == "docker" and "a Docker engine answers" in found["reason"]
    assert {role for role, (_name, present) in found["images"].items() if present} >= {"postgres", "redis", "python"}


def test_a_graded_apps_network_has_no_way_out(workspace: Path):
    """Proved from the settings of the run's network and the app container's routing table: nothing is sent."""
    process = subprocess.Popen([sys.executable, "-m", "grader", "check", "--provider", "docker"], cwd=workspace,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    client = docker.from_env()
    try:
        server = _wait_for_server(client, process)
        networks = server.attrs["NetworkSettings"]["Networks"]
        assert len(networks) == 1, networks  # its only interface is on the run's network
        network = client.networks.get(next(iter(networks.values()))["NetworkID"])
        assert network.attrs["Internal"] is True and network.attrs["EnableIPv6"] is False, network.attrs
        assert network.attrs["Labels"].get(LABEL_RUNS) == os.environ["LAB_RUNS_DIR"]
        gateways = {config["Gateway"] for config in network.attrs["IPAM"]["Config"]}
        # on a global subnet, so that the SSRF check has a public address that leads nowhere (the app's own)
        assert {config["Subnet"] for config in network.attrs["IPAM"]["Config"]} <= set(GLOBAL_SUBNETS), network.attrs
        code, table = server.exec_run(["cat", "/proc/net/route"])
        assert code == 0, table
        for route in table.decode().splitlines()[1:]:
            interface, destination, gateway = route.split()[:3]
            assert interface == "eth0", route  # no interface but the run's network
            if destination == "00000000":  # a default route leads only to the network's own gateway (the
                # engine's bridge, which forwards nothing out of an internal network)
                assert socket.inet_ntoa(bytes.fromhex(gateway)[::-1]) in gateways, route
        output, _ = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
        client.close()
    assert process.returncode == 1, output  # the starter, graded as usual on the internal network
    assert "Score 7/17" in output, output


def _wait_for_server(client: docker.DockerClient, process: subprocess.Popen, seconds: float = 120):
    """The run's server container, once it runs."""
    deadline = time.monotonic() + seconds
    mine = {"label": f"{LABEL_RUNS}={os.environ['LAB_RUNS_DIR']}", "status": "running"}
    while time.monotonic() < deadline and process.poll() is None:
        for container in client.containers.list(filters=mine):
            if "-server-" in container.name:
                return container
        time.sleep(0.2)
    raise AssertionError(f"no server container appeared (lab check exited {process.poll()})")


def test_a_stopped_redis_container_refuses_at_once_by_name_and_comes_back_empty():
    """A check's outage under docker: Redis's server stops inside its container, so the app's `redis` still
    resolves and is refused at once (as a stopped local server is), and it answers again, empty, at the same
    address."""
    run = RunDirectory.create()
    client = docker.from_env()
    labels = run_labels(run)
    network = Network(docker_network_kw={"labels": labels, "internal": True}).create()
    server = redis_container(image_set().redis, network, labels)
    probe = None
    try:
        server.start()
        wrapped = server.get_wrapped_container()
        address = container_address(wrapped, network.name)
        assert wrapped.exec_run(["redis-cli", "set", "kept", "no"]).exit_code == 0
        probe = client.containers.run(image_set().python, ["sleep", "120"], detach=True, labels=labels,
                                      network=network.name)
        connect = ("import socket, time; started = time.monotonic()\n"
                   "try:\n    socket.create_connection(('redis', 6379), timeout=5).close(); print('answered')\n"
                   "except OSError as error:\n    print(type(error).__name__)\n"
                   "print(round(time.monotonic() - started, 2))")
        switch = RedisSwitch(wrapped)
        switch.stop()
        outcome, seconds = probe.exec_run(["python3", "-c", connect]).output.decode().split()
        assert outcome == "ConnectionRefusedError" and float(seconds) < 1.0, (outcome, seconds)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((address, 6379), timeout=3).close()
        switch.start()
        assert container_address(wrapped, network.name) == address
        assert wrapped.exec_run(["redis-cli", "dbsize"]).output.strip() == b"0"
        assert probe.exec_run(["python3", "-c", connect]).output.decode().split()[0] == "answered"
    finally:
        if probe is not None:
            probe.remove(force=True)
        server.stop()
        network.remove()
        client.close()
        run.remove()
