"""The orders ledger: pages as the database has them, without building the whole table in a replica's memory."""

from __future__ import annotations

import math

from grader.checkkit import Failure, Sampler, check

PAGE = 50
GROWTH_ALLOWED_MB = 60
REQUESTS_PER_REPLICA = 2
READS_BEFORE, READS_AFTER = 3, 5  # first pages read through each replica, each on a new connection
STALE = ("The ledger is every order there is at the moment of the request: a count or a page kept from an earlier "
         "request (in a worker's memory, or in a cache) is out of date as soon as a buyer checks out. Every worker of "
         "every replica answers; ask PostgreSQL each time (a sliced queryset and .count()).")


def _page(reply, number: int, total: int, rows: list, last: int, expect, pages, where: str = "") -> None:
    """One ledger page against the database: count, links, and every field of every order."""
    expect.status(reply, 200, f"for page {number} of the ledger{where}", help=pages.CONTRACT)
    body = expect.fields(reply, ("count", "next", "previous", "results"), help=pages.CONTRACT)
    if body["count"] != total or not isinstance(body["results"], list) or len(body["results"]) != len(rows):
        raise Failure(f"GET /api/orders/?page={number}{where} says count = {body['count']!r} with "
                      f"{len(body['results']) if isinstance(body['results'], list) else 'no list of'} orders; "
                      f"the database holds {total:,} orders and this page {len(rows)}", help=pages.CONTRACT)
    for position, (item, row) in enumerate(zip(body["results"], rows, strict=True)):
        pages.item(item, row, f"order {position + 1} of page {number}{where}", pages.ORDER_FIELDS)
    if (body["next"] is None) != (number == last) or (body["previous"] is None) != (number == 1):
        raise Failure(f"page {number} of {last}{where} says next = {body['next']!r}, previous = {body['previous']!r}",
                      help=pages.CONTRACT)


def _place_orders(client, boxoffice, expect, pages, rng) -> list[int]:
    """Buy tickets for two events through the API, on one connection; the ids of the orders written."""
    session = client.session()
    try:
        made = session.post("/api/carts/")
        expect.status(made, 201, "to make a cart (to place new orders)", help=pages.CONTRACT)
        cart = expect.fields(made, pages.CART_FIELDS, help=pages.CONTRACT)
        for event in rng.sample(boxoffice.events(), 2):
            sent = {"event": event["id"], "quantity": 1}
            expect.status(session.post(f"/api/carts/{cart['id']}/items/", sent), 200, "adding a ticket to a cart",
                          sent=sent, help=pages.CONTRACT)
        sent = {"email": f"ledger.{rng.randint(1, 10**6)}@example.com"}
        paid = session.post(f"/api/carts/{cart['id']}/checkout/", sent)
        expect.status(paid, 201, "to check a cart out (to place new orders)", sent=sent, help=pages.CONTRACT)
    finally:
        session.close()
    orders = paid.body.get("orders") if isinstance(paid.body, dict) else None
    return [order.get("id") for order in orders or [] if isinstance(order, dict)]


@check("orders-page")
def test_orders_page(client, replicas, boxoffice, pages, expect, rng):
    """The ledger answers pages of 50, newest first, as the database has them, on every replica after new orders"""
    total = boxoffice.order_count()
    last = math.ceil(total / PAGE)
    for number in (1, rng.randint(2, 200), last):
        _page(client.get(f"/api/orders/?page={number}"), number, total, boxoffice.orders((number - 1) * PAGE, PAGE),
              last, expect, pages)
    expect.status(client.get(f"/api/orders/?page={last + 5}"), 404, "for a page past the last", help=pages.CONTRACT)

    # The first page through every worker of every replica, before and after new orders: a count or a page
    # kept from an earlier request (per process, or shared) shows as the ledger of before.
    # One kept-alive connection per replica is answered by one worker before and after: the worker that
    # served the ledger of before must serve the new one.
    sessions = [replica.session() for replica in replicas]
    try:
        for replica_number, (replica, session) in enumerate(zip(replicas, sessions, strict=True), 1):
            _page(session.get("/api/orders/?page=1"), 1, total, boxoffice.orders(0, PAGE), last, expect, pages,
                  f" (through replica {replica_number}, on a kept-alive connection)")
            for _ in range(READS_BEFORE):
                _page(replica.get("/api/orders/?page=1"), 1, total, boxoffice.orders(0, PAGE), last, expect, pages,
                      f" (through replica {replica_number})")
        placed = _place_orders(client, boxoffice, expect, pages, rng)
        total_now = boxoffice.order_count()
        last_now = math.ceil(total_now / PAGE)
        rows = boxoffice.orders(0, PAGE)
        for replica_number, (replica, session) in enumerate(zip(replicas, sessions, strict=True), 1):
            after = f"after {len(placed)} new orders {placed} were placed through the API; before them the ledger " \
                    f"held {total:,}"
            reads = [(session.get("/api/orders/?page=1"),
                      f" (through replica {replica_number}, on the kept-alive connection that read it before, {after})")]
            for attempt in range(1, READS_AFTER + 1):
                reads.append((replica.get("/api/orders/?page=1"),
                              f" (through replica {replica_number}, request {attempt} of {READS_AFTER} on a new "
                              f"connection, {after})"))
            for reply, where in reads:
                try:
                    _page(reply, 1, total_now, rows, last_now, expect, pages, where)
                except Failure as failure:
                    raise Failure(failure.rationale, evidence=failure.evidence,
                                  help=STALE if reply.status == 200 else failure.help) from None
    finally:
        for session in sessions:
            session.close()


@check("orders-memory")
def test_orders_memory(replicas, memory, figures, rng):
    """Serving ledger pages does not grow a replica's memory by more than 60 MB"""
    # Runs before any other check asks for the ledger: Python keeps memory it once needed, so only the
    # first pages a worker serves show what a page costs.
    before = memory()
    with Sampler(lambda: max(now - then for now, then in zip(memory(peak=True), before, strict=True)),
                 every=0.1) as growth:
        for replica in replicas:
            for _ in range(REQUESTS_PER_REPLICA):
                reply = replica.get(f"/api/orders/?page={rng.randint(1, 400)}")
                if reply.status != 200:
                    raise Failure(f"GET /api/orders/ answered {reply.status or reply.error}, expected 200")
    # Once more afterwards: a container's high-water mark holds a peak that fell between two samples.
    peak = max([*growth.samples, max(now - then for now, then in zip(memory(peak=True), before, strict=True))])
    figures["replica memory before, MB"] = round(max(before), 1)
    figures["largest growth while serving ledger pages, MB"] = round(peak, 1)
    if peak > GROWTH_ALLOWED_MB:
        raise Failure(f"serving {REQUESTS_PER_REPLICA * len(replicas)} ledger pages grew a replica's memory by {peak:.0f} MB (at most "
                      f"{GROWTH_ALLOWED_MB} MB may): a page of {PAGE} orders built far more than {PAGE} objects",
                      evidence={"memory before, MB": [round(value, 1) for value in before],
                                "largest growth, MB": round(peak, 1)})
