"""Orders: validation, one buyer, retries with an Idempotency-Key, and buyers arriving together."""

from grader.checkkit import Call, Failure, check

ORDER_FIELDS = ("id", "product", "quantity", "total", "charge")
ROUNDS = 5
CONTRACT = "The brief lists each status code and field of the orders endpoint; compare your answers with it."


def _post_order(client, product_id, quantity, key=None):
    body = {"product": product_id, "quantity": quantity}
    return client.post("/api/orders/", body, headers={"Idempotency-Key": key} if key else None)


@check("order-validation")
def test_order_validation(client, ledger, expect, seeded):
    """Bad orders are refused with 400, 404 or 409 and change nothing"""
    roles = seeded["order_validation"]
    open_, short, empty = roles["open"], roles["short"], roles["empty"]
    unknown = ledger.unknown_id("store_product")
    cases = [
        ("without a quantity", {"product": open_["id"]}, None, 400),
        ('with quantity "two"', {"product": open_["id"], "quantity": "two"}, None, 400),
        ("with quantity 0", {"product": open_["id"], "quantity": 0}, None, 400),
        ("with quantity -3", {"product": open_["id"], "quantity": -3}, None, 400),
        ('with quantity "2" (a string)', {"product": open_["id"], "quantity": "2"}, None, 400),
        ("with quantity 2147483648", {"product": open_["id"], "quantity": 2_147_483_648}, None, 400),
        ("without a product", {"quantity": 1}, None, 400),
        ("with an Idempotency-Key of 65 characters", {"product": open_["id"], "quantity": 1}, "k" * 65, 400),
        ("for a product that does not exist", {"product": unknown, "quantity": 1}, None, 404),
        (f"for {short['stock'] + 1} units when {short['stock']} are in stock",
         {"product": short["id"], "quantity": short["stock"] + 1}, None, 409),
        ("for a product with no stock", {"product": empty["id"], "quantity": 1}, None, 409),
    ]
    for doing, body, key, expected in cases:
        last_charge, last_order = ledger.last_id("payments_charge"), ledger.last_id("store_order")
        reply = client.post("/api/orders/", body, headers={"Idempotency-Key": key} if key else None)
        expect.status(reply, expected, doing, sent=body, help=CONTRACT)
        charges = ledger.charges_after(last_charge)
        orders = ledger.count_after("store_order", last_order)
        changed = {}
        for product in (open_, short, empty):
            stock = ledger.stock(product["id"])
            if stock != product["stock"]:
                changed[product["id"]] = {"before": product["stock"], "after": stock}
        effects = [text for text in (f"{len(charges)} charge(s) made" if charges else "",
                                     f"{orders} order(s) recorded" if orders else "",
                                     f"the stock of {len(changed)} product(s) changed" if changed else "") if text]
        if effects:
            raise Failure(f"POST /api/orders/ {doing} answered {reply.status} but still had effects: "
                          f"{', '.join(effects)}",
                          evidence={"sent": body, "charges": charges[:3], "orders_recorded": orders, "stock": changed},
                          help="A refused order leaves no trace: no charge, no order row, no change to the stock.")


@check("single-order")
def test_single_order(client, ledger, expect, seeded):
    """One order for one buyer: 201, stock goes down by the quantity, one charge for the total"""
    product, quantity = seeded["single_order"]["product"], seeded["single_order"]["quantity"]
    row = ledger.product(product["id"])
    last_charge = ledger.last_id("payments_charge")
    reply = _post_order(client, row["id"], quantity)
    doing = f"for {quantity} units of a product with {row['stock']} in stock"
    expect.status(reply, 201, doing, sent={"product": row["id"], "quantity": quantity}, help=CONTRACT)
    body = expect.fields(reply, ORDER_FIELDS, help=CONTRACT)
    total = row["price"] * quantity
    expect.values(reply, {"product": row["id"], "quantity": quantity, "total": total},
                  f"the order sent (price {row['price']} x {quantity})", help=CONTRACT)
    order = ledger.order(body["id"])
    if order is None:
        raise Failure(f"POST /api/orders/ answered 201 with id {body['id']!r}, but store_order has no such row",
                      evidence={"reply": reply.text[:300]}, help=CONTRACT)
    if (order["product_id"], order["quantity"], order["total"]) != (row["id"], quantity, total):
        raise Failure("the order's row in store_order does not match the order sent",
                      evidence={"expected": {"product_id": row["id"], "quantity": quantity, "total": total},
                                "row": order}, help=CONTRACT)
    charges = ledger.charges_after(last_charge)
    problems = ledger.charge_problems([order], charges)
    if problems:
        raise Failure(f"one order should make exactly one charge for its total ({total}): {'; '.join(problems)}",
                      evidence={"order": order, "charges": charges[:5]},
                      help="Every order is paid through the payment gateway exactly once, for its total.")
    expect.values(reply, {"charge": order["charge_id"]}, "the order's charge_id in store_order", help=CONTRACT)
    stock = ledger.stock(row["id"])
    if stock != row["stock"] - quantity:
        raise Failure(f"after an order for {quantity} units, stock went from {row['stock']} to {stock}, "
                      f"expected {row['stock'] - quantity}",
                      evidence={"initial_stock": row["stock"], "quantity": quantity, "final_stock": stock},
                      help=CONTRACT)
    detail = client.get(f"/api/orders/{order['id']}/")
    expect.status(detail, 200, "for the order just created", help=CONTRACT)
    expect.fields(detail, ORDER_FIELDS, help=CONTRACT)
    expect.values(detail, {"id": order["id"], "product": row["id"], "quantity": quantity, "total": total,
                           "charge": order["charge_id"]}, "the order just created", help=CONTRACT)
    unknown = ledger.unknown_id("store_order")
    expect.status(client.get(f"/api/orders/{unknown}/"), 404, "for an order that does not exist", help=CONTRACT)


