"""`lab watch`: run `lab check` at start, then again after every save in the workspace, one screen per run.

A burst of saves (an editor writing a file twice, a `git checkout`) makes one run. A save while a run is in
progress stops that run (SIGINT to its process group: `lab check` tears down everything it started) and
starts a new one. Each run is `lab check` in its own session, its output in `.lab/logs/watch.log`; after it
the screen shows the verdicts from `.lab/results/latest.json`. Ctrl-C stops the watch and the run in
progress (exit code 130).

watchfiles is imported where it is used, so that `lab --help` stays fast.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130
STOP_GRACE_SECONDS = 30.0  # `lab check` stops its services in a few seconds; SIGKILL only if it hangs
SETTLE_LIMIT_SECONDS = 10.0  # a stream of saves that never pauses still starts a run after this long
TICK_SECONDS = 0.1  # how often the loop looks at the run, the stop event and the workspace folder
LOG_TAIL_LINES = 15
LOG_NAME = "watch.log"
RESULT_PATH = Path(".lab", "results", "latest.json")
# Never a reason to grade again: the grader's own folder (a run must not trigger itself), caches, VCS data.
IGNORED_DIRS = frozenset({".lab", "__pycache__", ".git", ".pytest_cache"})
# Editors' swap and backup files (vim also probes with a file named 4913), on top of watchfiles' defaults.
IGNORED_NAME_PATTERNS = (r"\.py[cod]$", r"^\..*\.sw.$", r"~$", r"^\.#", r"^4913$")
SYMBOL = {"pass": "✓", "fail": "✗", "skip": "-", "error": "!", "inconclusive": "?"}


class WorkspaceFilter:
    """Whether a changed path of the workspace calls for a new run (watchfiles' `watch_filter`).

    Paths are judged relative to the workspace, so a folder above it named like an ignored one (a workspace
    kept under `~/.venv/...`) does not hide every change.
    """

    def __init__(self, root: Path):
        from watchfiles import DefaultFilter

        self.root = root
        self.ignored_dirs = frozenset({*DefaultFilter.ignore_dirs, *IGNORED_DIRS})
        self.ignored_names = [re.compile(pattern)
                              for pattern in (*DefaultFilter.ignore_entity_patterns, *IGNORED_NAME_PATTERNS)]

    def __call__(self, change: Any, path: str) -> bool:
        try:
            parts = Path(path).relative_to(self.root).parts
        except ValueError:
            return False
        if not parts or any(part in self.ignored_dirs for part in parts):
            return False
        return not any(pattern.search(parts[-1]) for pattern in self.ignored_names)


class ChangeFeed:
    """Batches of changed paths under the workspace, from watchfiles in a thread of their own."""

    def __init__(self, root: Path, watch_filter: Callable[[Any, str], bool], batch_ms: int):
        self.root, self.watch_filter, self.batch_ms = root, watch_filter, batch_ms
        self._batches: queue.Queue[set[tuple[Any, str]] | BaseException] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="lab-watch-files", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _watch(self) -> None:
        import watchfiles

        try:
            for batch in watchfiles.watch(self.root, watch_filter=self.watch_filter, debounce=self.batch_ms,
                                          step=50, stop_event=self._stop, raise_interrupt=False):
                self._batches.put(batch)
        except BaseException as error:  # handed to the loop, which says what happened
            self._batches.put(error)

    def get(self, timeout: float) -> set[tuple[Any, str]] | None:
        """The next batch of changes, or None when none comes within `timeout` seconds."""
        try:
            item = self._batches.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    def settle(self, quiet_seconds: float, limit: float = SETTLE_LIMIT_SECONDS) -> set[tuple[Any, str]]:
        """Every change until none has come for `quiet_seconds` (at most `limit` seconds): one burst, one run."""
        changes: set[tuple[Any, str]] = set()
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            batch = self.get(timeout=min(quiet_seconds, max(deadline - time.monotonic(), 0.0)))
            if batch is None:
                break
            changes |= batch
        return changes

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)


class CheckRun:
    """One run of the check command in its own session, its output in `.lab/logs/watch.log`."""

    def __init__(self, root: Path, command: list[str], trigger: str):
        self.root, self.trigger = root, trigger
        self.log = root / ".lab" / "logs" / LOG_NAME
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._result_before = _file_key(root / RESULT_PATH)
        descriptor = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(descriptor, "wb") as handle:
            self.process = subprocess.Popen(command, cwd=root, stdin=subprocess.DEVNULL, stdout=handle,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        self.started = time.monotonic()
        self.seconds: float | None = None

    def finished(self) -> bool:
        """Whether the run has ended by itself; its stragglers (anything left in its process group) are stopped."""
        if self.seconds is not None:
            return True
        if self.process.poll() is None:
            return False
        self.seconds = time.monotonic() - self.started
        _kill_group(self.process.pid)
        return True

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop the run as Ctrl-C would (`lab check` stops what it started), SIGKILL after `grace` seconds."""
        from grader.processes import stop_group

        if self.process.poll() is None:
            stop_group(self.process.pid, grace=grace, sig=signal.SIGINT)
        else:
            _kill_group(self.process.pid)
        self.process.wait()
        if self.seconds is None:
            self.seconds = time.monotonic() - self.started

    def result(self) -> dict[str, Any] | None:
        """The JSON result this run wrote, or None when it wrote none (a usage error, a crash)."""
        path = self.root / RESULT_PATH
        if _file_key(path) in (None, self._result_before):
            return None
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return result if isinstance(result, dict) else None


def _file_key(path: Path) -> tuple[int, int, int] | None:
    """What tells one version of a file from the next (results are replaced, never rewritten in place)."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_ino, status.st_mtime_ns, status.st_size


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def check_command(check_args: list[str]) -> list[str]:
    """The `lab check` a watch runs, with the options given to `lab watch`."""
    return [sys.executable, "-m", "grader", "check", *check_args]


def describe(changes: set[tuple[Any, str]], root: Path) -> str:
    """What triggered a run, for its one line: the changed file relative to the workspace, and how many more."""
    paths = sorted({str(Path(path).relative_to(root)) for _change, path in changes})
    if not paths:
        return "a change"
    more = f" and {len(paths) - 1} more" if len(paths) > 1 else ""
    return f"{paths[0]} changed{more}"


def one_line(text: str, width: int) -> str:
    """The first line of `text`, cut to `width` characters."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[:max(width - 1, 0)] + "…"


def show_summary(console: Console, result: dict[str, Any], seconds: float) -> None:
    """The verdicts of one run on one screen: score, a line per check, the stage that failed."""
    from grader.report import STYLE

    score = result.get("score") or {}
    checks = result.get("checks") or []
    passing = sum(1 for check in checks if check.get("status") == "pass")
    console.print(Text.assemble((str(result.get("lab", "?")), "bold"),
                                f"  {score.get('earned', '?')}/{score.get('max', '?')} points · "
                                f"{passing} of {len(checks)} checks pass · {seconds:.1f} s"))
    only = result.get("only")
    if only:
        console.print(Text(f"Partial run: only {', '.join(map(str, only))}.", style="yellow"))
    width = max(console.width, 40)
    for check in checks:
        status, check_id = str(check.get("status", "?")), str(check.get("id", "?"))
        line = Text.assemble("  ", (SYMBOL.get(status, "?"), STYLE.get(status, "")), f" {check_id}")
        if status != "pass":
            line.append("  " + one_line(str(check.get("message") or status), width - len(line) - 2), style="dim")
        console.print(line)
    failure = result.get("stage_failure")
    if isinstance(failure, dict):
        text = f"Stage {failure.get('stage', '?')} failed: {failure.get('message', '')}"
        console.print(Text(one_line(text, width), style="red"))
    console.print(Text("Details: lab check's output in .lab/logs/watch.log, the report in .lab/report.html.",
                       style="dim"))


def show_log_tail(console: Console, log: Path, returncode: int | None) -> None:
    """What `lab check` printed when it wrote no result (a usage error or a crash): the end of its log."""
    console.print(Text(f"lab check ended with exit code {returncode} and wrote no result; "
                       f"the end of .lab/logs/{log.name}:", style="yellow"))
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        lines = ["(no output)"]
    lines = lines[-min(LOG_TAIL_LINES, max(console.height - 4, 3)):] or ["(no output)"]
    for line in lines:
        console.print(Text(f"  {line}"), highlight=False)


@contextmanager
def _interrupt_deferred() -> Iterator[None]:
    """Hold Ctrl-C while a run is started or stopped, then raise it: a run is never left half known."""
    pressed: list[int] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, _frame: pressed.append(signum))
    except ValueError:  # not the main thread: signals are the main thread's
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
    if pressed:
        raise KeyboardInterrupt


