"""The docker provider: PostgreSQL, Redis and the learner's app in throwaway containers.

Per run: a private network, PostgreSQL and Redis containers started by testcontainers
(ready by its named wait strategies: psql answering, PING answering), and a container
runtime for the learner's code built from the app image, which holds the kit's Python
dependencies at the versions the grader runs with (built once per kit, reused). The
migrated template database (with a lab's data) is committed as an image once per
migration set, so later runs start from it instead of migrating and loading again.
A graded run's network is internal (nothing in it reaches beyond it) and the checks reach
the services and the app at their addresses on it, where this machine routes to containers (an
engine on this Linux machine); `lab run`, and engines in a virtual machine, publish ports on 127.0.0.1.

Machine particulars (the engine's address, testcontainers' reaper and connection mode)
come from the environment: DOCKER_HOST, TESTCONTAINERS_RYUK_DISABLED,
TESTCONTAINERS_CONNECTION_MODE, TC_HOST.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import random
import secrets
import socket
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager

import docker
import docker.errors
import docker.types
import psycopg
from testcontainers.community.postgres import PostgresContainer
from testcontainers.community.redis import RedisContainer
from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import Reaper
from testcontainers.core.network import Network
from testcontainers.core.wait_strategies import ExecWaitStrategy

from grader.errors import EnvironmentProblem, UsageProblem
from grader.images import BUILD_TODO, ImageSet, image_set, missing
from grader.labspec import LabSpec
from grader.processes import RunDirectory
from grader.providers import Services, TemplateRecipe
from grader.providers.app_image import ensure_app_image
from grader.providers.containers import ContainerRuntime, container_address, reap_abandoned, run_labels
from grader.providers.postgres import TEST_SETTINGS

ENGINE_TIMEOUT_SECONDS = 5
READY_POLL = 0.1  # seconds between "are you ready?" asks of a starting service container
READY_TIMEOUT = 120  # seconds a service container may take to get ready (testcontainers' default)
POSTGRES_ALIAS, REDIS_ALIAS = "postgres", "redis"
DATABASE = "lab"
# Migrated template databases are kept as images, like the local provider's template clusters. Their data
# lives outside the official image's VOLUME (/var/lib/postgresql/data), so that a commit keeps it.
TEMPLATE_PGDATA = "/var/lib/postgresql/lab-data"
TEMPLATE_REPOSITORY = "nexus-labs/pgtpl"
# Redis runs under a shell that starts it again unless a check has it stopped, so that a stopped Redis keeps its
# container, address and name on the network and refuses connections at once, as a stopped local server does
# (a stopped container's name fails to resolve only after seconds). The image's entrypoint serves as ever.
REDIS_STOPPED_FLAG = "/tmp/lab-redis-stopped"
REDIS_SUPERVISOR = (f"trap 'kill $server 2>/dev/null; exit 0' TERM INT; "
                    f"while :; do if [ -e {REDIS_STOPPED_FLAG} ]; then sleep 0.05; continue; fi; "
                    f"docker-entrypoint.sh redis-server & server=$!; wait $server; done")
SWITCH_SECONDS = 10  # a Redis container's server stops or answers again within this
LABEL_TEMPLATE = "org.nexus-labs.template"
TEMPLATES_KEPT = 3  # per lab: a learner going back and forth between a few migration sets
# Subnets for graded runs' internal networks: global addresses (ipaddress: is_global) of the AS112 anycast DNS
# sinks (RFC 7534, RFC 7535), which nothing on a lab machine calls. While a run lasts, this machine routes its
# subnet to the run's bridge, which forwards nothing out of an internal network; docs/security.md.
GLOBAL_SUBNETS = tuple(str(subnet) for block in ("192.175.48.0/24", "192.31.196.0/24")
                       for subnet in ipaddress.ip_network(block).subnets(new_prefix=27))


def engine() -> docker.DockerClient:
    """A client of the engine DOCKER_HOST names (or the default socket), or why there is none."""
    try:
        client = docker.from_env(timeout=ENGINE_TIMEOUT_SECONDS)
        client.ping()
    except docker.errors.DockerException as exc:
        raise EnvironmentProblem(
            f"No Docker engine answers: {str(exc).splitlines()[0][:200]}",
            "Start Docker (or set DOCKER_HOST), or grade with --provider local. `lab doctor` shows what was found.",
        ) from None
    client.api.timeout = 120  # builds, image saves and container waits may take long
    return client


class DockerProvider:
    name = "docker"

    def __init__(self, progress: Callable[[str], None] | None = None):
        self.client = engine()
        self.images: ImageSet = image_set()
        self.progress = progress or _print_to_stderr
        self.app_image = ""

    def _pull_missing(self) -> None:
        for name in missing(self.client, self.images):
            self.progress(f"Pulling {name} (once)")
            try:
                self.client.images.pull(name)
            except docker.errors.APIError as error:
                raise EnvironmentProblem(f"The image {name} is not on this engine and cannot be pulled: "
                                         f"{str(error).splitlines()[0][:200]}", BUILD_TODO) from None

    def servers(self) -> dict[str, str]:
        return {"postgres": f"container {self.images.postgres}", "redis": f"container {self.images.redis}",
                "app": f"container {self.app_image or 'built from ' + self.images.python}"}

    @contextmanager
    def provision(self, lab: LabSpec, run: RunDirectory, recipe: TemplateRecipe,
                  graded: bool = True) -> Iterator[Services]:
        reap_abandoned(self.client)
        internal = graded and containers_routable()
        self._pull_missing()
        self.app_image = ensure_app_image(self.client, self.images.python, self.progress)
        labels = run_labels(run)
        password = secrets.token_hex(12)
        template = self._template_image(lab, recipe)
        cached = _image_exists(self.client, template)
        with ExitStack() as stack:
            # A graded run's network is internal: nothing in it reaches beyond it, and the grader reaches the
            # containers at their addresses on it. `lab run` publishes ports, so the learner can browse.
            network = _network(labels, internal)
            stack.callback(network.remove)
            settings = [arg for key, value in {**TEST_SETTINGS, **lab.postgres.server_settings()}.items()
                        if key not in ("unix_socket_directories", "listen_addresses")
                        for arg in ("-c", f"{key}={value}")]
            postgres = (_Postgres(template if cached else self.images.postgres, username="lab",
                                          password=password, dbname=DATABASE, driver=None)
                        .with_env("PGDATA", TEMPLATE_PGDATA)
                        .with_network(network).with_network_aliases(POSTGRES_ALIAS)
                        .with_command(["postgres", *settings]).with_kwargs(labels=labels))
            redis_server = redis_container(self.images.redis, network, labels)
            stack.callback(_stop_together, (postgres, redis_server))
            if not testcontainers_config.ryuk_disabled:
                Reaper.get_instance()  # made once here: two starts at once would each try to make it
            with ThreadPoolExecutor(2) as starting:  # both at once: each mostly waits for its server to answer
                for started in [starting.submit(_start, container, run) for container in (postgres, redis_server)]:
                    started.result()
            runtime = ContainerRuntime(self.client, self.app_image, network.name, run,
                                       cpus=lab.server.cpus, memory_mb=lab.server.memory_mb, internal=internal)
            stack.callback(runtime.close)
            in_network = {"host": POSTGRES_ALIAS, "port": 5432, "user": "lab", "password": password,
                          "dbname": DATABASE}
            if internal:
                published = {**in_network, "host": _address(postgres, network.name)}
                _require_reachable(published["host"], 5432)
                redis_url = f"redis://{_address(redis_server, network.name)}:6379/0"
            else:
                published = {**in_network, "host": postgres.get_container_host_ip(),
                             "port": int(postgres.get_exposed_port(5432))}
                redis_url = f"redis://{redis_server.get_container_host_ip()}:{redis_server.get_exposed_port(6379)}/0"
            if cached:
                _set_password(postgres, password)  # the template kept the password of the run that made it
            else:
                recipe.migrate(in_network, published, runtime)
                self._keep_template(postgres, published, lab, template)
            yield Services(
                database=published,
                redis_url=redis_url,
                provider=self.name, runtime=runtime,
                app_database=in_network, app_redis_url=f"redis://{REDIS_ALIAS}:6379/0",
                switches={"redis": RedisSwitch(redis_server.get_wrapped_container())},
            )

    def _template_image(self, lab: LabSpec, recipe: TemplateRecipe) -> str:
        """The image of a migrated template: keyed by the PostgreSQL image it grew from and the migrations."""
        base = self.client.images.get(self.images.postgres).id
        key = hashlib.sha256(f"{base}\0{recipe.key}".encode()).hexdigest()[:16]
        return f"{TEMPLATE_REPOSITORY}-{lab.slug}:{key}"

    def _keep_template(self, postgres: PostgresContainer, database: dict, lab: LabSpec, template: str) -> None:
        """Commit the migrated (and loaded) database as an image, and keep only the newest few of the lab's."""
        with psycopg.connect(**database, autocommit=True) as connection:
            connection.execute("CHECKPOINT")  # every page on disk: the image starts like a clean shutdown
        repository, _, tag = template.partition(":")
        postgres.get_wrapped_container().commit(repository=repository, tag=tag,
                                                conf={"Labels": {LABEL_TEMPLATE: lab.slug}})
        kept = sorted(self.client.images.list(filters={"label": f"{LABEL_TEMPLATE}={lab.slug}"}),
                      key=lambda image: image.attrs.get("Created", ""), reverse=True)
        for image in kept[TEMPLATES_KEPT:]:
            try:
                self.client.images.remove(image.id, noprune=False)
            except docker.errors.APIError:
                pass  # a running check still uses it; a later run removes it


