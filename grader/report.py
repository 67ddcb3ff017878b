"""What a learner reads in the terminal: live progress, then per-check verdicts with evidence and hints."""

from __future__ import annotations

import json
import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from grader.formats import figure_value as figure_text
from grader.results import RunResult, figure_rows

PROGRESS_EVERY_SECONDS = 3.0  # progress lines in a log that is not a terminal
CHECK_INDENT = 8  # a check's message, evidence, hint and figures sit under its id
EVIDENCE_CHARS = 300  # a piece of evidence longer than this is cut: the JSON result and the HTML report hold it all
STYLE = {"pass": "green", "fail": "red", "skip": "yellow", "error": "magenta", "inconclusive": "cyan"}
LABEL = {"pass": "PASS", "fail": "FAIL", "skip": "SKIP", "error": "ERROR", "inconclusive": "?"}
STAGE_TEXT = {
    "snapshot": "copying your project", "services": "starting PostgreSQL and Redis",
    "migrate": "migrating a template database", "seed": "loading seed data", "serve": "starting your service",
    "checks": "running hidden checks", "teardown": "cleaning up",
}


class LiveReporter:
    """Prints each stage as it starts and each check as it finishes; a load run's progress on one line."""

    def __init__(self, console: Console, titles: dict[str, str]):
        self.console, self.titles = console, titles
        self._progress_shown = False
        self._progress_printed = 0.0

    def _end_progress(self) -> None:
        if self._progress_shown and self.console.is_terminal:
            self.console.print()
        self._progress_shown = False

    def stage(self, name: str) -> None:
        self._end_progress()
        self.console.print(f"[dim]… {STAGE_TEXT.get(name, name)}[/dim]")

    def note(self, text: str) -> None:
        self._end_progress()
        self.console.print(f"[dim]… {escape(text)}[/dim]")

    def progress(self, line: str) -> None:
        """On a terminal the line is rewritten in place; elsewhere (CI logs) a line every few seconds."""
        if self.console.is_terminal:
            width = max(self.console.width - 1, 20)
            self.console.print(f"[dim]  {escape(line[:width - 2]):<{width - 2}}[/dim]", end="\r")
        elif time.monotonic() - self._progress_printed >= PROGRESS_EVERY_SECONDS:
            self.console.print(f"[dim]  {escape(line)}[/dim]")
            self._progress_printed = time.monotonic()
        self._progress_shown = True

    def record(self, record: dict[str, Any]) -> None:
        self._end_progress()
        status = record["status"]
        self.console.print(Text.assemble(
            ("  ", ""), (f"{LABEL[status]:<5}", STYLE[status]), f" {record['id']}",
            (f"  {record.get('duration', 0):.1f}s", "dim"),
        ))


def score_text(result: RunResult) -> str:
    """The score in points (checks are weighted) beside how many checks pass, so the two never read as one."""
    passing = sum(1 for check in result.checks if check.passed)
    return f"{result.score}/{result.max_score} points · {passing} of {len(result.checks)} checks pass"


def string_list(value: Any) -> list[str] | None:
    """The value as a list of lines when it is a non-empty list of strings (a check's `problems`), else None."""
    if isinstance(value, list | tuple) and value and all(isinstance(item, str) for item in value):
        return list(value)
    return None


def _cut(text: str, limit: int = EVIDENCE_CHARS) -> str:
    return text[:limit] + "…" if len(text) > limit else text


def print_indented(console: Console, text: Text, indent: int, lead: Text | str | None = None) -> None:
    """The text wrapped at the console's width with every line indented, so a long line stays in its column
    instead of wrapping to the margin; `lead` (as wide as the indent) replaces the first line's indent."""
    width = max(console.width - indent, 20)
    for number, line in enumerate(text.wrap(console, width)):
        line.rstrip()
        prefix = lead if number == 0 and lead is not None else " " * indent
        console.print(Text.assemble(prefix, line), highlight=False, soft_wrap=True)


