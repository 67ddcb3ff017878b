"""The external provider: servers named by LAB_DATABASE_URL and LAB_REDIS_URL (e.g. CI service containers).

Each run gets its own database, copied from a migrated template database that
stays on the server, named by the lab and the migration hash.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from grader.errors import EnvironmentProblem
from grader.labspec import LabSpec
from grader.processes import RunDirectory
from grader.providers import Services, TemplateRecipe
from grader.runtime import LocalRuntime
from grader.sandbox import sandbox_description

MAX_SLUG_IN_NAME = 32  # nl_tpl_ (7) + 32 + _ + 16 hex: 56 of PostgreSQL's 63 bytes


class ExternalProvider:
    name = "external"

    def __init__(self, database_url: str, redis_url: str):
        given = conninfo_to_dict(database_url)
        self.server = {"host": given.get("host", "127.0.0.1"), "port": int(given.get("port", 5432)),
                       "user": given.get("user", "postgres"), "password": given.get("password", ""),
                       "dbname": given.get("dbname", "postgres")}
        self.redis_url = redis_url

    @classmethod
    def from_environment(cls) -> ExternalProvider:
        database_url, redis_url = os.environ.get("LAB_DATABASE_URL"), os.environ.get("LAB_REDIS_URL")
        if not database_url or not redis_url:
            raise EnvironmentProblem(
                "The external provider needs LAB_DATABASE_URL and LAB_REDIS_URL.",
                "Set them, e.g. LAB_DATABASE_URL=postgresql://postgres:postgres@127.0.0.1:5432/postgres "
                "LAB_REDIS_URL=redis://127.0.0.1:6379/0, or use --provider local.",
            )
        try:
            return cls(database_url, redis_url)
        except psycopg.ProgrammingError as exc:
            raise EnvironmentProblem(f"LAB_DATABASE_URL is not a PostgreSQL URL: {exc}",
                                     "Use the form postgresql://USER:PASSWORD@HOST:PORT/DBNAME.") from None

    def servers(self) -> dict[str, str]:
        return {"postgres": f"LAB_DATABASE_URL ({self.server['host']}:{self.server['port']})",
                "redis": "LAB_REDIS_URL", "app": sandbox_description()}

    def _admin(self) -> psycopg.Connection:
        try:
            return psycopg.connect(**self.server, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise EnvironmentProblem(f"Cannot connect to LAB_DATABASE_URL: {exc}",
                                     "Check the URL and that the server is up.") from None

    @contextmanager
    def provision(self, lab: LabSpec, run: RunDirectory, recipe: TemplateRecipe,
                  graded: bool = True) -> Iterator[Services]:
        # PostgreSQL cuts names at 63 bytes: the slug is cut to keep the hash (and a building name) whole.
        template = f"nl_tpl_{lab.slug.replace('-', '_')[:MAX_SLUG_IN_NAME]}_{recipe.key[:16]}"
        database = f"nl_run_{secrets.token_hex(6)}"
        with self._admin() as admin:
            exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (template,)).fetchone()
            if not exists:
                building = f"nl_bld_{recipe.key[:16]}_{secrets.token_hex(3)}"
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(building)))
                try:
                    recipe.migrate(self._params(building), self._params(building), LocalRuntime(run))
                    admin.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                        sql.Identifier(building), sql.Identifier(template)))
                except BaseException:
                    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(building)))
                    raise
            admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(database), sql.Identifier(template)))
        try:
            yield Services(database=self._params(database), redis_url=self.redis_url, provider=self.name,
                           runtime=LocalRuntime(run))
        finally:
            with self._admin() as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))

    def _params(self, dbname: str) -> dict[str, Any]:
        return {**self.server, "dbname": dbname}
