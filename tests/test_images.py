"""The Debian stand-in images: built (or loaded) without a registry, and usable by testcontainers as the
official postgres, redis and python images are.

Needs a Docker engine (scripts/docker-engine.sh starts one) and, when the images are not built yet, root.
testcontainers is set up for an engine on this machine unless the environment says otherwise: no Ryuk
(its image cannot be pulled; each test removes its containers), and on a local socket, containers reached
at 127.0.0.1 through their mapped ports (`TESTCONTAINERS_CONNECTION_MODE=docker_host`, `TC_HOST=127.0.0.1`;
inside a VM with /.dockerenv testcontainers would otherwise guess its gateway).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from grader.images import (
    BASE_IMAGE,
    DEBIAN,
    LABEL,
    Inputs,
    apt_entries,
    build_debian_images,
    image_set,
    inputs,
    missing,
)
from grader.resources import resources

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    import docker
    import docker.errors

    try:
        engine = docker.from_env(timeout=5)
        engine.ping()
    except docker.errors.DockerException as error:
        pytest.skip(f"no Docker engine answers ({error}): start one with scripts/docker-engine.sh")
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def built(client) -> tuple[object, list[str]]:
    """The images as build_debian_images gave them to this module, and the progress it reported. Like a
    grader it uses the user's image cache, so a machine that built them once only loads them."""
    if os.geteuid() != 0 and missing(client, DEBIAN):
        pytest.skip("the Debian images are not built and building them needs root: run `sudo lab images build`")
    lines: list[str] = []
    return build_debian_images(client, progress=lines.append), lines


@pytest.fixture
def testcontainers_here(client, monkeypatch: pytest.MonkeyPatch) -> None:
    from testcontainers.core.config import ConnectionMode, testcontainers_config

    if not os.environ.get("TESTCONTAINERS_RYUK_DISABLED"):
        monkeypatch.setattr(testcontainers_config, "ryuk_disabled", True)
    local_socket = client.api.base_url.startswith("http+docker://local")
    if local_socket and not os.environ.get("TESTCONTAINERS_CONNECTION_MODE"):
        monkeypatch.setattr(testcontainers_config, "connection_mode_override", ConnectionMode.docker_host)
    if local_socket and not (os.environ.get("TC_HOST") or os.environ.get("TESTCONTAINERS_HOST_OVERRIDE")):
        monkeypatch.setattr(testcontainers_config, "tc_host_override", "127.0.0.1")


def test_image_set_defaults_to_the_official_images_and_follows_the_environment(monkeypatch):
    for variable in ("LAB_POSTGRES_IMAGE", "LAB_REDIS_IMAGE", "LAB_PYTHON_IMAGE"):
        monkeypatch.delenv(variable, raising=False)
    assert image_set().names == ("postgres:16", "redis:7", "python:3.11-slim")
    monkeypatch.setenv("LAB_REDIS_IMAGE", DEBIAN.redis)
    assert image_set().names == ("postgres:16", DEBIAN.redis, "python:3.11-slim")
    assert DEBIAN.env()["LAB_POSTGRES_IMAGE"] == DEBIAN.postgres


def test_the_cache_key_follows_what_the_images_are_made_from(tmp_path: Path):
    templates = tmp_path / "docker"
    shutil.copytree(resources().templates / "docker", templates)
    key = Inputs(templates, "http://mirror/debian", "sources", None).key
    (templates / "README.md").write_text("documentation only")
    assert Inputs(templates, "http://mirror/debian", "sources", None).key == key
    assert Inputs(templates, "http://other/debian", "sources", None).key != key
    with (templates / "debian-redis" / "Dockerfile").open("a") as dockerfile:
        dockerfile.write("ENV CHANGED=1\n")
    assert Inputs(templates, "http://mirror/debian", "sources", None).key != key


def test_apt_sources_are_read_from_deb822_files_and_one_line_lists(tmp_path: Path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb deb-src\n# a comment\nURIs: http://mirror/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main contrib\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: http://mirror/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb\nURIs: http://off/debian\nSuites: trixie\nEnabled: no\n"
    )
    (tmp_path / "sources.list").write_text("deb [arch=amd64] http://old/debian bookworm main  # old style\n")
    assert apt_entries(tmp_path) == [
        ("http://mirror/debian", ["bookworm", "bookworm-updates"], ["main", "contrib"]),
        ("http://mirror/debian-security", ["bookworm-security"], ["main"]),
        ("http://old/debian", ["bookworm"], ["main"]),
    ]


def test_the_images_are_labelled_with_their_inputs(client, built):
    images, lines = built
    assert images.how in ("present", "loaded", "built"), lines
    assert images.names == DEBIAN.names
    key = inputs().key
    for name in (BASE_IMAGE, *DEBIAN.names):
        assert client.images.get(name).labels[LABEL] == key


def test_a_second_call_with_the_same_inputs_rebuilds_nothing(client, built):
    lines: list[str] = []
    again = build_debian_images(client, progress=lines.append)
    assert again.how == "present"
    assert lines == []


def test_postgres_honours_user_password_database_and_server_options(built, testcontainers_here):
    try:
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:  # testcontainers before 4.14
        from testcontainers.postgres import PostgresContainer

    postgres = PostgresContainer(DEBIAN.postgres, username="learner", password="s3cret'pw", dbname="shop",
                                 driver=None).with_command("-c fsync=off -c max_connections=42")
    with postgres:
        url = postgres.get_connection_url()
        with psycopg.connect(url, connect_timeout=5) as connection:
            row = connection.execute(
                "select current_user, current_database(), current_setting('fsync'),"
                " current_setting('max_connections'), version()"
            ).fetchone()
        assert row[:4] == ("learner", "shop", "off", "42")
        assert row[4].startswith("PostgreSQL 15")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(url.replace("s3cret", "wrong"), connect_timeout=5).close()
        logs = postgres.get_wrapped_container().logs().decode()
        assert "database system is ready to accept connections" in logs


def test_redis_answers_ping_without_persistence(built, testcontainers_here):
    try:
        from testcontainers.community.redis import RedisContainer
    except ImportError:  # testcontainers before 4.14
        from testcontainers.redis import RedisContainer

    with RedisContainer(DEBIAN.redis) as redis:
        client = redis.get_client()
        assert client.ping()
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("protected-mode") == {"protected-mode": "no"}
        client.close()


def test_redis_with_a_password_keeps_serving_every_interface(built, testcontainers_here):
    try:
        from testcontainers.community.redis import RedisContainer
    except ImportError:  # testcontainers before 4.14
        from testcontainers.redis import RedisContainer

    with RedisContainer(DEBIAN.redis, password="pw") as redis:
        client = redis.get_client()
        assert client.ping()
        client.close()


def test_python_is_311_in_a_virtualenv(client, built):
    output = client.containers.run(
        DEBIAN.python, ["python", "-c", "import sys; print(sys.version); print(sys.prefix)"], remove=True
    ).decode()
    version, prefix = output.strip().splitlines()
    assert version.startswith("3.11."), output
    assert prefix == "/opt/venv"
