"""The cache is optional: with Redis stopped every endpoint still answers, right and in time, and once Redis is back
the service uses it again, without a restart.

Each endpoint is timed with Redis up (the usual time: the fastest of a few requests), then Redis is stopped (its
address refuses connections, as a stopped server's does) and every endpoint is asked through every replica, a
product is changed and read again; each answer must be a 200 with the database's data within 2 s more than usual
(the bestsellers: and the time PostgreSQL takes for their aggregate, measured by the check just before).
Redis then starts again, empty, on the same address, and the same requests must write keys to it again.
"""

from __future__ import annotations

import time

from grader.checkkit import Failure, check

EXTRA_SECONDS = 2.0  # the brief: with Redis stopped, each request within 2 s more than usual
USUAL_TRIES = 3
BACK_WITHIN = 10.0  # seconds after Redis is back for the service to write to it again
BACK_ROUNDS = 20  # rounds of requests (every endpoint, every replica) at most, while waiting for that
HELP = ("The brief: Redis is an optimisation. With it stopped the API still answers 200 with the right data (slower), "
        "each request within 2 s more than usual, and it uses the cache again once Redis is back, without a "
        "restart. Every cache call can fail: catch the cache's errors and answer from PostgreSQL; and redis-py waits "
        "as long as the operating system lets it unless told otherwise (socket_connect_timeout, socket_timeout in "
        "CACHES OPTIONS).")
BACK_HELP = ("The brief: once Redis is back, the service uses its cache again, without a restart. A client that "
             "gave up on Redis for good, or a cache kept somewhere else (each process's memory), never writes to it.")