@check("idempotent-replay")
def test_idempotent_replay(client, ledger, expect, seeded):
    """Retrying an order with the same Idempotency-Key returns the original order, with no second charge"""
    role = seeded["idempotent_replay"]
    row, quantity, key = ledger.product(role["product"]["id"]), role["quantity"], role["key"]
    help = "A retry with the same Idempotency-Key is the same order: answer with the original, charge nothing."
    last_charge = ledger.last_id("payments_charge")
    first = _post_order(client, row["id"], quantity, key)
    expect.status(first, 201, "with a new Idempotency-Key", help=CONTRACT)
    original = expect.fields(first, ORDER_FIELDS, help=CONTRACT)
    for attempt in (2, 3):
        retry = _post_order(client, row["id"], quantity, key)
        expect.status(retry, 200, f"repeated with the same Idempotency-Key (attempt {attempt})", help=help)
        expect.fields(retry, ORDER_FIELDS, help=CONTRACT)
        expect.values(retry, {name: original[name] for name in ORDER_FIELDS},
                      "the original order (the first answer for this key)", help=help)
    orders = ledger.orders_for(row["id"])
    charges = ledger.charges_after(last_charge)
    stock = ledger.stock(row["id"])
    if len(orders) != 1 or len(charges) != 1 or stock != row["stock"] - quantity:
        raise Failure(f"one order sent 3 times with the same Idempotency-Key made {len(orders)} order(s) and "
                      f"{len(charges)} charge(s), and stock went from {row['stock']} to {stock} (expected 1, 1 and "
                      f"{row['stock'] - quantity})",
                      evidence={"orders": orders[:5], "charges": charges[:5], "initial_stock": row["stock"],
                                "final_stock": stock}, help=help)
    other = _post_order(client, row["id"], quantity, role["other_key"])
    expect.status(other, 201, "with a different Idempotency-Key for the same product and quantity",
                  help="Only the same key makes a retry; a different key is a new order.")
    second = expect.fields(other, ORDER_FIELDS, help=CONTRACT)
    charges = ledger.charges_after(last_charge)
    if second["id"] == original["id"] or len(ledger.orders_for(row["id"])) != 2 or len(charges) != 2:
        raise Failure("an order with a different Idempotency-Key was not a new order with its own charge",
                      evidence={"first_order": original["id"], "second_order": second["id"],
                                "orders": len(ledger.orders_for(row["id"])), "charges": len(charges)},
                      help="Only the same key makes a retry; a different key is a new order.")


@check("no-oversell")
def test_no_oversell(client, ledger, expect, seeded):
    """Buyers arriving together never oversell: stock stays >= 0, orders equal units sold, one charge per order"""
    help = ("Two buyers can read the same stock before either writes it back. What makes the second one see the "
            "first one's purchase?")
    for number, role in enumerate(seeded["no_oversell"][:ROUNDS], start=1):
        product, buyers, quantity = role["product"], role["buyers"], role["quantity"]
        units = f"{quantity} unit{'s' if quantity > 1 else ''}"
        initial = ledger.stock(product["id"])
        last_charge = ledger.last_id("payments_charge")
        sent = {"product": product["id"], "quantity": quantity}
        calls = [Call("POST", "/api/orders/", sent)] * buyers
        replies = client.burst(calls)
        expect.burst_answered(calls, replies, "orders", number)
        expect.only_statuses(calls, replies, (201, 409), f"orders for {units} each", number, help=CONTRACT)
        stock = ledger.stock(product["id"])
        orders = ledger.orders_for(product["id"])
        charges = ledger.charges_after(last_charge, {f"order:{product['id']}"})
        accepted = sum(reply.status == 201 for reply in replies)
        refused = len(replies) - accepted
        sold = sum(order["quantity"] for order in orders)
        problems = []
        if sold > initial:
            problems.append(f"sold {sold} units of {initial}")
        if stock < 0:
            problems.append(f"stock is {stock}")
        if sold != initial - stock:
            problems.append(f"the orders add up to {sold} units but stock went down by {initial - stock}")
        if accepted != len(orders):
            problems.append(f"{accepted} buyers got 201 but store_order has {len(orders)} orders")
        odd = [order["id"] for order in orders if order["quantity"] != quantity]
        if odd:
            problems.append(f"{len(odd)} order(s) record a quantity other than the {quantity} ordered (ids {odd[:5]})")
        problems += ledger.charge_problems(orders, charges)
        if refused and stock >= quantity and not problems:
            problems.append(f"{refused} buyers of {units} were told the product is sold out (409) while {stock} "
                            f"units are still in stock")
        if problems:
            advice = help
            if quantity > 1:
                rest = initial % quantity
                advice += (f" And when the units are taken off, is it checked that at least {quantity} are left, or "
                           f"only that some are? With {initial} units and orders of {units} each, {rest} "
                           f"unit{'s' if rest > 1 else ''} must be left over.")
            raise Failure(f"{'; '.join(problems[:2])} ({buyers} buyers of {units} each for {initial} units arrived "
                          f"together: stock is now {stock}, {len(orders)} orders, {len(charges)} charges; "
                          f"round {number})",
                          evidence={"round": number, "problems": problems, "buyers": buyers, "sent": sent,
                                    "initial_stock": initial, "final_stock": stock, "units_in_orders": sold,
                                    "orders": len(orders), "charges": len(charges),
                                    "replies": expect.counts(replies)}, help=advice)


