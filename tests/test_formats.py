"""The machine formats of a result, each against its schema or the platform's documented sample, and `lab check`
writing them for real."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import xmlschema
from junitparser import Error, Failure, JUnitXml, Skipped

from grader import formats
from grader.calibration import Calibration
from grader.labspec import load_lab
from grader.resources import resources
from grader.results import CheckResult, RunResult, StageProblem

from conftest import tree_digest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "tests" / "samples"
JUNIT_XSD = xmlschema.XMLSchema(ROOT / "tests" / "schemas" / "junit.xsd")


def schema(path: Path) -> jsonschema.Draft202012Validator:
    document = json.loads(path.read_text())
    jsonschema.Draft202012Validator.check_schema(document)
    return jsonschema.Draft202012Validator(document, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


RESULT = schema(formats.RESULT_SCHEMA)
GRADESCOPE = schema(formats.GRADESCOPE_SCHEMA)


def a_result(stage_failure: bool = False) -> RunResult:
    """A result with every status, a figure the starter and reference measured, and an optional check."""
    checks = [
        CheckResult("catalog", "The catalog lists every product", "pass", "", duration=0.4),
        CheckResult("no-oversell", "Twenty buyers of five units: five orders", "fail",
                    "20 orders were accepted for 5 units", evidence={"accepted": 20, "stock": 5, "note": "a,b:c"},
                    hint="What happens when two requests read the same stock at once?", duration=2.5, weight=3),
        CheckResult("under-load", "Requests per second within reach of the reference", "inconclusive",
                    "too close to call", hint="Run it again on a quieter machine.", duration=9.0,
                    figures={"requests/s": 180.5, "p50 ms": 41.0}),
        CheckResult("webhooks", "Webhooks are signed", "error", "the check crashed",
                    evidence={"traceback": "Traceback (most recent call last):\n  ValueError: 100% broken"}),
        CheckResult("export", "The export streams", "skip", "skipped: depends on catalog", weight=2, required=False),
    ]
    problem = None
    if stage_failure:
        problem = StageProblem("migrate", "the migrations failed", "django.db.utils.ProgrammingError: boom",
                               "Run `lab run` to see the migration error.")
        checks = [CheckResult(c.id, c.title, "skip", "skipped: the service could not be prepared (the migrate "
                              "stage failed)", weight=c.weight, required=c.required) for c in checks]
    calibration = Calibration("race-conditions", "1.1.0", "local", "x86_64, 2 cores, 24 GiB, Linux",
                              "2026-12-02T06:00:00+00:00", 1,
                              starter={"under-load": {"requests/s": 2.6, "p50 ms": 3300.0}},
                              reference={"under-load": {"requests/s": 64.2, "p50 ms": 120.0}})
    return RunResult(lab="race-conditions", lab_version="1.1.0", provider="local", seed=7,
                     started_at="2026-12-02T06:01:02+00:00", stages={"snapshot": 0.1, "checks": 12.5},
                     checks=checks, stage_failure=problem, template="reused", servers={"postgres": "15.8"},
                     calibration=calibration)


# --- json ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("stage_failure", [False, True])
def test_the_json_result_matches_its_schema(stage_failure: bool):
    document = json.loads(formats.to_json(a_result(stage_failure)))
    RESULT.validate(document)
    assert document["score"] == {"earned": 0 if stage_failure else 1, "max": 8}
    figures = next(check for check in document["checks"] if check["id"] == "under-load")["figures"]
    assert figures[0] == {"name": "requests/s", "starter": 2.6, "yours": None if stage_failure else 180.5,
                          "reference": 64.2}


def test_the_schema_rejects_what_readers_could_not_use():
    document = json.loads(formats.to_json(a_result()))
    for broken in (
            {**document, "schema_version": 2},
            {**document, "checks": [{**document["checks"][0], "status": "maybe"}]},
            {**document, "score": {"earned": "1"}},
            {key: value for key, value in document.items() if key != "passed"},
    ):
        assert not RESULT.is_valid(broken)


# --- junit --------------------------------------------------------------------------------------------

def test_junit_matches_the_report_schema_and_a_junit_reader_sees_each_outcome():
    text = formats.to_junit(a_result())
    JUNIT_XSD.validate(text)
    suites = JUnitXml.fromstring(text)
    suite = next(iter(suites))
    assert (suite.name, suite.tests, suite.failures, suite.errors, suite.skipped) == ("race-conditions", 5, 2, 1, 1)
    outcomes = {case.name: [type(part).__name__ for part in case.result] for case in suite}
    assert outcomes == {"catalog": [], "no-oversell": ["Failure"], "under-load": ["Failure"],
                        "webhooks": ["Error"], "export": ["Skipped"]}
    oversell = next(case for case in suite if case.name == "no-oversell")
    failure = oversell.result[0]
    assert isinstance(failure, Failure) and failure.type == "fail"
    assert failure.message == "Twenty buyers of five units: five orders: 20 orders were accepted for 5 units"
    assert "hint: What happens when two requests read the same stock at once?" in failure.text
    assert "accepted: 20" in failure.text
    load = next(case for case in suite if case.name == "under-load")
    assert "requests/s: starter 2.60, yours 180.5, reference 64.2" in load.result[0].text
    webhooks = next(case for case in suite if case.name == "webhooks")
    assert isinstance(webhooks.result[0], Error) and "ValueError: 100% broken" in webhooks.result[0].text
    assert isinstance(next(case for case in suite if case.name == "export").result[0], Skipped)


def test_a_failed_stage_is_a_testcase_in_error_in_junit():
    suite = next(iter(JUnitXml.fromstring(formats.to_junit(a_result(stage_failure=True)))))
    JUNIT_XSD.validate(formats.to_junit(a_result(stage_failure=True)))
    assert (suite.tests, suite.errors, suite.skipped) == (6, 1, 5)
    stage = next(case for case in suite if case.name == "stage: migrate")
    assert "What to try: Run `lab run` to see the migration error." in stage.result[0].text


def test_the_junit_schema_accepts_what_pytest_writes(tmp_path: Path):
    """The schema is the format CI systems read: pytest's own --junitxml report of every outcome passes it."""
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n\ndef test_passes():\n    pass\n\ndef test_fails():\n    assert 1 == 2\n\n"
        "@pytest.fixture\ndef broken():\n    raise RuntimeError('fixture')\n\ndef test_errors(broken):\n    pass\n\n"
        "@pytest.mark.skip(reason='not today')\ndef test_skipped():\n    pass\n")
    report = tmp_path / "report.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                    "test_sample.py"], cwd=tmp_path, capture_output=True, timeout=120)
    JUNIT_XSD.validate(str(report))
    suite = next(iter(JUnitXml.fromfile(str(report))))
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (4, 1, 1, 1)