class Watcher:
    """The loop of `lab watch`: one run at a time, a new one after each burst of saves."""

    def __init__(self, root: Path, command: list[str], console: Console, debounce_ms: int,
                 stop_event: threading.Event | None):
        self.root, self.command, self.console = root, command, console
        self.debounce = debounce_ms / 1000
        self.stop_event = stop_event or threading.Event()
        self.feed = ChangeFeed(root, WorkspaceFilter(root), batch_ms=debounce_ms)
        self.run: CheckRun | None = None
        self.reported = False
        self.stopped_run = False  # whether closing the watch stopped a run in progress

    def loop(self) -> int:
        self.feed.start()
        self.start_run("start")
        while not self.stop_event.is_set():
            if not self.root.is_dir():
                return self.gone()
            try:
                batch = self.feed.get(timeout=TICK_SECONDS)
            except Exception as error:
                from watchfiles._rust_notify import WatchfilesRustInternalError

                if not self.root.is_dir():
                    return self.gone()
                if isinstance(error, OSError | WatchfilesRustInternalError):
                    return self.cannot_watch(error)
                raise
            if batch:
                self.restart(batch)
            elif self.run is not None and not self.reported and self.run.finished():
                self.reported = True
                self.show_result(self.run)
        return 0

    def restart(self, batch: set[tuple[Any, str]]) -> None:
        """Stop the run in progress, wait for the burst of saves to end, then start one run for all of them."""
        if self.run is not None and not self.run.finished():
            self.console.print(f"[dim]{escape(describe(batch, self.root))}: stopping the run in progress…[/dim]")
            with _interrupt_deferred():
                self.run.stop()
        batch |= self.feed.settle(self.debounce)
        if self.root.is_dir():
            self.start_run(describe(batch, self.root))

    def start_run(self, trigger: str) -> None:
        if self.console.is_terminal:
            self.console.clear()
        self.console.print(f"[bold]Running lab check[/bold] ({escape(trigger)}) · output in "
                           f".lab/logs/{LOG_NAME} · Ctrl-C stops")
        with _interrupt_deferred():
            self.run, self.reported = CheckRun(self.root, self.command, trigger), False

    def show_result(self, run: CheckRun) -> None:
        if self.console.is_terminal:
            self.console.clear()
        result = run.result()
        if result is None:
            show_log_tail(self.console, run.log, run.process.returncode)
        else:
            show_summary(self.console, result, run.seconds or 0.0)
        self.console.print(f"\nWatching [bold]{escape(str(self.root))}[/bold] for changes · Ctrl-C stops")

    def gone(self) -> int:
        self.console.print(f"[red bold]error:[/red bold] the workspace {escape(str(self.root))} is gone "
                           "(deleted or moved), so there is nothing left to watch.")
        self.console.print("Run `lab watch` again in the workspace's folder, or start the lab again with "
                           "`lab start SLUG --dir NEW_FOLDER`.")
        return EXIT_USAGE

    def cannot_watch(self, error: Exception) -> int:
        self.console.print(f"[red bold]error:[/red bold] cannot watch {escape(str(self.root))} for changes: "
                           f"{escape(str(error))}")
        self.console.print("Where the system's file watches run out (fs.inotify.max_user_watches) or a folder is "
                           "shared from another machine, `WATCHFILES_FORCE_POLLING=true lab watch` looks for "
                           "changes by polling instead.")
        return EXIT_USAGE

    def close(self) -> None:
        """Stop watching and the run in progress."""
        self.feed.close()
        if self.run is None or self.run.finished():
            return
        self.console.print("[dim]Stopping the run in progress…[/dim]")
        self.stopped_run = True
        with _interrupt_deferred():
            self.run.stop()


def watch(root: Path, check_args: list[str], console: Console, *, debounce_ms: int = 400,
          stop_event: threading.Event | None = None, command: list[str] | None = None) -> int:
    """Run `lab check` in the workspace at `root` now and after every burst of saves, until Ctrl-C (130).

    `check_args` are passed to `lab check`; `command` replaces the whole command (tests). Setting `stop_event`
    ends the watch with exit code 0; a workspace folder that disappears ends it with 2.
    """
    from grader.pipeline import terminate_on_sigterm

    root = root.resolve()
    watcher = Watcher(root, command or check_command(check_args), console, debounce_ms, stop_event)
    with terminate_on_sigterm():
        try:
            try:
                return watcher.loop()
            finally:
                watcher.close()
        except KeyboardInterrupt:
            console.print("\nStopped watching" + (" and the run in progress." if watcher.stopped_run else "."))
            return EXIT_INTERRUPTED
