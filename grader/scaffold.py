"""`lab new`: a new lab rendered from the templates in `templates/new-lab/`.

The result is a tiny but real lab (a brief, a starter with one deliberate bug,
its hidden checks and seed data, a reference solution and a docs page) that
`lab verify` passes as it stands, so an author replaces it piece by piece and
verifies after each step. Every place an author must write says `TODO: (author)`.

Everything is rendered into a temporary folder inside the course first and moved
into place only once it all rendered, so a failure leaves nothing half-made, and
no existing file is ever overwritten.
"""

from __future__ import annotations

import importlib.util
import keyword
import os
import re
import shutil
import stat
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from grader.errors import UsageProblem
from grader.paths import write_atomically
from grader.resources import COURSE_LAYOUT, ROOT_VARIABLE, Resources, resources

TEMPLATE_FOLDER = "new-lab"
TEMPLATE_SUFFIX = ".j2"
PROJECT_TEMPLATE = "project"
"""The Django project, rendered twice: as the starter and, with `solution` true, as the reference solution."""
TEMPLATE_README = "README.md"
AUTHOR_TODO = "TODO: (author)"
SLUG_LENGTH = (3, 40)
SLUG_CHARACTERS = re.compile(r"[a-z0-9-]")
SLUG_TODO = (f"Choose a slug of {SLUG_LENGTH[0]} to {SLUG_LENGTH[1]} lowercase letters, digits and single hyphens "
             "that starts with a letter, e.g. `rate-limits`.")
# Names a lab's Python packages must not take: they would shadow a module the grader, Django or the
# starter relies on, or a Django app label a course may install.
TAKEN_NAMES = frozenset({
    "django", "rest_framework", "psycopg", "psycopg2", "psycopg_binary", "gunicorn", "redis", "jinja2", "click",
    "rich", "pytest", "_pytest", "locust", "gevent", "grader", "docker", "testcontainers", "setuptools", "pip",
    "pkg_resources", "_lab_overlay", "lab_seed", "seeding", "manage", "settings", "tests", "test",
    "admin", "admindocs", "auth", "contenttypes", "flatpages", "gis", "humanize", "messages", "postgres",
    "redirects", "sessions", "sitemaps", "sites", "staticfiles", "syndication",
})


@dataclass(frozen=True)
class PythonNames:
    """The Python names a slug gives its Django project: valid identifiers that shadow nothing."""

    project: str  # the project package (settings, urls, wsgi)
    app: str  # the app (models, views, serializers); also its Django app label and table prefix
    app_config: str  # the app's AppConfig class

    @classmethod
    def of(cls, slug: str) -> PythonNames:
        base = slug.replace("-", "_")
        app = _free_name([base, f"{base}_app"])
        project = _free_name([f"{base}_site", f"{base}_project"], also_taken={app})
        app_config = "".join(word.capitalize() for word in base.split("_")) + "Config"
        return cls(project=project, app=app, app_config=app_config)


def _free_name(candidates: list[str], also_taken: frozenset[str] | set[str] = frozenset()) -> str:
    names = candidates + [f"{candidates[-1]}{number}" for number in range(2, 100)]
    return next(name for name in names if name not in also_taken and not _name_is_taken(name))


def _name_is_taken(name: str) -> bool:
    if not name.isidentifier() or keyword.iskeyword(name):
        return True
    if name in TAKEN_NAMES or name in sys.stdlib_module_names:
        return True
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return True
    # A folder on sys.path (say, the current one) is no installed module; a module file or package is.
    return spec is not None and spec.origin is not None


def slug_problem(slug: str) -> str | None:
    """What is wrong with `slug` as the name of a new lab's folders, or None."""
    wrong = sorted({character for character in slug if not SLUG_CHARACTERS.fullmatch(character)})
    if wrong:
        listed = ", ".join(repr(character) for character in wrong)
        return (f"The slug {slug!r} contains {listed}: a lab slug has only lowercase letters, digits and "
                "hyphens.")
    if not slug[:1].isalpha():
        return f"The slug {slug!r} does not start with a letter."
    if "--" in slug or slug.endswith("-"):
        return f"The slug {slug!r} has an empty word: hyphens go between letters or digits, one at a time."
    low, high = SLUG_LENGTH
    if not low <= len(slug) <= high:
        return f"The slug {slug!r} is {len(slug)} characters long: a lab slug has {low} to {high}."
    return None


def default_title(slug: str) -> str:
    """A title made from the slug ("rate-limits" -> "Rate limits"), for the author to replace."""
    return slug.replace("-", " ").capitalize()


