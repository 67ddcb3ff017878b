"""Each brief states what is graded: its numbers are the numbers of the lab's data, code and lab.toml.

A learner reads only the brief. A number it states (a dataset's size, a limit, a page size, the server's shape)
that differs from what the checks use teaches the wrong thing and makes correct code fail, so every such
number is read here from the brief and from where the lab really keeps it, and the two must agree.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

from grader.labspec import LabSpec, lab_slugs, load_lab
from grader.resources import resources

RESOURCES = resources()
SLUGS = lab_slugs(RESOURCES.labs)


def brief(slug: str) -> str:
    return (RESOURCES.lab_dir(slug) / "README.md").read_text()


def spec(slug: str) -> LabSpec:
    return load_lab(RESOURCES.lab_dir(slug) / "lab.toml")


def constant(path: Path, name: str):
    """A module-level constant of a Python file, read without importing it (the lab's Django code needs Django)."""
    for node in ast.parse(path.read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) \
            else []
        if any(isinstance(target, ast.Name) and target.id == name for target in targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{path} has no constant {name}")


def numbers(text: str) -> list[int]:
    """Every whole number written in a text, with or without thousands separators (60,000 or 60000)."""
    return [int(match.replace(",", "")) for match in re.findall(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?![\w,])|(?<![\w.,])\d+(?![\w,])",
                                                                 text)]


WORDS = {"four": 4, "five": 5, "six": 6, "ten": 10, "twelve": 12, "twenty": 20, "sixty": 60}


def stated(text: str, pattern: str) -> list[int]:
    """The numbers a pattern captures wherever it occurs (each must occur at least once), in digits or words."""
    found = [WORDS[value.lower()] if value.lower() in WORDS else int(value.replace(",", ""))
             for match in re.finditer(pattern, text) for value in match.groups()]
    assert found, f"the brief no longer says {pattern!r}"
    return found


@pytest.mark.parametrize("slug", SLUGS)
def test_the_acceptance_criteria_list_exactly_the_checks_of_lab_toml(slug: str):
    text = brief(slug)
    section = text.split("## Acceptance criteria", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^- `([a-z0-9-]+)`", section, re.M)
    assert listed == list(spec(slug).check_ids)


@pytest.mark.parametrize("slug", SLUGS)
def test_the_server_the_brief_describes_is_the_one_graded(slug: str):
    server = spec(slug).server
    shapes = re.findall(r"(\d+) workers?(?: process(?:es)?)?,? (?:of |with )?(\d+) threads", brief(slug).replace("**", ""))
    assert shapes, "the brief says how many workers and threads grade the app"
    assert {(int(workers), int(threads)) for workers, threads in shapes} == {(server.workers, server.threads)}
    assert ("two replicas" in brief(slug).replace("**", "").lower()) == (server.replicas == 2)


@pytest.mark.parametrize("slug", SLUGS)
def test_the_numbers_of_the_summary_are_in_the_brief(slug: str):
    summary = spec(slug).summary
    assert set(numbers(summary)) <= set(numbers(brief(slug))), summary


def test_race_conditions_states_its_limits_as_the_code_and_checks_keep_them():
    text, starter = brief("race-conditions"), RESOURCES.starter_dir("race-conditions")
    serializers, views = starter / "store" / "serializers.py", starter / "store" / "views.py"
    gateway = starter / "payments" / "gateway.py"
    seed = RESOURCES.checks_dir("race-conditions") / "seed.py"
    assert set(stated(text, r"`amount` missing, not an integer, below 1 or above (\d+)")) == \
        {constant(serializers, "LARGEST_TOPUP")}
    assert set(stated(text, r"balance plus `amount` would be above (\d+)")) == \
        {constant(serializers, "LARGEST_BALANCE")} == {constant(seed, "LARGEST_BALANCE")}
    assert set(stated(text, r"below 1 or above (\d+);")) == {constant(serializers, "LARGEST_INTEGER")}
    assert set(stated(text, r"at most (\d+) characters")) == {constant(views, "IDEMPOTENCY_KEY_LENGTH")}
    assert stated(text, r"about (\d+) ms, like a real provider") == [round(constant(gateway, "CHARGE_LATENCY") * 1000)]
    assert stated(text, r"risk check that takes about (\d+) ms") == [round(constant(gateway, "SCREEN_LATENCY") * 1000)]


def test_slow_queries_states_the_dataset_and_pages_the_checks_use():
    text, checks = brief("slow-queries"), RESOURCES.checks_dir("slow-queries")
    dataset = checks / "dataset.py"
    opening = " ".join(text.split("## The API contract", 1)[0].split())
    assert stated(opening, r"catalogue holds ([\d,]+) books by ([\d,]+) authors") == \
        [constant(dataset, "BOOKS"), constant(dataset, "AUTHORS")]
    assert stated(opening, r"about ([\d,]+) reviews") == [constant(dataset, "REVIEWS_ABOUT")]
    assert stated(spec("slow-queries").summary, r"holds ([\d,]+) books and about ([\d,]+) reviews") == \
        [constant(dataset, "BOOKS"), constant(dataset, "REVIEWS_ABOUT")]
    assert set(stated(" ".join(text.split()), r"no page may hold more than (\d+)")) == \
        {constant(checks / "test_queries.py", "PAGE_CEILING")}


def test_insecure_endpoints_states_the_limits_the_checks_hold_it_to():
    text, checks = " ".join(brief("insecure-endpoints").split()), RESOURCES.checks_dir("insecure-endpoints")
    assert stated(text, r"After \*\*(\d+) failed logins for one username within (\d+) minutes") == \
        [constant(checks / "test_auth.py", "MAX_FAILURES"), 15]
    assert set(stated(text, r"at most (\d+) are checked")) == {constant(checks / "test_auth.py", "MAX_FAILURES")}
    assert set(stated(text, r"(\w+) wrong passwords for one account")) == {constant(checks / "test_auth.py", "GUESSES")}
    assert set(stated(text, r"(\w+) wrong passwords for another account sent at the same moment")) == \
        {constant(checks / "test_auth.py", "BURST")}
    assert set(stated(text, r"`page_size` up to (\d+)")) == {constant(checks / "test_invoices.py", "MAX_PAGE")}
    assert set(stated(text, r"never gives more than (\d+) invoices")) == {constant(checks / "test_invoices.py", "MAX_PAGE")}
    graded_ttl = tomllib.loads((RESOURCES.lab_dir("insecure-endpoints") / "lab.toml").read_text())["app"]["overrides"]
    assert stated(text, r"\((\d+) s when graded\)") == [graded_ttl["TOKEN_TTL_SECONDS"]]


def test_load_states_the_budgets_lifetime_and_load_the_checks_use():
    text, checks = " ".join(brief("load").split()), RESOURCES.checks_dir("load")
    lab = spec("load")
    assert set(stated(text, r"never hold more than (\d+) connections")) == {constant(checks / "conftest.py",
                                                                                     "CONNECTION_BUDGET")}
    assert stated(text, r"(\w+) buyers browsing and buying without pause for (\d+) seconds") == \
        [lab.load.users, lab.load.seconds]
    assert "A cart lives for at least an hour after its last change" in text
    assert constant(checks / "test_cart_lifetime.py", "LIFETIME") == 3600
