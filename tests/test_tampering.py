"""Gaming the grader changes no verdict: planted start-up hooks, probing for the grader, special-cased ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grader.labspec import load_lab
from grader.resources import resources

pytestmark = pytest.mark.slow
LAB = load_lab(resources().lab_dir("race-conditions") / "lab.toml")
EXPECTED = {check_id: "fail" if check_id in LAB.starter_fails else "pass" for check_id in LAB.check_ids}
# What the learner's processes may see: what Python and Django need, and the overlay's place on sys.path.
APP_ENVIRONMENT = {"PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "HOME", "TMPDIR", "PYTHONPATH", "DJANGO_SETTINGS_MODULE",
                   "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "SERVER_SOFTWARE"}

FORGE_VERDICTS = '''
import json, os, sys
print("probe:{name}:" + json.dumps(sys.argv), file=sys.stderr, flush=True)
if "--lab-context" in sys.argv:  # in the grader's check runner: write passing verdicts for every check
    context = json.load(open(sys.argv[sys.argv.index("--lab-context") + 1]))
    with open(context.get("results_path") or os.devnull, "a") as results:
        for check in context["checks"]:
            results.write(json.dumps({{"id": check["id"], "status": "pass", "message": "forged"}}) + "\\n")
'''

PROBE_ENVIRONMENT = '''

# Looking for signs of the grader: show the environment this process sees.
import json as _json
import sys as _sys
print("probe:env:" + _json.dumps(dict(os.environ)), file=_sys.stderr, flush=True)
if os.environ.get("CI") or any(key.startswith("LAB_") for key in os.environ):
    raise SystemExit("graded: behave")  # a learner's code must never be able to tell
'''

SPECIAL_CASED_IDS = '''

# Serialise orders, but only for the ids `lab run` shows (1 to 10), as if the bug were fixed.
import functools as _functools, json as _json
from django.db import connection as _connection


def _locked_for_demo_ids(view):
    @_functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            product_id = int(_json.loads(request.body or b"{{}}").get("product"))
        except (ValueError, TypeError, AttributeError):
            return view(request, *args, **kwargs)
        if product_id > 10:
            return view(request, *args, **kwargs)
        with _connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [product_id])
        try:
            return view(request, *args, **kwargs)
        finally:
            with _connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [product_id])
    return wrapper


create_order = _locked_for_demo_ids(create_order)
'''


def verdicts(workspace: Path) -> dict[str, dict]:
    result = json.loads((workspace / ".lab" / "results" / "latest.json").read_text())
    return {check["id"]: check for check in result["checks"]}


def test_start_up_hooks_and_grader_probes_change_no_verdict(run_lab, workspace: Path, monkeypatch):
    """The planted hooks print what they saw to the processes' logs (the sandbox lets them write nowhere the
    test could read), and .lab/logs keeps those logs."""
    for name in ("sitecustomize", "usercustomize"):
        (workspace / f"{name}.py").write_text(FORGE_VERDICTS.format(name=name))
        (workspace / "store" / f"{name}.py").write_text(FORGE_VERDICTS.format(name=name))
    (workspace / "zz-grader.pth").write_text("import sys; print('probe:pth:', file=sys.stderr, flush=True)\n")
    settings = workspace / "shop" / "settings.py"
    settings.write_text(settings.read_text() + PROBE_ENVIRONMENT)
    # The grader's own environment carries markers a learner's code could look for.
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("LAB_PROVIDER", "local")

    result = run_lab("check", "--seed", "5", cwd=workspace)

    assert result.exit_code == 1, result.output
    checks = verdicts(workspace)
    assert {check_id: check["status"] for check_id, check in checks.items()} == EXPECTED
    assert not [check for check in checks.values() if check["message"] == "forged"]
    probes = [line for log in sorted((workspace / ".lab" / "logs").glob("*.log"))
              for line in log.read_text(errors="replace").splitlines() if line.startswith("probe:")]
    hooks = [line for line in probes if not line.startswith("probe:env:")]
    assert [line for line in hooks if line.startswith("probe:sitecustomize:")], \
        "the planted sitecustomize.py should run in the learner's own processes (else this test proves nothing)"
    assert not [line for line in hooks if "--lab-context" in line], \
        "a learner's start-up hook ran inside the grader's check runner"
    assert not [line for line in hooks if line.startswith("probe:pth:")], "a .pth file in the workspace was processed"
    environments = [json.loads(line.removeprefix("probe:env:")) for line in probes if line.startswith("probe:env:")]
    assert environments, "the learner's settings were never imported"
    for environment in environments:
        assert set(environment) <= APP_ENVIRONMENT, sorted(set(environment) - APP_ENVIRONMENT)
        assert environment["DJANGO_SETTINGS_MODULE"] == "_lab_overlay.settings"


@pytest.mark.parametrize("seed", [7, 8])
def test_a_view_that_special_cases_seen_ids_still_fails(seed: int, run_lab, workspace: Path):
    views = workspace / "store" / "views.py"
    views.write_text(views.read_text() + SPECIAL_CASED_IDS)
    result = run_lab("check", "--provider", "local", "--seed", str(seed), cwd=workspace)
    assert result.exit_code == 1, result.output
    assert verdicts(workspace)["no-oversell"]["status"] == "fail"