def print_evidence(console: Console, evidence: dict[str, Any], indent: int = 8) -> None:
    """Evidence as `key: value` lines, a list of strings (a check's `problems`) as one indented line per item."""
    for key, value in evidence.items():
        if key == "traceback":
            continue
        items = string_list(value)
        if items is None:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            print_indented(console, Text(f"{key}: {_cut(text)}", style="dim"), indent)
            continue
        print_indented(console, Text(f"{key}:", style="dim"), indent)
        for item in items:
            print_indented(console, Text(_cut(item), style="dim"), indent + 4, lead=Text(" " * (indent + 2) + "- "))


def figures_table(rows: list[dict[str, Any]], indent: int = 8,
                  columns: tuple[str, ...] = ("starter", "yours", "reference")) -> Padding:
    """Figures side by side: the starter's, yours and the reference's.

    The numbers never wrap; a long figure name wraps inside its own column, so at 80 columns the table
    still reads as a table."""
    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), show_edge=False, header_style="dim")
    table.add_column("measured", style="dim", overflow="fold", min_width=16)
    for column in columns:
        table.add_column(column, justify="right", no_wrap=True, min_width=len(column))
    for row in rows:
        table.add_row(row["name"], *(figure_text(row[column]) for column in columns))
    return Padding(table, (0, 0, 0, indent), expand=False)


def print_summary(console: Console, result: RunResult, results_path: str | None = None,
                  report_path: str | None = None) -> None:
    console.print()
    console.print(f"[bold]{result.lab}[/bold] {result.lab_version} · provider {result.provider} · seed {result.seed}")
    if result.stage_failure:
        problem = result.stage_failure
        console.print(f"[red bold]The {problem.stage} stage failed:[/red bold] {escape(problem.message)}")
        if problem.log_tail:
            console.print(f"[dim]--- from the {problem.stage} log ---[/dim]")
            console.print(escape(problem.log_tail), highlight=False)
            console.print("[dim]---[/dim]")
        if problem.todo:
            console.print(f"[bold]What to try:[/bold] {escape(problem.todo)}")
        console.print()
        if problem.stage != "checks":
            console.print(f"[yellow]All {len(result.checks)} checks were skipped:[/yellow] they need a running service.")
    for check in ([] if result.stage_failure and result.stage_failure.stage != "checks" else result.checks):
        # The title says what a check asks; a passing check's message is its docstring, which says it again.
        print_indented(console, Text.assemble((check.id, "bold"), f"  {check.title}"), CHECK_INDENT,
                       lead=Text.assemble("  ", (f"{LABEL[check.status]:<5}", STYLE[check.status] + " bold"), " "))
        if check.status != "pass":
            print_indented(console, Text(check.message), CHECK_INDENT)
            print_evidence(console, check.evidence, CHECK_INDENT)
            if check.status == "error" and "traceback" in check.evidence:
                console.print(escape(check.evidence["traceback"]), highlight=False)
            if check.hint and check.status in ("fail", "inconclusive"):
                print_indented(console, Text.assemble(("hint:", "cyan"), f" {check.hint}"), CHECK_INDENT)
        rows = figure_rows(check.id, check.figures, result.calibration)
        if rows:
            console.print(figures_table(rows))
    if result.calibration:
        console.print(f"[dim]starter and reference measured {result.calibration.measured_at} on "
                      f"{escape(result.calibration.machine)} ({result.calibration.provider} provider)[/dim]")
    failed = [check for check in result.checks if check.required and not check.passed]
    verdict = "[green bold]all required checks pass[/green bold]" if result.passed else \
        f"[red bold]{len(failed)} required check{'s' if len(failed) != 1 else ''} not passing[/red bold]"
    console.print()
    console.print(f"Score {score_text(result)} · {verdict}"
                  + (f" · details in {results_path}" if results_path else "")
                  + (f" · report {report_path}" if report_path else ""))
    if result.partial:
        console.print(f"[yellow]A partial run[/yellow] of {', '.join(result.only or ())} and the checks "
                      f"{'they depend' if len(result.only or ()) > 1 else 'it depends'} on: "
                      f"{len(result.checks)} of the lab's checks. It is not recorded as your result for the lab; "
                      "`lab check` runs them all.")
