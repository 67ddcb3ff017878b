"""The labs this installation knows, by slug."""

from __future__ import annotations

import difflib
import os

from grader.errors import UsageProblem
from grader.labspec import LabSpec, lab_slugs, load_lab
from grader.resources import ROOT_VARIABLE, resources


def all_slugs() -> list[str]:
    return lab_slugs(resources().labs)


def load(slug: str) -> LabSpec:
    """The lab called `slug` (an in-progress one too, named by its author); an unknown slug gets a "did you
    mean" and the list command."""
    slugs = all_slugs()
    if slug not in slugs and slug not in lab_slugs(resources().labs, in_progress=True):
        close = difflib.get_close_matches(slug, slugs, n=1, cutoff=0.5)
        suggestion = f"Did you mean `{close[0]}`? " if close else ""
        where = os.environ.get(ROOT_VARIABLE)
        course = f" The labs are those of LAB_ROOT={where} (its labs/ folder)." if where else ""
        raise UsageProblem(f"There is no lab called {slug!r}.{course}", f"{suggestion}`lab list` shows every lab.")
    return load_lab(resources().lab_dir(slug) / "lab.toml")


def load_all() -> list[LabSpec]:
    return [load(slug) for slug in all_slugs()]
