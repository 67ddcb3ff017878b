"""The learner's loop through the real CLI, for everything that needs no running service."""

from __future__ import annotations

import json
from pathlib import Path

from grader import catalog
from grader.resources import resources
from grader.workspace import code_files

from conftest import tree_digest

STARTER = resources().starter_dir("race-conditions")


def test_list_shows_labs_and_status(run_lab):
    result = run_lab("list")
    assert result.exit_code == 0
    assert "race-conditions" in result.output and "not started" in result.output


def test_start_copies_starter_brief_and_marker(run_lab, tmp_path: Path):
    result = run_lab("start", "race-conditions", cwd=tmp_path)
    assert result.exit_code == 0, result.output
    workspace = tmp_path / "race-conditions"
    assert set(code_files(STARTER)) | {Path("README.md")} == set(code_files(workspace))
    assert (workspace / "README.md").read_text() == (resources().lab_dir("race-conditions") / "README.md").read_text()
    marker = json.loads((workspace / ".lab" / "lab.json").read_text())
    assert marker == {**marker, "slug": "race-conditions", "version": catalog.load("race-conditions").version}
    assert "started" in run_lab("list").output


def test_start_with_dir(run_lab, tmp_path: Path):
    result = run_lab("start", "race-conditions", "--dir", str(tmp_path / "mine"))
    assert result.exit_code == 0
    assert (tmp_path / "mine" / "manage.py").is_file()


def test_unknown_slug_gets_did_you_mean(run_lab, tmp_path: Path):
    result = run_lab("start", "race-condition", cwd=tmp_path)
    assert result.exit_code == 2
    assert "There is no lab called 'race-condition'." in result.output
    assert "Did you mean `race-conditions`?" in result.output
    assert not any(tmp_path.iterdir())


def test_start_refuses_a_non_empty_folder_without_force(run_lab, tmp_path: Path):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    result = run_lab("start", "race-conditions", "--dir", str(target))
    assert result.exit_code == 2
    assert "is not empty; starting here could overwrite your files." in result.output
    assert "--force" in result.output
    assert [path.name for path in target.iterdir()] == ["notes.txt"]
    assert run_lab("start", "race-conditions", "--dir", str(target), "--force").exit_code == 0
    assert (target / "notes.txt").read_text() == "mine"


def test_commands_outside_a_workspace_say_how_to_start(run_lab, tmp_path: Path):
    for command in ("check", "hint", "diff", "reset"):
        result = run_lab(command, cwd=tmp_path)
        assert result.exit_code == 2, command
        assert "is not inside a lab workspace." in result.output
        assert "Start a lab with `lab start SLUG`" in result.output


def test_commands_find_the_workspace_from_a_subfolder(run_lab, tmp_path: Path):
    run_lab("start", "race-conditions", cwd=tmp_path)
    result = run_lab("status", cwd=tmp_path / "race-conditions" / "store")
    assert result.exit_code == 0
    assert "Not checked yet" in result.output


def test_hints_are_revealed_one_at_a_time(run_lab, tmp_path: Path):
    run_lab("start", "race-conditions", cwd=tmp_path)
    workspace = tmp_path / "race-conditions"
    outputs = [run_lab("hint", cwd=workspace).output for _ in range(4)]
    assert outputs[0].startswith("Hint 1 of 3") and outputs[1].startswith("Hint 2 of 3")
    assert outputs[2].startswith("Hint 3 of 3") and "That was the last hint" in outputs[2]
    assert outputs[3].startswith("Hint 3 of 3")
    assert "Hints shown: 3 of 3." in run_lab("status", cwd=workspace).output


def test_diff_against_the_reference(run_lab, tmp_path: Path):
    run_lab("start", "race-conditions", cwd=tmp_path)
    workspace = tmp_path / "race-conditions"
    result = run_lab("diff", cwd=workspace)
    assert result.exit_code == 0
    assert "--- yours/store/views.py" in result.output and "+++ solution/store/views.py" in result.output
    assert "README.md" not in run_lab("diff", "--stat", cwd=workspace).output
    assert "NOTES.md" not in result.output.split("differ from the reference solution")[0]


def test_reset_keeps_a_backup(run_lab, tmp_path: Path):
    run_lab("start", "race-conditions", cwd=tmp_path)
    workspace = tmp_path / "race-conditions"
    pristine = tree_digest(workspace)
    (workspace / "store" / "views.py").write_text("# my attempt\n")
    (workspace / "store" / "extra.py").write_text("# my helper\n")
    result = run_lab("reset", cwd=workspace)
    assert result.exit_code == 0, result.output
    assert tree_digest(workspace) == pristine
    backups = list((workspace / ".lab" / "backups").iterdir())
    assert len(backups) == 1
    assert (backups[0] / "store" / "views.py").read_text() == "# my attempt\n"
    assert (backups[0] / "store" / "extra.py").read_text() == "# my helper\n"


def test_docker_provider_without_an_engine_says_what_to_do(run_lab, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    run_lab("start", "race-conditions", cwd=tmp_path)
    result = run_lab("check", "--provider", "docker", cwd=tmp_path / "race-conditions")
    assert result.exit_code == 2
    assert "No Docker engine answers" in result.output
    assert "--provider local" in result.output


def test_external_provider_without_urls_says_what_to_set(run_lab, tmp_path: Path, monkeypatch):
    monkeypatch.delenv("LAB_DATABASE_URL", raising=False)
    run_lab("start", "race-conditions", cwd=tmp_path)
    monkeypatch.setenv("LAB_PROVIDER", "external")
    result = run_lab("check", cwd=tmp_path / "race-conditions")
    assert result.exit_code == 2
    assert "The external provider needs LAB_DATABASE_URL and LAB_REDIS_URL." in result.output
