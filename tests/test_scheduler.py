"""The order hidden checks run in when several run at once: dependencies, alone checks and locks (pure logic)."""

from __future__ import annotations

from grader.labspec import CheckSpec
from grader.scheduler import Schedule, closure


def spec(check_id: str, *depends_on: str, alone: bool = False, locks: tuple[str, ...] = ()) -> CheckSpec:
    return CheckSpec(id=check_id, title=check_id, depends_on=depends_on, alone=alone, locks=locks)


def run_to_end(schedule: Schedule, statuses: dict[str, str] | None = None) -> list[set[str]]:
    """Drive a schedule as the runner does, every started check ending together; returns what ran at once."""
    statuses = statuses or {}
    waves = []
    for _ in range(50):
        for skip in schedule.skips():
            schedule.finish(skip.check_id, "skip")
        if schedule.done:
            return waves
        started = schedule.next_for(worker for worker in range(schedule.workers) if worker not in schedule.running)
        assert started, f"stuck with {schedule.pending} pending"
        waves.append({check_id for _, check_id in started})
        for worker, check_id in started:
            schedule.finish(check_id, statuses.get(check_id, "pass"))
            schedule.free(worker)
    raise AssertionError("the schedule never ended")


def test_one_worker_runs_the_checks_in_their_declared_order():
    checks = (spec("a"), spec("b", "a"), spec("c"), spec("d", "c"))
    assert run_to_end(Schedule(checks, workers=1)) == [{"a"}, {"b"}, {"c"}, {"d"}]


def test_two_workers_overlap_checks_whose_dependencies_passed():
    checks = (spec("a"), spec("wait", "a"), spec("b", "a"), spec("c"))
    assert run_to_end(Schedule(checks, workers=2)) == [{"a", "c"}, {"wait", "b"}]


def test_a_failed_dependency_skips_its_dependents_with_the_plugin_s_message():
    checks = (spec("a"), spec("b", "a"), spec("c", "b"), spec("d"))
    schedule = Schedule(checks, workers=2)
    assert {check_id for _, check_id in schedule.next_for([0, 1])} == {"a", "d"}
    schedule.finish("a", "fail")
    skips = schedule.skips()
    assert [(skip.check_id, skip.message) for skip in skips] == [("b", "skipped: needs 'a', which did not pass (fail)")]
    schedule.finish("b", "skip")
    assert [skip.check_id for skip in schedule.skips()] == ["c"]


def test_an_alone_check_waits_for_the_others_and_nothing_starts_beside_it():
    checks = (spec("a"), spec("b"), spec("speed", alone=True), spec("c"), spec("d"))
    schedule = Schedule(checks, workers=2)
    assert [check_id for _, check_id in schedule.next_for([0, 1])] == ["a", "b"]
    schedule.finish("a", "pass")
    schedule.free(0)
    # "speed" must wait for b; c, declared after it, may use the free worker meanwhile.
    assert [check_id for _, check_id in schedule.next_for([0])] == ["c"]
    for worker, check_id in ((1, "b"), (0, "c")):
        schedule.finish(check_id, "pass")
        schedule.free(worker)
    assert schedule.next_for([0, 1]) == [(0, "speed")]
    assert schedule.next_for([1]) == [], "nothing runs beside an alone check"
    schedule.finish("speed", "pass")
    schedule.free(0)
    assert schedule.next_for([0, 1]) == [(0, "d")]


def test_alone_checks_go_to_the_home_worker_so_session_fixtures_are_made_once():
    checks = (spec("load", alone=True), spec("judge", "load", alone=True))
    schedule = Schedule(checks, workers=2)
    assert schedule.next_for([1]) == [], "the home worker is not ready yet"
    assert schedule.next_for([0, 1]) == [(0, "load")]
    schedule.finish("load", "pass")
    schedule.free(0)
    schedule.home = 1  # worker 0 died
    assert schedule.next_for([1]) == [(1, "judge")]


def test_checks_that_share_a_lock_never_overlap():
    checks = (spec("a", locks=("orders",)), spec("b", locks=("orders", "carts")), spec("c", locks=("carts",)),
              spec("d"))
    assert run_to_end(Schedule(checks, workers=3)) == [{"a", "c", "d"}, {"b"}]


def test_a_partial_run_takes_the_named_checks_and_everything_they_depend_on():
    checks = (spec("a"), spec("b", "a"), spec("c", "b"), spec("d"), spec("e", "d"))
    assert closure(checks, ["c"]) == {"a", "b", "c"}
    schedule = Schedule(checks, workers=1, selected=frozenset({"c"}))
    assert schedule.left_out == ["d", "e"]
    assert run_to_end(schedule) == [{"a"}, {"b"}, {"c"}]


def test_a_check_that_lets_go_of_its_lock_while_it_waits_lets_the_others_run_and_gets_it_back_first():
    checks = (spec("ttl", locks=("stores",)), spec("a", locks=("stores",)), spec("b", locks=("stores",)), spec("c"))
    schedule = Schedule(checks, workers=2)
    assert schedule.next_for([0, 1]) == [(0, "ttl"), (1, "c")]
    schedule.finish("c", "pass")
    schedule.free(1)
    assert schedule.next_for([1]) == [], "the lock is held"
    schedule.release(0, ["stores"])
    assert schedule.next_for([1]) == [(1, "a")]
    schedule.take_back(0, ["stores"])
    assert schedule.grants() == [], "a still holds it"
    schedule.finish("a", "pass")
    schedule.free(1)
    assert schedule.next_for([1]) == [], "b waits: the lock goes back to the check that let go of it first"
    assert schedule.grants() == [0]
    assert schedule.next_for([1]) == []
    schedule.finish("ttl", "pass")
    schedule.free(0)
    assert schedule.next_for([0, 1]) == [(0, "b")]


def test_taking_back_a_lock_never_let_go_of_is_granted_at_once():
    schedule = Schedule((spec("a", locks=("x",)), spec("b")), workers=2)
    assert schedule.next_for([0, 1]) == [(0, "a"), (1, "b")]
    schedule.take_back(0, ["x"])
    assert schedule.grants() == [0]
    schedule.release(0, ["not-its-own"])
    assert schedule.released.get(0) == set(), "a check lets go only of the locks it names"


def test_workers_end_once_only_alone_checks_are_left():
    checks = (spec("a"), spec("b"), spec("speed", alone=True), spec("memory", alone=True))
    schedule = Schedule(checks, workers=2)
    assert schedule.retired([0, 1]) == []
    assert schedule.next_for([0, 1]) == [(0, "a"), (1, "b")]
    for worker, check_id in ((0, "a"), (1, "b")):
        schedule.finish(check_id, "pass")
        schedule.free(worker)
    assert schedule.retired([0, 1]) == [1], "only the home worker runs alone checks"
    assert schedule.next_for([0]) == [(0, "speed")]
