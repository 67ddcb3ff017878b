"""Bounded keys: URLs that differ only in ignored parameters, or in their order, share one cache entry, and every key
the service writes in Redis expires.

Two looks, one per store: Redis's keys are listed before and after about 300 requests for a few pages spelled with
tracking parameters (utm_source, ref, fbclid, a `_` cache-buster) and their parameters in other orders; and on one
kept-alive connection (one worker, whatever cache it uses), a spelling never asked before must cost PostgreSQL no
more than the page's usual spelling asked just before and just after it: if the usual one comes from a cache, so
does every spelling of it. A service that caches nothing passes both.
"""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from grader.checkkit import Failure, check

NEW_KEYS_ALLOWED = 10
REQUESTS = 300
SENDERS = 4  # requests in flight at once
PROBES = 6  # spellings tried against the usual one on one connection
SEPARATE_ALLOWED = 1  # a cached entry that expired between two looks makes one spelling look separate
HELP = ("The brief: a category page's answer depends on the category, page and sort only; every other parameter is "
        "ignored, and so is their order, so requests that differ only in those share one cache entry. Build the key "
        "from the parameters that change the answer, normalised, never from the raw query string or full path; and "
        "give every key in Redis (locks and version counters too) a timeout of at most CACHE_MAX_TTL_SECONDS.")


def _spellings(base: str, page: int, sort: str, run: str):
    """Endless spellings of one page: tracking parameters, and the page's own parameters in either order."""
    own = [f"page={page}", f"sort={sort}"]
    for number in itertools.count(1):
        junk = [f"utm_source=mail-{run}-{number}", f"ref={run}{number}", f"_={int(time.time() * 1000)}{number}",
                f"fbclid=IwAR{run}{number}", f"utm_campaign=spring&utm_medium=email-{run}-{number}"][number % 5]
        parts = [*own, junk] if number % 3 else [junk, *reversed(own)]
        yield f"{base}?{'&'.join(parts if number % 2 else reversed(parts))}"


def _product_statements(statements) -> int:
    """Statements that read the catalogue for a page (the bestsellers' aggregate, which may be refreshed meanwhile
    by a thread of the app, left out)."""
    return sum(statement.calls for statement in statements.naming("shop_product")
               if statement not in statements.naming("shop_orderline"))


