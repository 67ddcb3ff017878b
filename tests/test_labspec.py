"""lab.toml parsing: every lab loads, and every broken field names the file and the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from grader.labspec import LabSpecError, lab_slugs, load_lab
from grader.resources import resources

RACE = resources().lab_dir("race-conditions") / "lab.toml"


def test_every_lab_loads():
    slugs = lab_slugs(resources().labs)
    assert "race-conditions" in slugs
    for slug in slugs:
        lab = load_lab(resources().lab_dir(slug) / "lab.toml")
        assert lab.slug == slug
        assert lab.starter_fails <= set(lab.check_ids)


def test_race_conditions_spec_is_typed():
    lab = load_lab(RACE)
    assert lab.server.workers >= 2 and lab.server.threads >= 2, "a single-threaded server never shows a race"
    assert lab.services == ("postgres", "redis")
    assert lab.settings_module == "shop.settings"
    assert lab.check("idempotent-concurrent").depends_on == ("idempotent-replay",)
    assert lab.max_score == sum(check.weight for check in lab.checks)
    assert lab.bench.solution_seconds == 10
    assert lab.parallel == 1 and lab.check("order-validation").alone and not lab.check("no-oversell").alone


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    folder = tmp_path / "race-conditions"
    folder.mkdir()
    text = RACE.read_text()
    assert old in text, old
    (folder / "lab.toml").write_text(text.replace(old, new, 1))
    return folder / "lab.toml"


@pytest.mark.parametrize(("old", "new", "key", "problem"), [
    ('title = "Flash sale: race conditions"\n', "", "title", "is missing"),
    ('difficulty = "intermediate"', 'difficulty = "hard"', "difficulty",
     "must be one of beginner, intermediate, advanced; got 'hard'"),
    ("estimated_minutes = 90", "estimated_minutes = \"ninety\"", "estimated_minutes",
     "must be an integer >= 1, got 'ninety'"),
    ('services = ["postgres", "redis"]', 'services = ["postgres", "mysql"]', "services",
     "must only name postgres, redis; got 'mysql'"),
    ('starter_fails = ["no-oversell",', 'starter_fails = ["no-overselling",', "starter_fails",
     "names 'no-overselling', which is not a check id of this lab"),
    ("format_version = 1", "format_version = 2", "format_version", "must be 1 (this kit reads format 1)"),
    ('slug = "race-conditions"', 'slug = "Race_Conditions"', "slug",
     "must be lowercase words joined by hyphens (like 'race-conditions'), got 'Race_Conditions'"),
    ("workers = 2", "workers = 0", "server.workers", "must be an integer >= 1, got 0"),
    ('depends_on = ["single-order"]', 'depends_on = ["no-oversell"]', "checks.idempotent-replay.depends_on",
     "names 'no-oversell', which must be a check declared above 'idempotent-replay'"),
    ("weight = 3", "weight = -1", "checks.no-oversell.weight", "must be an integer >= 0, got -1"),
    ("solution_seconds = 10", "solution_seconds = 1.5", "bench.solution_seconds",
     "must be an integer >= 0, got 1.5"),
    ("[limits]", "colour = \"blue\"\n[limits]", "server.colour",
     "is not a known key; expected one of cpus, memory_mb, project_config, replicas, threads, workers"),
    ("[limits]", "[load]\nusers = 0\nseconds = 10\n\n[limits]", "load.users", "must be an integer >= 1, got 0"),
    ("[limits]", "[load]\nusers = 5\n\n[limits]", "load.seconds", "is missing"),
    ("[limits]", "[load]\nusers = 5\nseconds = 10\nmax_p50_ratio = 0.5\n\n[limits]", "load.max_p50_ratio",
     "must be a number >= 1.0, got 0.5"),
    ("[limits]", "[data]\nafter_migration = \"0001_initial\"\n\n[limits]", "data.after_migration",
     "must be APP.MIGRATION (like 'catalog.0001_initial'), got '0001_initial'"),
    ("[limits]", "[data]\nmodule = \"dataset.py\"\n\n[limits]", "data.after_migration", "is missing"),
    ("solution_seconds = 10", "solution_seconds = 10\nload_speedup = -2", "bench.load_speedup",
     "must be a number >= 0.0, got -2"),
    ("parallel = 1", "parallel = 0", "grading.parallel", "must be an integer >= 1, got 0"),
    ("parallel = 1", "parallel = 1\nlanes = 3", "grading.lanes", "is not a known key; expected one of parallel"),
    ("weight = 3", "weight = 3\nalone = \"yes\"", "checks.no-oversell.alone", "must be true or false, got 'yes'"),
    ("weight = 3", "weight = 3\nlocks = \"stock\"", "checks.no-oversell.locks",
     "must be a list of non-empty strings, got 'stock'"),
    ('settings = "shop.settings"', 'settings = "shop.settings"\n[app.overrides]\ntoken_ttl = 3', "app.overrides.token_ttl",
     "must be a Django setting's name in capitals (like TOKEN_TTL_SECONDS)"),
    ('settings = "shop.settings"', 'settings = "shop.settings"\n[app.overrides]\nDATABASES = "x"',
     "app.overrides.DATABASES", "is set by the grader for every run and cannot be overridden"),
    ('settings = "shop.settings"', 'settings = "shop.settings"\n[app.overrides]\nX = {a = 1}', "app.overrides.X",
     "must be a string, number, boolean or a list of them, got {'a': 1}"),
])
def test_broken_field_names_file_and_key(tmp_path: Path, old: str, new: str, key: str, problem: str):
    path = _broken(tmp_path, old, new)
    with pytest.raises(LabSpecError) as caught:
        load_lab(path)
    assert str(caught.value.what) == f"{path}: `{key}` {problem}"


def test_invalid_toml_is_reported_with_its_position(tmp_path: Path):
    path = _broken(tmp_path, "format_version = 1", "format_version = = 1")
    with pytest.raises(LabSpecError, match=re.escape(f"{path}: `(file)` is not valid TOML")):
        load_lab(path)


def test_duplicate_check_id(tmp_path: Path):
    path = _broken(tmp_path, 'id = "order-validation"', 'id = "product-detail"')
    with pytest.raises(LabSpecError) as caught:
        load_lab(path)
    assert caught.value.key == "checks.product-detail.id"
    assert caught.value.problem == "is declared twice; check ids must be unique"


def test_a_load_profile_is_typed_with_default_thresholds(tmp_path: Path):
    lab = load_lab(_broken(tmp_path, "[limits]", "[load]\nusers = 20\nseconds = 15\nmin_rps_ratio = 0.5\n\n[limits]"))

    assert lab.load is not None
    assert (lab.load.users, lab.load.seconds, lab.load.spawn_rate, lab.load.locustfile) == (20, 15, 10.0,
                                                                                           "locustfile.py")
    assert lab.load.thresholds.min_rps_ratio == 0.5 and lab.load.thresholds.max_p50_ratio == 3.0
    assert load_lab(RACE).load is None, "a lab without [load] has no load checks"


def test_slow_queries_declares_its_data_and_its_load():
    lab = load_lab(resources().lab_dir("slow-queries") / "lab.toml")

    assert lab.data is not None and lab.data.after == "catalog.0001_initial" and lab.data.module == "dataset.py"
    assert (resources().checks_dir("slow-queries") / lab.data.module).is_file()
    assert lab.load is not None and (resources().checks_dir("slow-queries") / lab.load.locustfile).is_file()
    assert lab.bench.load_speedup == 10 and lab.bench.solution_seconds == 15
    assert load_lab(RACE).data is None


def test_app_overrides_are_set_after_the_learner_s_settings_while_graded_only(tmp_path: Path):
    from grader.app import LearnerApp
    from grader.processes import RunDirectory

    lab = load_lab(resources().lab_dir("insecure-endpoints") / "lab.toml")
    assert dict(lab.app_overrides)["TOKEN_TTL_SECONDS"] == 4
    run = RunDirectory.create()
    try:
        database = {"dbname": "d", "user": "u", "password": "p", "host": "127.0.0.1", "port": 5432}
        graded = LearnerApp(lab, tmp_path, run).render_overlay("graded", database, "redis://127.0.0.1:1/0")
        served = LearnerApp(lab, tmp_path, run, grading=False).render_overlay("served", database, "redis://x")
        graded_text = (graded / "_lab_overlay" / "settings.py").read_text()
        assert "TOKEN_TTL_SECONDS = 4\n" in graded_text
        assert "PASSWORD_HASHERS = ['django.contrib.auth.hashers.MD5PasswordHasher']\n" in graded_text
        assert graded_text.index("TOKEN_TTL_SECONDS") > graded_text.index("import *"), "after the learner's"
        assert "TOKEN_TTL_SECONDS" not in (served / "_lab_overlay" / "settings.py").read_text(), \
            "`lab run` serves the learner's own settings"
    finally:
        run.remove()


def test_an_in_progress_lab_is_out_of_the_catalog_but_graded_by_name(tmp_path: Path):
    from grader import catalog

    active = lab_slugs(resources().labs)
    every = lab_slugs(resources().labs, in_progress=True)
    in_progress = sorted(set(every) - set(active))
    for slug in in_progress:
        assert load_lab(resources().lab_dir(slug) / "lab.toml").status == "in-progress"
        assert catalog.load(slug).slug == slug, "an author names it and gets it"
    assert slug_of_every_listed_lab() == active
    bad = tmp_path / "x" / "lab.toml"
    bad.parent.mkdir()
    bad.write_text((resources().lab_dir("race-conditions") / "lab.toml").read_text()
                   .replace('slug = "race-conditions"', 'slug = "x"\nstatus = "draft"'))
    with pytest.raises(LabSpecError, match="`status` must be one of active, in-progress; got 'draft'"):
        load_lab(bad)


def slug_of_every_listed_lab() -> list[str]:
    from grader import catalog

    return sorted(lab.slug for lab in catalog.load_all())
