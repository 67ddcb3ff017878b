"""The orders ledger: pages as the database has them, without building the whole table in a replica's memory."""

from __future__ import annotations

import math

from grader.checkkit import Failure, Sampler, check

PAGE = 50
GROWTH_ALLOWED_MB = 60
REQUESTS_PER_REPLICA = 2


@check("orders-page")
def test_orders_page(client, boxoffice, pages, expect, rng):
    """The ledger answers pages of 50, newest first, as the database has them"""
    total = boxoffice.order_count()
    last = math.ceil(total / PAGE)
    for number in (1, rng.randint(2, 200), last):
        reply = client.get(f"/api/orders/?page={number}")
        expect.status(reply, 200, f"for page {number} of the ledger", help=pages.CONTRACT)
        body = expect.fields(reply, ("count", "next", "previous", "results"), help=pages.CONTRACT)
        rows = boxoffice.orders((number - 1) * PAGE, PAGE)
        if body["count"] != total or not isinstance(body["results"], list) or len(body["results"]) != len(rows):
            raise Failure(f"GET /api/orders/?page={number} says count = {body['count']!r} with "
                          f"{len(body['results']) if isinstance(body['results'], list) else 'no list of'} orders; "
                          f"the database holds {total:,} orders and this page {len(rows)}", help=pages.CONTRACT)
        for position, (item, row) in enumerate(zip(body["results"], rows, strict=True)):
            pages.item(item, row, f"order {position + 1} of page {number}", pages.ORDER_FIELDS)
        if (body["next"] is None) != (number == last) or (body["previous"] is None) != (number == 1):
            raise Failure(f"page {number} of {last} says next = {body['next']!r}, previous = {body['previous']!r}",
                          help=pages.CONTRACT)
    expect.status(client.get(f"/api/orders/?page={last + 5}"), 404, "for a page past the last", help=pages.CONTRACT)


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
