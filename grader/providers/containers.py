"""The learner's code in containers: a runtime whose commands each run in a throwaway container.

Each command gets a fresh container from the app image on the run's private network,
with the lab's CPU, memory and process limits. Its inputs (the snapshot, the settings
overlay, the seeding scripts) are copied in under the same absolute paths they have in
the run directory, so commands need no translation; its outputs are copied back when
it exits, and its log is streamed into the run's log file as it runs.

Everything is labelled with the run and the grader's pid, so a later run can remove what
a killed one left (`reap_abandoned`).
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests

from grader.processes import RunDirectory, free_port, pid_alive, process_start_time
from grader.runtime import Listener, PortTaken

LABEL_RUN = "org.nexus-labs.run"
LABEL_OWNER = "org.nexus-labs.owner"  # "<pid>:<process start time>" of the grader that made it
LABEL_RUNS = "org.nexus-labs.runs"  # the folder of run directories the run lives in (LAB_RUNS_DIR)
APP_PORT = 8000


def run_labels(run: RunDirectory) -> dict[str, str]:
    pid = os.getpid()
    return {LABEL_RUN: run.path.name, LABEL_OWNER: f"{pid}:{process_start_time(pid) or ''}",
            LABEL_RUNS: str(run.path.parent)}


def reap_abandoned(client: docker.DockerClient) -> list[str]:
    """Remove the containers and networks of runs whose grader is gone; returns what was removed."""
    removed = []
    for container in client.containers.list(all=True, filters={"label": LABEL_RUN}):
        if not _owner_alive(container.labels):
            container.remove(force=True, v=True)  # with its anonymous volumes (PostgreSQL's data)
            removed.append(f"container {container.name}")
    for network in client.networks.list(filters={"label": LABEL_RUN}):
        if not _owner_alive(network.attrs.get("Labels") or {}):
            network.remove()
            removed.append(f"network {network.name}")
    return removed


def _owner_alive(labels: dict[str, str]) -> bool:
    pid, _, start = labels.get(LABEL_OWNER, "0:").partition(":")
    return pid.isdigit() and pid_alive(int(pid), start or None)


class ContainerHandle:
    """A started container; its log goes to `log`, its `outputs` come back when it exits."""

    def __init__(self, container: Any, log: Path, outputs: tuple[Path, ...], memory_mb: int, network: str = "",
                 published: bool = True):
        self.container, self.log, self.outputs, self.memory_mb = container, log, outputs, memory_mb
        self.network, self.published = network, published
        self._code: int | None = None
        self._oom = False
        self.started = int(time.time()) - 1
        self._follower = threading.Thread(target=self._follow, daemon=True)
        self._follower.start()

    def _follow(self) -> None:
        try:
            with self.log.open("ab") as handle:
                for chunk in self.container.logs(stream=True, follow=True):
                    handle.write(chunk)
                    handle.flush()
        except (docker.errors.APIError, requests.RequestException):
            pass  # the container was removed while we read

    def poll(self) -> int | None:
        if self._code is None:
            try:
                self.container.reload()
            except docker.errors.NotFound:
                self._code = -9
                return self._code
            state = self.container.attrs["State"]
            if state["Status"] in ("exited", "dead"):
                self._finish(state)
        return self._code

    def wait(self, timeout: float) -> int:
        if self._code is None:
            try:
                self.container.wait(timeout=timeout)
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                raise subprocess.TimeoutExpired(self.container.name, timeout) from None
            self.container.reload()
            self._finish(self.container.attrs["State"])
        return self._code

    def _finish(self, state: dict) -> None:
        self._code, self._oom = int(state.get("ExitCode", -1)), bool(state.get("OOMKilled"))
        self._follower.join(timeout=5)
        for output in self.outputs:
            try:
                stream, _ = self.container.get_archive(str(output))
            except docker.errors.NotFound:
                continue
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
                member = archive.getmember(output.name)
                output.write_bytes(archive.extractfile(member).read())

    def stop(self, grace: float = 3.0) -> None:
        try:
            if self._code is None:
                self.container.stop(timeout=max(1, int(grace)))
                self.poll()
            self.container.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as error:
            if "removal of container" not in str(error):  # already being removed
                raise
        self._follower.join(timeout=5)

    def where(self) -> dict:
        return {"container": self.container.id}

    def base_url(self, listener: Listener) -> str:
        """The published port on 127.0.0.1 when the run's network publishes one, else the container's address."""
        if self.published:
            return listener.base_url
        return f"http://{container_address(self.container, self.network)}:{APP_PORT}"

    def trouble(self) -> str:
        """Out of memory: the container was killed for it, or the kernel killed a process inside it."""
        if self._oom or self._oom_events():
            return (f"ran out of memory: the app's container may use {self.memory_mb} MiB, and the kernel stopped "
                    "what asked for more")
        return ""

    def _oom_events(self) -> bool:
        try:
            events = self.container.client.api.events(
                since=self.started, until=int(time.time()), decode=True,
                filters={"container": self.container.id, "event": "oom"})
            return any(True for _event in events)
        except (docker.errors.APIError, requests.RequestException):
            return False


class ContainerRuntime:
    """Learner commands in containers from `image` on `network`, limited as the lab says."""

    name = "docker"
    python = "python"

    def __init__(self, client: docker.DockerClient, image: str, network: str, run: RunDirectory,
                 cpus: float, memory_mb: int, pids: int = 512, internal: bool = False):
        self.client, self.image, self.network, self.run = client, image, network, run
        self.internal = internal  # no port is published: the grader reaches the app at its address
        self.cpus, self.memory_mb, self.pids = cpus, memory_mb, pids
        self.handles: list[ContainerHandle] = []

    def environment(self) -> dict[str, str]:
        return {"HOME": "/tmp", "LANG": "C.UTF-8"}

    def listener(self, port: int | None) -> Listener:
        port = port or free_port()
        return Listener(f"0.0.0.0:{APP_PORT}", f"http://127.0.0.1:{port}", port)

    def start(self, name: str, command: list[str], *, log: Path, cwd: Path, env: dict[str, str],
              inputs: tuple[Path, ...] = (), outputs: tuple[Path, ...] = (),
              listener: Listener | None = None) -> ContainerHandle:
        container = self.client.containers.create(
            self.image, command, name=f"nl-{self.run.path.name.removeprefix('run-')}-{name}-{len(self.handles)}",
            working_dir=str(cwd), environment=env, network=self.network, labels=run_labels(self.run),
            nano_cpus=int(self.cpus * 1e9), mem_limit=f"{self.memory_mb}m", memswap_limit=f"{self.memory_mb}m",
            pids_limit=self.pids, user="65534:65534", cap_drop=["ALL"], security_opt=["no-new-privileges"],
            sysctls={"net.ipv6.conf.lo.disable_ipv6": "0"},  # loopback has ::1, as on the learner's machine
            ports={f"{APP_PORT}/tcp": ("127.0.0.1", listener.port)} if listener and not self.internal else {},
        )
        try:
            container.put_archive("/", _archive(self.run.path, inputs))
            container.start()
        except docker.errors.APIError as error:
            container.remove(force=True)
            if listener and ("port is already allocated" in str(error) or "address already in use" in str(error)):
                raise PortTaken(str(error)) from None
            raise
        handle = ContainerHandle(container, log, outputs, self.memory_mb, self.network, not self.internal)
        self.handles.append(handle)
        return handle

    def close(self) -> None:
        """Stop every container this runtime started, all at once (each mostly waits for the engine)."""
        if not self.handles:
            return
        with ThreadPoolExecutor(len(self.handles)) as stopping:
            for stopped in [stopping.submit(handle.stop, grace=2.0) for handle in reversed(self.handles)]:
                stopped.result()


def container_address(container: Any, network: str) -> str:
    """A container's IPv4 address on `network` (a network the run made itself)."""
    container.reload()
    return container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]


def _archive(run_path: Path, inputs: tuple[Path, ...]) -> bytes:
    """A tar of `inputs` at their absolute paths.

    The run folder and its parents are world-writable and sticky, like /tmp (often one of them, whose mode
    the archive would otherwise replace): outputs are written there, and the unprivileged user's HOME is /tmp.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        parents = [parent for parent in reversed(run_path.parents) if parent != Path("/")]
        for folder in [*parents, run_path]:
            info = tarfile.TarInfo(str(folder).lstrip("/"))
            info.type, info.mode = tarfile.DIRTYPE, 0o1777
            archive.addfile(info)
        for path in inputs:
            archive.add(str(path), arcname=str(path).lstrip("/"), filter=_readable)
    return buffer.getvalue()


def _readable(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode |= 0o555 if info.isdir() else 0o444
    return info