def redis_container(image: str, network: Network, labels: dict[str, str]) -> RedisContainer:
    """A run's Redis container (not started): named `redis` on the network, its server under REDIS_SUPERVISOR."""
    return (RedisContainer(image).with_network(network).with_network_aliases(REDIS_ALIAS).with_kwargs(labels=labels)
            .with_command(["sh", "-c", REDIS_SUPERVISOR])
            .waiting_for(ExecWaitStrategy(["redis-cli", "ping"]).with_poll_interval(READY_POLL)))


def _network(labels: dict[str, str], internal: bool) -> Network:
    """The run's network. An internal one is made on a global subnet where one is free, so that a check can
    serve a public address that never leads off the machine (the app container's own; grader/canary.py);
    else, and for `lab run`, on a subnet the engine picks."""
    if internal:
        for subnet in random.sample(GLOBAL_SUBNETS, len(GLOBAL_SUBNETS)):
            gateway = str(next(ipaddress.ip_network(subnet).hosts()))  # recorded, as the engine's own choice is
            pool = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet, gateway=gateway)])
            try:
                return Network(docker_network_kw={"labels": labels, "internal": True, "ipam": pool}).create()
            except docker.errors.APIError as error:
                if "overlap" not in str(error).lower():
                    raise  # taken by another run: try the next one
    return Network(docker_network_kw={"labels": labels, "internal": internal}).create()


