"""The report a learner opens in a browser: one self-contained HTML page per `lab check`.

The page says what the terminal summary says (header, stage failure, each check's verdict with its
message, evidence and hint) and draws each check's figures as an inline SVG chart beside a table of the
same numbers. It loads nothing from anywhere (no scripts, stylesheets, fonts or images), so it opens
offline, from CI artifacts and course platforms alike, and prints as it looks.

Geometry is computed here (`figure_chart`), so the template only places what it is given. Each figure
says which way is better, and a load check's figures carry the line they must reach to pass (the lab's
thresholds applied to the reference's figures, as the check judged them).
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
from grader.calibration import FAILURES, P50, P95, P99, RPS, LoadFigures, Thresholds
from grader.errors import LabError
from grader.formats import figure_value, verdict_text
from grader.labspec import LabSpec
from grader.paths import write_atomically
from grader.report import score_text, string_list
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
PASS_LINE_ROOM = 16  # below a figure's bars, for the label of its pass line
LABEL_CHAR_WIDTH = 6.2  # a generous average width of an 11px character, to keep a label inside the chart
BAR_AREA = CHART_WIDTH - BAR_LEFT - VALUE_ROOM

HIGHER_IS_BETTER, LOWER_IS_BETTER = "higher is better", "lower is better"


def better(name: str) -> str | None:
    """Which way a figure is better, from its name: throughput up; latency, failures, statements, rows down."""
    lowered = name.lower()
    if lowered == RPS:
        return HIGHER_IS_BETTER
    if lowered in (P50, P95, P99, FAILURES) or lowered.endswith(" ms") or lowered.startswith(
            ("failed ", "failure ", "statements", "rows returned")):
        return LOWER_IS_BETTER
    return None


@dataclass(frozen=True)
class PassLine:
    """The value a figure must reach to pass, and how the chart says it."""

    value: float
    text: str  # "pass line: at least 21.9 (0.33× the reference's)"


def pass_lines(check_id: str, figures: dict[str, Any], result: RunResult, lab: LabSpec | None) -> dict[str, PassLine]:
    """The pass lines of a load check's figures: the lab's thresholds applied to the reference's figures."""
    if lab is None or lab.load is None or LoadFigures.from_figures(figures) is None:
        return {}
    thresholds: Thresholds = lab.load.thresholds
    lines = {FAILURES: PassLine(float(thresholds.max_failures), f"pass line: at most {thresholds.max_failures}")}
    reference = result.calibration.reference_load(check_id) if result.calibration else None
    if reference is not None and reference.rps > 0:
        rps = thresholds.min_rps_ratio * reference.rps
        lines[RPS] = PassLine(rps, f"pass line: at least {figure_value(rps)} "
                                   f"({thresholds.min_rps_ratio:g}× the reference's)")
    if reference is not None and reference.p50_ms:
        p50 = thresholds.max_p50_ratio * reference.p50_ms
        lines[P50] = PassLine(p50, f"pass line: at most {figure_value(p50)} "
                                   f"({thresholds.max_p50_ratio:g}× the reference's)")
    return lines


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
class PassMark:
    """A pass line drawn across a figure's bars, with its label below them."""

    x: float
    top: float
    bottom: float
    text: str
    text_x: float
    text_y: float
    anchor: str  # "start" or "end": the label stays inside the chart


@dataclass(frozen=True)
class FigureGroup:
    """The bars of one figure, on a scale of its own (its figures have units of their own)."""

    name: str
    y: float  # the baseline of the figure's name
    bars: tuple[Bar, ...]
    scale_max: float
    better: str | None = None  # "higher is better", "lower is better", or None where neither is
    pass_mark: PassMark | None = None

    @property
    def label(self) -> str:
        """The figure's name as a screen reader hears it: with which way is better and its pass line."""
        notes = [note for note in (self.better, self.pass_mark.text if self.pass_mark else None) if note]
        return f"{self.name} ({', '.join(notes)})" if notes else self.name


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