@check("bounded-keys")
def test_bounded_keys(replicas, shop, roles, pages, expect, db, redis_server, figures, rng, max_age):
    """Requests that differ only in ignored parameters or their order share entries; every Redis key expires"""
    slug = roles["content"]["slug"]
    base = f"/api/categories/{slug}/products/"
    last = -(-shop.count(slug) // pages.PAGE)
    product = rng.choice(shop.products_in(slug))
    canonical = [(f"{base}?page=2&sort=price", 2, "price"), (f"{base}?page={last}&sort=name", last, "name")]
    run = f"{rng.randint(0, 99999):05d}"
    for path, _, _ in canonical:
        for replica in replicas:
            for _ in range(2):
                expect.status(replica.get(path), 200, "for a category page", help=pages.CONTRACT)
    for replica in replicas:
        expect.status(replica.get(f"/api/products/{product['id']}/"), 200, "for a product", help=pages.CONTRACT)
        expect.status(replica.get("/api/bestsellers/"), 200, "for the bestsellers", help=pages.CONTRACT)

    # First look: Redis's keys around 300 spellings of the same few answers, and every key seen meanwhile (a lock
    # lives while the bestsellers are recomputed, a fraction of a second, about once per max-age).
    before = {(key.db, key.name) for key in redis_server.keys()}
    spelled = [_spellings(base, number, sort, run) for _, number, sort in canonical]
    expected = {number: [row["id"] for row in shop.page(slug, number, sort)] for _, number, sort in canonical}
    paths = []
    for index in range(REQUESTS):
        kind = index % 10
        if kind < 8:
            which = kind % len(canonical)
            paths.append((next(spelled[which]), canonical[which]))
        elif kind == 8:
            paths.append((f"/api/products/{product['id']}/?utm_source=feed-{run}-{index}", None))
        else:
            paths.append((f"/api/bestsellers/?_={int(time.time() * 1000)}{index}", None))

    # Spread over more than a max-age of the bestsellers, so that a lock or flag their recomputation takes is seen.
    spread = min(max_age, 10) + 1.5
    began = time.monotonic()

    def send(index: int):
        time.sleep(max(0.0, began + spread * index / REQUESTS - time.monotonic()))
        path, page = paths[index]
        return replicas[index % len(replicas)].get(path), page

    seen: dict[tuple[int, str], object] = {}
    stop = threading.Event()

    def look() -> None:
        """Every key now, each kept with the longest life it was seen with (none: never expires)."""
        for key in redis_server.keys():
            kept = seen.get((key.db, key.name))
            if kept is None or not key.expires or (kept.expires and key.ttl > kept.ttl):
                seen[(key.db, key.name)] = key

    def sample() -> None:
        while not stop.is_set():
            try:
                look()
            except Exception:  # noqa: BLE001 - a look that failed is left out; the last one below is not
                pass
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        with ThreadPoolExecutor(max_workers=SENDERS) as pool:
            replies = list(pool.map(send, range(REQUESTS)))
    finally:
        stop.set()
        sampler.join(10)
    for reply, page in replies:
        expect.status(reply, 200, "with a tracking parameter" if page else "with a tracking parameter or cache-buster",
                      help=HELP)
        if page is not None:
            ids = [item.get("id") for item in reply.body.get("results", [])] if isinstance(reply.body, dict) else None
            if ids != expected[page[1]]:
                pages.category_page(reply, shop, slug, page[1], page[2], help=HELP)
    sent = [path for path, _ in paths]
    look()
    keys = list(seen.values())
    new = [key for key in keys if (key.db, key.name) not in before]
    figures["new Redis keys after 300 spellings"] = len(new)
    figures["Redis keys seen"] = len(keys)

    # Second look: on one connection, is a new spelling a cache hit whenever the usual one is?
    session = replicas[0].session()
    separate, probes = [], []
    try:
        path, number, sort = canonical[0]
        session.get(path)
        for spelling in itertools.islice(_spellings(base, number, sort, f"p{run}"), PROBES):
            _, usual_before = db.statements(lambda: session.get(path))
            reply, spelled_statements = db.statements(lambda spelling=spelling: session.get(spelling))
            _, usual_after = db.statements(lambda: session.get(path))
            counts = (_product_statements(usual_before), _product_statements(spelled_statements),
                      _product_statements(usual_after))
            probes.append({"spelling": spelling.replace(base, ""), "statements (usual, this, usual)": counts})
            expect.status(reply, 200, "for a category page with a tracking parameter", help=HELP)
            if counts[0] == 0 and counts[2] == 0 and counts[1] > 0:
                separate.append((spelling, counts[1]))
    finally:
        session.close()
    figures["spellings that missed the usual one's cache entry"] = len(separate)

    unbounded = [key for key in keys if not key.expires]
    too_long = [key for key in keys if key.expires and key.ttl > pages.CACHE_MAX_TTL]
    if len(new) > NEW_KEYS_ALLOWED:
        raise Failure(f"{REQUESTS} requests for {len(canonical)} category pages, a product and the bestsellers, spelled "
                      f"with tracking parameters and in other orders, added {len(new)} keys to Redis (at most "
                      f"{NEW_KEYS_ALLOWED} may be new): a cache entry per spelling of the URL",
                      evidence={"new keys": [key.describe() for key in new[:6]], "requests": sent[:4],
                                "keys in all": len(keys)}, help=HELP)
    if len(separate) > SEPARATE_ALLOWED:
        spelling, count = separate[0]
        raise Failure(f"GET {spelling} ran {count} statement(s) on shop_product, while {path}, asked just before and "
                      f"just after on the same connection, ran none: the page is cached once per spelling of its URL "
                      f"({len(separate)} of {PROBES} spellings tried)",
                      evidence={"probes": probes}, help=HELP)
    if unbounded or too_long:
        shown = (unbounded + too_long)[:6]
        raise Failure(f"{len(unbounded)} key(s) in Redis never expire and {len(too_long)} outlive "
                      f"{pages.CACHE_MAX_TTL} s, e.g. {shown[0].describe()}: every key the service writes must expire "
                      f"within CACHE_MAX_TTL_SECONDS",
                      evidence={"keys": [key.describe() for key in shown], "keys in all": len(keys)}, help=HELP)
