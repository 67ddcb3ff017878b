"""lab.toml: a lab's declarative spec, parsed into a typed object.

Every problem in a lab.toml is a LabSpecError that names the file, the key and
what was expected, so an author can fix it without reading this module.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from grader.errors import LabError, UsageProblem

FORMAT_VERSION = 1
DIFFICULTIES = ("beginner", "intermediate", "advanced")
# A lab "in-progress" is in the tree, but not in the catalog: `lab list`, `lab verify` with no slug and the
# test suite pass it by; an author grades it by name (`lab verify SLUG`, `lab start SLUG`), as Exercism's "wip".
STATUSES = ("active", "in-progress")
SERVICES = ("postgres", "redis")
SLUG_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
CHECK_ID_RE = SLUG_RE
SETTING_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
OVERLAY_SETTINGS = frozenset({"DATABASES", "CACHES", "ROOT_URLCONF", "ALLOWED_HOSTS", "REDIS_URL"})
"""Settings the grader's overlay sets itself: a lab cannot override them."""


class LabSpecError(LabError):
    """A lab.toml that does not say what the kit needs."""

    def __init__(self, path: Path, key: str, problem: str):
        self.path, self.key, self.problem = path, key, problem
        super().__init__(f"{path}: `{key}` {problem}", "Fix that key; docs/lab-format.md describes every key.")


@dataclass(frozen=True)
class CheckSpec:
    id: str
    title: str
    weight: int = 1
    required: bool = True
    depends_on: tuple[str, ...] = ()
    hint: str = ""
    alone: bool = False  # runs while no other check runs: it measures speed or memory
    locks: tuple[str, ...] = ()  # checks that name a common lock never run at once (they share state)


@dataclass(frozen=True)
class ServerShape:
    replicas: int = 1  # separate servers (processes, or containers), as behind a load balancer
    workers: int = 2
    threads: int = 4
    project_config: bool = False  # the project's gunicorn.conf.py may set workers and threads
    cpus: float = 2.0  # the app's container, under the docker provider
    memory_mb: int = 1024


@dataclass(frozen=True)
class PostgresSettings:
    """How the run's PostgreSQL differs from the kit's defaults (a tight connection limit, say)."""

    max_connections: int | None = None

    def server_settings(self) -> dict[str, str]:
        return {"max_connections": str(self.max_connections)} if self.max_connections else {}


@dataclass(frozen=True)
class Limits:
    check_seconds: int = 240
    startup_seconds: int = 45
    request_seconds: int = 15


@dataclass(frozen=True)
class Thresholds:
    """A load check's calibrated limits: the learner's figures against the reference solution's."""

    min_rps_ratio: float = 1 / 3
    max_p50_ratio: float = 3.0
    max_failures: int = 0


@dataclass(frozen=True)
class LoadSpec:
    """A lab's load profile: Locust users of its hidden locustfile, judged against the reference's figures."""

    users: int
    spawn_rate: float
    seconds: int
    locustfile: str  # beside the lab's hidden checks
    thresholds: Thresholds


@dataclass(frozen=True)
class DataSpec:
    """A lab's data at realistic volume, COPYed in once per template after one of the starter's migrations."""

    module: str  # beside the lab's hidden checks
    app: str  # the data is loaded once this migration is applied, before the learner's later ones
    migration: str

    @property
    def after(self) -> str:
        return f"{self.app}.{self.migration}"


@dataclass(frozen=True)
class BenchTargets:
    """What `make bench` holds this lab to; None means no target."""

    solution_seconds: int | None = None  # median of warm `lab check` runs on the reference solution
    load_speedup: float | None = None  # the reference's RPS and p50 against the starter's, under the same load
    starter_failure_rate: float | None = None  # % of the starter's requests under load that must fail (0 for the reference)


