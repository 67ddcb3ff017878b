"""The labs this installation knows, by slug."""

from __future__ import annotations

import difflib

from grader.errors import UsageProblem
from grader.labspec import LabSpec, lab_slugs, load_lab
from grader.resources import resources


def all_slugs() -> list[str]:
    return lab_slugs(resources().labs)


def load(slug: str) -> LabSpec:
    """The lab called `slug`; an unknown slug gets a "did you mean" and the list command."""
    slugs = all_slugs()
    if slug not in slugs:
        close = difflib.get_close_matches(slug, slugs, n=1, cutoff=0.5)
        suggestion = f"Did you mean `{close[0]}`? " if close else ""
        raise UsageProblem(f"There is no lab called {slug!r}.", f"{suggestion}`lab list` shows every lab.")
    return load_lab(resources().lab_dir(slug) / "lab.toml")


def load_all() -> list[LabSpec]:
    return [load(slug) for slug in all_slugs()]
