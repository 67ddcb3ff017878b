"""`lab doctor`: what this machine offers for grading, and what a check would use and why."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from grader import __version__
from grader.errors import LabError
from grader.paths import cache_dir
from grader.providers import binaries, get_provider, resolve
from grader.providers.postgres import server_user

ENGINE_TIMEOUT_SECONDS = 3


@dataclass(frozen=True)
class Engine:
    """A Docker engine, if one answers."""

    reachable: bool
    detail: str  # the version when it answers, else why not
    host: str


@dataclass
class Diagnosis:
    kit: str
    python: str
    machine: str
    binaries_policy: str
    postgres: list[binaries.Candidate]
    redis: list[binaries.Candidate]
    engine: Engine
    external: dict[str, bool]
    server_user: str | None
    cache: str
    provider: str | None = None
    reason: str = ""
    servers: dict[str, str] = field(default_factory=dict)
    problem: str = ""
    todo: str = ""

    @property
    def usable(self) -> bool:
        return not self.problem

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for service in ("postgres", "redis"):
            data[service] = [{**asdict(c), "path": str(c.path), "chosen": self.chosen(c)} for c in getattr(self, service)]
        data["usable"] = self.usable
        return data

    def chosen(self, candidate: binaries.Candidate) -> bool:
        """Whether the local provider would run this one."""
        if self.provider != "local" or not self.usable:
            return False
        listed = self.postgres if candidate.service == "postgres" else self.redis
        return binaries.choose(listed, self.binaries_policy) == candidate


def diagnose(provider_name: str | None = None) -> Diagnosis:
    """Look at everything; never raise for what is missing, record it."""
    user = None
    try:
        account = server_user()
        user = account.pw_name if account else None
    except LabError:
        user = "(none: no postgres or nobody user)"
    diagnosis = Diagnosis(
        kit=__version__, python=sys.version.split()[0], machine=f"{platform.system()} {platform.machine()}",
        binaries_policy=os.environ.get("LAB_BINARIES", "auto").strip().lower() or "auto",
        postgres=binaries.postgres_candidates(), redis=binaries.redis_candidates(), engine=docker_engine(),
        external={name: bool(os.environ.get(name)) for name in ("LAB_DATABASE_URL", "LAB_REDIS_URL")},
        server_user=user, cache=str(cache_dir()),
    )
    try:
        diagnosis.provider, diagnosis.reason = resolve(provider_name)
        provider = get_provider(provider_name)
        if diagnosis.provider == "external":
            provider._admin().close()  # noqa: SLF001 - the doctor may look inside: can we connect at all?
        diagnosis.servers = provider.servers()
    except LabError as problem:
        diagnosis.problem, diagnosis.todo = problem.what, problem.todo
    return diagnosis


def docker_engine() -> Engine:
    """Ask the engine DOCKER_HOST names (or the default socket) for its version, briefly."""
    import docker

    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=ENGINE_TIMEOUT_SECONDS)
        try:
            version = client.version()
        finally:
            client.close()
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine here", said in words
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "FileNotFoundError" in reason or "No such file" in reason:
            reason = "no engine socket there: start dockerd, or set DOCKER_HOST to the engine's address"
        return Engine(False, reason[:200], host)
    return Engine(True, f"Docker {version.get('Version', '?')} (API {version.get('ApiVersion', '?')})", host)
