"""Which hidden check runs next, and on which worker: the order of a lab's checks when some run at once.

Pure logic, driven by the runner. A lab's `[grading] parallel` workers (pytest processes) take checks in
the order lab.toml declares them, each as soon as:
- every check it depends on has passed (one that did not makes it a skip, decided here, never run);
- no check runs that holds a lock it names (`locks`: checks that share state never overlap). A running check
  may let go of its locks while it waits on nothing shared (`release`), and take them back (`take_back`): it
  gets them as soon as the checks started meanwhile have ended, and no check naming them starts before;
- it is `alone` (it measures speed or memory, or reads the whole of a table others write): nothing else
  runs; and while it runs, nothing starts beside it. Alone checks go to the first worker, so the session
  fixtures they share (one load run feeding every check that judges it) are made once.

A check that waits (a token's lifetime, a TTL) then holds one worker while the others go on. Once only alone
checks are left, the other workers end (`retired`): nothing of theirs (a connection, memory) stays beside a check
that measures.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from grader.labspec import CheckSpec

FIRST_WORKER = 0


@dataclass(frozen=True)
class Skip:
    """A check the schedule decided not to run: a dependency did not pass (or, in a partial run, not chosen)."""

    check_id: str
    message: str


@dataclass
class Schedule:
    checks: tuple[CheckSpec, ...]
    workers: int = 1
    selected: frozenset[str] | None = None  # a partial run (`lab check --only`): these and their dependencies
    status: dict[str, str] = field(default_factory=dict)  # check id -> status, once it has a record
    running: dict[int, str] = field(default_factory=dict)  # worker -> the check it runs
    home: int = FIRST_WORKER  # the worker of alone checks (another once it has died)
    released: dict[int, set[str]] = field(default_factory=dict)  # worker -> locks its check let go of for now
    wanted: dict[int, set[str]] = field(default_factory=dict)  # worker -> released locks its check waits to get back

    def __post_init__(self) -> None:
        wanted = closure(self.checks, self.selected) if self.selected is not None else None
        self.pending = [check for check in self.checks if wanted is None or check.id in wanted]
        self.left_out = [check.id for check in self.checks if wanted is not None and check.id not in wanted]

    @property
    def done(self) -> bool:
        return not self.pending and not self.running

    def finish(self, check_id: str, status: str) -> None:
        """A check has its record (from a worker, or decided here); its worker is free once it says so (`free`)."""
        self.status[check_id] = status
        self.pending = [check for check in self.pending if check.id != check_id]

    def free(self, worker: int) -> str | None:
        """The worker is free again (its check ended, with or without a record); returns the check it had."""
        self.released.pop(worker, None)
        self.wanted.pop(worker, None)
        return self.running.pop(worker, None)

    def release(self, worker: int, locks: Iterable[str]) -> None:
        """The worker's check lets go of these of its locks while it waits on nothing they guard."""
        check = self._running_check(worker)
        if check is not None:
            self.released.setdefault(worker, set()).update(set(locks) & set(check.locks))

    def take_back(self, worker: int, locks: Iterable[str]) -> None:
        """The worker's check wants back locks it let go of; `grants` says when it has them."""
        if worker in self.running:
            self.wanted.setdefault(worker, set()).update(set(locks) & self.released.get(worker, set()))

    def grants(self) -> list[int]:
        """The workers whose checks get back every lock they asked for, now that no other running check holds one.

        A worker asking for nothing it let go of is answered at once, so a check never waits for nothing."""
        granted = []
        for worker in sorted(self.wanted):
            wanted = self.wanted[worker]
            if not wanted & self._held(except_worker=worker, waited_for=False):
                self.released.get(worker, set()).difference_update(wanted)
                del self.wanted[worker]
                granted.append(worker)
        return granted

    def _running_check(self, worker: int) -> CheckSpec | None:
        check_id = self.running.get(worker)
        return next((check for check in self.checks if check.id == check_id), None)

    def _held(self, except_worker: int | None = None, waited_for: bool = True) -> set[str]:
        """The locks the running checks hold now (not those let go of), and (`waited_for`) those they wait to
        take back: no check that names one starts meanwhile."""
        held: set[str] = set()
        for worker in self.running:
            check = self._running_check(worker)
            if worker != except_worker and check is not None:
                held |= set(check.locks) - self.released.get(worker, set())
        for worker, wanted in self.wanted.items() if waited_for else ():
            if worker != except_worker:
                held |= wanted
        return held

    def retired(self, idle: Iterable[int]) -> list[int]:
        """The idle workers no check left will ever go to: every pending check is alone (the home worker's)."""
        if any(not check.alone for check in self.pending):
            return []
        return [worker for worker in idle if worker != self.home]

    def skips(self) -> list[Skip]:
        """The pending checks that will never run, because a check they depend on has ended without passing."""
        found = []
        for check in self.pending:
            failed = next((dependency for dependency in check.depends_on
                           if dependency in self.status and self.status[dependency] != "pass"), None)
            if failed is not None:
                found.append(Skip(check.id, f"skipped: needs '{failed}', which did not pass ({self.status[failed]})"))
        return found

    def next_for(self, idle: Iterable[int]) -> list[tuple[int, str]]:
        """The checks to start now, each with the idle worker that takes it (declared order first)."""
        idle = sorted(idle)
        started: list[tuple[int, str]] = []
        by_id = {check.id: check for check in self.checks}
        for check in list(self.pending):
            if not idle:
                break
            if check.id in self.running.values():
                continue
            if any(self.status.get(dependency) != "pass" for dependency in check.depends_on):
                continue  # not ended yet (a failed one is a skip: see skips())
            running = [by_id[running_id] for running_id in self.running.values()]
            if any(other.alone for other in running):
                break
            if check.alone:
                if running:
                    continue  # it waits for the others to end; checks after it may still start meanwhile
                if self.home not in idle:
                    continue
                worker = self.home
            else:
                if set(check.locks) & self._held():
                    continue
                worker = idle[0]
            idle.remove(worker)
            self.running[worker] = check.id
            started.append((worker, check.id))
        return started


def closure(checks: tuple[CheckSpec, ...], selected: Iterable[str]) -> set[str]:
    """The selected checks and every check they depend on, directly or not."""
    by_id = {check.id: check for check in checks}
    wanted: set[str] = set()
    todo = list(selected)
    while todo:
        check_id = todo.pop()
        if check_id not in wanted:
            wanted.add(check_id)
            todo.extend(by_id[check_id].depends_on)
    return wanted
