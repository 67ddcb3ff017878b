"""The local provider: PostgreSQL and Redis as child processes on loopback."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from grader.labspec import LabSpec
from grader.paths import cache_dir
from grader.processes import RunDirectory
from grader.providers import Services, TemplateRecipe
from grader.providers.postgres import PostgresServer, find_postgres, initdb
from grader.providers.redis import RedisServer, find_redis_server
from grader.runtime import LocalRuntime
from grader.sandbox import sandbox_description

TEMPLATE_DB = "lab"
TEMPLATE_LAYOUT = "app-role"
TEMPLATES_KEPT = 6  # per lab: a learner's workspace, the starter and the reference, and a few more  # templates whose tables the app's own role owns (older ones: the superuser)


class LocalProvider:
    """PostgreSQL from a cached, migrated template cluster, and redis-server, both per run."""

    name = "local"

    def __init__(self) -> None:
        self.postgres = find_postgres()
        self.redis_server = find_redis_server()

    def servers(self) -> dict[str, str]:
        return {"postgres": f"PostgreSQL {self.postgres.version} from {self.postgres.source} ({self.postgres.bindir})",
                "redis": f"redis-server {self.redis_server.version} from {self.redis_server.source} "
                         f"({self.redis_server.path})",
                "app": sandbox_description()}

    @contextmanager
    def provision(self, lab: LabSpec, run: RunDirectory, recipe: TemplateRecipe,
                  graded: bool = True) -> Iterator[Services]:
        template = self._template_cluster(lab, run, recipe)
        postgres = PostgresServer(self.postgres, template, run, settings=lab.postgres.server_settings())
        redis_server = RedisServer(str(self.redis_server.path), run)
        with postgres, redis_server:
            yield Services(database=postgres.params(TEMPLATE_DB), redis_url=redis_server.get_connection_url(),
                           provider=self.name, runtime=LocalRuntime(run),
                           app_database=postgres.app_params(TEMPLATE_DB))

    def _clusters(self) -> Path:
        path = cache_dir() / "postgres"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _base_cluster(self, run: RunDirectory) -> Path:
        """An initialised, empty cluster for this PostgreSQL version, made once."""
        base = self._clusters() / f"pg{self.postgres.version}-base"
        if not base.is_dir():
            staging = run.path / "initdb-data"
            initdb(self.postgres, staging, run.path / "initdb.log")
            _publish(staging, base)
        return base

    def _template_cluster(self, lab: LabSpec, run: RunDirectory, recipe: TemplateRecipe) -> Path:
        """A cluster whose `lab` database is migrated, cached by PostgreSQL version and migration hash."""
        cached = self._clusters() / f"pg{self.postgres.version}-{lab.slug}-{recipe.key}-{TEMPLATE_LAYOUT}"
        if cached.is_dir():
            os.utime(cached)  # recently used: the last to be pruned
            return cached
        base = self._base_cluster(run)
        with PostgresServer(self.postgres, base, run, name="template") as server:
            server.execute(f"CREATE DATABASE {TEMPLATE_DB}")
            server.give_to_app(TEMPLATE_DB)
            recipe.migrate(server.app_params(TEMPLATE_DB), server.params(TEMPLATE_DB), LocalRuntime(run))
        _publish(run.path / "template-data", cached)
        self._prune(lab)
        return cached

    def _prune(self, lab: LabSpec) -> None:
        """Keep the newest few templates of a lab (each graded folder makes its own)."""
        templates = sorted(self._clusters().glob(f"pg{self.postgres.version}-{lab.slug}-*-{TEMPLATE_LAYOUT}"),
                           key=lambda path: path.stat().st_mtime, reverse=True)
        for old in templates[TEMPLATES_KEPT:]:
            shutil.rmtree(old, ignore_errors=True)


def _publish(source: Path, target: Path) -> None:
    """Copy a stopped cluster into the cache atomically, so a concurrent run never sees half of it."""
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
    try:
        shutil.copytree(source, staging / "cluster", symlinks=True)
        try:
            (staging / "cluster").rename(target)
        except OSError:
            pass  # another run published the same cluster first
    finally:
        shutil.rmtree(staging, ignore_errors=True)
