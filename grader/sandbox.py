"""Where the learner's processes run on this machine: as whom, seeing what, and how every one of them is found.

The code under test (migrate, seed, the server and anything it starts) must not reach the grader: not the
checks' context and results, not the run's records, not the user's state, not the grader's processes. Three
ways, best first; `lab doctor` says which one this machine gets, and `LAB_SANDBOX` may ask for one:

- `bwrap`: bubblewrap starts each command in new PID, mount and IPC namespaces. It sees the machine
  read-only, an empty /tmp of its own, its own writable HOME, and, of the run, only what it needs (its
  project, the settings overlay); its /etc/hosts is the run's own copy of the machine's, which a check may
  rewrite to decide what a name resolves to (docs/security.md), and as root so are its /etc/resolv.conf
  (where a check may put a name server of its own first) and /etc/nsswitch.conf (the hosts file, then
  DNS). It cannot see or signal a process outside its namespace. When the grader
  is root, the command also runs as the run's own unprivileged user (a uid no other run holds). When
  the grader dies, even by SIGKILL, the kernel ends every process of the namespace.
- `user`: the grader is root and bubblewrap is missing: commands run as the run's own unprivileged user,
  whose processes are the run's; files the grader keeps are out of its reach by their modes.
- `none`: the grader is not root and bubblewrap cannot make namespaces here: commands run as the grader's
  user. The learner's own code could reach the grader; that is acceptable for self-study only
  (docs/security.md). Course platforms grade as root or under docker.

In every way, a run's processes are also found by the run directory their environment names, so teardown
finds what detached itself (`setsid()`, a double fork) and stops it with SIGKILL.
"""

from __future__ import annotations

import os
import pwd
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from grader.errors import EnvironmentProblem, UsageProblem
from grader.providers.binaries import readable_by_others

MODES = ("auto", "bwrap", "user", "none")
# Uids for learners' processes when the grader is root: one per live run, none with an account.
APP_UIDS = range(61000, 62000)
UID_CLAIMS = "uids"


@dataclass(frozen=True)
class SandboxMode:
    """How this machine confines the learner's processes, and why, in words."""

    name: str  # bwrap, user or none
    reason: str
    bwrap: str | None = None  # the bubblewrap binary, in the bwrap mode

    @property
    def drops_privileges(self) -> bool:
        return os.geteuid() == 0


@cache
def sandbox_mode() -> SandboxMode:
    """The way this machine confines learner processes ($LAB_SANDBOX, default auto), checked once per process."""
    asked = (os.environ.get("LAB_SANDBOX") or "auto").strip().lower()
    if asked not in MODES:
        raise UsageProblem(f"LAB_SANDBOX={asked!r} is not a sandbox mode.", f"Use one of: {', '.join(MODES)}.")
    root = os.geteuid() == 0
    bwrap, why_not = _usable_bwrap()
    if asked in ("auto", "bwrap") and bwrap and root and not shutil.which("setpriv"):
        bwrap, why_not = None, "setpriv (util-linux), which drops root inside it, is missing"
    if asked in ("auto", "bwrap") and bwrap:
        who = "as the run's own unprivileged user" if root else "as you"
        return SandboxMode("bwrap", f"bubblewrap ({bwrap}) gives each command its own namespaces, {who}", bwrap)
    if asked == "bwrap":
        raise EnvironmentProblem(f"LAB_SANDBOX=bwrap, but bubblewrap cannot run here: {why_not}.",
                                 "Install it (Debian/Ubuntu: `apt-get install bubblewrap`) or unset LAB_SANDBOX.")
    if root:
        if asked == "none":
            raise UsageProblem("LAB_SANDBOX=none is refused as root: the learner's code would run as root.",
                               "Unset LAB_SANDBOX, or grade as a normal user.")
        unreachable = [path for path in python_paths() if not readable_by_others(path)]
        if unreachable:
            raise EnvironmentProblem(
                f"The grader runs as root, so your code runs as an unprivileged user, who cannot reach the Python "
                f"it needs ({unreachable[0]}), and bubblewrap, which would show it, "
                + ("is not to be used (LAB_SANDBOX=user)." if asked == "user" else f"cannot run here: {why_not}."),
                "Install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`), or install the kit with a Python "
                "every user can read (e.g. /usr/bin/python3 or under /opt), or grade as a normal user.")
        why = "LAB_SANDBOX=user asks for it" if asked == "user" else f"{why_not}"
        return SandboxMode("user", f"the grader is root and {why}: the learner's code runs as the run's own "
                                   "unprivileged user")
    if asked == "user":
        raise UsageProblem("LAB_SANDBOX=user needs the grader to run as root.", "Unset LAB_SANDBOX.")
    return SandboxMode("none", f"{why_not}, and the grader is not root: the learner's code runs as you "
                               "(fine for self-study; see docs/security.md)")


