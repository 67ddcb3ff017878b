"""The `lab` command: the learner's loop (list, start, check, hint, diff, reset, status) and `verify` for authors.

Exit codes: 0 every required check passes, 1 checks failed, 2 usage or environment error.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from grader import __version__, catalog
from grader.errors import LabError, StageFailure, UsageProblem
from grader.labspec import LabSpec
from grader.names import FORMATS, PROVIDERS
from grader.paths import write_atomically
from grader.resources import resources
from grader.state import Progress
from grader.workspace import BRIEF, MARKER_DIR, MARKER_FILE, Workspace, code_files, copy_code

if TYPE_CHECKING:
    from grader.app import RunningServer

EXIT_OK, EXIT_CHECKS_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_RUN_PORT = 8000


@dataclass
class Context:
    """What every command shares: where to print and the learner's progress."""

    console: Console
    progress: Progress


class LabGroup(click.Group):
    """A click group that turns the kit's own problems into a clear message and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LabError as problem:
            console = Console(stderr=True, soft_wrap=True)
            console.print(f"[red bold]error:[/red bold] {escape(problem.what)}", highlight=False)
            if problem.todo:
                console.print(escape(problem.todo), highlight=False)
            ctx.exit(problem.exit_code)
        except KeyboardInterrupt:
            # Every context manager of the run has already stopped what it started.
            Console(stderr=True).print("\nInterrupted: everything this run started has been stopped.")
            ctx.exit(EXIT_INTERRUPTED)


only_option = click.option(
    "--only", "only", multiple=True, metavar="ID",
    help="Run only this check and the checks it depends on (repeat for several); a partial run is not recorded "
         "as your result for the lab.",
)
provider_option = click.option(
    "--provider", type=click.Choice(PROVIDERS, case_sensitive=False), envvar="LAB_PROVIDER", default=None,
    help="Where PostgreSQL and Redis come from (default: $LAB_PROVIDER, else auto).",
)


@click.group(cls=LabGroup)
@click.version_option(__version__, prog_name="lab")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Nexus Labs: fix broken backends, get graded by hidden checks."""
    ctx.obj = Context(console=Console(highlight=False, soft_wrap=True), progress=Progress())


@cli.command("list")
@click.pass_obj
def list_labs(obj: Context) -> None:
    """List the labs, their difficulty and your status."""
    table = Table(box=None, pad_edge=False)
    for column in ("lab", "title", "difficulty", "minutes", "status"):
        table.add_column(column)
    for lab in catalog.load_all():
        table.add_row(lab.slug, lab.title, lab.difficulty, str(lab.estimated_minutes), obj.progress.status(lab.slug))
    obj.console.print(table)
    obj.console.print("\nStart one with [bold]lab start SLUG[/bold].")


@cli.command()
@click.argument("slug")
@click.option("--dir", "directory", type=click.Path(path_type=Path), help="Where to put it (default: ./SLUG).")
@click.option("--force", is_flag=True, help="Copy the starter into a folder that is not empty.")
@click.pass_obj
def start(obj: Context, slug: str, directory: Path | None, force: bool) -> None:
    """Copy a lab's starter into a new folder and show its brief."""
    lab = catalog.load(slug)
    target = (directory or Path.cwd() / slug).absolute()
    workspace = Workspace.create(lab, resources().starter_dir(slug), target, force=force)
    obj.progress.record_start(slug, workspace.root)
    obj.console.print(f"[bold]{lab.title}[/bold] ({lab.difficulty}, about {lab.estimated_minutes} min)")
    obj.console.print(lab.summary)
    obj.console.print(f"\nYour workspace: [bold]{workspace.root}[/bold]  (the brief is {BRIEF} there)")
    obj.console.print(f"Next: [bold]cd {escape(str(workspace.root))}[/bold], read the brief, fix the service, "
                      "then [bold]lab check[/bold]. Stuck? [bold]lab hint[/bold].")


def _workspace_lab() -> tuple[Workspace, LabSpec]:
    workspace = Workspace.find()
    return workspace, catalog.load(workspace.slug)


