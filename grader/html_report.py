"""The report a learner opens in a browser: one self-contained HTML page per `lab check`.

The page says what the terminal summary says (header, stage failure, each check's verdict with its
message, evidence and hint) and draws each check's figures as an inline SVG chart beside a table of the
same numbers. It loads nothing from anywhere (no scripts, stylesheets, fonts or images), so it opens
offline, from CI artifacts and course platforms alike, and prints as it looks.

Geometry is computed here (`figure_chart`), so the template only places what it is given.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from numbers import Real
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

from grader import catalog
from grader.errors import LabError
from grader.formats import figure_value, verdict_text
from grader.paths import write_atomically
from grader.resources import resources
from grader.results import CheckResult, RunResult, figure_rows

LABEL = {"pass": "PASS", "fail": "FAIL", "skip": "SKIP", "error": "ERROR", "inconclusive": "INCONCLUSIVE"}
SERIES = ("starter", "yours", "reference")
NOT_MEASURED = "not measured"
CODE_SPAN = re.compile(r"`([^`\n]+)`")
STRUCTURED_INLINE_CHARS = 120  # a short structure reads best on one line, as the terminal writes it
STRUCTURED_LINES_SHOWN = 12  # a longer one starts collapsed, so the verdicts stay in view

# Chart geometry, in SVG user units (the chart scales to its box; text scales with it).
CHART_WIDTH = 560
LEGEND_HEIGHT = 28
SERIES_LABEL_RIGHT = 72  # series names end here, right-aligned
BAR_LEFT = 80
VALUE_ROOM = 92  # to the right of the longest bar, for its value
BAR_HEIGHT = 14
BAR_PITCH = 19
GROUP_TITLE_HEIGHT = 20
GROUP_GAP = 12
BAR_AREA = CHART_WIDTH - BAR_LEFT - VALUE_ROOM


@dataclass(frozen=True)
class Bar:
    """One value of one figure: where its bar ends and what it says."""

    series: str
    value: Any
    text: str  # the value as the terminal writes it, or "not measured"
    y: float
    length: float  # 0 for a value of 0; no bar at all when `drawn` is False
    drawn: bool  # False where nothing was measured (or the value is not a number)

    @property
    def measured(self) -> bool:
        return self.value is not None

    @property
    def text_x(self) -> float:
        return BAR_LEFT + self.length + 6 if self.drawn else BAR_LEFT + 6  # a missing value is written in its track


@dataclass(frozen=True)
class FigureGroup:
    """The bars of one figure, on a scale of its own (its figures have units of their own)."""

    name: str
    y: float  # the baseline of the figure's name
    bars: tuple[Bar, ...]
    scale_max: float


@dataclass(frozen=True)
class Chart:
    """A whole chart of one check's figures, ready to draw."""

    width: float
    height: float
    groups: tuple[FigureGroup, ...]
    title: str
    description: str