def containers_routable() -> bool:
    """Whether this machine reaches containers at their addresses: an engine on this Linux machine (not Docker
    Desktop's virtual machine, nor a remote engine), so a graded run's network can be internal."""
    chosen = os.environ.get("LAB_DOCKER_NETWORK", "auto")
    if chosen not in ("auto", "internal", "published"):
        raise UsageProblem(f"LAB_DOCKER_NETWORK={chosen!r} is not a network mode.", "Use auto, internal or published.")
    if chosen != "auto":
        return chosen == "internal"
    host = os.environ.get("DOCKER_HOST", "")
    return sys.platform.startswith("linux") and (not host or host.startswith("unix://"))


def _require_reachable(address: str, port: int) -> None:
    """The grader reaches a container on the run's internal network, or says what to do (a rootless engine)."""
    try:
        socket.create_connection((address, port), timeout=3).close()
    except OSError as error:
        raise EnvironmentProblem(
            f"This machine cannot reach the engine's containers at their addresses ({address}:{port}: {error}), "
            "so a graded run's internal network cannot be used (a rootless engine, or one in a virtual machine?).",
            "Set LAB_DOCKER_NETWORK=published to reach them through ports published on 127.0.0.1 (their network "
            "then has a way out), or grade with --provider local.") from None


def _address(container, network: str) -> str:
    return container_address(container.get_wrapped_container(), network)


