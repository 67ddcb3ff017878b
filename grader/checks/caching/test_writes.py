"""A write seen at once: after a PATCH answers, every worker of every replica serves the product as it is now.

Before each PATCH, every page that lists the product (its own page, the category pages by name and by price that
hold it before and after the change, one of them with a tracking parameter) is read through kept-alive
connections to every replica, so that each worker that answers them has had the chance to keep a copy. Right
after the PATCH answers, the same pages are read again through the connection that sent it first, then through
the others and through new connections, and compared with PostgreSQL.
"""

from __future__ import annotations

from grader.checkkit import Failure, check

SESSIONS_PER_REPLICA = 6  # kept-alive connections per replica: a worker each, with three workers, most likely
NEW_CONNECTIONS = 3  # reads per replica and page on a new connection each, after the PATCH
HELP = ("The brief: once a PATCH has answered, every worker of every replica answers the product's new values, on "
        "its page and on its category's pages, whatever they cached. A copy kept in one process's memory is out of "
        "reach of a write served by another; and a copy in a shared cache stays wrong until it is removed, "
        "replaced, or no longer looked up (a new version in its key).")


def _changes(product: dict, shop, slug: str) -> list[dict]:
    """Three PATCHes that move the product: to the top of the price order, only its stock, to the top of the name
    order and the end of the price order."""
    cheapest = min(row["price"] for row in shop.products_in(slug))
    dearest = max(row["price"] for row in shop.products_in(slug))
    return [{"price": max(1, cheapest - 50), "stock": (product["stock"] + 11) % 500},
            {"stock": (product["stock"] + 23) % 500},
            {"name": f"Abacus {product['name']}"[:120], "price": dearest + 1000}]


def _urls(shop, slug: str, product_id: int) -> set[tuple[str, int, str]]:
    """Every category page (path, page, sort) that lists the product now, and the first page of each order."""
    base = f"/api/categories/{slug}/products/"
    by_name, by_price = shop.page_of(slug, product_id, "name"), shop.page_of(slug, product_id, "price")
    last = -(-shop.count(slug) // 50)
    return {(f"{base}?page={by_name}", by_name, "name"), (f"{base}?sort=name&page=1", 1, "name"),
            (f"{base}?page={by_price}&sort=price", by_price, "price"), (f"{base}?sort=price", 1, "price"),
            (f"{base}?page={last}&sort=price&utm_source=newsletter", last, "price")}


@check("read-your-writes")
def test_read_your_writes(replicas, shop, roles, pages, expect, cached, rng):
    """Right after a PATCH answers, every worker of both replicas shows the new values on every page that lists it"""
    slug = roles["writes"]["slug"]
    famous = {row["id"] for row in shop.bestsellers()}
    candidates = [row for row in shop.products_in(slug) if row["id"] not in famous]
    sessions = [(number, replica.session()) for number, replica in enumerate(replicas, 1)
                for _ in range(SESSIONS_PER_REPLICA)]
    try:
        for round_number, product in enumerate(rng.sample(candidates, 3), start=1):
            sent = _changes(product, shop, slug)[round_number - 1]
            path = f"/api/products/{product['id']}/"
            urls = _urls(shop, slug, product["id"])
            for _, session in sessions:
                expect.status(session.get(path), 200, "for a product of the catalogue", help=pages.CONTRACT)
                for url, _, _ in sorted(urls):
                    expect.status(session.get(url), 200, "for a category page", help=pages.CONTRACT)
            writer = sessions[(round_number - 1) * SESSIONS_PER_REPLICA % len(sessions)]
            before = shop.product(product["id"])
            reply = writer[1].request("PATCH", path, json=sent)
            expect.status(reply, 200, f"to change {', '.join(sent)}", sent=sent, help=pages.CONTRACT)
            after = shop.product(product["id"])
            if any(after[name] != value for name, value in sent.items()):
                raise Failure(f"PATCH {path} {sent} answered 200, but the database holds {pages.shown(after)}",
                              evidence={"sent": sent, "database": pages.shown(after)}, help=pages.CONTRACT)
            pages.item(reply.body, after, f"the answer to PATCH {path} {sent}", pages.PRODUCT_FIELDS,
                       help="The answer to a PATCH is the product as it is now, in the shape of GET " + path + ".")
            urls |= _urls(shop, slug, product["id"])  # the pages that list it now, too
            total = shop.count(slug)
            now = {url: (total, shop.page(slug, number, sort)) for url, number, sort in urls}

            # Readers in order: the connection that wrote, the others, new connections; every stale answer is kept.
            readers = [(f"replica {writer[0]}, on the connection that sent the PATCH", writer[1])]
            readers += [(f"replica {number}, on another kept-alive connection", session)
                        for number, session in sessions if session is not writer[1]]
            readers += [(f"replica {number}, on a new connection", replica)
                        for number, replica in enumerate(replicas, 1) for _ in range(NEW_CONNECTIONS)]
            stale = []
            for who, reader in readers:
                answer = reader.get(path)
                wrong = pages.mismatch(answer.body, after, pages.PRODUCT_FIELDS) if answer.status == 200 else \
                    ("status", answer.status or answer.error, 200)
                if wrong:
                    stale.append((who, answer, wrong))
                for url, number, sort in sorted(urls):
                    answer = reader.get(url)
                    try:
                        pages.category_page(answer, shop, slug, number, sort, expected=now[url])
                    except Failure as failure:
                        stale.append((who, answer, failure.rationale))
            if stale:
                who, answer, wrong = stale[0]
                if isinstance(wrong, tuple):
                    said = (f"GET {answer.path} still says {wrong[0]} = {wrong[1]!r}; the database says "
                            f"{wrong[2]!r}")
                else:
                    said = wrong
                groups: dict[str, int] = {}
                for reader_who, _, _ in stale:
                    groups[reader_who] = groups.get(reader_who, 0) + 1
                writer_saw = not any(reader_who.endswith("sent the PATCH") for reader_who in groups)
                raise Failure(
                    f"right after PATCH {path} {sent} answered 200, {said} (through {who}; {len(stale)} stale "
                    f"answers of {len(readers) * (len(urls) + 1)}"
                    + ("; the connection that wrote saw the change, others did not" if writer_saw else "") + ")",
                    evidence={"sent": sent, "before": pages.shown(before), "database now": pages.shown(after),
                              "stale answers by reader": groups,
                              "first stale answers": [f"{reader_who}: {condensed_answer(reply_)}"
                                                      for reader_who, reply_, _ in stale[:4]],
                              **cached.about(product["id"], slug)}, help=HELP)
    finally:
        for _, session in sessions:
            session.close()


def condensed_answer(reply) -> str:
    """A reply in a line, for evidence."""
    return reply.describe()[:300]
