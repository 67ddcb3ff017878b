"""Load with Locust: run headless in its own process, get its figures back as data.

Locust patches the standard library with gevent when it is imported, so it never runs in the
grader's process: `run_load` starts `python -m locust` on a lab's hidden locustfile against a
service on this machine, for a bounded time, shows a live progress line from its CSV history,
and reads its final statistics (per endpoint and in total: requests, failures, p50, p95, p99)
and the errors behind its failures from the CSV and JSON files it writes. Requests per second
are computed from the run's real duration (first request to last), not from the time asked for.
"""

from __future__ import annotations

import ast
import csv
import ipaddress
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from grader.calibration import cpu_available
from grader.processes import stop_group

LOOPBACK_NAMES = ("localhost",)
CATCH_RESPONSE_ERROR = re.compile(r"CatchResponseError\((.*)\)", re.DOTALL)
GRACE_SECONDS = 30  # locust's own start and stop, beyond the run time


@dataclass(frozen=True)
class LoadProfile:
    """How many users, how fast they arrive, for how long."""

    users: int
    spawn_rate: float
    seconds: int


@dataclass(frozen=True)
class EndpointFigures:
    name: str  # "GET /api/books/" or "total"
    requests: int
    failures: int
    p50_ms: float | None  # None when nothing completed
    p95_ms: float | None
    p99_ms: float | None

    @property
    def completed(self) -> int:
        return self.requests - self.failures


@dataclass(frozen=True)
class LoadFailure:
    """One row of Locust's failures table: a request, the error it met, and how many times."""

    request: str  # "GET /api/books/", as the endpoint is named in the figures
    error: str  # an exception as Locust wrote it, or the words the locustfile failed a request with
    times: int


@dataclass(frozen=True)
class LoadResult:
    endpoints: tuple[EndpointFigures, ...]
    total: EndpointFigures
    duration: float  # seconds from the first request sent to the last one answered
    profile: LoadProfile
    failures: tuple[LoadFailure, ...] = ()  # most frequent first
    # The share of the machine's CPU a probe got just before and just after the run (1.0 idle; None unmeasured):
    # a machine busy with other work serves the same code slower (grader.calibration.cpu_available).
    cpu_available: tuple[float | None, float | None] | None = None

    @property
    def rps(self) -> float:
        """Completed requests per second of real duration."""
        return self.total.completed / self.duration if self.duration > 0 else 0.0

    @property
    def completed_nothing(self) -> bool:
        """Not one request answered without failure: as slow as a service can be, not an error of the run."""
        return self.total.completed == 0

    def to_json(self) -> dict:
        return {"profile": asdict(self.profile), "duration": round(self.duration, 3), "rps": round(self.rps, 2),
                "total": asdict(self.total), "endpoints": [asdict(e) for e in self.endpoints]}


class LoadError(Exception):
    """Locust itself could not run (a broken locustfile, a missing dependency): the check's own problem."""


DATA_VARIABLE = "LAB_LOAD_DATA"
HOSTS_VARIABLE = "LAB_LOAD_HOSTS"


def run_load(locustfile: Path, base_url: str | tuple[str, ...] | list[str], profile: LoadProfile, work: Path,
             progress: Callable[[str], None] | None = None, data: Any = None, drain_seconds: int = 10) -> LoadResult:
    """Run the locustfile's users against `base_url` (loopback only) for the profile's time; return the figures.

    Several base URLs are the replicas of one service: Locust's host is the first, and the locustfile finds
    them all, to spread its requests, as a JSON list in $LAB_LOAD_HOSTS. When the time is up, the requests
    under way may finish for up to `drain_seconds` and are counted, so the slowest requests of a slow service
    are not left out of its figures. `data` (ids to ask for, say) reaches the locustfile as a JSON file
    named by $LAB_LOAD_DATA.
    """
    hosts = [base_url] if isinstance(base_url, str) else list(base_url)
    for host in hosts:
        _require_loopback(host)
    base_url = hosts[0]
    work.mkdir(parents=True, exist_ok=True)
    prefix, summary, log = work / "locust", work / "locust.json", work / "locust.log"  # locust adds ".json"
    command = [
        sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--host", base_url,
        "--users", str(profile.users), "--spawn-rate", str(profile.spawn_rate), "--run-time", f"{profile.seconds}s",
        "--stop-timeout", str(drain_seconds), "--csv", str(prefix), "--json-file", str(prefix), "--only-summary",
        "--exit-code-on-error", "0", "--loglevel", "WARNING", "--skip-log-setup",
    ]
    env = {key: value for key, value in os.environ.items() if key != "PYTHONSTARTUP"}
    env[HOSTS_VARIABLE] = json.dumps(hosts)
    if data is not None:
        data_file = work / "load-data.json"
        data_file.write_text(json.dumps(data))
        env[DATA_VARIABLE] = str(data_file)
    available_before = cpu_available()
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=locustfile.parent, stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    deadline = time.monotonic() + profile.seconds + drain_seconds + GRACE_SECONDS
    try:
        while process.poll() is None:
            if time.monotonic() > deadline:
                raise LoadError(f"locust did not stop within {profile.seconds + drain_seconds + GRACE_SECONDS} s:\n"
                                f"{_tail(log)}")
            if progress is not None:
                line = _progress_line(Path(f"{prefix}_stats_history.csv"), profile)
                if line:
                    progress(line)
            try:
                process.wait(timeout=1.0)  # a progress line a second, and not a moment lost once it ends
            except subprocess.TimeoutExpired:
                pass
    finally:
        if process.poll() is None:
            stop_group(process.pid, grace=3.0)
    if process.returncode != 0 or not summary.is_file():
        raise LoadError(f"locust failed (exit {process.returncode}):\n{_tail(log)}")
    figures = read_figures(Path(f"{prefix}_stats.csv"), summary, profile)
    return replace(figures, failures=read_failures(Path(f"{prefix}_failures.csv")),
                   cpu_available=(available_before, cpu_available()))