@check("cache-optional")
def test_cache_optional(replicas, shop, roles, pages, services, redis_server, bestsellers_check, token,
                        figures, rng):
    """With Redis stopped every endpoint still answers 200 with the right data in time; the cache is used once back"""
    slug = roles["outage"]["slug"]
    product = rng.choice(shop.products_in(slug))
    customer = shop.customers(rng, 1, at_least=pages.PAGE + 1)[0]
    signed = token(customer["token"])
    top = shop.bestsellers()
    dashboard = shop.dashboard(customer)

    def judge(name: str, reply) -> str | None:
        """What is wrong with an answer of one endpoint now (None when it is right)."""
        if reply.status != 200:
            return f"answered {reply.status or reply.error}"
        if name == "product":
            wrong = pages.mismatch(reply.body, shop.product(product["id"]), pages.PRODUCT_FIELDS)
        elif name == "category page":
            try:
                pages.category_page(reply, shop, slug, 1, "price")
            except Failure as failure:
                return failure.rationale
            return None
        elif name == "bestsellers":
            return bestsellers_check(reply.body, top)
        elif name == "dashboard":
            wrong = pages.mismatch(reply.body, dashboard, pages.DASHBOARD_FIELDS)
        else:
            body = reply.body if isinstance(reply.body, dict) else {}
            ids = [item.get("id") for item in body.get("results") or [] if isinstance(item, dict)]
            expected = [row["id"] for row in shop.orders(customer["id"], 1)]
            return None if ids == expected and body.get("count") == shop.order_count(customer["id"]) else \
                f"lists orders {ids[:5]}, the database {expected[:5]} (count {shop.order_count(customer['id'])})"
        return None if wrong is None else f"says {wrong[0]} = {str(wrong[1])[:80]}, the database {str(wrong[2])[:80]}"

    endpoints = [("product", f"/api/products/{product['id']}/", None),
                 ("category page", f"/api/categories/{slug}/products/?sort=price", None),
                 ("bestsellers", "/api/bestsellers/", None),
                 ("dashboard", "/api/me/dashboard/", signed),
                 ("orders", "/api/me/orders/", signed)]

    def ask_all(when: str) -> list[str]:
        """Every endpoint through every replica: the problems found, each in a line."""
        problems = []
        for name, path, headers in endpoints:
            for number, replica in enumerate(replicas, 1):
                reply = replica.get(path, headers=headers)
                wrong = judge(name, reply)
                if wrong:
                    problems.append(f"{when}, GET {path} through replica {number} {wrong}")
                elif reply.elapsed > usual[name] + EXTRA_SECONDS + work.get(name, 0.0):
                    problems.append(f"{when}, GET {path} through replica {number} took {reply.elapsed:.2f} s; with "
                                    f"Redis up it takes {usual[name]:.2f} s, and it may take {EXTRA_SECONDS:g} s more"
                                    + (f" (and the {work[name]:.2f} s PostgreSQL takes for it)" if name in work else ""))
                slowest[name] = max(slowest.get(name, 0.0), reply.elapsed)
        return problems

    usual: dict[str, float] = {}
    problems: list[str] = []
    for name, path, headers in endpoints:
        times = []
        for _ in range(USUAL_TRIES):
            reply = replicas[0].get(path, headers=headers)
            wrong = judge(name, reply)
            if wrong and reply.status != 200:
                raise Failure(f"with Redis up, GET {path} {wrong}", evidence={"reply": reply.describe()[:300]},
                              help=pages.CONTRACT)
            if wrong:
                problems.append(f"with Redis up, GET {path} {wrong}")
            times.append(reply.elapsed)
        usual[name] = min(times)
    keys_before = redis_server.key_count()
    slowest: dict[str, float] = {}
    # Without a cache the bestsellers are computed for each request: the aggregate's own time is allowed on top.
    began = time.perf_counter()
    shop.bestsellers()
    work = {"bestsellers": time.perf_counter() - began}

    before_outage = len(problems)
    with services.stopped("redis"):
        problems += ask_all("with Redis stopped")
        sent = {"stock": (product["stock"] + 17) % 500, "price": product["price"] + 300}
        reply = replicas[0].request("PATCH", f"/api/products/{product['id']}/", json=sent)
        if reply.status != 200:
            problems.append(f"with Redis stopped, PATCH /api/products/{product['id']}/ {sent} answered "
                            f"{reply.status or reply.error}, expected 200")
        elif reply.elapsed > 1.0 + EXTRA_SECONDS:
            problems.append(f"with Redis stopped, PATCH /api/products/{product['id']}/ took {reply.elapsed:.2f} s")
        problems += ask_all("with Redis stopped, after a PATCH")
        outage_problems = len(problems) - before_outage

    # Redis is back, empty: the same requests must find it again and write to it.
    back_at = time.monotonic()
    keys_after, rounds = 0, 0
    while rounds < BACK_ROUNDS and time.monotonic() < back_at + BACK_WITHIN:
        rounds += 1
        problems += ask_all("once Redis was back")
        keys_after = redis_server.key_count()
        if keys_after:
            break
        time.sleep(0.25)
    figures["slowest answer with Redis stopped, s"] = round(max(slowest.values()), 2) if slowest else None
    figures["Redis keys once it was back"] = keys_after

    # Errors first (a 500, no answer, too slow), then a cache that never was in Redis, then wrong data.
    errors = [problem for problem in problems if " answered " in problem or " took " in problem]
    evidence = {"problems": (errors + [problem for problem in problems if problem not in errors])[:8],
                "usual time, s": {name: round(value, 3) for name, value in usual.items()},
                "the aggregate in PostgreSQL, s": round(work["bestsellers"], 3),
                "keys before the outage": keys_before, "keys once back": keys_after}
    if errors:
        raise Failure(f"{errors[0]} ({len(problems)} problem(s), {outage_problems} while Redis was stopped)",
                      evidence=evidence, help=HELP)
    if not keys_before and not keys_after:
        raise Failure(f"the service keeps nothing in Redis: none of its keys before Redis was stopped, none "
                      f"{time.monotonic() - back_at:.0f} s after it was back"
                      + (f"; and {problems[0]}" if problems else ""), evidence=evidence, help=BACK_HELP)
    if problems:
        raise Failure(f"{problems[0]} ({len(problems)} problem(s), {outage_problems} while Redis was stopped)",
                      evidence=evidence, help=HELP)
    if not keys_after:
        seconds = time.monotonic() - back_at
        raise Failure(f"once Redis was back, {rounds} rounds of requests to every endpoint through both replicas "
                      f"({seconds:.0f} s) wrote no key to it (before it stopped it held {keys_before} keys): the "
                      f"service stopped using its cache", evidence=evidence, help=BACK_HELP)