def test_junit_drops_what_xml_cannot_carry():
    result = a_result()
    result.checks[1].message = "\x1b[31mred\x1b[0m and a NUL \x00 from a reply"
    result.checks[1].evidence = {"body": "ok\x07\x0c"}
    text = formats.to_junit(result)
    JUNIT_XSD.validate(text)
    failure = next(case for case in next(iter(JUnitXml.fromstring(text))) if case.name == "no-oversell").result[0]
    assert failure.message.endswith(": [31mred[0m and a NUL  from a reply")
    assert "body: ok" in failure.text


def test_the_junit_schema_refuses_a_testcase_without_a_name():
    text = formats.to_junit(a_result()).replace('name="catalog"', "", 1)
    assert not JUNIT_XSD.is_valid(text)


# --- gradescope ---------------------------------------------------------------------------------------

def test_the_gradescope_schema_accepts_gradescopes_documented_sample():
    GRADESCOPE.validate(json.loads((SAMPLES / "gradescope-results.json").read_text()))
    assert not GRADESCOPE.is_valid({"tests": [{"status": "passed"}]}), "a score is needed somewhere"
    assert not GRADESCOPE.is_valid({"score": 1, "visibility": "public"})


def test_gradescope_results_score_each_check_by_its_weight():
    document = json.loads(formats.to_gradescope(a_result()))
    GRADESCOPE.validate(document)
    assert document["score"] == 1.0
    rows = [(test["name"], test["score"], test["max_score"], test["status"]) for test in document["tests"]]
    assert rows == [
        ("catalog: The catalog lists every product", 1.0, 1.0, "passed"),
        ("no-oversell: Twenty buyers of five units: five orders", 0.0, 3.0, "failed"),
        ("under-load: Requests per second within reach of the reference", 0.0, 1.0, "failed"),
        ("webhooks: Webhooks are signed", 0.0, 1.0, "failed"),
        ("export: The export streams", 0.0, 2.0, "failed"),
    ]
    oversell = document["tests"][1]
    assert oversell["output"].startswith("[FAIL] 20 orders were accepted for 5 units\n")
    assert "hint: What happens when two requests read the same stock at once?" in oversell["output"]
    assert oversell["visibility"] == "visible" and "optional" in document["tests"][4]["tags"]
    assert document["output"] == ("race-conditions 1.1.0: score 1/8, 3 required checks not passing "
                                  "(provider local, seed 7)")


