"""A grading result in the forms CI systems and course platforms read.

- `json`: our own result (schema version 1, described by grader/schemas/result.schema.json).
- `junit`: JUnit XML, as pytest, Jenkins, GitLab and most CI dashboards read it: one testsuite per lab,
  one testcase per check; a failed stage is a testcase of its own, in error.
- `gradescope`: Gradescope's results.json (score, and per test its score, max_score, status, output and
  visibility), as its autograder specification describes.
- `github`: GitHub Actions workflow commands (an error annotation for every required check that does not
  pass, a warning for an optional one) and a Markdown job summary.
"""

from __future__ import annotations

import json
import os
import platform
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grader.names import FORMATS  # noqa: F401 - re-exported
from grader.results import CheckResult, RunResult, figure_rows

FILE_FORMATS = ("json", "junit", "gradescope")  # those with a file of their own (--json, --junit, --gradescope)
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
RESULT_SCHEMA = SCHEMA_DIR / "result.schema.json"
GRADESCOPE_SCHEMA = SCHEMA_DIR / "gradescope-results.schema.json"
NOT_PASSING = ("fail", "error", "inconclusive")
MARK = {"pass": "✅", "fail": "❌", "error": "💥", "skip": "⏭️", "inconclusive": "❔"}


def figure_value(value: Any) -> str:
    """A figure as the reports print it: '-' where unmeasured, one decimal for large floats."""
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:,.2f}"
    return f"{value:,.0f}" if isinstance(value, int | float) else str(value)


def evidence_lines(evidence: dict[str, Any], limit: int | None = 300) -> list[str]:
    """Evidence as `key: value` lines (the traceback excepted), each cut at `limit` characters."""
    lines = []
    for key, value in evidence.items():
        if key == "traceback":
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if limit is not None and len(text) > limit:
            text = text[:limit] + "…"
        lines.append(f"{key}: {text}")
    return lines


def figure_lines(result: RunResult, check: CheckResult) -> list[str]:
    return [f"{row['name']}: starter {figure_value(row['starter'])}, yours {figure_value(row['yours'])}, "
            f"reference {figure_value(row['reference'])}"
            for row in figure_rows(check.id, check.figures, result.calibration)]


def check_text(result: RunResult, check: CheckResult) -> str:
    """What a check found, in plain text: message, evidence, traceback, hint and figures."""
    lines = [check.message] if check.message else []
    if check.status != "pass":
        lines += evidence_lines(check.evidence)
        if check.status == "error" and "traceback" in check.evidence:
            lines.append(str(check.evidence["traceback"]).rstrip())
        if check.hint and check.status in ("fail", "inconclusive"):
            lines.append(f"hint: {check.hint}")
    figures = figure_lines(result, check)
    if figures:
        lines += ["measured:", *(f"  {line}" for line in figures)]
    return "\n".join(lines)


def stage_failure_text(result: RunResult) -> str:
    problem = result.stage_failure
    if problem is None:
        return ""
    parts = [f"The {problem.stage} stage failed: {problem.message}"]
    if problem.log_tail:
        parts.append(f"--- from the {problem.stage} log ---\n{problem.log_tail.rstrip()}\n---")
    if problem.todo:
        parts.append(f"What to try: {problem.todo}")
    parts.append(f"All {len(result.checks)} checks were skipped: they need a running service.")
    return "\n".join(parts)


def verdict_text(result: RunResult) -> str:
    if result.passed:
        return "all required checks pass"
    failed = sum(1 for check in result.checks if check.required and not check.passed)
    return f"{failed} required check{'s' if failed != 1 else ''} not passing"


def headline(result: RunResult) -> str:
    return (f"{result.lab} {result.lab_version}: score {result.score}/{result.max_score}, {verdict_text(result)} "
            f"(provider {result.provider}, seed {result.seed})")


# --- json ---------------------------------------------------------------------------------------------

