"""A learner's workspace: the folder `lab start` makes, found by its `.lab/` marker."""

from __future__ import annotations

import json
import os
import shutil
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from grader import __version__
from grader.errors import UsageProblem
from grader.labspec import LabSpec

MARKER_DIR = ".lab"
MARKER_FILE = "lab.json"
BRIEF = "README.md"
# Never part of a learner's code: the grader's own folder, caches, virtualenvs, VCS data and notes.
IGNORED_NAMES = frozenset({MARKER_DIR, "__pycache__", ".git", ".hg", ".venv", "venv", ".mypy_cache",
                           ".pytest_cache", ".ruff_cache", "node_modules", ".DS_Store", "NOTES.md"})
IGNORED_SUFFIXES = (".pyc", ".pyo")


def ignored(name: str) -> bool:
    return name in IGNORED_NAMES or name.endswith(IGNORED_SUFFIXES)


def code_files(root: Path) -> list[Path]:
    """The learner-relevant files under root, relative to it, sorted (what snapshots and diffs compare)."""
    files = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(ignored(part) for part in relative.parts) or not path.is_file():
            continue
        files.append(relative)
    return files


def copy_code(source: Path, target: Path) -> None:
    """Copy the learner-relevant files of `source` into `target` (which may exist).

    Symbolic links are copied as links, never followed: a link to a file only root may read (or to /dev/zero)
    stays a link, which the learner's code can follow only as far as its own user may. Pipes, sockets and
    devices are left out.
    """
    def skipped(folder: str, names: list[str]) -> list[str]:
        return [name for name in names if ignored(name) or _special(os.path.join(folder, name))]

    shutil.copytree(source, target, ignore=skipped, symlinks=True, dirs_exist_ok=True)


def _special(path: str) -> bool:
    mode = os.lstat(path).st_mode
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode))


def readable_by_all(root: Path) -> None:
    """Let every user read the files and enter the folders under `root` (a snapshot the grader made)."""
    for folder, _dirs, files in os.walk(root):
        os.chmod(folder, os.stat(folder).st_mode | 0o555)
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode | 0o444)


@dataclass(frozen=True)
class Workspace:
    root: Path
    slug: str
    version: str

    @property
    def state_dir(self) -> Path:
        return self.root / MARKER_DIR

    @property
    def results_dir(self) -> Path:
        return self.state_dir / "results"

    @property
    def report_path(self) -> Path:
        """The HTML report of the last `lab check`."""
        return self.state_dir / "report.html"

    def own_outputs(self) -> None:
        """Make the folders `lab check` writes real folders: a link planted in `.lab/` (a submission graded as
        root) is removed, never written through."""
        if self.state_dir.is_symlink():
            raise UsageProblem(f"{self.state_dir} is a link; lab check writes its results only into a real folder.",
                               f"Remove the link (`rm {self.state_dir}`) and start the lab again, or grade with --lab.")
        for folder in (self.results_dir, self.logs_dir):
            if folder.is_symlink():
                folder.unlink()
            folder.mkdir(parents=True, exist_ok=True)
        if self.report_path.is_symlink():
            self.report_path.unlink()

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def backups_dir(self) -> Path:
        return self.state_dir / "backups"

    @classmethod
    def find(cls, start: Path | None = None) -> Workspace:
        """The workspace holding `start` (default: the current folder), found by walking up to its marker."""
        start = (start or Path.cwd()).resolve()
        for folder in (start, *start.parents):
            marker = folder / MARKER_DIR / MARKER_FILE
            if marker.is_file():
                try:
                    data = json.loads(marker.read_text())
                    return cls(folder, data["slug"], data["version"])
                except (ValueError, KeyError):
                    raise UsageProblem(f"The workspace marker {marker} is damaged.",
                                       "Start the lab again in a new folder with `lab start SLUG --dir NEW_FOLDER`.") from None
        raise UsageProblem(f"{start} is not inside a lab workspace.",
                           "Start a lab with `lab start SLUG` (see `lab list`), then run this inside its folder. "
                           "A copy of a lab's project made otherwise (a clone of a course repository) becomes "
                           "its workspace with `lab check --lab SLUG` in the folder with manage.py.")

    @classmethod
    def create(cls, lab: LabSpec, starter: Path, target: Path, force: bool = False) -> Workspace:
        """Copy the starter and the brief into `target` and mark it as this lab's workspace."""
        if target.exists() and not target.is_dir():
            raise UsageProblem(f"{target} exists and is not a folder.", "Choose another place with --dir.")
        if target.is_dir() and any(target.iterdir()) and not force:
            raise UsageProblem(f"{target} is not empty; starting here could overwrite your files.",
                               "Choose another folder with --dir, or add --force to copy the starter over it.")
        target.mkdir(parents=True, exist_ok=True)
        copy_code(starter, target)
        shutil.copy2(lab.directory / BRIEF, target / BRIEF)
        workspace = cls(target.resolve(), lab.slug, lab.version)
        workspace.write_marker()
        return workspace

    def write_marker(self) -> None:
        self.state_dir.mkdir(exist_ok=True)
        (self.state_dir / ".gitignore").write_text("# The lab kit's own files: results, logs, backups.\n*\n")
        (self.state_dir / MARKER_FILE).write_text(json.dumps({
            "slug": self.slug, "version": self.version, "kit_version": __version__,
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }, indent=2) + "\n")