def sandbox_description() -> str:
    """Where the learner's code runs under the local and external providers, in words (kept in the result)."""
    mode = sandbox_mode()
    return f"local processes, sandbox {mode.name}: {mode.reason}"


def _usable_bwrap() -> tuple[str | None, str]:
    """bubblewrap's path when it can make PID and mount namespaces here, else why not."""
    binary = os.environ.get("LAB_BWRAP") or shutil.which("bwrap")
    if not binary:
        return None, "bubblewrap (bwrap) is not installed"
    try:
        probe = subprocess.run([binary, "--ro-bind", "/", "/", "--unshare-pid", "--die-with-parent", "--", "true"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f"bubblewrap did not run ({error})"
    if probe.returncode != 0:
        return None, f"bubblewrap cannot make namespaces here ({probe.stderr.strip()[:200]})"
    return binary, ""


# -- the run's own user ----------------------------------------------------------------------------------


def claim_app_uid(runs_root: Path, run_name: str) -> int:
    """A uid for one run's learner processes: no account has it, no process runs as it, no live run holds it."""
    claims = runs_root / UID_CLAIMS
    claims.mkdir(mode=0o700, exist_ok=True)
    busy = _uids_in_use()
    candidates = list(APP_UIDS)
    random.SystemRandom().shuffle(candidates)
    for uid in candidates:
        if uid in busy or _has_account(uid):
            continue
        claim = claims / str(uid)
        try:
            if not (runs_root / claim.read_text().strip()).is_dir():
                claim.unlink(missing_ok=True)  # held by a run that is gone
        except OSError:
            pass  # no claim, or one released just now
        try:
            descriptor = os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(descriptor, "w") as handle:
            handle.write(run_name)
        return uid
    raise EnvironmentProblem(f"Every uid from {APP_UIDS.start} to {APP_UIDS.stop - 1} is taken by a live run.",
                             "Wait for other gradings to finish, or stop those left running.")


def release_app_uid(runs_root: Path, uid: int) -> None:
    (runs_root / UID_CLAIMS / str(uid)).unlink(missing_ok=True)


def _has_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def _uids_in_use() -> set[int]:
    uids = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        uid = _real_uid(status)
        if uid is not None:
            uids.add(uid)
    return uids


def _real_uid(status: Path) -> int | None:
    try:
        for line in status.read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


# -- a run's processes -----------------------------------------------------------------------------------


def run_processes(run_path: Path, app_uid: int | None) -> list[int]:
    """Live processes of a run's learner code: those of its uid, and those whose environment names the run."""
    marker = f"{run_path}{os.sep}".encode()
    own = {os.getpid(), os.getppid()}
    found: list[int] = []
    if not Path("/proc").is_dir():  # no process table to read (macOS): the process groups are all there is
        return found
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in own:
            continue
        if app_uid is not None and _real_uid(proc / "status") == app_uid:
            found.append(int(proc.name))
            continue
        try:
            environment = (proc / "environ").read_bytes()
        except OSError:
            continue
        if marker in environment:
            found.append(int(proc.name))
    return found


def kill_run_processes(run_path: Path, app_uid: int | None, seconds: float = 5.0) -> list[int]:
    """SIGKILL every process of the run until none is left (a forking process is caught on a later pass)."""
    killed: list[int] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pids = run_processes(run_path, app_uid)
        if not pids:
            break
        if app_uid is not None and os.geteuid() == 0:
            _kill_every_process_of(app_uid)  # all at once: a process that forks in a loop cannot outrun it
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.02)
    return killed


def _kill_every_process_of(uid: int) -> None:
    """SIGKILL every process of `uid` in one system call, from a child that takes that uid (kill(-1))."""
    child = os.fork()
    if child == 0:
        try:
            os.setgid(uid)
            os.setuid(uid)
            os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(child, 0)


# -- commands in the sandbox -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Confinement:
    """How one run starts learner commands: the mode, the uid they run as (when the grader is root), the
    folders to hide (the runs folder, the grader's state)."""

    mode: SandboxMode
    app_uid: int | None
    hidden: tuple[Path, ...] = ()
    hosts: Path | None = None  # the run's own hosts file, seen as /etc/hosts (bwrap): the checks name hosts in it
    resolv: Path | None = None  # the run's own resolv.conf and nsswitch.conf (bwrap, as root): the checks' name
    nsswitch: Path | None = None  # server answers first, after the hosts file

    def owner(self) -> tuple[int, int] | None:
        """The (uid, gid) that should own what the learner's processes write, when not the grader's."""
        return (self.app_uid, self.app_uid) if self.app_uid is not None else None

    def popen_kwargs(self) -> dict:
        """Extra arguments for subprocess.Popen: the uid switch of the `user` mode."""
        if self.mode.name == "user" and self.app_uid is not None:
            return {"user": self.app_uid, "group": self.app_uid, "extra_groups": []}
        return {}

    def wrap(self, command: list[str], *, cwd: Path, readable: tuple[Path, ...],
             writable: tuple[Path, ...]) -> list[str]:
        """`command` as the sandbox runs it: seeing `readable` (and the machine) read-only, writing `writable`."""
        if self.mode.name != "bwrap":
            return command
        arguments = [self.mode.bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                     "--perms", "1777", "--tmpfs", "/tmp"]
        masks = [Path("/tmp"), *[path for path in self.hidden if path.is_dir() and not _under(path, Path("/tmp"))]]
        for hidden in masks[1:]:
            arguments += ["--perms", "0755", "--tmpfs", str(hidden)]
        visible = [*readable, *python_paths()]
        if self.app_uid is not None:  # the interpreter may sit in a folder only root can enter (/root/.pyenv)
            for needed in python_paths():
                for blocked in _blocked_ancestors(needed):
                    if not any(_under(blocked, mask) for mask in masks):
                        masks.append(blocked)
                        arguments += ["--perms", "0755", "--tmpfs", str(blocked)]
        made: set[Path] = set()
        for path, option in [*((path, "--ro-bind") for path in visible), *((path, "--bind") for path in writable)]:
            if not any(_under(path, mask) for mask in masks):
                continue  # still seen read-only through the machine's own view (writable: under a mask)
            mask = next(mask for mask in masks if _under(path, mask))
            for folder in reversed(path.parents):
                if _under(folder, mask) and folder != mask and folder not in made:
                    made.add(folder)
                    arguments += ["--perms", "0755", "--dir", str(folder)]
            arguments += [option, str(path), str(path)]
        for own, seen in ((self.hosts, "/etc/hosts"), (self.resolv, "/etc/resolv.conf"),
                          (self.nsswitch, "/etc/nsswitch.conf")):
            if own is not None:
                arguments += ["--ro-bind", str(own), seen]
        arguments += ["--chdir", str(cwd), "--unshare-pid", "--unshare-ipc", "--die-with-parent", "--new-session",
                      "--"]
        if self.app_uid is not None:
            arguments += [shutil.which("setpriv") or "/usr/bin/setpriv", f"--reuid={self.app_uid}",
                          f"--regid={self.app_uid}", "--clear-groups",
                          "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
        # bubblewrap sets PWD; the environment stays the one the grader gave
        return [*arguments, shutil.which("env") or "/usr/bin/env", "-u", "PWD", *command]


@cache
def python_paths() -> tuple[Path, ...]:
    """The folders the interpreter that runs the learner's project needs: its prefixes (the standard library,
    the virtualenv's packages) and its binary's folder; not the grader's own import paths."""
    paths = {Path(sys.base_prefix), Path(sys.prefix), Path(sys.base_exec_prefix), Path(sys.exec_prefix),
             Path(os.path.realpath(sys.executable)).parent}
    # Only the outermost of nested folders: a bind of the parent already shows the child.
    ordered = sorted(paths, key=lambda path: len(path.parts))
    kept: list[Path] = []
    for path in ordered:
        if not any(_under(path, outer) for outer in kept):
            kept.append(path)
    return tuple(kept)


def _blocked_ancestors(path: Path) -> list[Path]:
    """The folders above `path` that another user cannot enter (o+x missing), outermost first."""
    blocked = []
    for folder in reversed(path.parents):
        try:
            if not folder.stat().st_mode & 0o001:
                blocked.append(folder)
                break  # everything below it is hidden by its mask anyway
        except OSError:
            break
    return blocked


def _under(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def chown_for_app(path: Path, confinement: Confinement) -> None:
    """Give `path` (a file or a folder) to the learner's user, when that is not the grader's."""
    owner = confinement.owner()
    if owner is not None:
        os.chown(path, *owner)