def test_gradescope_results_of_a_failed_stage_say_what_to_try():
    document = json.loads(formats.to_gradescope(a_result(stage_failure=True)))
    GRADESCOPE.validate(document)
    assert document["score"] == 0.0
    assert "The migrate stage failed: the migrations failed" in document["output"]
    assert "What to try: Run `lab run` to see the migration error." in document["output"]
    assert {test["status"] for test in document["tests"]} == {"failed"}


# --- github -------------------------------------------------------------------------------------------

COMMAND = re.compile(r"^::(?P<level>error|warning|notice) (?P<properties>[^:]*)::(?P<message>.*)$")


def unescape(text: str) -> str:
    return (text.replace("%0A", "\n").replace("%0D", "\r").replace("%3A", ":").replace("%2C", ",")
            .replace("%25", "%"))


def parse_commands(text: str) -> list[dict[str, str]]:
    """Workflow commands as the runner reads them: one line each, properties split on commas."""
    commands = []
    for line in text.splitlines():
        match = COMMAND.match(line)
        assert match, f"not a workflow command: {line!r}"
        properties = dict(part.split("=", 1) for part in match["properties"].split(","))
        commands.append({"level": match["level"], **{k: unescape(v) for k, v in properties.items()},
                         "message": unescape(match["message"])})
    return commands


def test_github_annotations_mark_each_check_that_does_not_pass():
    commands = parse_commands(formats.to_github(a_result()))
    assert [(c["level"], c["title"]) for c in commands] == [
        ("error", "race-conditions: no-oversell (fail)"),
        ("error", "race-conditions: under-load (inconclusive)"),
        ("error", "race-conditions: webhooks (error)"),
    ]
    assert commands[0]["message"] == ("Twenty buyers of five units: five orders\n20 orders were accepted for 5 units\n"
                                      "hint: What happens when two requests read the same stock at once?")
    assert commands[2]["message"] == "Webhooks are signed\nthe check crashed\n  ValueError: 100% broken"


def test_annotation_escaping_survives_every_special_character():
    title, message = "a: b, c% %3A", "50% done\r\nnext: line, two %0A literal %25"
    [command] = parse_commands(formats.annotation("error", title, message))
    assert (command["title"], command["message"]) == (title, message)


def test_an_optional_check_is_a_warning_and_a_failed_stage_an_error():
    result = a_result()
    result.checks[4] = CheckResult("export", "The export streams", "fail", "it buffers", required=False)
    assert parse_commands(formats.to_github(result))[-1]["level"] == "warning"
    [stage] = parse_commands(formats.to_github(a_result(stage_failure=True)))
    assert stage["title"] == "race-conditions: the migrate stage failed"
    assert "What to try: Run `lab run` to see the migration error." in stage["message"]


def test_the_github_summary_is_a_table_of_checks_with_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    formats.append_github_summary(a_result())
    text = summary.read_text()
    assert text.startswith("# earlier step\n## ❌ race-conditions 1.1.0: 1/8, 3 required checks not passing\n")
    assert ("| ❌ | `no-oversell` Twenty buyers of five units: five orders | fail | 3 | 20 orders were accepted "
            "for 5 units<br>*hint:* What happens when two requests read the same stock at once? |") in text
    assert "| requests/s | 2.60 | 180.5 | 64.2 |" in text
    assert "| ⏭️ | `export` The export streams | skip | 2 (optional) |" in text


# --- lab check, for real ------------------------------------------------------------------------------

def lab(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).with_name("lab")), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env={**os.environ, **(env or {})})


