"""Providers: where a run's PostgreSQL and Redis come from.

`local` starts them as child processes (the embedded default), `external` uses
servers named by LAB_DATABASE_URL and LAB_REDIS_URL (CI service containers).
Each yields `Services` for one run and removes what it made afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from grader.errors import UsageProblem
from grader.labspec import LabSpec
from grader.processes import RunDirectory

PROVIDERS = ("auto", "local", "external", "docker")


@dataclass(frozen=True)
class Services:
    """What the learner's app and the checks connect to."""

    database: dict[str, Any]  # psycopg / Django keys: host, port, user, password, dbname
    redis_url: str
    provider: str


@dataclass(frozen=True)
class TemplateRecipe:
    """How to make the migrated template database: its cache key and the function that migrates."""

    key: str
    migrate: Callable[[dict[str, Any]], None]


class Provider(Protocol):
    name: str

    def provision(self, lab: LabSpec, run: RunDirectory, recipe: TemplateRecipe) -> AbstractContextManager[Services]:
        ...


def get_provider(name: str | None) -> Provider:
    """The provider called `name` (or $LAB_PROVIDER, or auto)."""
    name = (name or os.environ.get("LAB_PROVIDER") or "auto").strip().lower()
    if name not in PROVIDERS:
        raise UsageProblem(f"Unknown provider {name!r}.", f"Use one of: {', '.join(PROVIDERS)}.")
    if name == "docker":
        raise UsageProblem("The docker provider is not available in this version of the kit yet.",
                           "Use --provider local (PostgreSQL and Redis as local processes) or --provider external.")
    if name == "external":
        from grader.providers.external import ExternalProvider

        return ExternalProvider.from_environment()
    from grader.providers.local import LocalProvider

    return LocalProvider()


def describe(services: Services) -> Iterator[str]:
    yield f"postgres {services.database['host']}:{services.database['port']}/{services.database['dbname']}"
    yield f"redis {services.redis_url}"
