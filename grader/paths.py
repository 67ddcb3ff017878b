"""The user's state and cache folders (XDG on Linux), overridable for tests and CI."""

from __future__ import annotations

import os
import tempfile
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


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step: a reader sees the old file or the new one, never half of it.

    The file gets the mode a plain write would (0666 less the umask), and no temporary file is left behind
    when the write fails.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, staged = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staged, 0o666 & ~umask)
        os.replace(staged, path)
    except BaseException:
        Path(staged).unlink(missing_ok=True)
        raise