def _check_workspace(slug: str | None) -> tuple[Workspace, LabSpec]:
    """The workspace to grade; with `--lab SLUG`, a folder never marked by `lab start` becomes SLUG's."""
    if slug is None:
        return _workspace_lab()
    lab = catalog.load(slug)
    try:
        workspace = Workspace.find()
    except UsageProblem:
        here = Path.cwd().resolve()
        if any((folder / MARKER_DIR / MARKER_FILE).exists() for folder in (here, *here.parents)):
            raise  # a damaged marker: not ours to overwrite
        if not (here / "manage.py").is_file():
            raise UsageProblem(f"{here} has no manage.py, so it is not a lab's project folder.",
                               f"Run `lab check --lab {lab.slug}` in the folder that holds your project's manage.py."
                               ) from None
        workspace = Workspace(here, lab.slug, lab.version)
        workspace.write_marker()
        return workspace, lab
    if workspace.slug != lab.slug:
        raise UsageProblem(f"{workspace.root} is a workspace of the {workspace.slug} lab, not of {lab.slug}.",
                           f"Run `lab check` there without --lab, or grade {lab.slug} in its own folder.")
    return workspace, lab


def _writable_output(option: str, path: Path | None) -> None:
    """Refuse an output file that could not be written before grading, not after it."""
    if path is None:
        return
    folder = next((parent for parent in path.absolute().parents if parent.exists()), None)
    if folder is None or not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise UsageProblem(f"{option} {path}: {folder} is not a folder this user can write in.",
                           f"Give {option} a path in a folder you can write to.")


@cli.command()
@provider_option
@click.option("--seed", type=int, help="Replay a run with this seed (printed by every check).")
@click.option("--time-limit", type=click.IntRange(min=10), help="Seconds for the whole check (default: the lab's).")
@click.option("--request-timeout", type=click.IntRange(min=1),
              help="Seconds one request of a check may take (default: the lab's).")
@click.option("--startup-timeout", type=click.IntRange(min=5),
              help="Seconds migrate, seed and the server each get to start (default: the lab's).")
@click.option("--lab", "slug", metavar="SLUG",
              help="Grade this folder as SLUG's workspace even if `lab start` did not make it (a repository in CI, "
                   "a course platform's submission).")
@click.option("--format", "output_format", type=click.Choice(FORMATS), default="text", show_default=True,
              help="What stdout carries; with any but text, the report for people goes to stderr.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the JSON result (schema version 1) to this file.")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write JUnit XML to this file.")
@click.option("--gradescope", "gradescope_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write Gradescope's results.json to this file.")
@only_option
@click.pass_obj
def check(obj: Context, provider: str | None, seed: int | None, time_limit: int | None, request_timeout: int | None,
          startup_timeout: int | None, slug: str | None, output_format: str, json_path: Path | None, junit_path: Path | None,
          gradescope_path: Path | None, only: tuple[str, ...]) -> None:
    """Grade the workspace you are in: hidden checks against your running service.

    Every check writes .lab/results/latest.json and the HTML report .lab/report.html. On GitHub Actions
    it also annotates the checks that do not pass and adds a job summary. With --only, a partial run:
    those checks and the ones they depend on, not recorded as your result for the lab.
    """
    from grader import formats
    from grader.html_report import write_html
    from grader.pipeline import grade
    from grader.report import LiveReporter, print_summary
    
    console = obj.console if output_format == "text" else Console(stderr=True, highlight=False, soft_wrap=True)
    for option, path in (("--json", json_path), ("--junit", junit_path), ("--gradescope", gradescope_path)):
        _writable_output(option, path)
    workspace, lab = _check_workspace(slug)
    lab = lab.with_limits(check_seconds=time_limit, request_seconds=request_timeout, startup_seconds=startup_timeout)
    if workspace.version != lab.version:
        console.print(f"[yellow]note:[/yellow] this workspace was started from version {workspace.version} of "
                      f"the lab; the checks are version {lab.version}.")
    lab.require_checks(only)
    if only and (gradescope_path is not None or output_format == "gradescope"):
        raise UsageProblem("A partial run (--only) gives no Gradescope result: its score would stand for the lab's.",
                           "Grade the whole lab for Gradescope: drop --only.")
    workspace.own_outputs()
    reporter = LiveReporter(console, {c.id: c.title for c in lab.checks})
    result = grade(lab, workspace.root, provider, seed, reporter, logs_dir=workspace.logs_dir, only=only or None)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    payload = formats.to_json(result)
    write_atomically(workspace.results_dir / f"{stamp}-seed{result.seed}.json", payload)
    latest = workspace.results_dir / "latest.json"
    write_atomically(latest, payload)
    for name, path in (("json", json_path), ("junit", junit_path), ("gradescope", gradescope_path)):
        if path is not None:
            write_atomically(path.absolute(), formats.render(result, name))
    write_html(result, workspace.report_path)
    if not result.partial:  # a partial run says nothing of the checks it left out
        obj.progress.record_check(lab.slug, result.score, result.max_score, result.passed)
    print_summary(console, result, str(latest.relative_to(workspace.root)),
                  str(workspace.report_path.relative_to(workspace.root)))
    if output_format != "text":
        click.echo(formats.render(result, output_format), nl=False)
    if formats.on_github_actions() or output_format == "github":
        if output_format != "github":  # stdout may carry another format: workflow commands work on stderr too
            click.echo(formats.to_github(result), nl=False, err=output_format != "text")
        formats.append_github_summary(result)
    raise SystemExit(EXIT_OK if result.passed else EXIT_CHECKS_FAILED)