@check("idempotent-concurrent")
def test_idempotent_concurrent(client, ledger, expect, seeded):
    """The same Idempotency-Key sent several times at once makes one order and one charge"""
    help = ("Looking the key up first does not help when all the duplicates look before any of them has written "
            "its order. What could make the second duplicate notice the first?")
    mixed_help = ("The brief promises one order per Idempotency-Key whatever the body says. A lock on the product "
                  "only makes duplicates that name the same product wait for each other; what makes a duplicate "
                  "that names another product notice the first order, before it reaches the gateway?")
    for number, role in enumerate(seeded["idempotent_concurrent"][:ROUNDS], start=1):
        key, copies = role["key"], role["duplicates"]
        bodies = [{"product": order["product"]["id"], "quantity": order["quantity"]} for order in role["orders"]]
        initial = {body["product"]: ledger.stock(body["product"]) for body in bodies}
        last_charge = ledger.last_id("payments_charge")
        # Bodies interleaved, so the duplicates naming each product arrive together with the others.
        calls = [Call("POST", "/api/orders/", bodies[index % len(bodies)], headers={"Idempotency-Key": key})
                 for index in range(copies)]
        replies = client.burst(calls)
        what = "requests with the same Idempotency-Key"
        expect.burst_answered(calls, replies, what, number, help=help)
        expect.only_statuses(calls, replies, (200, 201, 409), what, number, help=CONTRACT)
        orders = [order for product_id in initial for order in ledger.orders_for(product_id)]
        charges = ledger.charges_after(last_charge, {f"order:{product_id}" for product_id in initial})
        stock = {product_id: ledger.stock(product_id) for product_id in initial}
        answered_ids = sorted({reply.body.get("id") if isinstance(reply.body, dict) else None
                               for reply in replies if reply.status in (200, 201)}, key=repr)
        problems = []
        if len(orders) != 1:
            problems.append(f"{len(orders)} orders were created")
        if len(charges) != 1:
            problems.append(f"{len(charges)} charges were made")
        if not answered_ids:
            problems.append(f"none of the {copies} got the order (every answer was 409)")
        elif len(orders) == 1 and answered_ids != [orders[0]["id"]]:
            problems.append(f"the successful answers name order(s) {answered_ids}, not the one order "
                            f"{orders[0]['id']}")
        if len(orders) == 1 and {"product": orders[0]["product_id"], "quantity": orders[0]["quantity"]} not in bodies:
            problems.append(f"the order is for {orders[0]['quantity']} of product {orders[0]['product_id']}, which "
                            f"no request asked for")
        for product_id, before in initial.items():
            units = sum(order["quantity"] for order in orders if order["product_id"] == product_id)
            if stock[product_id] != before - units:
                problems.append(f"the stock of product {product_id} went from {before} to {stock[product_id]}, but "
                                f"its orders add up to {units} units")
        if len(orders) == 1 and len(charges) == 1:
            problems += ledger.charge_problems(orders, charges)
        if problems:
            if len(bodies) == 1:
                sent = f"{copies} identical orders with one Idempotency-Key"
            else:
                sent = f"{copies} orders with one Idempotency-Key, naming {len(bodies)} different products,"
            raise Failure(f"{sent} arrived together: {'; '.join(problems[:2])} (expected exactly one order and one "
                          f"charge for the key; round {number})",
                          evidence={"round": number, "problems": problems, "key": key, "duplicates": copies,
                                    "sent": bodies,
                                    "orders": [{"id": order["id"], "product": order["product_id"],
                                                "quantity": order["quantity"], "charge": order["charge_id"]}
                                               for order in orders][:10],
                                    "charges": len(charges), "order_ids_in_answers": answered_ids[:10],
                                    "stock": {str(product_id): {"before": before, "after": stock[product_id]}
                                              for product_id, before in initial.items()},
                                    "replies": expect.counts(replies)},
                          help=help if len(bodies) == 1 else mixed_help)
