"""CI for courses and for this project: the workflows, the Gradescope autograder, and the `lab` commands they run.

Every `lab ...` command line in the workflows, the scripts and docs/courses.md is checked against the real
CLI's click commands (subcommands, options, choices), so a renamed option breaks here and not in a
classroom. The Gradescope autograder runs end to end in a folder standing in for /autograder; the course
workflow's service containers, PostgreSQL settings step and grading step run on a Docker engine where one
answers with the images (the stand-ins of `lab images build` for postgres:16 and redis:7).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import click
import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from grader import catalog, paths
from grader.calibration import CalibrationCache
from grader.cli import cli
from grader.labspec import LabSpec
from grader.processes import free_port
from grader.providers.external import ExternalProvider
from grader.providers.postgres import TEST_SETTINGS
from grader.resources import resources

ROOT = Path(__file__).resolve().parent.parent
PROJECT_CI = ROOT / ".github" / "workflows" / "ci.yml"
COURSE_WORKFLOW = ROOT / "templates" / "ci" / "github-grade.yml"
WORKFLOWS = [*sorted((ROOT / ".github" / "workflows").glob("*.yml")), COURSE_WORKFLOW]
GRADESCOPE = ROOT / "templates" / "gradescope"
SCRIPTS = [GRADESCOPE / "setup.sh", GRADESCOPE / "run_autograder", ROOT / ".ci" / "run",
           *sorted((ROOT / "scripts").glob("*.sh"))]
COURSES_DOC = ROOT / "docs" / "courses.md"
GRADESCOPE_SCHEMA = ROOT / "grader" / "schemas" / "gradescope-results.schema.json"
LAB_BIN = Path(sys.executable).with_name("lab")  # this checkout's kit, standing in for the one setup.sh installs


def load_workflow(path: Path) -> dict:
    workflow = yaml.safe_load(path.read_text())
    if True in workflow:  # YAML 1.1 reads the key `on` as true
        workflow["on"] = workflow.pop(True)
    return workflow


def steps(workflow: dict, job: str) -> list[dict]:
    return workflow["jobs"][job]["steps"]


def step(workflow: dict, job: str, step_id: str) -> dict:
    return next(s for s in steps(workflow, job) if s.get("id") == step_id)


def uses(workflow: dict, job: str, action: str) -> list[dict]:
    return [s for s in steps(workflow, job) if s.get("uses", "").split("@")[0] == action]


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in str(text).split("."))


# --- `lab` command lines ------------------------------------------------------------------------------

# The kit's executable: `lab` where a command starts (or runs through the course workflow's `as_root`), any
# path ending in /lab, or the scripts' "$LAB".
COMMAND_START = r"(?:^|(?<=[;&|(])|(?<=\$\()|(?<=\bthen )|(?<=\bdo )|(?<=! )|(?<=\bas_root ))\s*"
INVOCATION = re.compile(
    rf"(?:{COMMAND_START}lab|\"\$LAB\"|\"?[\w.${{}}/-]*/lab\"?)(?=\s|$|\))(?P<rest>[^;&|)`\n]*)")


@dataclass(frozen=True)
class LabCommand:
    where: str
    line: str
    args: list[str]


QUOTED = re.compile(r'"[^"]*"|\'[^\']*\'')


def _blank_prose(quoted: re.Match) -> str:
    """A quoted string with a space in it is prose or one argument, never the command (unless it runs one)."""
    text = quoted[0]
    return '"…"' if re.search(r"\s", text) and "$(" not in text else text


def shell_lines(text: str) -> Iterator[str]:
    """Logical lines of a shell script (continuations joined), comments left out and quoted text blanked."""
    for line in text.replace("\\\n", " ").splitlines():
        if not line.strip().startswith("#"):
            yield QUOTED.sub(_blank_prose, line)


def lab_commands_in(where: str, text: str) -> list[LabCommand]:
    found = []
    for line in shell_lines(text):
        for match in INVOCATION.finditer(line):
            args = []
            for token in shlex.split(match["rest"], comments=True):
                if re.match(r"^\d*[<>]", token):  # a redirection: the command's arguments have ended
                    break
                args.append(token)
            found.append(LabCommand(where, line.strip(), args))
    return found


def every_lab_command() -> list[LabCommand]:
    commands = []
    for path in WORKFLOWS:
        for job_name, job in load_workflow(path)["jobs"].items():
            for number, each in enumerate(job["steps"]):
                if "run" in each:
                    commands += lab_commands_in(f"{path.name} {job_name} step {number + 1}", each["run"])
    for path in SCRIPTS:
        commands += lab_commands_in(path.name, path.read_text())
    fences = re.findall(r"^```[a-z]*\n(.*?)^```", COURSES_DOC.read_text(), re.MULTILINE | re.DOTALL)
    commands += lab_commands_in(COURSES_DOC.name, "\n".join(fences))
    return commands


def problems_with(command: LabCommand) -> list[str]:
    """What the real CLI would refuse in a command line (values with shell variables are not judged)."""
    target: click.Command = cli
    ctx = click.Context(cli)
    args = list(command.args)
    path = ["lab"]
    while isinstance(target, click.Group) and args and not args[0].startswith("-"):
        name = args.pop(0)
        found = target.get_command(ctx, name)
        if found is None:
            return [f"`{' '.join(path)}` has no command {name!r}"]
        target, path = found, [*path, name]
        ctx = click.Context(target, parent=ctx)
    params = target.get_params(ctx)
    options = {name: param for param in params if isinstance(param, click.Option)
               for name in (*param.opts, *param.secondary_opts)}
    arguments = [param for param in params if isinstance(param, click.Argument)]
    room = sum(float("inf") if param.nargs == -1 else param.nargs for param in arguments)
    problems, positional = [], 0
    while args:
        token = args.pop(0)
        if token.startswith("-") and token != "-":
            name, has_value, value = token.partition("=")
            param = options.get(name)
            if param is None:
                problems.append(f"`{' '.join(path)}` has no option {name}")
                continue
            if param.is_flag or param.count:
                continue
            if not has_value:
                if not args:
                    problems.append(f"{name} needs a value")
                    continue
                value = args.pop(0)
            if "$" not in value:
                try:
                    param.type.convert(value, param, ctx)
                except click.BadParameter as error:
                    problems.append(f"{name} {value}: {error.message}")
        else:
            positional += 1
    if positional > room:
        problems.append(f"`{' '.join(path)}` takes {room} arguments, given {positional}")
    return problems


def test_every_lab_command_in_the_workflows_scripts_and_course_docs_is_one_the_cli_accepts():
    commands = every_lab_command()
    refused = {f"{c.where}: {c.line}": problems for c in commands if (problems := problems_with(c))}
    assert not refused
    seen = {(c.where.split()[0], c.args[0] if c.args else "") for c in commands}
    assert {("github-grade.yml", "check"), ("run_autograder", "check"), ("setup.sh", "check"),
            ("ci.yml", "verify"), ("courses.md", "check")} <= seen, "the reader found the commands it must"


def test_the_command_line_reader_finds_commands_and_leaves_prose_alone():
    found = lab_commands_in("example", '\n'.join([
        'lab start race-conditions  # copy the starter',
        'echo "== lab check on the starter"',
        'echo "could not (lab check exited $status)" >&2',
        'cd work && lab check --lab "$LAB_SLUG" >/dev/null 2>&1',
        'eval "$($sudo .venv/bin/lab images build --shell)"',
        'timeout 9 \\\n  "$LAB" check --provider local --gradescope "$RESULTS/results.json" | tee log',
    ]))
    assert [c.args for c in found] == [["start", "race-conditions"], ["check", "--lab", "$LAB_SLUG"],
                                       ["images", "build", "--shell"],
                                       ["check", "--provider", "local", "--gradescope", "$RESULTS/results.json"]]
    wrong = LabCommand("example", "", ["check", "--provider", "nowhere", "--labs", "x", "extra"])
    assert problems_with(wrong) == [
        "--provider nowhere: 'nowhere' is not one of 'auto', 'local', 'external', 'docker'.",
        "`lab check` has no option --labs", "`lab check` takes 0 arguments, given 2"]


# --- this project's CI --------------------------------------------------------------------------------

def test_the_project_ci_runs_the_tests_as_ci_run_does_verifies_under_docker_and_builds_the_wheel():
    workflow = load_workflow(PROJECT_CI)
    assert {"push", "pull_request"} <= set(workflow["on"])
    assert {"test", "verify-docker", "wheel"} <= set(workflow["jobs"])
    assert [s["run"] for s in steps(workflow, "test") if "run" in s] == ["bash .ci/run"]
    images = {**workflow.get("env", {}), **workflow["jobs"]["verify-docker"].get("env", {})}
    assert {"LAB_POSTGRES_IMAGE", "LAB_REDIS_IMAGE", "LAB_PYTHON_IMAGE"} <= set(images)
    verify = [c for c in every_lab_command() if c.where.startswith("ci.yml verify-docker") and c.args[:1] == ["verify"]]
    assert [c.args for c in verify] == [["verify", "--provider", "docker"]], "every lab, under docker"
    uploaded = uses(workflow, "wheel", "actions/upload-artifact")
    assert uploaded and uploaded[0]["with"]["path"].rstrip("/") == "dist"
    for job in workflow["jobs"].values():
        python = [s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python")]
        assert python and version(python[0]["with"]["python-version"]) >= (3, 11)


# --- the course's GitHub workflow ---------------------------------------------------------------------

def course_workflow() -> dict:
    return load_workflow(COURSE_WORKFLOW)


def host_port(service: dict, container_port: int) -> int:
    for mapping in service["ports"]:
        host, _, inside = str(mapping).rpartition(":")
        if int(inside.split("/")[0]) == container_port:
            return int(host)
    raise AssertionError(f"no port mapping to {container_port} in {service['ports']}")


def test_the_course_workflow_grades_on_push_with_service_containers_and_keeps_the_report():
    workflow = course_workflow()
    assert "push" in workflow["on"]
    assert workflow["env"]["LAB_SLUG"] in catalog.all_slugs()
    assert re.fullmatch(r"nexus-labs==[\w.]+|https://\S+\.whl", workflow["env"]["LAB_KIT"]), "a pinned kit"
    job = workflow["jobs"]["grade"]
    for name, probe in (("postgres", "pg_isready"), ("redis", "redis-cli ping")):
        assert probe in job["services"][name]["options"] and "--health-cmd" in job["services"][name]["options"]
    assert version(uses(workflow, "grade", "actions/setup-python")[0]["with"]["python-version"]) >= (3, 11)
    installs = [s["run"] for s in steps(workflow, "grade") if "pip install" in s.get("run", "")]
    assert installs and '"$LAB_KIT"' in installs[0]
    cache_dir = re.search(r'^echo "LAB_CACHE_DIR=\$RUNNER_TEMP/([\w-]+)" >>"\$GITHUB_ENV"$', installs[0], re.MULTILINE)
    calibrations = CalibrationCache().root.relative_to(paths.cache_dir())
    restore, save = uses(workflow, "grade", "actions/cache/restore")[0], uses(workflow, "grade", "actions/cache/save")[0]
    assert restore["with"]["path"] == save["with"]["path"] == \
        f"${{{{ runner.temp }}}}/{cache_dir[1]}/{calibrations}", "the cache keeps the kit's calibrations"
    assert save["if"] == "always()", "a failing grade (the usual case) keeps the calibrations too"
    assert save["with"]["key"] == f"${{{{ steps.{restore['id']}.outputs.cache-primary-key }}}}"
    names = [s.get("name") for s in steps(workflow, "grade")]
    assert names.index(restore["name"]) < names.index("Grade") < names.index(save["name"])
    grade = [c for c in every_lab_command() if c.where.startswith("github-grade.yml") and c.args[:1] == ["check"]]
    assert len(grade) == 1
    args = grade[0].args
    assert args[args.index("--lab") + 1] == "$LAB_SLUG" and args[args.index("--provider") + 1] == "external"
    outputs = {Path(args[args.index(option) + 1]).parts[0] for option in ("--junit", "--json")}
    upload = uses(workflow, "grade", "actions/upload-artifact")[0]
    assert upload["if"] == "always()" and upload["with"]["include-hidden-files"] is True
    kept = upload["with"]["path"].split()
    assert {f"{folder}/" for folder in outputs} <= set(kept) and ".lab/report.html" in kept


def test_the_course_workflow_urls_reach_its_service_containers():
    workflow = course_workflow()
    services = workflow["jobs"]["grade"]["services"]
    postgres = services["postgres"]["env"]
    given = ExternalProvider(workflow["env"]["LAB_DATABASE_URL"], workflow["env"]["LAB_REDIS_URL"]).server
    assert given["host"] in ("127.0.0.1", "localhost")
    assert given["port"] == host_port(services["postgres"], 5432)
    assert given["user"] == postgres.get("POSTGRES_USER", "postgres")
    assert given["password"] == postgres["POSTGRES_PASSWORD"]
    assert given["dbname"] == postgres.get("POSTGRES_DB", given["user"])
    redis_url = urlsplit(workflow["env"]["LAB_REDIS_URL"])
    assert redis_url.scheme == "redis" and redis_url.hostname in ("127.0.0.1", "localhost")
    assert redis_url.port == host_port(services["redis"], 6379)


@pytest.mark.parametrize("slug", catalog.all_slugs())
def test_the_course_workflow_gives_postgres_the_settings_the_kit_runs_its_own_servers_with(slug: str):
    run = step(course_workflow(), "grade", "configure-postgres")["run"]
    assert 'lab postgres-settings "$LAB_SLUG" >"$RUNNER_TEMP/lab-postgres.sql"' in run
    result = CliRunner().invoke(cli, ["postgres-settings", slug])
    assert result.exit_code == 0, result.output
    lab: LabSpec = catalog.load(slug)
    expected = {**TEST_SETTINGS, **lab.postgres.server_settings()}
    for host_only in ("listen_addresses", "unix_socket_directories"):
        expected.pop(host_only)
    assert result.output.splitlines() == [f"ALTER SYSTEM SET {name} = '{value}';" for name, value in expected.items()]
    assert "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements';" in result.output.splitlines()


# --- the course workflow on a Docker engine -----------------------------------------------------------

def _why_no_engine() -> str:
    from grader.images import image_set, missing
    from grader.providers import engine_answers

    if shutil.which("docker") is None:
        return "no docker command"
    answers, engine = engine_answers()
    if not answers:
        return f"no Docker engine answers: {engine}"
    import docker

    client = docker.from_env()
    try:
        absent = missing(client, image_set())
    finally:
        client.close()
    return f"the engine lacks the images {', '.join(absent)} (`lab images build`)" if absent else ""


def _docker(*args: str, timeout: float = 60) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


@pytest.fixture
def service_containers() -> Iterator[dict[str, dict]]:
    """The workflow's services as GitHub starts them (`docker create` with its options), on free host ports."""
    from grader.images import image_set

    why = _why_no_engine()
    if why:
        if os.environ.get("LAB_REQUIRE_DOCKER"):
            raise RuntimeError(f"LAB_REQUIRE_DOCKER is set but the container tests cannot run: {why}")
        pytest.skip(why)
    images = image_set()  # the engine's stand-ins for the workflow's postgres:16 and redis:7 where no registry is
    started: dict[str, dict] = {}
    try:
        for name, service in course_workflow()["jobs"]["grade"]["services"].items():
            port = 5432 if name == "postgres" else 6379
            host = free_port()
            environment = [f"--env={key}={value}" for key, value in service.get("env", {}).items()]
            container = _docker("run", "--detach", f"--name=nexus-labs-ci-{name}-{uuid.uuid4().hex[:8]}",
                                "--label=org.nexus-labs.test=course-ci", f"--publish=127.0.0.1:{host}:{port}",
                                *environment, *shlex.split(service["options"]), getattr(images, name))
            started[name] = {"id": container, "port": host, "container_port": port}
        for name, container in started.items():
            deadline = time.monotonic() + 60
            while _docker("inspect", "--format", "{{.State.Health.Status}}", container["id"]) != "healthy":
                assert time.monotonic() < deadline, f"the {name} service never became healthy"
                time.sleep(0.5)
        yield started
    finally:
        for container in started.values():
            subprocess.run(["docker", "rm", "--force", "--volumes", container["id"]], capture_output=True, timeout=60)


