"""One cache for the whole service: every worker of both replicas serves the same cached bestsellers.

The bestsellers say when they were computed (generated_at), so they show whose copy a worker serves. The check
leaves them alone for longer than their max-age, so that every copy has expired, then asks one connection until it
gets a list computed after the pause (the copy that is now cached) and, a moment later, while that copy is still
well within its max-age, asks every replica at once on many connections. A shared cache answers them all with
that copy (only a rare early refresh, far from the max-age, makes another); a cache per process recomputes in
each process, or serves what that process kept, so the answers name other moments.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

from grader.checkkit import Failure, Inconclusive, check

ROUNDS = 2
CONNECTIONS_PER_REPLICA = 6
SETTLE = 0.5  # seconds after the fresh copy is seen; it is then still far from its max-age
SAME_COPY = 0.001  # seconds: the same stored copy says the same generated_at (only the watcher asked for it)
OTHER_COPIES_ALLOWED = 2  # answers of another copy in one burst: a probabilistic early refresh may make one
HELP = ("The brief: every worker of both replicas serves from one cache. A LocMemCache is one per process: with two "
        "replicas of three workers, six copies of the bestsellers, each computed and expired on its own. Which "
        "cache do all the processes reach?")


def _burst(replicas, count: int) -> list[tuple[int, object, float]]:
    """GET /api/bestsellers/ on `count` new connections to each replica, all released together."""
    sessions = [(number, replica.session()) for number, replica in enumerate(replicas, 1) for _ in range(count)]
    barrier = threading.Barrier(len(sessions))
    answers: list = [None] * len(sessions)

    def ask(index: int, number: int, session) -> None:
        try:
            barrier.wait(timeout=10)
        except threading.BrokenBarrierError:
            return
        answers[index] = (number, session.get("/api/bestsellers/"), time.time())

    threads = [threading.Thread(target=ask, args=(index, number, session), daemon=True)
               for index, (number, session) in enumerate(sessions)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        for _, session in sessions:
            session.close()
    return [answer for answer in answers if answer is not None]


def _when(value) -> str:
    return value.astimezone(timezone.utc).strftime("%H:%M:%S.%f")[:-3] if value else "?"


@check("replicas-agree")
def test_replicas_agree(replicas, shop, pages, bestsellers_check, max_age, figures, cached):
    """Both replicas and all their workers serve the same cached bestsellers: one cache, not one per process"""
    if max_age > 10:
        raise Inconclusive(f"BESTSELLERS_MAX_AGE_SECONDS is {max_age:g} s here: too long to wait for every copy to "
                           "expire (lab.toml's [app.overrides] sets a few seconds)")
    expected = shop.bestsellers()
    watcher = replicas[0].session()
    spreads = []
    try:
        for round_number in range(1, ROUNDS + 1):
            time.sleep(max_age + 0.5)  # every copy, in every process, is older than its max-age now
            paused = datetime.now(timezone.utc)
            deadline = time.monotonic() + 2 * max_age + 5
            fresh = None
            while fresh is None and time.monotonic() < deadline:
                reply = watcher.get("/api/bestsellers/")
                generated = pages.moment(reply.body.get("generated_at")) if isinstance(reply.body, dict) else None
                if reply.status == 200 and generated is not None and generated >= paused - timedelta(seconds=0.1):
                    fresh = (generated, time.time())
                else:
                    time.sleep(0.1)
            if fresh is None:
                # Never computed again (no-stampede judges their age): the copy replica 1 serves is the one to share.
                generated = pages.moment(reply.body.get("generated_at")) if isinstance(reply.body, dict) else None
                if reply.status != 200 or generated is None:
                    raise Failure(f"GET /api/bestsellers/ through replica 1 answered {reply.describe()[:200]}",
                                  help=pages.CONTRACT)
                fresh = (generated, time.time())
            time.sleep(max(0.0, fresh[1] + SETTLE - time.time()))
            answers = _burst(replicas, CONNECTIONS_PER_REPLICA)
            copies: dict[str, list[str]] = {}
            other = []
            for number, reply, _ in answers:
                if reply.status != 200:
                    raise Failure(f"GET /api/bestsellers/ through replica {number} answered "
                                  f"{reply.status or reply.error}, expected 200",
                                  evidence={"reply": reply.describe()}, help=pages.CONTRACT)
                wrong = bestsellers_check(reply.body, expected)
                if wrong:
                    raise Failure(f"GET /api/bestsellers/ through replica {number} is not the database's top 20: "
                                  f"{wrong}", help=pages.CONTRACT)
                generated = pages.moment(reply.body.get("generated_at"))
                copies.setdefault(_when(generated), []).append(f"replica {number}")
                if generated is None or abs((generated - fresh[0]).total_seconds()) > SAME_COPY:
                    other.append((number, generated))
            spreads.append(len(other))
            figures["answers of another copy, most in a round"] = max(spreads)
            if len(other) > OTHER_COPIES_ALLOWED:
                by_replica = {number: sum(1 for mine, _ in other if mine == number) for number in range(1, len(replicas) + 1)}
                number, generated = other[0]
                offset = (generated - fresh[0]).total_seconds() if generated else None
                raise Failure(
                    f"replica 1 served bestsellers computed at {_when(fresh[0])} (after a pause); "
                    f"{SETTLE:g} s later, {len(other)} of {len(answers)} requests to both replicas at once got other "
                    f"copies, e.g. replica {number}'s computed at {_when(generated)}"
                    + (f" ({offset:+.2f} s)" if offset is not None else "")
                    + f": the processes keep copies of their own (round {round_number})",
                    evidence={"copies (generated_at: who served it)": copies,
                              "other copies by replica": by_replica, "max-age, s": max_age,
                              **cached.about("bestsellers")}, help=HELP)
    finally:
        watcher.close()
