"""The app image: a Python image plus the kit's runtime dependencies, at the versions the grader runs.

Made once per kit version and Python image (the tag holds a hash of both and of the pinned
requirements), then reused: pip runs inside a container of the Python image, so the image's
own interpreter resolves the requirements (environment markers included), and the container
is committed as the app image. pip's index and proxy settings pass through from this machine.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from collections.abc import Callable

import docker
import docker.errors

from grader import __version__
from grader.errors import EnvironmentProblem

# What a learner's Django + DRF project needs at run time, pinned to what this grader has installed.
RUNTIME_DISTRIBUTIONS = ("django", "djangorestframework", "psycopg", "psycopg-binary", "psycopg-pool", "gunicorn",
                         "redis")
LABEL_INPUTS = "org.nexus-labs.inputs"
PASSED_THROUGH = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "HTTP_PROXY", "HTTPS_PROXY",
                  "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
INSTALL_SECONDS = 300


def requirements() -> list[str]:
    return [f"{name}=={importlib.metadata.version(name)}" for name in RUNTIME_DISTRIBUTIONS]


def ensure_app_image(client: docker.DockerClient, base: str, progress: Callable[[str], None]) -> str:
    """The tag of the app image for `base`, made now if this engine does not have it."""
    pinned = requirements()
    try:
        base_id = client.images.get(base).id
    except docker.errors.ImageNotFound:
        raise EnvironmentProblem(
            f"The Python image {base} is not on this engine.",
            f"`docker pull {base}`, or set LAB_PYTHON_IMAGE to an image you have (templates/docker/README.md "
            "builds one from Debian packages where no registry answers).") from None
    key = hashlib.sha256(json.dumps([__version__, base_id, pinned]).encode()).hexdigest()[:12]
    repository, tag = "nexus-labs/app", f"{__version__}-{key}"
    try:
        client.images.get(f"{repository}:{tag}")
        return f"{repository}:{tag}"
    except docker.errors.ImageNotFound:
        pass
    progress(f"Making the app image {repository}:{tag} from {base} (once per kit version; about a minute):")
    progress(f"  pip install {' '.join(pinned)}")
    container = client.containers.run(
        base, ["python", "-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check", "--progress-bar",
               "off", *pinned],
        detach=True, environment={name: os.environ[name] for name in PASSED_THROUGH if name in os.environ},
        labels={LABEL_INPUTS: key})
    try:
        code = container.wait(timeout=INSTALL_SECONDS)["StatusCode"]
        if code != 0:
            log = container.logs(tail=25).decode(errors="replace")
            raise EnvironmentProblem(f"Installing the kit's dependencies into {base} failed (exit {code}):\n{log}",
                                     "Check that the image has Python 3.11+ with pip and can reach your package "
                                     "index (PIP_INDEX_URL and proxy settings pass through).")
        container.commit(repository, tag, conf={"Labels": {LABEL_INPUTS: key}})
    finally:
        container.remove(force=True)
    progress(f"  made {repository}:{tag}")
    return f"{repository}:{tag}"


def app_images(client: docker.DockerClient) -> list[str]:
    """The app images this engine holds for this kit version, newest first."""
    tags = [tag for image in client.images.list(name="nexus-labs/app") for tag in image.tags
            if tag.startswith(f"nexus-labs/app:{__version__}-")]
    return sorted(tags, reverse=True)