@cli.command()
@provider_option
@click.option("--seed", type=int, help="Grade every run with this seed (default: a new one each time).")
@only_option
@click.pass_obj
def watch(obj: Context, provider: str | None, seed: int | None, only: tuple[str, ...]) -> None:
    """Run `lab check` now and again whenever you save a file of the workspace (Ctrl-C stops).

    A save while a check runs stops that run and starts a new one; each run's full output is in
    .lab/logs/watch.log and its verdicts on the screen. --only ID watches those checks alone.
    """
    from grader.watch import watch as watch_workspace

    workspace, lab = _workspace_lab()
    lab.require_checks(only)
    arguments = [*(["--provider", provider] if provider else []), *(["--seed", str(seed)] if seed is not None else []),
                 *(argument for check_id in only for argument in ("--only", check_id))]
    raise SystemExit(watch_workspace(workspace.root, arguments, obj.console))


@cli.command("run")
@provider_option
@click.option("--port", type=int, help="The port to serve on (default: 8000, or a free one when 8000 is taken).")
@click.pass_obj
def run_service(obj: Context, provider: str | None, port: int | None) -> None:
    """Serve your code with seeded data and its own databases, to see the bug for yourself (Ctrl-C stops it)."""
    from grader.pipeline import Stages, prepared_service, terminate_on_sigterm
    from grader.processes import RunDirectory, port_is_free, reap_abandoned_runs
    from grader.providers import get_provider
    from grader.report import LiveReporter
    
    workspace, lab = _workspace_lab()
    chosen = get_provider(provider)
    if port is None and port_is_free(DEFAULT_RUN_PORT):
        port = DEFAULT_RUN_PORT
    reporter = LiveReporter(obj.console, {})
    with terminate_on_sigterm():
        reap_abandoned_runs()
        run = RunDirectory.create()
        try:
            with prepared_service(lab, workspace.root, chosen, run, Stages(reporter), seed=1, demo=True,
                                  port=port) as prepared:
                database = prepared.services.database
                obj.console.print(f"\n[bold]Serving {lab.slug} at {prepared.server.base_url}[/bold]  (Ctrl-C stops it)")
                if len(prepared.replicas) > 1:
                    obj.console.print("  replicas: " + ", ".join(replica.base_url for replica in prepared.replicas)
                                      + "  (the log below is the first one's)")
                for line in prepared.manifest if isinstance(prepared.manifest, list) else []:
                    obj.console.print(f"  {escape(line)}")
                # The run's password is in the URL: over TCP every role needs one (grader/providers/postgres.py).
                credentials = database["user"] + (f":{database['password']}" if database.get("password") else "")
                obj.console.print(f"  database: psql postgresql://{credentials}@{database['host']}:{database['port']}/"
                                  f"{database['dbname']}\n  redis:    {prepared.services.redis_url}")
                obj.console.print("[dim]This serves a copy of your code: stop and run again after you change it. "
                                  "Requests are logged below.[/dim]\n")
                _follow(obj.console, prepared.server)
        except StageFailure as failure:
            obj.console.print(f"[red bold]The {failure.stage} stage failed:[/red bold] {escape(failure.message)}")
            obj.console.print(escape(failure.log_tail), highlight=False)
            obj.console.print(f"[bold]What to try:[/bold] {escape(failure.todo)}")
            raise SystemExit(EXIT_CHECKS_FAILED) from None
        except KeyboardInterrupt:
            obj.console.print("\nStopped; the databases of this run are gone.")
        finally:
            run.remove()


