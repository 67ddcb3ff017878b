"""Run a lab's hidden checks: pytest in a subprocess that sees nothing of the workspace.

Its working directory and rootdir are the lab's checks folder, its config file
is the grader's (`-c`), its PYTHONPATH is the grader's import root, plugin
autoloading is off and the cache provider is disabled: no conftest, ini file,
plugin or module of the learner's can take part. Verdicts come from the JSON
records the grader's plugin writes, one per check id, into a pipe that only the
checks process holds: no file the learner's code could find, append to or replace.
Its context and working files sit in the run's private folder.
"""

from __future__ import annotations

import json
import os
import select
import sys
import time
from collections.abc import Callable
from typing import Any

from grader.labspec import LabSpec
from grader.processes import RunDirectory, stop_group
from grader.resources import PACKAGE_DIR, resources

CHECKS_INI = PACKAGE_DIR / "checks" / "pytest.ini"


def run_checks(lab: LabSpec, run: RunDirectory, context: dict[str, Any], deadline: float,
               on_record: Callable[[dict[str, Any]], None] = lambda record: None,
               on_progress: Callable[[str], None] = lambda line: None) -> tuple[dict[str, dict], dict]:
    """Run the checks until done or `deadline` (monotonic).

    Returns the records by check id, and the record that stands in for a check that has none.
    `on_progress` gets the live progress lines of long checks (a load run).
    """
    checks_dir = resources().checks_dir(lab.slug)
    context_path = run.private / "check-context.json"
    context = {**context, "work_dir": str(run.private / "check-work"),
               "checks": [{"id": check.id, "depends_on": list(check.depends_on)} for check in lab.checks]}
    context_path.write_text(json.dumps(context, default=str))
    reader, writer = os.pipe()
    command = [
        sys.executable, "-m", "pytest", str(checks_dir),
        "-c", str(CHECKS_INI), "--rootdir", str(checks_dir), "--confcutdir", str(checks_dir),
        "--import-mode=importlib",
        "-p", "grader.pytest_plugin", "-p", "no:cacheprovider", "-q", "--no-header", "-rN",
        "--lab-context", str(context_path), "--lab-results-fd", str(writer),
    ]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST", "PYTHON", "DJANGO"))}
    env.update({"PYTHONPATH": str(PACKAGE_DIR.parent), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
                "PYTHONDONTWRITEBYTECODE": "1"})
    log = run.path / "checks.log"
    try:
        process = run.spawn("checks", command, log=log, cwd=checks_dir, env=env, pass_fds=(writer,))
    except BaseException:
        os.close(reader)
        raise
    finally:
        os.close(writer)
    results = ResultsPipe(reader)
    records: dict[str, dict] = {}
    missing = {"status": "error", "message": "the hidden checks stopped before this one ran (see .lab/logs/checks.log)"}
    try:
        while True:
            finished = process.poll() is not None
            _take(results.read(timeout=0.1), records, on_record, on_progress)
            if finished:
                break
            if time.monotonic() > deadline:
                missing = {"status": "fail", "message": f"not finished within the time limit ({lab.limits.check_seconds} s): "
                                                         "the service answered too slowly or stopped answering"}
                break
    finally:
        if process.poll() is None:
            stop_group(process.pid, grace=2.0)
        _take(results.read(timeout=0), records, on_record, on_progress)
        results.close()
    return records, missing


class ResultsPipe:
    """The reading end of the checks' results: whole JSON lines as they arrive."""

    def __init__(self, descriptor: int):
        self.descriptor, self.pending = descriptor, b""
        os.set_blocking(descriptor, False)

    def read(self, timeout: float) -> list[dict]:
        if self.descriptor < 0:
            return []
        ready, _, _ = select.select([self.descriptor], [], [], timeout)
        while ready:
            try:
                chunk = os.read(self.descriptor, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.pending += chunk
        *lines, self.pending = self.pending.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]

    def close(self) -> None:
        if self.descriptor >= 0:
            os.close(self.descriptor)
            self.descriptor = -1


def _take(lines: list[dict], records: dict[str, dict], on_record: Callable[[dict], None],
          on_progress: Callable[[str], None]) -> None:
    for record in lines:
        if "progress" in record:
            on_progress(record["progress"])
            continue
        records[record["id"]] = record
        on_record(record)