@dataclass(frozen=True)
class LabSpec:
    path: Path
    slug: str
    version: str
    title: str
    summary: str
    difficulty: str
    estimated_minutes: int
    concepts: tuple[str, ...]
    services: tuple[str, ...]
    hints: tuple[str, ...]
    checks: tuple[CheckSpec, ...]
    starter_fails: frozenset[str]
    settings_module: str
    server: ServerShape = field(default_factory=ServerShape)
    limits: Limits = field(default_factory=Limits)
    bench: BenchTargets = field(default_factory=BenchTargets)
    load: LoadSpec | None = None
    data: DataSpec | None = None
    postgres: PostgresSettings = field(default_factory=PostgresSettings)
    app_overrides: tuple[tuple[str, Any], ...] = ()  # Django settings set after the learner's, while graded
    parallel: int = 1  # at most this many hidden checks run at once ([grading] parallel)
    status: str = "active"  # or "in-progress": not in the catalog (see STATUSES)

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def check_ids(self) -> tuple[str, ...]:
        return tuple(check.id for check in self.checks)

    def check(self, check_id: str) -> CheckSpec:
        return next(check for check in self.checks if check.id == check_id)

    def require_checks(self, check_ids: tuple[str, ...]) -> None:
        """Refuse check ids this lab does not have (`--only`), naming the ones it has."""
        unknown = [check_id for check_id in check_ids if check_id not in self.check_ids]
        if unknown:
            raise UsageProblem(f"{self.slug} has no check {', '.join(repr(check_id) for check_id in unknown)}.",
                               f"Its checks are: {', '.join(self.check_ids)}.")

    @property
    def max_score(self) -> int:
        return sum(check.weight for check in self.checks)

    def with_limits(self, check_seconds: int | None = None, request_seconds: int | None = None,
                    startup_seconds: int | None = None) -> LabSpec:
        """This lab with some time limits replaced (None keeps lab.toml's)."""
        return replace(self, limits=replace(
            self.limits,
            check_seconds=check_seconds or self.limits.check_seconds,
            request_seconds=request_seconds or self.limits.request_seconds,
            startup_seconds=startup_seconds or self.limits.startup_seconds,
        ))


class _Reader:
    """Typed access to one table of a lab.toml, with errors that name the key."""

    def __init__(self, path: Path, table: dict[str, Any], prefix: str = ""):
        self.path, self.table, self.prefix = path, table, prefix

    def error(self, key: str, problem: str) -> LabSpecError:
        return LabSpecError(self.path, self.prefix + key, problem)

    def _get(self, key: str, default: Any, required: bool) -> Any:
        if key not in self.table:
            if required:
                raise self.error(key, "is missing")
            return default
        return self.table[key]

    def string(self, key: str, default: str | None = None, pattern: re.Pattern[str] | None = None) -> str:
        value = self._get(key, default, default is None)
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"must be a non-empty string, got {value!r}")
        if pattern and not pattern.match(value):
            raise self.error(key, f"must be lowercase words joined by hyphens (like 'race-conditions'), got {value!r}")
        return value

    def integer(self, key: str, default: int | None = None, minimum: int = 0) -> int:
        value = self._get(key, default, default is None)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(key, f"must be an integer >= {minimum}, got {value!r}")
        return value

    def number(self, key: str, default: float, minimum: float) -> float:
        value = self._get(key, default, False)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            raise self.error(key, f"must be a number >= {minimum}, got {value!r}")
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, default, False)
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {value!r}")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str:
        value = self.string(key, default)
        if value not in choices:
            raise self.error(key, f"must be one of {', '.join(choices)}; got {value!r}")
        return value

    def strings(self, key: str, default: list[str] | None = None) -> tuple[str, ...]:
        value = self._get(key, default, default is None)
        if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
            raise self.error(key, f"must be a list of non-empty strings, got {value!r}")
        return tuple(value)

    def subtable(self, key: str) -> _Reader:
        value = self._get(key, {}, False)
        if not isinstance(value, dict):
            raise self.error(key, f"must be a table ([{key}]), got {value!r}")
        return _Reader(self.path, value, f"{self.prefix}{key}.")

    def known_keys(self, keys: set[str]) -> None:
        for key in self.table:
            if key not in keys:
                raise self.error(key, f"is not a known key; expected one of {', '.join(sorted(keys))}")