def _image_exists(client: docker.DockerClient, name: str) -> bool:
    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        return False
    return True


def _set_password(postgres: PostgresContainer, password: str) -> None:
    """Give this run's password to the template's user, over the container's own trusted socket."""
    code, output = postgres.get_wrapped_container().exec_run(
        ["psql", "-v", "ON_ERROR_STOP=1", "--username", "lab", "--dbname", DATABASE, "-c",
         f"ALTER USER lab PASSWORD '{password}'"], user="postgres")
    if code != 0:
        raise EnvironmentProblem(f"The cached template database did not take this run's password: "
                                 f"{output.decode(errors='replace').strip()[:300]}",
                                 "Remove the nexus-labs/pgtpl-* images (`docker image rm`) to rebuild them.")


def _stop_together(containers: tuple) -> None:
    """Remove service containers at once (each waits for the engine); the first error is raised after all."""
    with ThreadPoolExecutor(len(containers)) as stopping:
        for stopped in [stopping.submit(container.stop) for container in containers]:
            stopped.result()


class _Postgres(PostgresContainer):
    """testcontainers' PostgreSQL, asked whether it is ready every READY_POLL seconds rather than every second."""

    def _connect(self) -> None:
        password = self.password.replace("'", "'\"'\"'")
        (ExecWaitStrategy(["sh", "-c", f"PGPASSWORD='{password}' psql --username {self.username} --dbname "
                                       f"{self.dbname} --host 127.0.0.1 -c 'select 1;'"])
         .with_poll_interval(READY_POLL).with_startup_timeout(READY_TIMEOUT).wait_until_ready(self))


def _start(container, run: RunDirectory) -> None:
    """Start a service container; when it does not get ready, the error carries its log."""
    try:
        container.start()
    except Exception as exc:  # testcontainers raises TimeoutError and engine errors alike
        log = ""
        wrapped = getattr(container, "_container", None)
        if wrapped is not None:
            log = wrapped.logs(tail=30).decode(errors="replace")
        raise EnvironmentProblem(f"The {container.image} container did not get ready: {exc}\n{log}".strip(),
                                 "`lab doctor` checks the engine and images; LAB_POSTGRES_IMAGE and "
                                 "LAB_REDIS_IMAGE choose other images.") from None


def _print_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class RedisSwitch:
    """The Redis server of a run's container, stopped for a check and started again (see REDIS_SUPERVISOR)."""

    def __init__(self, container):
        self.container = container

    def stop(self) -> None:
        self._run(["sh", "-c", f"touch {REDIS_STOPPED_FLAG} && redis-cli shutdown nosave >/dev/null 2>&1; true"])
        self._until(answers=False)

    def start(self) -> None:
        self._run(["rm", "-f", REDIS_STOPPED_FLAG])
        self._until(answers=True)

    def _run(self, command: list[str]) -> tuple[int, bytes]:
        try:
            return self.container.exec_run(command)
        except docker.errors.APIError as error:
            raise EnvironmentProblem(f"The engine did not run {command[0]} in the Redis container: {error}",
                                     "`lab doctor` checks the engine.") from None

    def _until(self, answers: bool) -> None:
        deadline = time.monotonic() + SWITCH_SECONDS
        while time.monotonic() < deadline:
            code, output = self._run(["redis-cli", "ping"])
            if (code == 0 and b"PONG" in output) == answers:
                return
            time.sleep(READY_POLL)
        raise EnvironmentProblem(f"Redis in its container did not {'answer again' if answers else 'stop'} "
                                 f"within {SWITCH_SECONDS} s", "`lab doctor` checks the engine and images.")

