"""Private pages stay private: a customer's dashboard and orders are theirs on every worker, cached or not.

Customers take turns on one kept-alive connection (one worker, where a per-process cache would hand the first one's
copy to the next), then on new connections to every replica (where a shared cache would), each asking for the same
URLs, with the same query strings. A request without a token, or with a token no customer has, comes right after
a customer's, on the same connection: it is a 401, never the copy just cached.
"""

from __future__ import annotations

from grader.checkkit import Failure, check

CUSTOMERS = 3
HELP = ("The brief: /api/me/ pages are per customer only. A key that is the same for two customers (\"dashboard\", or "
        "the query string alone) hands the first one's copy to the next. Which part of the request says whose page it "
        "is, and is it in every private key?")
AUTH_HELP = ("The brief: without a token, or with one no customer has, /api/me/ answers 401, whatever was cached. Is "
             "the token checked before the cache is read?")


@check("private-per-user")
def test_private_per_user(replicas, shop, pages, expect, rng, token, cached):
    """A customer's dashboard and orders are never another customer's, on any worker, even cached"""
    customers = shop.customers(rng, CUSTOMERS, at_least=pages.PAGE + 1)
    dashboards = {customer["id"]: shop.dashboard(customer) for customer in customers}
    threshold = min(shop.median_total(customer["id"]) for customer in customers)
    queries = ["", "?page=2", f"?min_total={threshold}", f"?page=1&min_total={threshold}"]
    served = 0

    def judge(reply, customer, path: str, where: str) -> None:
        nonlocal served
        served += 1
        doing = f"for {customer['username']} {where}"
        expect.status(reply, 200, doing, help=pages.CONTRACT)
        if path == "/api/me/dashboard/":
            body = expect.fields(reply, pages.DASHBOARD_FIELDS, help=pages.CONTRACT)
            expected = dashboards[customer["id"]]
            if body["customer"] != customer["username"]:
                owner = next((other for other in customers if other["username"] == body["customer"]), None)
                raise Failure(f"GET {path} signed in as {customer['username']} {where} answered the dashboard of "
                              f"{body['customer']!r}" + (", who asked for theirs just before" if owner else ""),
                              evidence={"signed in as": customer["username"], "answered for": body["customer"],
                                        "requests so far": served, **cached.about("dashboard", customer["id"])},
                              help=HELP)
            wrong = pages.mismatch(body, expected, pages.DASHBOARD_FIELDS)
            if wrong:
                raise Failure(f"GET {path} signed in as {customer['username']} {where} says {wrong[0]} = "
                              f"{str(wrong[1])[:120]}; the database says {str(wrong[2])[:120]}",
                              evidence={"field": wrong[0], "yours": wrong[1], "database": wrong[2]}, help=HELP)
            return
        page = expect.fields(reply, pages.PAGE_FIELDS, help=pages.CONTRACT)
        query = dict(part.split("=") for part in path.split("?", 1)[1].split("&")) if "?" in path else {}
        number, min_total = int(query.get("page", 1)), int(query["min_total"]) if "min_total" in query else None
        rows = shop.orders(customer["id"], number, min_total)
        ids = [item.get("id") if isinstance(item, dict) else None for item in page["results"]] \
            if isinstance(page["results"], list) else []
        if ids != [row["id"] for row in rows]:
            owners = shop.db.query("SELECT DISTINCT o.customer_id, c.username FROM shop_order o JOIN shop_customer c "
                                   "ON c.id = o.customer_id WHERE o.id = ANY(%s)",
                                   ([value for value in ids if isinstance(value, int)],))
            others = [row["username"] for row in owners if row["customer_id"] != customer["id"]]
            what = f"orders of {', '.join(others)}" if others else f"orders {ids[:5]}"
            raise Failure(f"GET {path} signed in as {customer['username']} {where} answered {what}; their own page "
                          f"{number} starts with orders {[row['id'] for row in rows[:5]]}",
                          evidence={"signed in as": customer["username"], "order ids answered": ids[:10],
                                    "their orders on this page": [row["id"] for row in rows[:10]],
                                    "orders belong to": [row["username"] for row in owners],
                                    **cached.about("orders", customer["id"])}, help=HELP)
        count = shop.order_count(customer["id"], min_total)
        if page["count"] != count:
            raise Failure(f"GET {path} signed in as {customer['username']} {where} says count = {page['count']!r}; "
                          f"they have {count} such orders", help=HELP)
        for position, (item, row) in enumerate(zip(page["results"], rows, strict=True), start=1):
            pages.item(item, row, f"order {position} of GET {path} for {customer['username']}", pages.ORDER_FIELDS,
                       help=HELP)

    paths = ["/api/me/dashboard/"] + [f"/api/me/orders/{query}" for query in queries]
    session = replicas[0].session()
    try:
        # One worker: each customer in turn asks for every page, on the same connection.
        for path in paths:
            for customer in customers:
                judge(session.get(path, headers=token(customer["token"])), customer, path,
                      "(replica 1, one kept-alive connection, right after another customer asked for the same URL)")
            for headers, who in ((None, "without a token"), (token(shop.unknown_token()), "with an unknown token")):
                reply = session.get(path, headers=headers)
                if reply.status != 401:
                    answered = reply.body.get("customer") if isinstance(reply.body, dict) else None
                    raise Failure(f"GET {path} {who}, right after a customer's request on the same connection, "
                                  f"answered {reply.status or reply.error}"
                                  + (f" with the dashboard of {answered!r}" if answered else "") + ", expected 401",
                                  evidence={"reply": reply.describe()[:300]}, help=AUTH_HELP)
        # Every replica, new connections: whoever asked last, anywhere, the answer is the asker's own.
        for turn in range(2):
            for path in paths:
                for index, customer in enumerate(customers):
                    number = (index + turn) % len(replicas)
                    judge(replicas[number].get(path, headers=token(customer["token"])), customer, path,
                          f"(replica {number + 1}, a new connection)")
    finally:
        session.close()