def figure_chart(check_id: str, rows: list[dict[str, Any]],
                 lines: dict[str, PassLine] | None = None) -> Chart | None:
    """Bars for each figure row (name, starter, yours, reference), each figure scaled to its largest value
    (or its pass line, where that is larger), with the pass line drawn across the bars where it has one."""
    if not rows:
        return None
    lines = lines or {}
    groups = []
    y = LEGEND_HEIGHT
    for row in rows:
        numbers = {series: _number(row.get(series)) for series in SERIES}
        line = lines.get(str(row["name"]))
        scale_max = max([max(number, 0.0) for number in numbers.values() if number is not None]
                        + ([max(line.value, 0.0)] if line else []), default=0.0)
        bars = []
        for index, series in enumerate(SERIES):
            value, number = row.get(series), numbers[series]
            length = BAR_AREA * max(number, 0.0) / scale_max if number is not None and scale_max > 0 else 0.0
            bars.append(Bar(series=series, value=value, text=value_text(value),
                            y=y + GROUP_TITLE_HEIGHT + index * BAR_PITCH, length=round(length, 2),
                            drawn=number is not None))
        bars_bottom = y + GROUP_TITLE_HEIGHT + (len(SERIES) - 1) * BAR_PITCH + BAR_HEIGHT
        mark = None
        if line is not None:
            x = BAR_LEFT + (BAR_AREA * max(line.value, 0.0) / scale_max if scale_max > 0 else 0.0)
            # The label starts at the line, or ends there where it would run off the chart's right edge.
            room = len(line.text) * LABEL_CHAR_WIDTH
            anchor, text_x = ("start", x) if x + room <= CHART_WIDTH else ("end", max(x, room))
            mark = PassMark(x=round(x, 2), top=y + GROUP_TITLE_HEIGHT - 3, bottom=bars_bottom + 3, text=line.text,
                            text_x=round(text_x, 2), text_y=bars_bottom + 14, anchor=anchor)
        groups.append(FigureGroup(name=str(row["name"]), y=y + 13, bars=tuple(bars), scale_max=scale_max,
                                  better=better(str(row["name"])), pass_mark=mark))
        y += GROUP_TITLE_HEIGHT + len(SERIES) * BAR_PITCH + GROUP_GAP + (PASS_LINE_ROOM if mark else 0)
    description = "; ".join(
        f"{group.label}: " + ", ".join(f"{bar.series} {bar.text}" for bar in group.bars) for group in groups)
    return Chart(width=CHART_WIDTH, height=y, groups=tuple(groups),
                 title=f"Figures of {check_id}: starter, yours and reference", description=description + ".")


@dataclass(frozen=True)
class EvidenceItem:
    """One piece of evidence as the page shows it: inline, as a block, or collapsed."""

    key: str
    text: str
    block: bool  # preformatted on lines of its own
    collapsed: bool  # inside a closed <details>
    lines: tuple[str, ...] = ()  # a list of strings (a check's `problems`), shown as a bulleted list


def evidence_items(evidence: dict[str, Any]) -> list[EvidenceItem]:
    """Evidence in its order: scalars and short structures inline, longer ones as indented JSON, a list of
    strings as a bulleted list, a traceback collapsed."""
    items = []
    for key, value in evidence.items():
        lines = string_list(value)
        if key == "traceback":
            items.append(EvidenceItem(key, str(value).rstrip(), block=True, collapsed=True))
        elif lines is not None:
            items.append(EvidenceItem(key, "\n".join(lines), block=True, collapsed=len(lines) > STRUCTURED_LINES_SHOWN,
                                      lines=tuple(lines)))
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
    message: str  # empty for a pass: its message is the check's docstring, which says its title again

    @property
    def id(self) -> str:
        return self.check.id


def _check_view(check: CheckResult, result: RunResult, lab: LabSpec | None) -> CheckView:
    rows = figure_rows(check.id, check.figures, result.calibration)
    table = [FigureRow(str(row["name"]), tuple((value_text(row[series]), row[series] is not None) for series in SERIES))
             for row in rows]
    reference = result.calibration.reference.get(check.id, {}) if result.calibration else {}
    lines = pass_lines(check.id, check.figures or reference, result, lab)
    return CheckView(check=check, label=LABEL.get(check.status, check.status.upper()),
                     evidence=evidence_items(check.evidence),
                     show_hint=bool(check.hint) and check.status in ("fail", "inconclusive"),
                     chart=figure_chart(check.id, rows, lines), rows=table,
                     message="" if check.status == "pass" else check.message)


def _lab_spec(slug: str) -> LabSpec | None:
    """The lab's lab.toml; None for a lab this installation does not carry."""
    try:
        return catalog.load(slug)
    except LabError:
        return None


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
    lab = _lab_spec(result.lab)
    passing = counts["pass"]
    return _environment().get_template("report.html.j2").render(
        result=result, lab_title=lab.title if lab else "", verdict=verdict_text(result), score=score_text(result),
        checks_passing=f"{passing} of {len(result.checks)} checks pass",
        counts={status: count for status, count in counts.items() if count}, labels=LABEL,
        checks=[_check_view(check, result, lab) for check in result.checks],
        calibration_note=calibration_note(result), series=SERIES, chart_layout={
            "series_label_right": SERIES_LABEL_RIGHT, "bar_left": BAR_LEFT, "bar_height": BAR_HEIGHT,
            "bar_area": BAR_AREA},
    )


def write_html(result: RunResult, path: Path) -> None:
    """Write the report to `path` at once: a reader never sees half a page, even if grading is interrupted."""
    write_atomically(path, render_html(result))
