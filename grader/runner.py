"""Run a lab's hidden checks: pytest in a subprocess that sees nothing of the workspace.

Its working directory and rootdir are the lab's checks folder, its config file
is the grader's (`-c`), its PYTHONPATH is the grader's import root, plugin
autoloading is off and the cache provider is disabled: no conftest, ini file,
plugin or module of the learner's can take part. Verdicts come from the JSON
records the grader's plugin writes, one per check id.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
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
    results_path = run.path / "check-results.jsonl"
    context_path = run.path / "check-context.json"
    context = {**context, "results_path": str(results_path), "work_dir": str(run.path / "check-work"),
               "checks": [{"id": check.id, "depends_on": list(check.depends_on)} for check in lab.checks]}
    context_path.write_text(json.dumps(context, default=str))
    results_path.touch()
    command = [
        sys.executable, "-m", "pytest", str(checks_dir),
        "-c", str(CHECKS_INI), "--rootdir", str(checks_dir), "--confcutdir", str(checks_dir),
        "--import-mode=importlib",
        "-p", "grader.pytest_plugin", "-p", "no:cacheprovider", "-q", "--no-header", "-rN",
        "--lab-context", str(context_path),
    ]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST", "PYTHON", "DJANGO"))}
    env.update({"PYTHONPATH": str(PACKAGE_DIR.parent), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
                "PYTHONDONTWRITEBYTECODE": "1"})
    log = run.path / "checks.log"
    process = run.spawn("checks", command, log=log, cwd=checks_dir, env=env)
    records: dict[str, dict] = {}
    offset = 0
    missing = {"status": "error", "message": "the hidden checks stopped before this one ran (see .lab/logs/checks.log)"}
    try:
        while True:
            finished = process.poll() is not None
            offset = _read_new(results_path, offset, records, on_record, on_progress)
            if finished:
                break
            if time.monotonic() > deadline:
                missing = {"status": "fail", "message": f"not finished within the time limit ({lab.limits.check_seconds} s): "
                                                         "the service answered too slowly or stopped answering"}
                break
            time.sleep(0.1)
    finally:
        if process.poll() is None:
            stop_group(process.pid, grace=2.0)
    _read_new(results_path, offset, records, on_record, on_progress)
    return records, missing


def _read_new(path: Path, offset: int, records: dict[str, dict], on_record: Callable[[dict], None],
              on_progress: Callable[[str], None]) -> int:
    with path.open("rb") as handle:
        handle.seek(offset)
        chunk = handle.read()
    complete = chunk[: chunk.rfind(b"\n") + 1]
    for line in complete.decode().splitlines():
        if line.strip():
            record = json.loads(line)
            if "progress" in record:
                on_progress(record["progress"])
                continue
            records[record["id"]] = record
            on_record(record)
    return offset + len(complete)
