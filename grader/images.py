"""Container images for the docker provider: which ones are in use, and a way to make them with no registry.

The defaults are the official images, each overridable by an environment variable. Where no registry
answers, `build_debian_images` makes stand-ins from Debian's packages: debootstrap a base, import it, build
PostgreSQL, Redis and Python images from `templates/docker/`, and keep them as one `docker save` archive in
the cache, keyed by the inputs, so that the next time they load in seconds instead of being built again.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from grader.errors import EnvironmentProblem
from grader.paths import cache_dir
from grader.resources import resources

LABEL = "org.nexus-labs.inputs"
SUITE = "bookworm"
BASE_IMAGE = "nexus-labs/debian:bookworm"
RECIPE = "1"  # bump when this module changes what the images hold
CA_DEFAULT = Path("/etc/ssl/certs/ca-certificates.crt")
MIRROR_ENV = "LAB_DEBIAN_MIRROR"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ImageSet:
    """The PostgreSQL, Redis and Python images a docker run uses."""

    postgres: str = "postgres:16"
    redis: str = "redis:7"
    python: str = "python:3.11-slim"
    how: str = ""  # of a set build_debian_images made: "present", "loaded" or "built"

    ENV: ClassVar[dict[str, str]] = {
        "postgres": "LAB_POSTGRES_IMAGE", "redis": "LAB_REDIS_IMAGE", "python": "LAB_PYTHON_IMAGE",
    }

    @property
    def names(self) -> tuple[str, str, str]:
        return self.postgres, self.redis, self.python

    def env(self) -> dict[str, str]:
        """The environment variables that select these images."""
        return {variable: getattr(self, role) for role, variable in self.ENV.items()}


def image_set() -> ImageSet:
    """The images in use: the official ones, except where LAB_POSTGRES_IMAGE, LAB_REDIS_IMAGE or
    LAB_PYTHON_IMAGE name another."""
    chosen = {role: os.environ[variable] for role, variable in ImageSet.ENV.items() if os.environ.get(variable)}
    return ImageSet(**chosen)


DEBIAN = ImageSet(
    postgres="nexus-labs/postgres:15-debian",
    redis="nexus-labs/redis:7-debian",
    python="nexus-labs/python:3.11-debian",
)
BUILDS = (("debian-postgres", DEBIAN.postgres), ("debian-redis", DEBIAN.redis), ("debian-python", DEBIAN.python))
BUILD_TODO = (  # for a provider that finds images missing
    "Pull them, or make Debian stand-ins where no registry answers (as root, about a minute once): "
    '`eval "$(lab images build --shell)"` builds them and sets LAB_POSTGRES_IMAGE, LAB_REDIS_IMAGE and '
    "LAB_PYTHON_IMAGE."
)


def missing(client: Any, images: ImageSet) -> list[str]:
    """The images of the set that the engine does not hold."""
    import docker.errors

    absent = []
    for name in images.names:
        try:
            client.images.get(name)
        except docker.errors.ImageNotFound:
            absent.append(name)
    return absent


@dataclass(frozen=True)
class Inputs:
    """Everything the Debian images are made from; their hash is the cache key."""

    templates: Path
    mirror: str  # what debootstrap fetches from
    sources: str  # the image's apt sources (deb822)
    ca_bundle: Path | None

    @property
    def key(self) -> str:
        digest = hashlib.sha256()
        for part in (RECIPE, SUITE, self.mirror, self.sources):
            digest.update(part.encode() + b"\0")
        digest.update(self.ca_bundle.read_bytes() if self.ca_bundle else b"no CA bundle")
        for path in sorted(p for p in self.templates.rglob("*") if p.is_file() and p.suffix != ".md"):
            digest.update(b"\0" + path.relative_to(self.templates).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
        return digest.hexdigest()[:16]


def inputs() -> Inputs:
    mirror, sources = debian_sources(SUITE)
    return Inputs(resources().templates / "docker", mirror, sources, ca_bundle())


def build_debian_images(client: Any, progress: Progress = lambda line: None) -> ImageSet:
    """Make the Debian stand-ins for the official images, from the cache when it can; returns them, with
    `how` saying whether they were already there, loaded from the cache or built."""
    recipe = inputs()
    key = recipe.key
    folder = cache_dir() / "images"
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / f"{key}.tar"
    with _lock(folder / ".lock", progress):
        if _present(client, key):
            return replace(DEBIAN, how="present")
        if archive.is_file():
            progress(f"loading cached images from {archive}")
            try:
                _load(client, archive)
            except EnvironmentProblem as problem:
                progress(f"the cached images would not load ({problem.what}); building them instead")
            if _present(client, key):
                _prune(client)
                return replace(DEBIAN, how="loaded")
            archive.unlink(missing_ok=True)
        _build(client, recipe, key, progress)
        progress(f"saving the images to {archive}")
        _save(client, archive)
        for stale in folder.glob("*.tar"):
            if stale != archive:
                stale.unlink(missing_ok=True)
        _prune(client)
        return replace(DEBIAN, how="built")


def debian_sources(suite: str) -> tuple[str, str]:
    """The Debian mirror this machine uses ($LAB_DEBIAN_MIRROR, else its apt sources), and the apt sources
    for an image: the suite, its -updates and -security from the same places."""
    explicit = os.environ.get(MIRROR_ENV)
    if explicit:
        return explicit, _deb822([(explicit, [suite, f"{suite}-updates"], ["main"])])
    entries = apt_entries()
    kept = [(uri, [s for s in suites if s == suite or s.startswith(f"{suite}-")], components)
            for uri, suites, components in entries]
    kept = [(uri, suites, components) for uri, suites, components in kept if suites]
    mirror = next((uri for uri, suites, _ in kept if suite in suites), None)
    if mirror is None:
        raise EnvironmentProblem(
            f"No Debian {suite} mirror in this machine's apt sources (/etc/apt/sources.list and sources.list.d).",
            f"Set {MIRROR_ENV} to one, e.g. the URL your apt uses for Debian.",
        )
    return mirror, _deb822(kept)


def ca_bundle() -> Path | None:
    """The CA bundle this machine trusts for TLS: $PIP_CERT, $REQUESTS_CA_BUNDLE or $SSL_CERT_FILE when it
    names a file, else the system's bundle when there is one."""
    for variable in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        value = os.environ.get(variable)
        if value and Path(value).is_file():
            return Path(value)
    return CA_DEFAULT if CA_DEFAULT.is_file() else None


