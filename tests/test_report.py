"""What a learner reads in the terminal: score, verdicts, evidence and each measured figure beside the starter's and
the reference's; and the JSON carries the same figures."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from grader.calibration import Calibration, LoadFigures
from grader.checkkit import Failure, LoadCheck, Reply, condensed, failure_line
from grader.checkkit import load as load_checks
from grader.labspec import load_lab
from grader.load import LoadProfile, read_failures, read_figures
from grader.report import print_summary
from grader.resources import resources
from grader.results import CheckResult, RunResult, figure_rows

LAB = load_lab(resources().lab_dir("slow-queries") / "lab.toml")
CALIBRATION = Calibration(
    lab="slow-queries", version="1.0.0-abc", provider="local", machine="2 cores", measured_at="2026-12-01T10:00:00Z",
    seed=1, starter={"queries-constant": {"statements, books, page of 5": 16, "statements, books, page of 25": 76}},
    reference={"queries-constant": {"statements, books, page of 5": 2, "statements, books, page of 25": 2}},
)


def result(checks: list[CheckResult]) -> RunResult:
    return RunResult(lab="slow-queries", lab_version="1.0.0", provider="local", seed=5, started_at="now", stages={},
                     checks=checks, calibration=CALIBRATION)


def test_figures_stand_side_by_side_with_the_calibration():
    rows = figure_rows("queries-constant", {"statements, books, page of 5": 7, "statements, books, page of 25": 27},
                       CALIBRATION)

    assert rows == [
        {"name": "statements, books, page of 5", "starter": 16, "yours": 7, "reference": 2},
        {"name": "statements, books, page of 25", "starter": 76, "yours": 27, "reference": 2},
    ]
    assert figure_rows("under-load", {}, CALIBRATION) == [], "nothing measured anywhere: no rows"
    assert figure_rows("queries-constant", {"x": 1}, None) == [{"name": "x", "starter": None, "yours": 1,
                                                               "reference": None}]


def test_the_summary_shows_the_three_columns_and_the_json_carries_them():
    check = CheckResult(id="queries-constant", title="constant", status="fail", message="a page of 25 ran 27",
                        figures={"statements, books, page of 5": 7, "statements, books, page of 25": 27})
    console = Console(record=True, width=120)

    print_summary(console, result([check]))

    text = console.export_text()
    assert "measured" in text and "starter" in text and "yours" in text and "reference" in text
    assert any(line.split()[-3:] == ["76", "27", "2"] for line in text.splitlines()), text
    assert "starter and reference measured 2026-12-01T10:00:00Z on 2 cores (local provider)" in text
    payload = result([check]).to_json()
    assert payload["calibration"]["machine"] == "2 cores"
    assert payload["checks"][0]["figures"][1] == {"name": "statements, books, page of 25", "starter": 76,
                                                  "yours": 27, "reference": 2}


# Saved results of real runs (tests/samples/): `lab check` on the race-conditions starter, on the slow-queries
# reference, and Locust's own files from the load lab's locustfile against a service answering Django's 500 page.

SAMPLES = Path(__file__).resolve().parent / "samples"


def sample_result(name: str) -> RunResult:
    """A saved `.lab/results/latest.json` read back into the result it was written from."""
    document = json.loads((SAMPLES / name).read_text(encoding="utf-8"))
    checks = [CheckResult(**{**check, "figures": {row["name"]: row["yours"] for row in check["figures"]
                                                  if row["yours"] is not None}})
              for check in document["checks"]]
    calibration = None
    if document["calibration"]:
        sides = {side: {check["id"]: {row["name"]: row[side] for row in check["figures"] if row[side] is not None}
                        for check in document["checks"]} for side in ("starter", "reference")}
        calibration = Calibration(lab=document["lab"], version=document["lab_version"], **document["calibration"],
                                  **sides)
    return RunResult(lab=document["lab"], lab_version=document["lab_version"], provider=document["provider"],
                     seed=document["seed"], started_at=document["started_at"], stages=document["stages"],
                     checks=checks, calibration=calibration)


def summary_text(result_: RunResult, width: int = 80) -> str:
    console = Console(record=True, width=width, force_terminal=False)
    print_summary(console, result_)
    return console.export_text()


def test_the_score_says_points_and_how_many_checks_pass():
    text = summary_text(sample_result("race-conditions-starter.json"))

    assert text.rstrip().splitlines()[-1] == "Score 7/17 points · 6 of 10 checks pass · 4 required checks not passing"


def test_each_check_title_is_shown_once_and_a_passing_message_not_at_all():
    sample = sample_result("race-conditions-starter.json")
    text = summary_text(sample, width=400)

    for check in sample.checks:
        assert text.count(check.title) == 1, check.title
        if check.passed and check.message != check.title:
            assert check.message not in text, "a passing check's message is its docstring: the title again"


def test_a_list_of_problems_reads_as_indented_lines():
    lines = summary_text(sample_result("race-conditions-starter.json")).splitlines()

    start = lines.index("        problems:", lines.index("  FAIL  idempotent-concurrent  The same Idempotency-Key "
                                                          "sent several times at"))
    assert lines[start + 1:start + 5] == [
        "          - 8 orders were created",
        "          - 8 charges were made",
        "          - the stock of product 26 went from 277 to 276, but its orders add up",
        "            to 8 units",
    ]
    assert not any(line.lstrip().startswith('problems: ["') for line in lines), "never the raw JSON list"


def test_at_80_columns_every_line_fits_and_wraps_inside_its_column():
    for name in ("race-conditions-starter.json", "slow-queries-reference.json"):
        sample = sample_result(name)
        lines = summary_text(sample).splitlines()
        assert max(len(line) for line in lines) <= 80
        ids = [check.id for check in sample.checks]
        inside = False
        for line in lines:
            if line.startswith("  ") and line.split()[:1] in (["PASS"], ["FAIL"]) and line.split()[1] in ids:
                inside = True
            elif inside and line.startswith(("starter and reference measured", "Score ")):
                inside = False
            elif inside and line.strip():
                assert line.startswith(" " * 8), f"wrapped to the margin: {line!r}"

    lines = summary_text(sample_result("slow-queries-reference.json")).splitlines()
    header = next(index for index, line in enumerate(lines) if "filter-uses-index" in line)
    table = lines[header + 3:header + 8]
    assert table[0].split() == ["measured", "starter", "yours", "reference"]
    assert table[1].startswith("        statements without an index, the reviewer ") and table[1].split()[-3:] == [
        "1", "0", "0"]
    assert table[2].strip() == "filter", "the rest of the name, under the name and clear of the numbers"
    assert table[3].split()[-3:] == ["1", "0", "0"] and table[4].strip() == "order"


def test_a_server_error_page_is_summarised_once():
    page = (SAMPLES / "locust-server-errors" / "locust_failures.csv").read_text()
    assert page.count("Server Error (500)") == 4, "Django's page says it twice: in its <title> and its <h1>"
    django_500 = ('\n<!doctype html>\n<html lang="en">\n<head>\n  <title>Server Error (500)</title>\n</head>\n'
                  '<body>\n  <h1>Server Error (500)</h1><p></p>\n</body>\n</html>\n')

    assert condensed(django_500) == "Server Error (500)"
    assert Reply("GET", "/api/books/", 500, text=django_500).describe() == "GET /api/books/ -> 500 Server Error (500)"
    assert condensed("<html><head><title>Bad Gateway</title></head></html>") == "Bad Gateway", "a title alone stays"
    assert condensed('{"detail": "1 < 2 and 3 > 2"}') == '{"detail": "1 < 2 and 3 > 2"}', "not HTML: left alone"
    assert [failure_line(failure) for failure in read_failures(SAMPLES / "locust-server-errors" / "locust_failures.csv")
            ] == ["GET /api/carts/ID/: 500: Server Error (500) (12 times)",
                  "POST /api/carts/ID/items/: 500: Server Error (500) (10 times)"]


def test_under_load_failing_on_errors_says_what_failed_per_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    saved = SAMPLES / "locust-server-errors"
    profile = LoadProfile(users=4, spawn_rate=4, seconds=3)
    measured = replace(read_figures(saved / "locust_stats.csv", saved / "locust.json", profile),
                       failures=read_failures(saved / "locust_failures.csv"))
    monkeypatch.setattr(load_checks, "run_load", lambda *args, **kwargs: measured)  # Locust's run, as it was saved
    figures: dict = {}
    reference = LoadFigures(rps=60.0, p50_ms=15.0, requests=190, failures=0).as_figures()
    load = LoadCheck("under-load", {"users": 4, "spawn_rate": 4, "seconds": 3, "locustfile": "locustfile.py",
                                    "thresholds": {"min_rps_ratio": 0.125, "max_p50_ratio": 8.0, "max_failures": 0}},
                     ("http://127.0.0.1:9",), tmp_path, figures, reference, calibrating=None)

    with pytest.raises(Failure) as failed:
        load.verdict()

    assert failed.value.rationale == ("22 of 193 requests failed under load (at most 0 may); the most frequent: "
                                      "GET /api/carts/ID/: 500: Server Error (500) (12 times)")
    evidence = failed.value.evidence
    assert evidence["by endpoint"] == {"GET /api/carts/ID/": "12 of 24 failed",
                                       "POST /api/carts/ID/items/": "10 of 65 failed"}
    assert evidence["failures"] == [
        {"request": "GET /api/carts/ID/", "error": "500: Server Error (500)", "times": 12},
        {"request": "POST /api/carts/ID/items/", "error": "500: Server Error (500)", "times": 10}]
    check = CheckResult(id="under-load", title="Under load", status="fail", message=failed.value.rationale,
                        evidence=evidence, figures=figures)
    text = summary_text(result([check]), width=160)
    assert 'by endpoint: {"GET /api/carts/ID/": "12 of 24 failed", "POST /api/carts/ID/items/": "10 of 65 failed"}' \
        in text
    assert "Server Error (500) Server Error (500)" not in text
