"""Providers: where a run's PostgreSQL and Redis come from.

`local` starts them as child processes (the embedded default), `external` uses
servers named by LAB_DATABASE_URL and LAB_REDIS_URL (CI service containers).
Each yields `Services` for one run and removes what it made afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from grader.errors import UsageProblem
from grader.labspec import LabSpec
from grader.processes import RunDirectory

if TYPE_CHECKING:
    from grader.runtime import Runtime

from grader.names import PROVIDERS  # noqa: F401 - re-exported


@dataclass(frozen=True)
class Services:
    """What the checks connect to, what the learner's app connects to, and where the app runs."""

    database: dict[str, Any]  # psycopg / Django keys: host, port, user, password, dbname (as the checks reach it)
    redis_url: str
    provider: str
    runtime: Runtime
    app_database: dict[str, Any] | None = None  # as the app reaches it, when that differs (a container network)
    app_redis_url: str | None = None
    # The services a check may stop and start again on the same address (grader.runner.ServiceSwitch), by name.
    switches: Mapping[str, Any] = field(default_factory=dict)

    def for_app(self) -> tuple[dict[str, Any], str]:
        return self.app_database or self.database, self.app_redis_url or self.redis_url


@dataclass(frozen=True)
class TemplateRecipe:
    """How to make the migrated template database: its cache key and the function that migrates."""

    key: str
    # (the database as the runtime's app reaches it, the database as the grader reaches it, the runtime)
    migrate: Callable[[dict[str, Any], dict[str, Any], Runtime], None]


class Provider(Protocol):
    name: str

    def servers(self) -> dict[str, str]:
        """What serves each service, in words (kept in the result: which PostgreSQL graded this run)."""
        ...

    def provision(self, lab: LabSpec, run: RunDirectory, recipe: TemplateRecipe,
                  graded: bool = True) -> AbstractContextManager[Services]:
        """The run's services; `graded` (not `lab run`): where a provider can, the app reaches nothing else."""
        ...


def resolve(name: str | None) -> tuple[str, str]:
    """The provider `name` (or $LAB_PROVIDER, or auto) stands for, and why, in words."""
    given = name or os.environ.get("LAB_PROVIDER")
    chosen = (given or "auto").strip().lower()
    if chosen not in PROVIDERS:
        raise UsageProblem(f"Unknown provider {chosen!r}.", f"Use one of: {', '.join(PROVIDERS)}.")
    asked = f"--provider or LAB_PROVIDER says {chosen}" if given else "no --provider or LAB_PROVIDER, so auto"
    if chosen == "auto":
        answers, detail = engine_answers()
        if answers:
            return "docker", f"{asked}, and a Docker engine answers ({detail})"
        return "local", f"{asked}, and no Docker engine answers ({detail})"
    return chosen, asked


def engine_answers(timeout: float = 3.0) -> tuple[bool, str]:
    """Whether a Docker engine answers at DOCKER_HOST (or the default socket), with its version or why not."""
    import docker

    try:
        client = docker.from_env(timeout=timeout)
        try:
            version = client.version()
        finally:
            client.close()
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine here", said in words
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "FileNotFoundError" in reason or "No such file" in reason:
            reason = "no engine socket at " + os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        return False, reason[:200]
    return True, f"Docker {version.get('Version', '?')}"


def get_provider(name: str | None) -> Provider:
    """The provider called `name` (or $LAB_PROVIDER, or auto)."""
    chosen, _reason = resolve(name)
    if chosen == "docker":
        from grader.providers.docker import DockerProvider

        return DockerProvider()
    if chosen == "external":
        from grader.providers.external import ExternalProvider

        return ExternalProvider.from_environment()
    from grader.providers.local import LocalProvider

    return LocalProvider()