def _number(value: Any) -> float | None:
    """The value as a bar length can use it; None for a missing or non-numeric value (bools are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    return float(value)


def value_text(value: Any) -> str:
    """A figure as the terminal writes it; "not measured" for None, and a bool as a word rather than 0 or 1."""
    if value is None:
        return NOT_MEASURED
    return str(value) if isinstance(value, bool) else figure_value(value)


def figure_chart(check_id: str, rows: list[dict[str, Any]]) -> Chart | None:
    """Bars for each figure row (name, starter, yours, reference), each figure scaled to its largest value."""
    if not rows:
        return None
    groups = []
    y = LEGEND_HEIGHT
    for row in rows:
        numbers = {series: _number(row.get(series)) for series in SERIES}
        scale_max = max((max(number, 0.0) for number in numbers.values() if number is not None), default=0.0)
        bars = []
        for index, series in enumerate(SERIES):
            value, number = row.get(series), numbers[series]
            length = BAR_AREA * max(number, 0.0) / scale_max if number is not None and scale_max > 0 else 0.0
            bars.append(Bar(series=series, value=value, text=value_text(value),
                            y=y + GROUP_TITLE_HEIGHT + index * BAR_PITCH, length=round(length, 2),
                            drawn=number is not None))
        groups.append(FigureGroup(name=str(row["name"]), y=y + 13, bars=tuple(bars), scale_max=scale_max))
        y += GROUP_TITLE_HEIGHT + len(SERIES) * BAR_PITCH + GROUP_GAP
    description = "; ".join(
        f"{group.name}: " + ", ".join(f"{bar.series} {bar.text}" for bar in group.bars) for group in groups)
    return Chart(width=CHART_WIDTH, height=y, groups=tuple(groups),
                 title=f"Figures of {check_id}: starter, yours and reference", description=description + ".")


@dataclass(frozen=True)
class EvidenceItem:
    """One piece of evidence as the page shows it: inline, as a block, or collapsed."""

    key: str
    text: str
    block: bool  # preformatted on lines of its own
    collapsed: bool  # inside a closed <details>


def evidence_items(evidence: dict[str, Any]) -> list[EvidenceItem]:
    """Evidence in its order: scalars and short structures inline, longer ones as indented JSON, a traceback collapsed."""
    items = []
    for key, value in evidence.items():
        if key == "traceback":
            items.append(EvidenceItem(key, str(value).rstrip(), block=True, collapsed=True))
        elif isinstance(value, dict | list | tuple):
            text = json.dumps(value, default=str)
            if len(text) <= STRUCTURED_INLINE_CHARS:
                items.append(EvidenceItem(key, text, block=False, collapsed=False))
                continue
            text = json.dumps(value, indent=2, default=str)
            items.append(EvidenceItem(key, text, block=True,
                                      collapsed=text.count("\n") >= STRUCTURED_LINES_SHOWN))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            items.append(EvidenceItem(key, text, block="\n" in text, collapsed=False))
    return items


@dataclass(frozen=True)
class FigureRow:
    """One row of a check's table of figures, as text."""

    name: str
    cells: tuple[tuple[str, bool], ...]  # (text, measured) for starter, yours, reference


@dataclass(frozen=True)
class CheckView:
    """What the page shows of one check."""

    check: CheckResult
    label: str
    evidence: list[EvidenceItem]
    show_hint: bool
    chart: Chart | None
    rows: list[FigureRow]

    @property
    def id(self) -> str:
        return self.check.id


def _check_view(check: CheckResult, result: RunResult) -> CheckView:
    rows = figure_rows(check.id, check.figures, result.calibration)
    table = [FigureRow(str(row["name"]), tuple((value_text(row[series]), row[series] is not None) for series in SERIES))
             for row in rows]
    return CheckView(check=check, label=LABEL.get(check.status, check.status.upper()),
                     evidence=evidence_items(check.evidence),
                     show_hint=bool(check.hint) and check.status in ("fail", "inconclusive"),
                     chart=figure_chart(check.id, rows), rows=table)


def _lab_title(slug: str) -> str:
    """The lab's title from its lab.toml; empty for a lab this installation does not carry."""
    try:
        return catalog.load(slug).title
    except LabError:
        return ""


def calibration_note(result: RunResult) -> str:
    """Where the starter's and reference's figures come from, as the terminal says it."""
    calibration = result.calibration
    if calibration is None:
        return "Starter and reference not measured on this machine yet: `lab calibrate` measures them."
    return (f"Starter and reference measured {calibration.measured_at} on {calibration.machine} "
            f"({calibration.provider} provider).")


def code_spans(text: str) -> Markup:
    """The text escaped, with its `backticked` words (commands, settings) set as code."""
    return Markup(CODE_SPAN.sub(r"<code>\1</code>", str(escape(text))))


@cache
def _environment() -> Environment:
    environment = Environment(loader=FileSystemLoader(resources().templates / "report"), autoescape=True,
                              undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True)
    environment.filters["code_spans"] = code_spans
    return environment


def render_html(result: RunResult) -> str:
    """The whole report page of one run, as a self-contained HTML document."""
    counts = {status: sum(1 for check in result.checks if check.status == status) for status in LABEL}
    return _environment().get_template("report.html.j2").render(
        result=result, lab_title=_lab_title(result.lab), verdict=verdict_text(result),
        counts={status: count for status, count in counts.items() if count}, labels=LABEL,
        checks=[_check_view(check, result) for check in result.checks],
        calibration_note=calibration_note(result), series=SERIES, chart_layout={
            "series_label_right": SERIES_LABEL_RIGHT, "bar_left": BAR_LEFT, "bar_height": BAR_HEIGHT,
            "bar_area": BAR_AREA},
    )


def write_html(result: RunResult, path: Path) -> None:
    """Write the report to `path` at once: a reader never sees half a page, even if grading is interrupted."""
    write_atomically(path, render_html(result))
