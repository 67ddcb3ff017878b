"""Figures sampled while something runs (connections, memory), and a replica's memory."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any


class Sampler:
    """Calls `measure` every `every` seconds in a thread while a block runs; keeps the samples."""

    def __init__(self, measure: Callable[[], float], every: float = 0.05):
        self.measure, self.every = measure, every
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(float(self.measure()))
            except Exception:  # noqa: BLE001 - a sample that could not be read is left out
                pass
            self._stop.wait(self.every)

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def peak(self) -> float | None:
        return max(self.samples) if self.samples else None


def replica_memory_mb(where: dict[str, Any], peak: bool = False) -> float:
    """The memory a replica uses now, in MB: the RSS of its processes (a local server and every descendant),
    or its container's usage less the page cache it could give back.

    With `peak`, a container's highest usage since it started where the engine keeps one (cgroup v1's
    max_usage): the engine refreshes its figures about once a second, so a sampler alone can miss a peak
    that lasts less. Local processes are read directly, often enough to see it."""
    if "container" in where:
        import docker

        direct = _cgroup_memory_mb(where["container"], peak)
        if direct is not None:
            return direct
        stats = docker.from_env().containers.get(where["container"]).stats(stream=False, one_shot=True)
        memory = stats.get("memory_stats", {})
        extra = memory.get("stats", {})
        cache = extra.get("total_inactive_file", extra.get("inactive_file", 0))
        used = max(memory.get("usage", 0), memory.get("max_usage", 0)) if peak else memory.get("usage", 0)
        return (used - cache) / 2**20
    return sum(_rss_kb(pid) for pid in _process_tree(int(where["pid"]))) / 1024


CGROUP_FOLDERS = ("/sys/fs/cgroup/memory/docker/{id}", "/sys/fs/cgroup/memory/system.slice/docker-{id}.scope",
                  "/sys/fs/cgroup/system.slice/docker-{id}.scope", "/sys/fs/cgroup/docker/{id}")


def _cgroup_memory_mb(container_id: str, peak: bool) -> float | None:
    """A container's memory read from its cgroup on this machine, as the engine reports it (usage less the
    inactive page cache; with `peak`, the high-water mark where the kernel keeps one), without the engine's
    stats call, which waits up to a second for its next sample. None when the engine runs elsewhere."""
    for pattern in CGROUP_FOLDERS:
        folder = Path(pattern.format(id=container_id))
        try:
            stat = dict(line.split() for line in (folder / "memory.stat").read_text().splitlines() if " " in line)
            if (folder / "memory.usage_in_bytes").exists():  # cgroup v1
                used = int((folder / "memory.usage_in_bytes").read_text())
                if peak:
                    used = max(used, int((folder / "memory.max_usage_in_bytes").read_text()))
                cache = int(stat.get("total_inactive_file", 0))
            else:  # cgroup v2
                used = int((folder / "memory.current").read_text())
                if peak and (folder / "memory.peak").exists():
                    used = max(used, int((folder / "memory.peak").read_text()))
                cache = int(stat.get("inactive_file", 0))
        except (OSError, ValueError):
            continue
        return (used - cache) / 2**20
    return None


def _process_tree(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(parents.get(pid, []))
    return tree


def _rss_kb(pid: int) -> int:
    try:
        line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0
    return int(line.split()[1])
