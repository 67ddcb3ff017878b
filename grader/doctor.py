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
from grader.providers import binaries, engine_answers, get_provider, resolve
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
    images: dict[str, tuple[str, bool]] = field(default_factory=dict)  # role: (image, on the engine)
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
    if diagnosis.engine.reachable:
        diagnosis.images = docker_images()
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
    answers, detail = engine_answers(ENGINE_TIMEOUT_SECONDS)
    return Engine(answers, detail, os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"))


def docker_images() -> dict[str, tuple[str, bool]]:
    """The images the docker provider would use, and whether the engine has each (the app image is made)."""
    import docker

    from grader.images import image_set, missing
    from grader.providers.app_image import app_images

    client = docker.from_env(timeout=ENGINE_TIMEOUT_SECONDS)
    try:
        chosen = image_set()
        absent = set(missing(client, chosen))
        found = {role: (name, name not in absent) for role, name in zip(("postgres", "redis", "python"),
                                                                         chosen.names, strict=True)}
        made = app_images(client)
        found["app"] = (made[0], True) if made else ("nexus-labs/app (made on the first docker run)", False)
        return found
    finally:
        client.close()