@dataclass
class NewLab:
    """A lab `lab new` made: where, with which names, and what it created."""

    slug: str
    title: str
    names: PythonNames
    course: Resources
    created: list[Path] = field(default_factory=list)  # relative to the course root, as moved into place
    indexed: Path | None = None  # the docs index that got the lab's row

    def summary(self) -> str:
        """What was created and what to do next, for the author."""
        root, slug = self.course.root, self.slug
        where = f"{root} (from {ROOT_VARIABLE})" if os.environ.get(ROOT_VARIABLE) else str(root)
        purposes = {
            f"labs/{slug}": f"lab.toml (the spec), README.md (the brief) and starter/ (Django project "
                            f"{self.names.project}, app {self.names.app})",
            f"grader/checks/{slug}": "the hidden checks (test_items.py, conftest.py) and seed.py",
            f"solutions/{slug}": "the reference solution, the starter path for path with the fix, and NOTES.md",
            f"docs/labs/{slug}.md": "the lab's page in the docs",
        }
        width = max(len(f"{path}/") for path in purposes)
        lines = [f"Created the lab {slug} ({self.title}) in {where}:"]
        for relative in self.created:
            shown = relative.as_posix() + ("/" if (root / relative).is_dir() else "")
            lines.append(f"  {shown:<{width}}  {purposes.get(relative.as_posix(), '')}".rstrip())
        if self.indexed is not None:
            lines.append(f"  {self.indexed.relative_to(root).as_posix():<{width}}  a row for the lab in its table")
        here = Path.cwd().absolute() == root.absolute()
        todo_places = " ".join(str(relative if here else root / relative) for relative in self.created)
        lines += [
            "",
            "It is a small working example: items with a name and a quantity, and a starter that takes a",
            "negative quantity (its check quantity-validated fails; the solution fixes it).",
            "",
            "Next:",
            f"  1. lab verify {slug}",
            "     proves the example as it stands: the starter fails exactly quantity-validated, the solution",
            "     passes every check.",
            f"  2. Replace the example piece by piece. Every place to write says `{AUTHOR_TODO}`:",
            f"     grep -rn \"{AUTHOR_TODO}\" {todo_places}",
            f"  3. lab verify {slug} after each step; the kit's docs/authoring.md walks through the loop.",
        ]
        if os.environ.get(ROOT_VARIABLE):
            lines.append(f"Keep {ROOT_VARIABLE}={root} set for every `lab` command that should see this lab.")
        return "\n".join(lines)


def create_lab(slug: str, title: str | None = None, course: Resources | None = None) -> NewLab:
    """Render a new lab into the course's folders; raises UsageProblem for a bad slug or title."""
    course = course or resources()
    if not course.is_course:
        raise UsageProblem(
            f"This installation's labs live inside its Python package ({course.root}), not in a course "
            "folder that `lab new` can write to.",
            f"Set {ROOT_VARIABLE} to your course checkout ({COURSE_LAYOUT}) and run `lab new` again.")
    problem = slug_problem(slug)
    if problem:
        raise UsageProblem(problem, SLUG_TODO)
    title = default_title(slug) if title is None else title.strip()
    if not title or not title.isprintable():
        raise UsageProblem(f"The title {title!r} is not one line of text.",
                           "Give --title a short line a learner reads in `lab list`, e.g. --title \"Rate limits\".")
    if (course.lab_dir(slug) / "lab.toml").is_file():
        raise UsageProblem(f"There is already a lab called {slug!r} ({course.lab_dir(slug)}).",
                           "Choose another slug, or edit that lab; `lab list` shows every lab.")
    lab = NewLab(slug, title, PythonNames.of(slug), course)
    templates = course.templates / TEMPLATE_FOLDER
    rendered = _render_plan(templates, _context(lab))
    targets = sorted({_created_item(relative, slug) for relative in rendered}, key=_course_order)
    existing = [course.root / target for target in targets if (course.root / target).exists()]
    if existing:
        raise UsageProblem(f"{', '.join(str(path) for path in existing)} already "
                           f"{'exists' if len(existing) == 1 else 'exist'}, though there is no lab {slug!r}.",
                           "Move it out of the way (nothing is ever overwritten), or choose another slug.")
    index = course.docs / "index.md"
    index_text = with_index_row(index.read_text(encoding="utf-8") if index.is_file() else None, slug)
    try:
        staging = Path(tempfile.mkdtemp(prefix=".lab-new-", dir=course.root))
    except OSError as error:
        raise UsageProblem(f"Cannot write into the course folder {course.root}: {error.strerror}.",
                           f"Make it writable, or set {ROOT_VARIABLE} to a course checkout you can write to.") from None
    try:
        environment = _environment(templates)
        for relative, (template, context) in rendered.items():
            _render_file(environment, templates, template, context, staging / relative)
        placement = _Placement(staging, course.root)
        try:
            for target in targets:
                placement.move(target)
            placement.folder(index.parent)
            write_atomically(index, index_text)
        except BaseException:
            placement.undo()
            raise
        lab.created, lab.indexed = targets, index
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return lab


def _context(lab: NewLab) -> dict[str, Any]:
    return {"slug": lab.slug, "title": lab.title, "project": lab.names.project, "app": lab.names.app,
            "app_config": lab.names.app_config, "author_todo": AUTHOR_TODO}