def _follow(console: Console, server: RunningServer) -> None:
    """Print the server's log as it grows, until the server exits."""
    offset = 0
    while True:
        code = server.process.poll()
        with server.log.open("rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
        offset += len(chunk)
        if chunk:
            console.out(chunk.decode(errors="replace"), end="", highlight=False)
        if code is not None:
            trouble = server.process.trouble()
            console.print(f"[red]The server exited (code {code}){': ' + trouble if trouble else ''}.[/red]")
            raise SystemExit(EXIT_CHECKS_FAILED)
        time.sleep(0.2)


@cli.command()
@click.pass_obj
def hint(obj: Context) -> None:
    """Show the next hint for this lab (each call reveals one more)."""
    workspace, lab = _workspace_lab()
    index = obj.progress.next_hint(lab.slug, len(lab.hints))
    obj.console.print(f"[bold]Hint {index + 1} of {len(lab.hints)}[/bold]")
    obj.console.print(escape(lab.hints[index]))
    if index + 1 == len(lab.hints):
        obj.console.print("\n[dim]That was the last hint. `lab diff` compares your code with the reference "
                          "solution once you want to see one.[/dim]")


@cli.command()
@click.option("--stat", is_flag=True, help="Only list the files that differ.")
@click.pass_obj
def diff(obj: Context, stat: bool) -> None:
    """Compare your code with the reference solution."""
    import difflib
    
    workspace, lab = _workspace_lab()
    solution = resources().solution_dir(lab.slug)
    mine = {path for path in code_files(workspace.root) if path != Path(BRIEF)}
    theirs = set(code_files(solution))
    changed = 0
    for relative in sorted(mine | theirs):
        before = _lines(workspace.root / relative) if relative in mine else []
        after = _lines(solution / relative) if relative in theirs else []
        if before == after:
            continue
        changed += 1
        if stat:
            obj.console.print(f"  {relative}")
            continue
        for line in difflib.unified_diff(before, after, f"yours/{relative}", f"solution/{relative}"):
            style = "green" if line.startswith("+") else "red" if line.startswith("-") else \
                "cyan" if line.startswith("@@") else ""
            obj.console.print(escape(line.rstrip("\n")), style=style, highlight=False, soft_wrap=True)
    obj.console.print(f"\n{changed} file{'s' if changed != 1 else ''} differ from the reference solution."
                      + (f" Why it works: {solution / 'NOTES.md'}" if (solution / "NOTES.md").is_file() else ""))


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return [f"(binary file, {path.stat().st_size} bytes)\n"]


@cli.command()
@click.pass_obj
def reset(obj: Context) -> None:
    """Put the starter back; your current files are saved in .lab/backups first."""
    workspace, lab = _workspace_lab()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    backup = workspace.backups_dir / stamp
    copy_code(workspace.root, backup)
    for relative in code_files(workspace.root):
        (workspace.root / relative).unlink()
    for folder in sorted((p for p in workspace.root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if workspace.state_dir not in folder.parents and folder != workspace.state_dir and not any(folder.iterdir()):
            folder.rmdir()
    copy_code(resources().starter_dir(lab.slug), workspace.root)
    shutil.copy2(lab.directory / BRIEF, workspace.root / BRIEF)
    Workspace(workspace.root, lab.slug, lab.version).write_marker()
    obj.console.print(f"The starter is back. Your previous files are in [bold]{backup}[/bold].")


@cli.command()
@click.pass_obj
def status(obj: Context) -> None:
    """Where you are: this workspace's last result, or your progress over all labs."""
    try:
        workspace, lab = _workspace_lab()
    except LabError:
        for lab in catalog.load_all():
            entry = obj.progress.lab(lab.slug)
            score = f"{entry['best_score']}/{entry['max_score']}" if "best_score" in entry else "-"
            obj.console.print(f"{lab.slug:<24} {obj.progress.status(lab.slug):<12} best {score}")
        return
    obj.console.print(f"[bold]{lab.title}[/bold] · {lab.slug} {workspace.version} · {workspace.root}")
    latest = workspace.results_dir / "latest.json"
    if not latest.is_file():
        obj.console.print("Not checked yet: run [bold]lab check[/bold].")
    else:
        data = json.loads(latest.read_text())
        partial = f" (a partial run of {', '.join(data['only'])})" if data.get("only") else ""
        obj.console.print(f"Last check {data['started_at']}{partial}: score {data['score']['earned']}/"
                          f"{data['score']['max']}, " + ("all required checks pass." if data["passed"] else
                                                        "not passing yet."))
        for check in data["checks"]:
            if check["status"] != "pass":
                obj.console.print(f"  {check['status'].upper():<5} {check['id']}")
        if workspace.report_path.is_file():
            obj.console.print(f"Report: {workspace.report_path}")
    shown = obj.progress.lab(lab.slug).get("hints_shown", 0)
    obj.console.print(f"Hints shown: {shown} of {len(lab.hints)}.")


@cli.command()
@provider_option
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.pass_obj
def doctor(obj: Context, provider: str | None, as_json: bool) -> None:
    """What this machine offers for grading (servers, engine), and what `lab check` would use and why."""
    from grader.doctor import diagnose
    
    found = diagnose(provider)
    if as_json:
        obj.console.out(json.dumps(found.to_json(), indent=2), highlight=False)
        raise SystemExit(EXIT_OK if found.usable else EXIT_USAGE)
    console = obj.console
    console.print(f"[bold]lab doctor[/bold] · nexus-labs {found.kit} · Python {found.python} · {found.machine}")
    for title, candidates, missing in (
            ("PostgreSQL", found.postgres, "none found (initdb, postgres and pg_isready in one folder)"),
            ("Redis", found.redis, "no redis-server found")):
        console.print(f"\n[bold]{title}[/bold] for the local provider (LAB_BINARIES={found.binaries_policy})")
        for candidate in candidates:
            mark = "[green]→[/green]" if found.chosen(candidate) else " "
            version = candidate.version or "[red]does not run[/red]"
            console.print(f"  {mark} {version:<8} {escape(str(candidate.path))}  [dim]{escape(candidate.source)}[/dim]")
        if not candidates:
            console.print(f"    [yellow]{missing}[/yellow]")
    if found.server_user:
        console.print(f"  [dim]You are root: PostgreSQL runs as the user {escape(found.server_user)}.[/dim]")
    engine = found.engine
    console.print("\n[bold]Docker engine[/bold]")
    console.print(f"    {'[green]answers[/green]' if engine.reachable else '[yellow]not reachable[/yellow]'} at "
                  f"{escape(engine.host)}: {escape(engine.detail)}")
    for role, (name, present) in found.images.items():
        state = "[green]present[/green]" if present else "[yellow]missing[/yellow]"
        console.print(f"    {role:<9} {escape(name)}  {state}")
    console.print("\n[bold]External servers[/bold]")
    console.print("    " + ", ".join(f"{name} {'set' if given else 'not set'}" for name, given in found.external.items()))
    console.print(f"\n[dim]Cache (initialised and migrated clusters, image archives): {escape(found.cache)} (safe to delete)[/dim]")
    console.print()
    if found.usable:
        console.print(f"[green bold]lab check would use the {found.provider} provider[/green bold] "
                      f"({escape(found.reason)}):")
        for service, description in found.servers.items():
            console.print(f"    {service}: {escape(description)}")
        raise SystemExit(EXIT_OK)
    console.print(f"[red bold]lab check cannot grade here[/red bold] with the {found.provider or 'chosen'} provider "
                  f"({escape(found.reason or 'no provider')}): {escape(found.problem)}")
    if found.todo:
        console.print(f"[bold]What to do:[/bold] {escape(found.todo)}")
    raise SystemExit(EXIT_USAGE)


@cli.group()
def images() -> None:
    """For classrooms and CI: the container images the docker provider uses."""


@images.command("build")
@click.option("--shell", is_flag=True, help="Print only the export lines that select the images (for eval).")
def images_build(shell: bool) -> None:
    """Make PostgreSQL, Redis and Python images from Debian packages, for an engine with no registry.

    About a minute the first time (debootstrap, then three builds; needs root), seconds afterwards
    (kept as an archive in the cache, keyed by the inputs). Progress goes to stderr.
    """
    from grader.images import build_debian_images
    from grader.providers.docker import engine

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    started = time.monotonic()
    built = build_debian_images(engine(), progress=lambda line: err.print(
        f"[dim][{time.monotonic() - started:5.1f}s][/dim] {escape(line)}"))
    exports = [f"export {name}={value}" for name, value in built.env().items()]
    if shell:
        click.echo("\n".join(exports))
        return
    err.print(f"Images {built.how}: {', '.join(built.names)}. Select them with:")
    click.echo("\n".join(exports))


@cli.command("postgres-settings")
@click.argument("slug")
def postgres_settings(slug: str) -> None:
    """For CI service containers: the PostgreSQL settings SLUG is graded with, as ALTER SYSTEM statements.

    The local and docker providers start PostgreSQL with them; a server you provide (the external
    provider) needs them too, e.g. pg_stat_statements, which checks read statement counts from. Apply
    them with psql, then restart the server.
    """
    from grader.providers.postgres import TEST_SETTINGS

    settings = {**TEST_SETTINGS, **catalog.load(slug).postgres.server_settings()}
    for host_only in ("listen_addresses", "unix_socket_directories"):  # where it listens is the server's own
        settings.pop(host_only, None)
    for name, value in settings.items():
        click.echo(f"ALTER SYSTEM SET {name} = '{value}';")


@cli.command("calibrate")
@click.argument("slugs", nargs=-1)
@provider_option
@click.pass_obj
def calibrate_command(obj: Context, slugs: tuple[str, ...], provider: str | None) -> None:
    """Measure the starter and the reference solution on this machine again (the figures load checks judge by).

    Without SLUG: the lab of the workspace you are in, else every lab with a load profile.
    """
    from grader.calibration import CalibrationCache
    from grader.pipeline import calibrate
    from grader.providers import get_provider
    from grader.report import LiveReporter, figures_table
    from grader.results import figure_rows
    
    if slugs:
        labs = [catalog.load(slug) for slug in slugs]
    else:
        try:
            labs = [_workspace_lab()[1]]
        except LabError:
            labs = [lab for lab in catalog.load_all() if lab.load is not None]
    chosen = get_provider(provider)
    reporter = LiveReporter(obj.console, {})
    for lab in labs:
        if lab.load is None:
            obj.console.print(f"{lab.slug} has no load profile: its checks need no calibration.")
            continue
        calibration = calibrate(lab, chosen, reporter, refresh=True)
        obj.console.print(f"\n[bold]{lab.slug}[/bold] {lab.version} · {chosen.name} provider · "
                          f"{escape(calibration.machine)} · {calibration.measured_at}")
        if (busy_note := calibration.busy_note()) is not None:
            obj.console.print(f"[yellow]The reference was {escape(busy_note)}.[/yellow]")
        for check in lab.checks:
            rows = figure_rows(check.id, {}, calibration)
            if rows:
                obj.console.print(f"  [bold]{check.id}[/bold]")
                obj.console.print(figures_table(rows, indent=4, columns=("starter", "reference")))
        obj.console.print(f"[dim]kept in {escape(str(CalibrationCache().path(lab.slug, calibration.version, chosen.name)))}"
                          "[/dim]")


@cli.command()
@click.argument("slugs", nargs=-1)
@provider_option
@click.option("--seed", type=int, help="Use this seed for every run.")
@click.pass_obj
def verify(obj: Context, slugs: tuple[str, ...], provider: str | None, seed: int | None) -> None:
    """For authors: each starter fails exactly its starter_fails, each solution passes every check."""
    from grader.verify import verify_lab
    
    labs = [catalog.load(slug) for slug in slugs] if slugs else catalog.load_all()
    failures = 0
    for lab in labs:
        obj.console.print(f"[bold]verify {lab.slug}[/bold] {lab.version}")
        verdict = verify_lab(lab, provider, seed)
        for name, result in (("starter", verdict.starter), ("solution", verdict.solution)):
            statuses = " ".join(f"{check.id}={check.status}" for check in result.checks)
            took = sum(result.stages.values())
            obj.console.print(f"  {name:<8} score {result.score}/{result.max_score} in {took:.1f}s "
                              f"(seed {result.seed}): {statuses}")
            if result.stage_failure:
                obj.console.print(f"  [red]{name} {result.stage_failure.stage} failed:[/red] "
                                  f"{escape(result.stage_failure.message)}\n{escape(result.stage_failure.log_tail)}")
        for problem in verdict.starter_problems + verdict.solution_problems:
            obj.console.print(f"  [red]✗[/red] {escape(problem)}")
        if verdict.ok:
            obj.console.print(f"  [green]✓ {lab.slug}: the starter fails exactly "
                              f"{', '.join(sorted(lab.starter_fails))}; the solution passes all "
                              f"{len(lab.checks)} checks[/green]")
        failures += not verdict.ok
    raise SystemExit(EXIT_OK if not failures else EXIT_CHECKS_FAILED)


@cli.command("new")
@click.argument("slug")
@click.option("--title", help="The lab's title, shown by `lab list` (default: made from the slug).")
@click.pass_obj
def new_lab(obj: Context, slug: str, title: str | None) -> None:
    """For authors: a new lab from templates/new-lab/ (brief, starter, hidden checks, solution, docs page)."""
    from grader.scaffold import create_lab

    obj.console.out(create_lab(slug, title).summary(), highlight=False)


def main() -> None:
    cli(prog_name="lab")
