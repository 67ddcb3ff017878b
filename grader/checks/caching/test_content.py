"""What the shop answers to one request at a time, on a fresh service: every field as the database says."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from grader.checkkit import Failure, check, condensed

PATCH_HELP = ("The brief: PATCH /api/products/<id>/ takes any of name (1 to 120 characters), price and stock (JSON "
              "integers from 0 to 2147483647); any other value is a 400 and changes nothing; an unknown product is a "
              "404.")
TOKEN_HELP = ("The brief: /api/me/ answers only with `Authorization: Token <token>` of a customer; without it, or "
              "with a token no customer has, 401 with {\"detail\": ...}.")


def _patch(client, product_id: int, sent: dict):
    return client.request("PATCH", f"/api/products/{product_id}/", json=sent)


@check("products-content")
def test_products_content(client, shop, roles, pages, expect, rng):
    """A product's page shows every field as the database says; unknown is 404; a PATCH answers as the brief says"""
    products = rng.sample(shop.products_in(roles["content"]["slug"]), 3)
    for product in products:
        reply = client.get(f"/api/products/{product['id']}/")
        expect.status(reply, 200, "for a product of the catalogue", help=pages.CONTRACT)
        expect.fields(reply, pages.PRODUCT_FIELDS, help=pages.CONTRACT)
        pages.item(reply.body, shop.product(product["id"]), f"GET /api/products/{product['id']}/",
                   pages.PRODUCT_FIELDS)
    unknown = shop.unknown_product()
    expect.status(client.get(f"/api/products/{unknown}/"), 404, "for a product that does not exist",
                  help=pages.CONTRACT)

    target = rng.choice(shop.products_in(roles["patch"]["slug"]))
    before = shop.product(target["id"])
    for sent, why in (({"price": -1}, "a negative price"), ({"stock": -5}, "a negative stock"),
                      ({"price": 12.5}, "a price of 12.5"), ({"stock": "ten"}, 'a stock of "ten"'),
                      ({"price": "499"}, 'a price written as a string, "499"'), ({"name": ""}, "an empty name"),
                      ({"name": "N" * 121}, "a name of 121 characters"), ({"stock": 2_147_483_648}, "a stock of 2^31")):
        reply = _patch(client, target["id"], sent)
        expect.status(reply, 400, f"with {why}", sent=sent, help=PATCH_HELP)
        now = shop.product(target["id"])
        if now != before:
            raise Failure(f"PATCH /api/products/{target['id']}/ with {why} answered 400 but changed the product",
                          evidence={"sent": sent, "before": pages.shown(before), "after": pages.shown(now)},
                          help=PATCH_HELP)
    expect.status(_patch(client, unknown, {"stock": 3}), 404, "for a product that does not exist",
                  sent={"stock": 3}, help=PATCH_HELP)

    sent = {"price": before["price"] + 100, "stock": (before["stock"] + 7) % 500}
    started = datetime.now(timezone.utc)
    reply = _patch(client, target["id"], sent)
    expect.status(reply, 200, "with a new price and stock", sent=sent, help=PATCH_HELP)
    expect.fields(reply, pages.PRODUCT_FIELDS, help=pages.CONTRACT)
    after = shop.product(target["id"])
    if (after["price"], after["stock"]) != (sent["price"], sent["stock"]):
        raise Failure(f"PATCH /api/products/{target['id']}/ {sent} answered 200, but the database holds price "
                      f"{after['price']} and stock {after['stock']}",
                      evidence={"sent": sent, "database": pages.shown(after)}, help=PATCH_HELP)
    if after["updated_at"] < started.replace(microsecond=0) or after["updated_at"] <= before["updated_at"]:
        raise Failure(f"PATCH /api/products/{target['id']}/ did not set updated_at to the time of the write",
                      evidence={"before": pages.timestamp(before["updated_at"]),
                                "after": pages.timestamp(after["updated_at"])}, help=PATCH_HELP)
    pages.item(reply.body, after, f"the answer to PATCH /api/products/{target['id']}/ {sent}", pages.PRODUCT_FIELDS,
               help="The answer to a PATCH is the product as it is now, in the shape of GET /api/products/<id>/.")


