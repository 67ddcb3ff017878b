"""The local provider: PostgreSQL and Redis as child processes on loopback.

When the grader is root, a graded run also gets a public address that never leaves this machine: one global
address (ipaddress: is_global) from the AS112 blocks the docker provider's run networks use, added to the
loopback interface for the run (`ip addr add G/32 dev lo`) and removed at teardown. Before anything is sent
there, `ip route get G` must say `local ... dev lo`. An address is claimed like the run's uid, by a file naming
the run's folder (in /run, which, like the loopback's addresses, a reboot empties, and which every runs folder
shares), so concurrent runs never share one, and a later run removes those of runs that are gone (a grader
killed with SIGKILL).
"""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from grader.labspec import LabSpec
from grader.paths import cache_dir
from grader.processes import RunDirectory, _read_owner, pid_alive, runs_root
from grader.providers import Services, TemplateRecipe
from grader.providers.postgres import PostgresServer, find_postgres, initdb
from grader.providers.redis import RedisServer, find_redis_server
from grader.runtime import LocalRuntime
from grader.sandbox import sandbox_description

TEMPLATE_DB = "lab"
TEMPLATE_LAYOUT = "app-role"
# The blocks of GLOBAL_SUBNETS in grader/providers/docker.py (AS112, RFC 7534 and RFC 7535: nothing on a lab
# machine calls them); of each /27 only the top few addresses, which the engine hands a run's containers last.
PUBLIC_BLOCKS = ("192.175.48.0/24", "192.31.196.0/24")
PUBLIC_POOL = tuple(str(subnet.network_address + offset) for block in PUBLIC_BLOCKS
                    for subnet in ipaddress.ip_network(block).subnets(new_prefix=27) for offset in range(24, 31))
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
        with postgres, redis_server, public_address(run, graded) as public:
            yield Services(database=postgres.params(TEMPLATE_DB), redis_url=redis_server.get_connection_url(),
                           provider=self.name, runtime=LocalRuntime(run, public),
                           app_database=postgres.app_params(TEMPLATE_DB), switches={"redis": redis_server})

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


# -- a public address on this machine's loopback ---------------------------------------------------------


@dataclass(frozen=True)
class PublicAddress:
    """A global address of this machine's loopback for one run, and the route that proves it; or why there is none."""

    address: str = ""
    proof: str = ""  # what `ip route get` said of it
    why_not: str = ""


@contextmanager
def public_address(run: RunDirectory, graded: bool = True) -> Iterator[PublicAddress]:
    """A global address added to the loopback interface while the run lasts (the grader must be root)."""
    if not graded:
        yield PublicAddress(why_not="not a graded run")
        return
    if os.geteuid() != 0:
        yield PublicAddress(why_not="only root may add an address to this machine's loopback, which the local "
                                    "provider does for a public server that never leaves the machine: grade as root "
                                    "(or under docker)")
        return
    ip = shutil.which("ip")
    if not ip:
        yield PublicAddress(why_not="iproute2's `ip`, which adds an address to the loopback and proves where it leads, "
                                    "is not installed (Debian/Ubuntu: `apt-get install iproute2`)")
        return
    remove_stale_addresses(ip)
    public = _claim_address(ip, run)
    try:
        yield public
    finally:
        if public.address:
            _release_address(ip, public.address)


def route_to(ip: str, address: str) -> str:
    """The first line of `ip route get ADDRESS` (the route a packet there would take; nothing is sent), or the error."""
    try:
        answer = subprocess.run([ip, "route", "get", address], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"error: {error}"
    text = (answer.stdout if answer.returncode == 0 else f"error: {answer.stderr}").strip()
    return text.splitlines()[0].strip() if text else "error: no answer"


def is_loopback_route(route: str, address: str) -> bool:
    """Whether `ip route get` says the address is delivered on this machine's loopback."""
    words = route.split()
    return words[:2] == ["local", address] and "dev" in words and words[words.index("dev") + 1:][:1] == ["lo"]


def address_claims() -> Path:
    """Where runs claim their public addresses: one place for the machine, whatever runs folder a run uses."""
    claims = Path("/run/nexus-labs/addresses") if Path("/run").is_dir() else runs_root() / "addresses"
    claims.mkdir(mode=0o700, parents=True, exist_ok=True)
    return claims


def _claim_address(ip: str, run: RunDirectory) -> PublicAddress:
    claims = address_claims()
    candidates = list(PUBLIC_POOL)
    random.SystemRandom().shuffle(candidates)
    for address in candidates:
        before = route_to(ip, address)
        if " dev " in f" {before} " and " via " not in f" {before} ":
            continue  # already this machine's, or on a network of it (a docker run's bridge): not ours to take
        claim = claims / address
        try:
            descriptor = os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(descriptor, "w") as handle:
            handle.write(str(run.path))
        added = subprocess.run([ip, "addr", "add", f"{address}/32", "dev", "lo"], capture_output=True, text=True,
                               timeout=10)
        if added.returncode != 0:
            claim.unlink(missing_ok=True)
            if "exists" in added.stderr.lower():
                continue
            return PublicAddress(why_not=f"`ip addr add {address}/32 dev lo` failed: {added.stderr.strip()[:200]}")
        route = route_to(ip, address)
        if not is_loopback_route(route, address):
            _release_address(ip, address)
            return PublicAddress(why_not=f"{address} was added to the loopback, but `ip route get {address}` says "
                                         f"{route!r}, not local on lo: removed again")
        return PublicAddress(address, route)
    return PublicAddress(why_not=f"every address of the pool ({len(PUBLIC_POOL)}, in {', '.join(PUBLIC_BLOCKS)}) is "
                                 "taken by a live run or routed to a network of this machine")


def _release_address(ip: str, address: str) -> None:
    subprocess.run([ip, "addr", "del", f"{address}/32", "dev", "lo"], capture_output=True, timeout=10)
    (address_claims() / address).unlink(missing_ok=True)


def remove_stale_addresses(ip: str) -> list[str]:
    """Remove the loopback addresses of runs that are gone (their folder removed, or their grader dead), and their
    claims."""
    removed = []
    for claim in sorted(address_claims().glob("*")):
        if claim.name not in PUBLIC_POOL:
            continue
        try:
            holder = claim.read_text().strip()
        except OSError:
            continue  # released just now
        owner = _read_owner(Path(holder)) if holder else None
        if holder and Path(holder).is_dir() and (owner is None or pid_alive(owner["pid"], owner["start"])):
            continue  # its grader still runs (or the run is being made)
        try:
            if not holder and time.time() - claim.stat().st_mtime < 60:
                continue  # being claimed right now
        except OSError:
            continue
        _release_address(ip, claim.name)
        removed.append(claim.name)
    return removed
