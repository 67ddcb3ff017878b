"""The user's state and cache folders (XDG on Linux), overridable for tests and CI."""

from __future__ import annotations

import os
from pathlib import Path

APP = "nexus-labs"


def state_dir() -> Path:
    """Progress and hint positions: $LAB_STATE_DIR, else $XDG_STATE_HOME/nexus-labs, else ~/.local/state/nexus-labs."""
    explicit = os.environ.get("LAB_STATE_DIR")
    base = Path(explicit) if explicit else Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / APP
    base.mkdir(parents=True, exist_ok=True)
    return base


def cache_dir() -> Path:
    """Rebuildable things (initialised clusters, migrated templates): $LAB_CACHE_DIR, else the XDG cache."""
    explicit = os.environ.get("LAB_CACHE_DIR")
    base = Path(explicit) if explicit else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / APP
    base.mkdir(parents=True, exist_ok=True)
    return base