def to_json(result: RunResult) -> str:
    return json.dumps(result.to_json(), indent=2) + "\n"


# --- junit --------------------------------------------------------------------------------------------

NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")  # what XML 1.0 cannot hold


def xml_text(text: str) -> str:
    """`text` without the characters XML cannot carry (a terminal colour in a log, a NUL in a reply body)."""
    return NOT_XML.sub("", text)


def _element(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {key: xml_text(str(value)) for key, value in attributes.items()})
    if text is not None:
        element.text = xml_text(text)
    return element


def to_junit(result: RunResult) -> str:
    """JUnit XML: <testsuites> holding one <testsuite> for the lab, a <testcase> per check."""
    counts = {"tests": len(result.checks), "failures": 0, "errors": 0, "skipped": 0}
    total_time = result.seconds
    suite = ET.Element("testsuite", name=result.lab, timestamp=result.started_at, hostname=platform.node(),
                       time=f"{total_time:.3f}")
    properties = _element(suite, "properties")
    for name, value in (("lab_version", result.lab_version), ("provider", result.provider),
                        ("seed", result.seed), ("score", f"{result.score}/{result.max_score}"),
                        ("passed", str(result.passed).lower()),
                        *((("only", ",".join(result.only)),) if result.only is not None else ())):
        _element(properties, "property", name=name, value=str(value))
    classname = f"lab.{result.lab}"
    if result.stage_failure:
        counts["tests"] += 1
        counts["errors"] += 1
        case = _element(suite, "testcase", classname=classname, name=f"stage: {result.stage_failure.stage}",
                        time="0.000")
        _element(case, "error", stage_failure_text(result), type="stage-failed", message=result.stage_failure.message)
    for check in result.checks:
        case = _element(suite, "testcase", classname=classname, name=check.id, time=f"{check.duration:.3f}")
        text = check_text(result, check)
        summary = f"{check.title}: {check.message}"
        if check.status in ("fail", "inconclusive"):
            counts["failures"] += 1
            _element(case, "failure", text, type=check.status, message=summary)
        elif check.status == "error":
            counts["errors"] += 1
            _element(case, "error", text, type="error", message=summary)
        elif check.status == "skip":
            counts["skipped"] += 1
            _element(case, "skipped", message=check.message or "skipped")
        if check.status == "pass" and text:
            _element(case, "system-out", text)
    for key, value in counts.items():
        suite.set(key, str(value))
    root = ET.Element("testsuites", name="nexus-labs", tests=str(counts["tests"]), failures=str(counts["failures"]),
                      errors=str(counts["errors"]), skipped=str(counts["skipped"]), time=f"{total_time:.3f}")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# --- gradescope ---------------------------------------------------------------------------------------

def to_gradescope(result: RunResult, visibility: str = "visible") -> str:
    """Gradescope's results.json: a test per check worth its weight, and the run's summary as output."""
    tests = []
    for number, check in enumerate(result.checks, start=1):
        output = check_text(result, check)
        if check.status == "skip" and result.stage_failure:
            output = f"{check.message}\nSee the output above for what failed and what to try."
        tests.append({
            "name": f"{check.id}: {check.title}",
            "number": str(number),
            "score": float(check.weight if check.passed else 0),
            "max_score": float(check.weight),
            "status": "passed" if check.passed else "failed",
            "output": f"[{check.status.upper()}] {output}".rstrip(),
            "output_format": "text",
            "tags": [result.lab, check.status] + ([] if check.required else ["optional"]),
            "visibility": visibility,
        })
    output = headline(result)
    if result.stage_failure:
        output += "\n\n" + stage_failure_text(result)
    return json.dumps({
        "score": float(result.score),
        "execution_time": round(result.seconds),
        "output": output,
        "output_format": "text",
        "visibility": visibility,
        "stdout_visibility": "hidden",
        "tests": tests,
        "extra_data": {"lab": result.lab, "lab_version": result.lab_version, "provider": result.provider,
                       "seed": result.seed, "passed": result.passed, "started_at": result.started_at},
    }, indent=2) + "\n"