def apt_entries(etc: Path = Path("/etc/apt")) -> list[tuple[str, list[str], list[str]]]:
    """(URI, suites, components) of every `deb` source, from deb822 files and one-line lists."""
    entries = []
    for path in sorted((etc / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text(errors="replace")):
            values: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                name, _, value = line.partition(":")
                values[name.strip().lower()] = value.strip()
            if "deb" in values.get("types", "").split() and values.get("enabled", "yes") != "no":
                for uri in values.get("uris", "").split():
                    entries.append((uri, values.get("suites", "").split(), values.get("components", "main").split()))
    for path in [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]:
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            words = re.sub(r"\[[^\]]*\]", "", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb":
                entries.append((words[1], [words[2]], words[3:] or ["main"]))
    return entries


def _deb822(entries: list[tuple[str, list[str], list[str]]]) -> str:
    return "\n".join(
        f"Types: deb\nURIs: {uri}\nSuites: {' '.join(suites)}\nComponents: {' '.join(components)}\n"
        for uri, suites, components in entries
    )


def _present(client: Any, key: str) -> bool:
    import docker.errors

    for name in (BASE_IMAGE, *DEBIAN.names):
        try:
            labels = client.images.get(name).labels or {}
        except docker.errors.ImageNotFound:
            return False
        if labels.get(LABEL) != key:
            return False
    return True


def _build(client: Any, recipe: Inputs, key: str, progress: Progress) -> None:
    import docker.errors

    debootstrap = _debootstrap(progress)
    work = Path(tempfile.mkdtemp(prefix="nexus-labs-rootfs-"))
    try:
        rootfs, log = work / "rootfs", work / "debootstrap.log"
        progress(f"debootstrap {SUITE} from {recipe.mirror} (about 40 s)")
        _run([debootstrap, "--variant=minbase", SUITE, str(rootfs), recipe.mirror], log,
             f"debootstrap of Debian {SUITE} from {recipe.mirror} failed",
             f"Check that the mirror answers (or set {MIRROR_ENV} to one that does), then try again.")
        sources = work / "debian.sources"
        sources.write_text(recipe.sources)
        script = recipe.templates / "debian-base" / "prepare-rootfs.sh"
        ca = [str(recipe.ca_bundle)] if recipe.ca_bundle else []
        _run(["sh", str(script), str(rootfs), str(sources), *ca], log, "preparing the Debian tree failed")
        progress(f"importing {BASE_IMAGE}")
        _import(client, rootfs, key)
    finally:
        _unmount_below(work)
        shutil.rmtree(work, ignore_errors=True)

    for folder, tag in BUILDS:
        progress(f"building {tag}")
        try:
            client.images.build(
                path=str(recipe.templates / folder), tag=tag, labels={LABEL: key}, buildargs={"BASE": BASE_IMAGE},
                pull=False, rm=True, forcerm=True, timeout=None,
            )
        except docker.errors.BuildError as error:
            lines = "".join(str(chunk.get("stream") or chunk.get("error") or "") for chunk in error.build_log)
            tail = "\n".join(lines.strip().splitlines()[-25:])
            raise EnvironmentProblem(
                f"Building {tag} failed: {error.msg}\n{tail}",
                f"Its RUN steps fetch Debian packages from {recipe.mirror} through the engine's default bridge: "
                "check that a container reaches it, then try again.",
            ) from None


def _prune(client: Any) -> None:
    """Remove images of earlier inputs that these replaced (untagged now) where no container uses them."""
    client.images.prune(filters={"dangling": True, "label": LABEL})


def _debootstrap(progress: Progress) -> str:
    if os.geteuid() != 0:
        raise EnvironmentProblem("Building the Debian images needs root (debootstrap makes device files).",
                                 "Run `sudo lab images build`, or set " +
                                 ", ".join(ImageSet.ENV.values()) + " to images the engine has.")
    found = shutil.which("debootstrap") or shutil.which("debootstrap", path="/usr/sbin:/sbin")
    if found:
        return found
    if shutil.which("apt-get"):
        progress("installing debootstrap from Debian's packages")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "debootstrap"]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
            subprocess.run(install, env=env, capture_output=True)
        found = shutil.which("debootstrap") or shutil.which("debootstrap", path="/usr/sbin:/sbin")
        if found:
            return found
    raise EnvironmentProblem("debootstrap is missing, and it is needed to make a Debian base image.",
                             "Install it (`apt-get install debootstrap`), then try again.")


def _run(command: list[str], log: Path, failure: str, todo: str = "") -> None:
    with log.open("ab") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise EnvironmentProblem(f"{failure} (exit {done.returncode}):\n{tail}", todo)


def _import(client: Any, rootfs: Path, key: str) -> None:
    repository, tag = BASE_IMAGE.split(":")
    with tempfile.TemporaryFile() as errors:
        tar = subprocess.Popen(["tar", "--numeric-owner", "--one-file-system", "-C", str(rootfs), "-c", "."],
                               stdout=subprocess.PIPE, stderr=errors)
        assert tar.stdout is not None

        def chunks() -> Iterator[bytes]:
            while block := tar.stdout.read(1 << 20):
                yield block

        try:
            with _patient(client):
                client.api.import_image_from_stream(
                    chunks(), repository=repository, tag=tag,
                    changes=[f"LABEL {LABEL}={key}", f"ENV PATH={DEFAULT_PATH}", 'CMD ["bash"]'],
                )
        finally:
            tar.stdout.close()
            code = tar.wait()
        if code != 0:
            errors.seek(0)
            client.images.remove(BASE_IMAGE, force=True)
            raise EnvironmentProblem(f"Archiving the Debian tree failed (tar exit {code}): "
                                     f"{errors.read().decode(errors='replace').strip()}")


def _save(client: Any, archive: Path) -> None:
    api = client.api
    partial = archive.with_name(f".{archive.name}.{os.getpid()}.part")
    try:
        with _patient(client):
            # The SDK saves one image per archive (Image.save); the engine's /images/get takes several names
            # and stores their shared layers once, so ask it through the SDK's own session.
            response = api._get(api._url("/images/get"), params={"names": [BASE_IMAGE, *DEBIAN.names]}, stream=True)
            api._raise_for_status(response)
            with partial.open("wb") as out:
                for block in response.iter_content(1 << 20):
                    out.write(block)
        os.replace(partial, archive)
    finally:
        partial.unlink(missing_ok=True)


def _load(client: Any, archive: Path) -> None:
    import docker.errors

    try:
        with _patient(client), archive.open("rb") as data:
            for event in client.api.load_image(data, quiet=True):
                if "errorDetail" in event:
                    raise EnvironmentProblem(event["errorDetail"].get("message", str(event)))
    except docker.errors.APIError as error:
        raise EnvironmentProblem(str(error)) from None


@contextmanager
def _patient(client: Any) -> Iterator[None]:
    """No read time-out while the engine takes in or sends out a few hundred megabytes."""
    before = client.api.timeout
    client.api.timeout = None
    try:
        yield
    finally:
        client.api.timeout = before


@contextmanager
def _lock(path: Path, progress: Progress) -> Iterator[None]:
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress("waiting for another build of the images to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _unmount_below(root: Path) -> None:
    """Unmount what a failed debootstrap left mounted inside its tree (/proc, /sys), so removing it is safe."""
    prefix = f"{root}/"
    try:
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    except OSError:
        return
    for point in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)

