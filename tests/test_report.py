"""What a learner reads: each measured figure beside the starter's and the reference's, in the terminal and the JSON."""

from __future__ import annotations

from rich.console import Console

from grader.calibration import Calibration
from grader.labspec import load_lab
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