# --- github -------------------------------------------------------------------------------------------

def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(level: str, title: str, message: str) -> str:
    """One workflow command, escaped as GitHub Actions requires (`::error title=…::message`)."""
    return f"::{level} title={_escape_property(title)}::{_escape_data(message)}"


def github_annotations(result: RunResult) -> list[str]:
    """An error for every required check that does not pass (a warning for an optional one)."""
    lines = []
    if result.stage_failure:
        lines.append(annotation("error", f"{result.lab}: the {result.stage_failure.stage} stage failed",
                                stage_failure_text(result)))
    for check in result.checks:
        if check.status not in NOT_PASSING:
            continue
        level = "error" if check.required else "warning"
        text = [check.title, check.message]  # the evidence is in the summary and the report: an annotation stays short
        if check.status == "error" and "traceback" in check.evidence:
            text.append(str(check.evidence["traceback"]).rstrip().splitlines()[-1])
        if check.hint and check.status in ("fail", "inconclusive"):
            text.append(f"hint: {check.hint}")
        lines.append(annotation(level, f"{result.lab}: {check.id} ({check.status})", "\n".join(filter(None, text))))
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def github_summary(result: RunResult) -> str:
    """The job summary in GitHub-flavoured Markdown: verdict, a row per check, figures and hints."""
    lines = [f"## {MARK['pass' if result.passed else 'fail']} {result.lab} {result.lab_version}: "
             f"{result.score}/{result.max_score}, {verdict_text(result)}", "",
             f"Provider {result.provider} · seed {result.seed} · {result.started_at}", ""]
    if result.stage_failure:
        problem = result.stage_failure
        lines += [f"**The {problem.stage} stage failed:** {problem.message}", ""]
        if problem.log_tail:
            lines += ["```", problem.log_tail.rstrip().replace("```", "` ` `"), "```", ""]
        if problem.todo:
            lines += [f"**What to try:** {problem.todo}", ""]
    lines += ["| | check | result | weight | what was found |", "|---|---|---|---|---|"]
    for check in result.checks:
        found = check.message if check.status != "pass" else ""
        if check.hint and check.status in ("fail", "inconclusive"):
            found += f"<br>*hint:* {check.hint}"
        lines.append(f"| {MARK[check.status]} | `{check.id}` {_cell(check.title)} | {check.status} | "
                     f"{check.weight}{'' if check.required else ' (optional)'} | {_cell(found)} |")
    for check in result.checks:
        rows = figure_rows(check.id, check.figures, result.calibration)
        if not rows:
            continue
        lines += ["", f"**{check.id}**", "", "| measured | starter | yours | reference |", "|---|--:|--:|--:|"]
        lines += [f"| {_cell(row['name'])} | {figure_value(row['starter'])} | {figure_value(row['yours'])} | "
                  f"{figure_value(row['reference'])} |" for row in rows]
    if result.calibration:
        calibration = result.calibration
        lines += ["", f"Starter and reference measured {calibration.measured_at} on {calibration.machine} "
                      f"({calibration.provider} provider)."]
    return "\n".join(lines) + "\n"


def to_github(result: RunResult) -> str:
    return "\n".join(github_annotations(result)) + "\n"


def on_github_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def append_github_summary(result: RunResult) -> Path | None:
    """Add the job summary to $GITHUB_STEP_SUMMARY, where GitHub Actions provides one."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    with open(target, "a", encoding="utf-8") as handle:
        handle.write(github_summary(result))
    return Path(target)


RENDERERS: dict[str, Callable[[RunResult], str]] = {
    "json": to_json, "junit": to_junit, "gradescope": to_gradescope, "github": to_github,
}


def render(result: RunResult, name: str) -> str:
    return RENDERERS[name](result)