def _on_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rsplit(":", 1)[0] + f":{port}").geturl()


def _run_step(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    assert "${{" not in script, "an expression the runner would fill in: pass it through the step's env"
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.docker
def test_the_course_workflow_grades_a_learners_repository_against_its_service_containers(
        service_containers: dict[str, dict], tmp_path: Path):
    workflow = course_workflow()
    slug = workflow["env"]["LAB_SLUG"]
    lab = catalog.load(slug)
    repository = tmp_path / "repository"  # as a course makes it: the starter and the brief, never a .lab/
    shutil.copytree(resources().starter_dir(slug), repository)
    shutil.copy(resources().lab_dir(slug) / "README.md", repository / "README.md")
    (repository / ".github" / "workflows").mkdir(parents=True)
    shutil.copy(COURSE_WORKFLOW, repository / ".github" / "workflows" / "grade.yml")
    runner_temp, summary = tmp_path / "runner-temp", tmp_path / "step-summary.md"
    runner_temp.mkdir()
    env = {**os.environ, **{key: str(value) for key, value in workflow["env"].items()},
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "RUNNER_TEMP": str(runner_temp), "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary),
           "LAB_DATABASE_URL": _on_port(workflow["env"]["LAB_DATABASE_URL"], service_containers["postgres"]["port"]),
           "LAB_REDIS_URL": _on_port(workflow["env"]["LAB_REDIS_URL"], service_containers["redis"]["port"])}
    env.pop("LAB_PROVIDER", None)

    configure = step(workflow, "grade", "configure-postgres")
    step_env = {**env, "POSTGRES_CONTAINER": service_containers["postgres"]["id"]}
    configured = _run_step(configure["run"], step_env, repository)
    assert configured.returncode == 0, configured.stdout + configured.stderr
    assert "shared_preload_libraries = pg_stat_statements" in configured.stdout
    import psycopg

    with psycopg.connect(env["LAB_DATABASE_URL"], autocommit=True, connect_timeout=10) as connection:
        shown = {name: connection.execute(f"SHOW {name}").fetchone()[0]
                 for name in ("shared_preload_libraries", "fsync", "deadlock_timeout", "max_connections")}
        connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        connection.execute("SELECT count(*) FROM pg_stat_statements").fetchone()
    assert shown == {"shared_preload_libraries": "pg_stat_statements", "fsync": "off", "deadlock_timeout": "100ms",
                     "max_connections": str(lab.postgres.max_connections or 100)}

    graded = _run_step(step(workflow, "grade", "grade")["run"], env, repository)
    output = graded.stdout + graded.stderr
    assert graded.returncode == 1, output  # the starter fails its checks, so the learner's run goes red
    result = json.loads((repository / "lab-results" / "result.json").read_text())
    assert result["provider"] == "external" and result["lab"] == slug
    assert {c["id"]: c["status"] for c in result["checks"]} == {
        check_id: "fail" if check_id in lab.starter_fails else "pass" for check_id in lab.check_ids}
    assert (repository / "lab-results" / "junit.xml").read_text().lstrip().startswith("<?xml")
    annotated = re.findall(rf"^::error title={re.escape(slug)}%3A ([\w-]+) \(fail\)::", graded.stdout, re.MULTILINE)
    assert sorted(annotated) == sorted(lab.starter_fails), output
    assert slug in summary.read_text()
    for path in uses(workflow, "grade", "actions/upload-artifact")[0]["with"]["path"].split():
        assert (repository / path).exists(), f"the artifact's {path} is missing after grading"
    assert "*" in (repository / ".lab" / ".gitignore").read_text(), "git keeps .lab/ out of the learner's repository"


# --- Gradescope ---------------------------------------------------------------------------------------

@pytest.fixture
def autograder(tmp_path: Path) -> Path:
    """A folder laid out as Gradescope's /autograder, with the course's files in source/ (as its zip gives them)."""
    root = tmp_path / "autograder"
    shutil.copytree(GRADESCOPE, root / "source")
    (root / "submission").mkdir()
    return root


def run_autograder(root: Path, **env: str) -> tuple[subprocess.CompletedProcess, dict]:
    """Run the autograder as Gradescope would, and read the results.json it leaves."""
    environment = {**os.environ, "AUTOGRADER_ROOT": str(root), "LAB": str(LAB_BIN), **env}
    environment.pop("LAB_PROVIDER", None)
    done = subprocess.run([str(root / "source" / "run_autograder")], env=environment, cwd=root,
                          capture_output=True, text=True, timeout=900)
    results = json.loads((root / "results" / "results.json").read_text())
    if GRADESCOPE_SCHEMA.is_file():
        jsonschema.validate(results, json.loads(GRADESCOPE_SCHEMA.read_text()))
    assert isinstance(results["score"], float) and isinstance(results["output"], str)
    return done, results


def test_the_gradescope_scripts_are_valid_bash():
    for script in (GRADESCOPE / "setup.sh", GRADESCOPE / "run_autograder", GRADESCOPE / "config.sh"):
        done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    for script in (GRADESCOPE / "setup.sh", GRADESCOPE / "run_autograder"):
        assert os.access(script, os.X_OK), f"{script.name} must be executable (Gradescope runs it directly)"


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_the_gradescope_scripts_pass_shellcheck():
    done = subprocess.run(["shellcheck", "-x", "setup.sh", "run_autograder", "config.sh"], cwd=GRADESCOPE,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_the_gradescope_config_names_a_lab_and_a_pinned_kit():
    shown = subprocess.run(["bash", "-c", '. ./config.sh && printf "%s\\n" "$LAB_SLUG" "$LAB_KIT"'], cwd=GRADESCOPE,
                           capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    slug, kit = shown.stdout.split()
    assert slug in catalog.all_slugs()
    assert re.fullmatch(r"nexus-labs==[\w.]+", kit)


@pytest.mark.slow
def test_run_autograder_grades_a_starter_as_lab_toml_says(autograder: Path):
    lab = catalog.load("race-conditions")
    shutil.copytree(resources().starter_dir(lab.slug), autograder / "submission", dirs_exist_ok=True)

    done, results = run_autograder(autograder, LAB_SLUG=lab.slug)

    assert done.returncode == 0, done.stdout + done.stderr
    statuses = {test["name"].split(":")[0]: test["status"] for test in results["tests"]}
    assert statuses == {check.id: "failed" if check.id in lab.starter_fails else "passed" for check in lab.checks}
    assert results["score"] == sum(check.weight for check in lab.checks if check.id not in lab.starter_fails)
    assert sum(test["max_score"] for test in results["tests"]) == sum(check.weight for check in lab.checks)
    assert (autograder / "grading" / lab.slug / ".lab" / "report.html").is_file()
    assert "Score" in (autograder / "results" / "lab-check.log").read_text()


@pytest.mark.slow
def test_run_autograder_gives_full_marks_to_a_reference_zipped_in_its_folder(autograder: Path):
    lab = catalog.load("race-conditions")
    # A zip of the learner's folder (it unpacks as one folder), with their own .lab/ of another lab inside.
    project = autograder / "submission" / "my-race-conditions"
    shutil.copytree(resources().starter_dir(lab.slug), project)
    shutil.copytree(resources().solution_dir(lab.slug), project, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("NOTES.md"))
    (project / ".lab").mkdir()
    (project / ".lab" / "lab.json").write_text(json.dumps({"slug": "slow-queries", "version": "1.0.0"}))

    done, results = run_autograder(autograder, LAB_SLUG=lab.slug)

    assert done.returncode == 0, done.stdout + done.stderr
    assert results["score"] == sum(check.weight for check in lab.checks), results["output"]
    assert {test["status"] for test in results["tests"]} == {"passed"}
    assert len(results["tests"]) == len(lab.checks)


def test_run_autograder_explains_an_unknown_lab_in_results_json(autograder: Path):
    (autograder / "submission" / "manage.py").write_text("")
    _done, results = run_autograder(autograder, LAB_SLUG="no-such-lab")
    assert results["score"] == 0 and results["tests"] == []
    assert results["output"].startswith("This submission was not graded: lab check could not grade here (exit 2")
    assert "There is no lab called 'no-such-lab'." in results["output"]


def test_run_autograder_explains_a_grader_that_crashes(autograder: Path, tmp_path: Path):
    crashing = tmp_path / "lab"
    crashing.write_text("#!/bin/sh\necho 'Traceback (most recent call last):' >&2\n"
                        "echo 'RuntimeError: the grader broke' >&2\nexit 1\n")
    crashing.chmod(0o755)
    (autograder / "submission" / "manage.py").write_text("")
    _done, results = run_autograder(autograder, LAB=str(crashing))
    assert results["score"] == 0 and results["tests"] == []
    assert "without a valid results.json: the grader itself failed" in results["output"]
    assert "RuntimeError: the grader broke" in results["output"]


def test_run_autograder_stops_a_grading_that_takes_too_long(autograder: Path, tmp_path: Path):
    hanging = tmp_path / "lab"
    hanging.write_text("#!/bin/sh\nexec sleep 30\n")
    hanging.chmod(0o755)
    (autograder / "submission" / "manage.py").write_text("")
    started = time.monotonic()
    _done, results = run_autograder(autograder, LAB=str(hanging), GRADING_SECONDS="1")
    assert time.monotonic() - started < 20
    assert results["output"].startswith("This submission was not graded: grading took longer than 1 seconds")


def test_run_autograder_never_takes_a_results_json_the_graded_code_wrote(autograder: Path, tmp_path: Path):
    """Code under test runs as the autograder's user: a full-marks file it forges, then a killed grader, scores 0."""
    results_file = autograder / "results" / "results.json"
    forging = tmp_path / "lab"
    forging.write_text(f"#!/bin/sh\necho '{{\"score\": 99.0, \"tests\": []}}' > '{results_file}'\nkill -TERM $$\n")
    forging.chmod(0o755)
    (autograder / "submission" / "manage.py").write_text("")
    _done, results = run_autograder(autograder, LAB=str(forging))
    assert results["score"] == 0.0
    assert results["output"].startswith("This submission was not graded: lab check stopped unexpectedly (exit 143)")


@pytest.mark.parametrize("case, expected", [
    ("empty", "the submission is empty"),
    ("no-kit", "the lab kit is not installed at"),
    ("no-config", "config.sh is missing"),
])
def test_run_autograder_leaves_results_json_when_it_cannot_start(autograder: Path, case: str, expected: str):
    env = {}
    if case != "empty":
        (autograder / "submission" / "manage.py").write_text("")
    if case == "no-kit":
        env["LAB"] = str(autograder / "nowhere" / "lab")
    if case == "no-config":
        (autograder / "source" / "config.sh").unlink()
    _done, results = run_autograder(autograder, **env)
    assert results["score"] == 0 and expected in results["output"]