def load_lab(path: Path) -> LabSpec:
    """Parse and validate one lab.toml."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise LabSpecError(path, "(file)", f"is not valid TOML: {exc}") from None
    except OSError as exc:
        raise LabSpecError(path, "(file)", f"cannot be read: {exc.strerror}") from None

    top = _Reader(path, data)
    top.known_keys({
        "format_version", "slug", "version", "status", "title", "summary", "difficulty", "estimated_minutes",
        "concepts", "services", "hints", "starter_fails", "app", "server", "limits", "bench", "load", "data", "postgres", "grading",
        "checks",
    })
    if top.integer("format_version", minimum=1) != FORMAT_VERSION:
        raise top.error("format_version", f"must be {FORMAT_VERSION} (this kit reads format {FORMAT_VERSION})")
    slug = top.string("slug", pattern=SLUG_RE)
    if slug != path.parent.name:
        raise top.error("slug", f"must match the lab's folder name {path.parent.name!r}, got {slug!r}")
    services = top.strings("services")
    for service in services:
        if service not in SERVICES:
            raise top.error("services", f"must only name {', '.join(SERVICES)}; got {service!r}")
    hints = top.strings("hints")
    if not hints:
        raise top.error("hints", "must hold at least one hint")

    checks = _read_checks(path, data.get("checks"))
    ids = [check.id for check in checks]
    for check in checks:
        for dependency in check.depends_on:
            if dependency not in ids[: ids.index(check.id)]:
                raise LabSpecError(
                    path, f"checks.{check.id}.depends_on",
                    f"names {dependency!r}, which must be a check declared above {check.id!r}",
                )
    starter_fails = top.strings("starter_fails")
    for check_id in starter_fails:
        if check_id not in ids:
            raise top.error("starter_fails", f"names {check_id!r}, which is not a check id of this lab")

    app = top.subtable("app")
    app.known_keys({"settings", "overrides"})
    server = top.subtable("server")
    server.known_keys({"replicas", "workers", "threads", "project_config", "cpus", "memory_mb"})
    limits = top.subtable("limits")
    limits.known_keys({"check_seconds", "startup_seconds", "request_seconds"})
    bench = top.subtable("bench")
    load = _read_load(top) if "load" in data else None
    dataset = _read_data(top) if "data" in data else None
    postgres = top.subtable("postgres")
    postgres.known_keys({"max_connections"})
    bench.known_keys({"solution_seconds", "load_speedup", "starter_failure_rate"})
    grading = top.subtable("grading")
    grading.known_keys({"parallel"})
    return LabSpec(
        path=path,
        slug=slug,
        version=top.string("version"),
        title=top.string("title"),
        summary=top.string("summary"),
        difficulty=top.choice("difficulty", DIFFICULTIES),
        estimated_minutes=top.integer("estimated_minutes", minimum=1),
        concepts=top.strings("concepts", []),
        services=services,
        hints=hints,
        checks=tuple(checks),
        starter_fails=frozenset(starter_fails),
        settings_module=app.string("settings"),
        server=ServerShape(
            replicas=server.integer("replicas", ServerShape.replicas, minimum=1),
            workers=server.integer("workers", ServerShape.workers, minimum=1),
            threads=server.integer("threads", ServerShape.threads, minimum=1),
            project_config=server.boolean("project_config", False),
            cpus=server.number("cpus", ServerShape.cpus, minimum=0.1),
            memory_mb=server.integer("memory_mb", ServerShape.memory_mb, minimum=64),
        ),
        limits=Limits(
            check_seconds=limits.integer("check_seconds", Limits.check_seconds, minimum=10),
            startup_seconds=limits.integer("startup_seconds", Limits.startup_seconds, minimum=5),
            request_seconds=limits.integer("request_seconds", Limits.request_seconds, minimum=1),
        ),
        bench=BenchTargets(solution_seconds=bench.integer("solution_seconds", 0) or None,
                           load_speedup=bench.number("load_speedup", 0.0, minimum=0.0) or None,
                           starter_failure_rate=bench.number("starter_failure_rate", 0.0, minimum=0.0) or None),
        load=load,
        data=dataset,
        postgres=PostgresSettings(max_connections=postgres.integer("max_connections", 0, minimum=0) or None),
        app_overrides=_read_overrides(app.subtable("overrides")),
        parallel=grading.integer("parallel", 1, minimum=1),
        status=top.choice("status", STATUSES, "active"),
    )


def _read_overrides(table: _Reader) -> tuple[tuple[str, Any], ...]:
    """[app.overrides]: Django settings by name, each a string, number, boolean or a list of them."""
    scalar = (str, int, float, bool)
    overrides = []
    for name, value in table.table.items():
        if not SETTING_RE.match(name):
            raise table.error(name, "must be a Django setting's name in capitals (like TOKEN_TTL_SECONDS)")
        if name in OVERLAY_SETTINGS or name.startswith("LAB_"):
            raise table.error(name, "is set by the grader for every run and cannot be overridden")
        if not (isinstance(value, scalar) or isinstance(value, list) and all(isinstance(item, scalar) for item in value)):
            raise table.error(name, f"must be a string, number, boolean or a list of them, got {value!r}")
        overrides.append((name, value))
    return tuple(overrides)


def _read_data(top: _Reader) -> DataSpec:
    table = top.subtable("data")
    table.known_keys({"module", "after_migration"})
    after = table.string("after_migration")
    app, _, migration = after.partition(".")
    if not app or not migration:
        raise table.error("after_migration", f"must be APP.MIGRATION (like 'catalog.0001_initial'), got {after!r}")
    return DataSpec(module=table.string("module", "dataset.py"), app=app, migration=migration)


def _read_load(top: _Reader) -> LoadSpec:
    load = top.subtable("load")
    load.known_keys({"users", "spawn_rate", "seconds", "locustfile", "min_rps_ratio", "max_p50_ratio",
                     "max_failures"})
    defaults = Thresholds()
    return LoadSpec(
        users=load.integer("users", minimum=1),
        spawn_rate=load.number("spawn_rate", 10.0, minimum=0.1),
        seconds=load.integer("seconds", minimum=1),
        locustfile=load.string("locustfile", "locustfile.py"),
        thresholds=Thresholds(
            min_rps_ratio=load.number("min_rps_ratio", defaults.min_rps_ratio, minimum=0.0),
            max_p50_ratio=load.number("max_p50_ratio", defaults.max_p50_ratio, minimum=1.0),
            max_failures=load.integer("max_failures", defaults.max_failures),
        ),
    )


def _read_checks(path: Path, raw: Any) -> list[CheckSpec]:
    if not isinstance(raw, list) or not raw:
        raise LabSpecError(path, "checks", "must be one or more [[checks]] tables")
    checks: list[CheckSpec] = []
    for index, table in enumerate(raw):
        if not isinstance(table, dict):
            raise LabSpecError(path, f"checks[{index}]", "must be a [[checks]] table")
        reader = _Reader(path, table, f"checks[{index}].")
        reader.known_keys({"id", "title", "weight", "required", "depends_on", "hint", "alone", "locks"})
        check_id = reader.string("id", pattern=CHECK_ID_RE)
        reader.prefix = f"checks.{check_id}."
        if any(check.id == check_id for check in checks):
            raise reader.error("id", "is declared twice; check ids must be unique")
        checks.append(CheckSpec(
            id=check_id,
            title=reader.string("title"),
            weight=reader.integer("weight", 1, minimum=0),
            required=reader.boolean("required", True),
            depends_on=reader.strings("depends_on", []),
            hint=reader.string("hint", "") if table.get("hint", "") else "",
            alone=reader.boolean("alone", False),
            locks=reader.strings("locks", []),
        ))
    return checks


def lab_slugs(labs_dir: Path, in_progress: bool = False) -> list[str]:
    """Slugs of the labs under labs_dir (every folder holding a lab.toml), sorted; those whose `status` is
    "in-progress" only when asked for."""
    return sorted(path.parent.name for path in labs_dir.glob("*/lab.toml")
                  if in_progress or _status(path) != "in-progress")


def _status(path: Path) -> str:
    """A lab.toml's `status`, read without the rest (a lab.toml that does not parse is the catalog's to report)."""
    try:
        return str(tomllib.loads(path.read_text(encoding="utf-8")).get("status", "active"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return "active"
