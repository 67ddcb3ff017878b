"""The learner's progress across labs, kept in the user's state folder (never in a workspace)."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from grader.paths import state_dir


class Progress:
    """Per lab: best and last score, whether it passed, when it was last checked, hints shown."""

    def __init__(self, path: Path | None = None):
        self.path = path or state_dir() / "progress.json"
        try:
            self.data: dict[str, dict[str, Any]] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.data = {}

    def lab(self, slug: str) -> dict[str, Any]:
        return self.data.get(slug, {})

    def status(self, slug: str) -> str:
        entry = self.lab(slug)
        if entry.get("passed"):
            return "passed"
        if "last_score" in entry:
            return "in progress"
        if entry.get("started"):
            return "started"
        return "not started"

    def record_start(self, slug: str, workspace: Path) -> None:
        entry = self.data.setdefault(slug, {})
        entry.update(started=True, workspace=str(workspace))
        self.save()

    def record_check(self, slug: str, score: int, max_score: int, passed: bool) -> None:
        entry = self.data.setdefault(slug, {"started": True})
        entry.update(last_score=score, max_score=max_score, best_score=max(score, entry.get("best_score", 0)),
                     passed=entry.get("passed", False) or passed,
                     last_checked=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        self.save()

    def next_hint(self, slug: str, total: int) -> int:
        """The index of the hint to show now, advancing the position (stays on the last one)."""
        entry = self.data.setdefault(slug, {})
        shown = entry.get("hints_shown", 0)
        entry["hints_shown"] = min(shown + 1, total)
        self.save()
        return min(shown, total - 1)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".progress-")
        with os.fdopen(handle, "w") as out:
            json.dump(self.data, out, indent=2)
        os.replace(temporary, self.path)