@pytest.mark.slow
def test_check_of_an_unmarked_folder_writes_every_format(tmp_path: Path):
    """A learner's repository in CI: no `lab start` marker, `--lab` names the lab; stdout carries JSON."""
    repository = tmp_path / "repository"
    shutil.copytree(resources().starter_dir("race-conditions"), repository)
    before = tree_digest(repository)
    summary = tmp_path / "summary.md"
    outputs = tmp_path / "outputs"
    completed = lab("check", "--lab", "race-conditions", "--provider", "local", "--format", "json",
                    "--junit", str(outputs / "junit.xml"), "--gradescope", str(outputs / "results.json"),
                    cwd=repository, env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)})

    assert completed.returncode == 1, completed.stderr
    document = json.loads(completed.stdout)
    RESULT.validate(document)
    spec = load_lab(resources().lab_dir("race-conditions") / "lab.toml")
    starter_fails = spec.starter_fails
    assert {c["id"] for c in document["checks"] if c["status"] != "pass"} == set(starter_fails)
    assert document == json.loads((repository / ".lab" / "results" / "latest.json").read_text())
    JUNIT_XSD.validate(str(outputs / "junit.xml"))
    assert next(iter(JUnitXml.fromfile(str(outputs / "junit.xml")))).failures == len(starter_fails)
    gradescope = json.loads((outputs / "results.json").read_text())
    GRADESCOPE.validate(gradescope)
    assert gradescope["score"] == document["score"]["earned"]
    annotated = {c["title"].split(": ")[1].split(" ")[0] for c in parse_commands(
        "\n".join(line for line in completed.stderr.splitlines() if line.startswith("::")))}
    assert annotated == set(starter_fails)
    assert f"race-conditions {spec.version}" in summary.read_text().splitlines()[0]
    assert "Score " in completed.stderr, "the report for people goes to stderr"
    assert (repository / ".lab" / "report.html").is_file()
    assert tree_digest(repository) == before, "only .lab/ was written in the repository"


def test_check_refuses_a_workspace_of_another_lab(start_lab):
    workspace = start_lab("slow-queries")
    completed = lab("check", "--lab", "race-conditions", cwd=workspace)
    assert completed.returncode == 2
    assert (f"error: {workspace} is a workspace of the slow-queries lab, not of race-conditions.\n"
            "Run `lab check` there without --lab, or grade race-conditions in its own folder.") in completed.stderr


def test_check_with_lab_wants_the_projects_folder(tmp_path: Path):
    completed = lab("check", "--lab", "race-conditions", cwd=tmp_path)
    assert completed.returncode == 2
    assert (f"error: {tmp_path.resolve()} has no manage.py, so it is not a lab's project folder.\n"
            "Run `lab check --lab race-conditions` in the folder that holds your project's manage.py.") \
        in completed.stderr
    assert not (tmp_path / ".lab").exists(), "no marker is left in a folder that is not a project"


def test_an_output_file_that_cannot_be_written_is_refused_before_grading(start_lab):
    workspace = start_lab("race-conditions")
    blocker = workspace.parent / "not-a-folder"
    blocker.write_text("")
    completed = lab("check", "--junit", str(blocker / "junit.xml"), cwd=workspace)
    assert completed.returncode == 2
    assert (f"error: --junit {blocker / 'junit.xml'}: {blocker} is not a folder this user can write in.\n"
            "Give --junit a path in a folder you can write to.") in completed.stderr
    assert not (workspace / ".lab" / "results").exists(), "nothing was graded"


def test_a_partial_run_says_so_and_its_time_counts_each_stage_once():
    from dataclasses import replace

    result = replace(a_result(), only=("no-oversell",),
                     stages={"services": 1.0, "migrate": 0.5, "checks": 3.0, "pytest start": 0.25})
    assert result.seconds == 4.0, "migrate and pytest start are timed inside services and checks"
    suite = next(iter(JUnitXml.fromstring(formats.to_junit(result))))
    assert float(suite.time) == 4.0
    assert {prop.name: prop.value for prop in suite.properties()}["only"] == "no-oversell"
    payload = formats.to_json(result)
    assert json.loads(payload)["only"] == ["no-oversell"]
    schema(formats.RESULT_SCHEMA).validate(json.loads(payload))