@check("category-pages")
def test_category_pages(client, shop, roles, pages, expect, rng):
    """Category pages list 50 products by name or price as the database says, whatever other parameters come along"""
    ignored_help = ("The brief: parameters other than page and sort (utm_source, ref, a _ cache-buster) change nothing "
                    "in the answer, and neither does their order.")
    for role in ("content", "pages"):
        slug = roles[role]["slug"]
        last = -(-shop.count(slug) // pages.PAGE)
        middle = rng.randint(2, last - 1)
        base = f"/api/categories/{slug}/products/"
        for query, number, sort in (("", 1, "name"), (f"?page={middle}", middle, "name"),
                                    (f"?page={last}&sort=name", last, "name"), ("?sort=price", 1, "price"),
                                    (f"?page={middle}&sort=price", middle, "price"),
                                    (f"?sort=price&page={last}", last, "price")):
            pages.category_page(client.get(base + query), shop, slug, number, sort)
        for query, number, sort in ((f"?utm_source=newsletter&page={middle}&sort=price&ref=mail", middle, "price"),
                                    (f"?_={int(time.time() * 1000)}&page=2", 2, "name"),
                                    (f"?sort=name&utm_campaign=spring&page={last}", last, "name")):
            pages.category_page(client.get(base + query), shop, slug, number, sort, help=ignored_help)
        expect.status(client.get(f"{base}?page={last + 1}"), 404, "for the page after the last", help=pages.CONTRACT)
        expect.status(client.get(f"{base}?page={last + 3}&sort=price"), 404, "for a page past the end",
                      help=pages.CONTRACT)
    expect.status(client.get("/api/categories/no-such-category/products/"), 404, "for a category that does not exist",
                  help=pages.CONTRACT)
    expect.status(client.get(f"/api/categories/{roles['content']['slug']}/products/?sort=popularity"), 400,
                  "for a sort other than name or price", help=pages.CONTRACT)


@check("bestsellers-content")
def test_bestsellers_content(client, shop, pages, expect, bestsellers_check, max_age):
    """The bestsellers are the top 20 products by units sold over every order line, ties by id"""
    help = ("The brief: the top 20 products by units sold (the sum of quantity over every order line), highest first, "
            "ties by the lower id; generated_at is when that sum was taken, at most BESTSELLERS_MAX_AGE_SECONDS ago.")
    expected = shop.bestsellers()
    asked = datetime.now(timezone.utc)
    reply = client.get("/api/bestsellers/")
    answered = datetime.now(timezone.utc)
    expect.status(reply, 200, "for the bestsellers", help=pages.CONTRACT)
    body = expect.fields(reply, ("generated_at", "products"), help=pages.CONTRACT)
    wrong = bestsellers_check(body, expected)
    if wrong:
        raise Failure(f"GET /api/bestsellers/ is not the database's top 20: {wrong}",
                      evidence={"yours": [{name: item.get(name) for name in ("id", "name", "units")}
                                          for item in body["products"][:5] if isinstance(item, dict)]
                                if isinstance(body["products"], list) else body["products"],
                                "database": expected[:5]}, help=help)
    generated = pages.moment(body["generated_at"])
    if generated is None:
        raise Failure(f"GET /api/bestsellers/ says generated_at = {body['generated_at']!r}, not a timestamp",
                      help=help)
    age = (asked - generated).total_seconds()
    if age > max_age + 2 or (generated - answered).total_seconds() > 2:
        raise Failure(f"GET /api/bestsellers/ says generated_at = {body['generated_at']}, {age:.1f} s before the "
                      f"request; the bestsellers may be at most {max_age:g} s old",
                      evidence={"generated_at": body["generated_at"], "asked at": pages.timestamp(asked)}, help=help)


@check("dashboard-content")
def test_dashboard_content(client, shop, pages, expect, rng, token):
    """A customer's dashboard and orders show their own figures as the database says; no token or a bad one is 401"""
    # One customer only: this check runs before any other asks for a dashboard, so it sees what a fresh service
    # answers to one customer (private-per-user is where two of them meet).
    customer = shop.customers(rng, 1, at_least=2 * pages.PAGE + 1)[0]
    signed = token(customer["token"])
    expected = shop.dashboard(customer)
    reply = client.get("/api/me/dashboard/", headers=signed)
    expect.status(reply, 200, f"for customer {customer['username']}, signed in with their token", help=TOKEN_HELP)
    body = expect.fields(reply, pages.DASHBOARD_FIELDS, help=pages.CONTRACT)
    pages.item(body, expected, f"the dashboard of {customer['username']}", pages.DASHBOARD_FIELDS[:-1])
    recent = body["recent"]
    if not pages.same(recent, expected["recent"]):
        raise Failure(f"the dashboard of {customer['username']} lists recent = "
                      f"{[item.get('id') if isinstance(item, dict) else item for item in recent] if isinstance(recent, list) else recent!r}; "
                      f"their 5 newest orders, newest first, are {[row['id'] for row in expected['recent']]}",
                      evidence={"yours": recent, "database": pages.shown(expected["recent"])}, help=pages.CONTRACT)

    total = shop.order_count(customer["id"])
    last = -(-total // pages.PAGE)
    threshold = shop.median_total(customer["id"])
    for query, number, min_total in (("", 1, None), (f"?page={last}", last, None),
                                     (f"?min_total={threshold}", 1, threshold)):
        path = f"/api/me/orders/{query}"
        reply = client.get(path, headers=signed)
        where = f"GET {path} for {customer['username']}"
        expect.status(reply, 200, f"for customer {customer['username']}", help=TOKEN_HELP)
        page = expect.fields(reply, pages.PAGE_FIELDS, help=pages.CONTRACT)
        count = shop.order_count(customer["id"], min_total)
        rows = shop.orders(customer["id"], number, min_total)
        if page["count"] != count or not isinstance(page["results"], list) or len(page["results"]) != len(rows):
            raise Failure(f"{where} says count = {page['count']!r} with "
                          f"{len(page['results']) if isinstance(page['results'], list) else 'no list of'} orders; the "
                          f"database holds {count} such orders and {len(rows)} on this page",
                          evidence={"yours": page["count"], "database": count}, help=pages.CONTRACT)
        for position, (item, row) in enumerate(zip(page["results"], rows, strict=True), start=1):
            pages.item(item, row, f"order {position} of {where}", pages.ORDER_FIELDS)
        if (page["next"] is None) != (number * pages.PAGE >= count) or (page["previous"] is None) != (number == 1):
            raise Failure(f"{where} says next = {page['next']!r}, previous = {page['previous']!r} on page {number}",
                          evidence={"count": count}, help=pages.CONTRACT)

    for headers, who in ((None, "without a token"), (token(shop.unknown_token()), "with a token no customer has"),
                         ({"Authorization": f"Bearer {customer['token']}"}, "with the token under another scheme")):
        for path in ("/api/me/dashboard/", "/api/me/orders/"):
            reply = client.get(path, headers=headers)
            expect.status(reply, 401, who, help=TOKEN_HELP)
            if not isinstance(reply.body, dict) or "detail" not in reply.body:
                raise Failure(f"GET {path} {who} answered 401 without {{\"detail\": ...}}",
                              evidence={"reply": reply.describe()}, help=TOKEN_HELP)

    nobody = shop.customer_without_orders()
    if nobody is not None:
        # Only the order list: a dashboard cached under a key that forgets the customer is private-per-user's to find.
        reply = client.get("/api/me/orders/?page=1", headers=token(nobody["token"]))
        expect.status(reply, 200, f"for customer {nobody['username']}, who never ordered", help=TOKEN_HELP)
        page = expect.fields(reply, pages.PAGE_FIELDS, help=pages.CONTRACT)
        if page["count"] != 0 or page["results"] != []:
            raise Failure(f"GET /api/me/orders/?page=1 for {nobody['username']}, who never ordered, says count = "
                          f"{page['count']!r} with {condensed(str(page['results']), 80)}",
                          evidence={"database": {"count": 0, "results": []}}, help=pages.CONTRACT)