def read_figures(stats_csv: Path, summary_json: Path, profile: LoadProfile) -> LoadResult:
    """The figures of a finished run, from locust's `_stats.csv` (percentiles) and `--json-file` (timings)."""
    rows = {_row_name(row): row for row in csv.DictReader(stats_csv.open(newline=""))}
    entries = json.loads(summary_json.read_text())
    endpoints = tuple(_figures(name, row) for name, row in rows.items() if name != "total")
    total = _figures("total", rows["total"]) if "total" in rows else EndpointFigures("total", 0, 0, None, None, None)
    starts = [entry["start_time"] for entry in entries if entry.get("num_requests")]
    ends = [entry["last_request_timestamp"] for entry in entries if entry.get("last_request_timestamp")]
    duration = max(ends) - min(starts) if starts and ends else 0.0
    return LoadResult(endpoints, total, max(duration, 0.0), profile)


def read_failures(failures_csv: Path) -> tuple[LoadFailure, ...]:
    """Locust's `_failures.csv`, most frequent first; none when it wrote no such file."""
    if not failures_csv.is_file():
        return ()
    with failures_csv.open(newline="") as handle:
        rows = [LoadFailure(f"{row['Method']} {row['Name']}".strip(), _error_words(row["Error"]),
                            int(row["Occurrences"])) for row in csv.DictReader(handle)]
    return tuple(sorted(rows, key=lambda failure: -failure.times))


def _error_words(error: str) -> str:
    """A failure the locustfile declared (`response.failure(...)`) in its own words, not as Locust's repr of it."""
    match = CATCH_RESPONSE_ERROR.fullmatch(error.strip())
    if match:
        try:
            words = ast.literal_eval(match.group(1))
        except (ValueError, SyntaxError):
            return error
        if isinstance(words, str):
            return words
    return error


def _row_name(row: dict) -> str:
    return "total" if row["Name"] == "Aggregated" else f"{row['Type']} {row['Name']}".strip()


def _figures(name: str, row: dict) -> EndpointFigures:
    requests, failures = int(row["Request Count"]), int(row["Failure Count"])

    def percentile(column: str) -> float | None:
        value = row.get(column, "N/A")
        return None if requests == 0 or value in ("N/A", "") else float(value)

    return EndpointFigures(name, requests, failures, percentile("50%"), percentile("95%"), percentile("99%"))


def _progress_line(history: Path, profile: LoadProfile) -> str:
    try:
        lines = history.read_text().splitlines()
    except OSError:
        return ""
    if len(lines) < 2:
        return ""
    last = next(csv.DictReader([lines[0], lines[-1]]))
    if last.get("Name") != "Aggregated":
        return ""
    return (f"load: {last['User Count']}/{profile.users} users, {float(last['Requests/s']):.0f} req/s, "
            f"{last['Total Request Count']} requests, {last['Total Failure Count']} failures, "
            f"p50 {last['50%']} ms")


def _require_loopback(base_url: str) -> None:
    """Load goes to this machine's loopback, or to a container on an internal network a run made itself."""
    host = urlsplit(base_url).hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host in LOOPBACK_NAMES
    if not loopback and not _on_an_internal_run_network(host):
        raise ValueError(f"load is only ever sent to this machine's loopback or to a run's own internal network, "
                         f"not to {base_url}")


def _on_an_internal_run_network(host: str) -> bool:
    """Whether `host` is a container's address on an internal network that a run labelled as its own."""
    try:
        ipaddress.ip_address(host)
        import docker

        from grader.providers.containers import LABEL_RUN

        client = docker.from_env(timeout=5)
    except Exception:  # noqa: BLE001 - not an address, or no engine: not such a network
        return False
    try:
        for network in client.networks.list(filters={"label": LABEL_RUN}):
            attrs = client.networks.get(network.id).attrs
            if attrs.get("Internal") and any(
                    endpoint.get("IPv4Address", "").split("/")[0] == host
                    for endpoint in (attrs.get("Containers") or {}).values()):
                return True
        return False
    finally:
        client.close()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
