"""What a check knows about the run it grades."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class LabContext:
    """What a check knows about the run: where the service is and what was seeded."""

    lab: str
    base_url: str
    database: dict[str, Any]
    redis_url: str
    seed: int
    seed_data: dict[str, Any]
    request_seconds: float
    server: dict[str, int] = field(default_factory=dict)
    replicas: tuple[str, ...] = ()  # every replica's base URL; base_url is the first
    replica_processes: tuple[dict[str, Any], ...] = ()  # where each replica runs: {"pid": n} or {"container": id}
    load: dict[str, Any] | None = None  # the lab's [load] profile, as the load fixture gets it
    app_settings: dict[str, Any] = field(default_factory=dict)  # lab.toml's [app.overrides], as the app has them
    work_dir: Path | None = None  # a folder of the run for the checks' own files