def _render_plan(templates: Path, context: dict[str, Any]) -> dict[Path, tuple[Path, dict[str, Any]]]:
    """Every file to render, by its path in the course: (its template, the variables it gets)."""
    plan: dict[Path, tuple[Path, dict[str, Any]]] = {}
    slug = context["slug"]
    for template in sorted(path.relative_to(templates) for path in templates.rglob("*") if path.is_file()):
        if template == Path(TEMPLATE_README) or "__pycache__" in template.parts:
            continue
        if template.suffix != TEMPLATE_SUFFIX:
            raise ValueError(f"{templates / template}: a template of the new-lab scaffold must end in {TEMPLATE_SUFFIX}")
        if template.parts[0] == PROJECT_TEMPLATE:
            inside = Path(*template.parts[1:])
            sides = ((Path("labs") / "__slug__" / "starter", False), (Path("solutions") / "__slug__", True))
            for folder, solution in sides:
                plan[_course_path(folder / inside, context)] = (template, {**context, "solution": solution})
        else:
            plan[_course_path(template, context)] = (template, {**context, "solution": False})
    for relative in plan:
        _created_item(relative, slug)  # every file belongs to the lab: nothing lands in a shared folder
    return plan


def _course_path(template: Path, context: dict[str, Any]) -> Path:
    """Where a template lands: its `__slug__`, `__project__` and `__app__` segments named, `.j2` dropped."""
    parts = []
    for part in template.parts:
        for placeholder in ("slug", "project", "app"):
            part = part.replace(f"__{placeholder}__", context[placeholder])
        parts.append(part)
    path = Path(*parts)
    return path.with_name(path.name.removesuffix(TEMPLATE_SUFFIX))


def _created_item(relative: Path, slug: str) -> Path:
    """The folder or file the lab adds to the course (`labs/SLUG`, `docs/labs/SLUG.md`) holding `relative`."""
    for depth, part in enumerate(relative.parts, start=1):
        if part in (slug, f"{slug}.md"):
            return Path(*relative.parts[:depth])
    raise ValueError(f"{relative}: a file of the new-lab scaffold must lie under a __slug__ folder or be __slug__.md")


def _course_order(path: Path) -> tuple[int, str]:
    """The lab's places in the order the brief and the docs name them: labs, checks, solutions, docs."""
    order = ("labs", "grader", "solutions", "docs")
    return (order.index(path.parts[0]) if path.parts[0] in order else len(order), path.as_posix())


def _environment(templates: Path) -> Environment:
    environment = Environment(loader=FileSystemLoader(templates), undefined=StrictUndefined,
                              keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True, autoescape=False)
    environment.filters["toml"] = _toml_string
    return environment


def _render_file(environment: Environment, templates: Path, template: Path, context: dict[str, Any],
                 target: Path) -> None:
    """Render one template (relative to `templates`) to `target`, keeping its executable bit (manage.py)."""
    text = environment.get_template(template.as_posix()).render(**context)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    if (templates / template).stat().st_mode & stat.S_IXUSR:
        target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _toml_string(value: str) -> str:
    """A TOML basic string holding `value`."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


class _Placement:
    """Rendered items moved from the staging folder into the course, and undone as a whole on failure."""

    def __init__(self, staging: Path, root: Path):
        self.staging, self.root = staging, root
        self.moved: list[Path] = []
        self.made: list[Path] = []  # folders of the course that did not exist before (labs/ in a new course)

    def move(self, target: Path) -> None:
        destination = self.root / target
        for parent in reversed(destination.parents):
            if self.root in parent.parents and not parent.exists():
                parent.mkdir()
                self.made.append(parent)
        if destination.exists():
            raise UsageProblem(f"{destination} appeared while the lab was being made.",
                               "Nothing was changed; run `lab new` again once it is out of the way.")
        os.rename(self.staging / target, destination)
        self.moved.append(target)

    def folder(self, path: Path) -> None:
        """Make a folder of the course (and its parents) that the undo removes again."""
        for folder in [*reversed(path.parents), path]:
            if self.root in folder.parents and not folder.exists():
                folder.mkdir()
                self.made.append(folder)

    def undo(self) -> None:
        for target in reversed(self.moved):
            path = self.root / target
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        for folder in reversed(self.made):
            try:
                folder.rmdir()
            except OSError:
                pass


def with_index_row(index: str | None, slug: str) -> str:
    """The docs index with a row for the lab at the end of its `## Labs` table (made when there is none)."""
    row = f"| {slug} | [labs/{slug}.md](labs/{slug}.md) |"
    lines = (index if index is not None else "# Documentation\n").splitlines()
    if f"(labs/{slug}.md)" in "\n".join(lines):
        return "\n".join(lines) + "\n"
    heading = next((number for number, line in enumerate(lines) if line.strip().lower() == "## labs"), None)
    if heading is None:
        return "\n".join([*lines, "", "## Labs", "| lab | page |", "|---|---|", row]).lstrip("\n") + "\n"
    section_end = next((number for number in range(heading + 1, len(lines)) if lines[number].startswith("#")),
                       len(lines))
    table = [number for number in range(heading + 1, section_end) if lines[number].startswith("|")]
    if not table:
        lines[heading + 1:heading + 1] = ["| lab | page |", "|---|---|", row]
    else:
        last = table[0]
        while last + 1 < section_end and lines[last + 1].startswith("|"):
            last += 1
        lines.insert(last + 1, row)
    return "\n".join(lines) + "\n"
