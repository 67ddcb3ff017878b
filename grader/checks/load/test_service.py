"""What the box office answers, for one buyer and across replicas."""

from __future__ import annotations

from grader.checkkit import Failure, check


@check("events-content")
def test_events_content(client, boxoffice, pages, expect):
    """Events are listed and shown with every field as the database says"""
    reply = client.get("/api/events/")
    expect.status(reply, 200, "for the events", help=pages.CONTRACT)
    events = boxoffice.events()
    if not isinstance(reply.body, list) or [item.get("id") for item in reply.body if isinstance(item, dict)] != \
            [event["id"] for event in events]:
        raise Failure("GET /api/events/ does not list every event in order of starts_at, then id",
                      evidence={"yours": str(reply.body)[:300]}, help=pages.CONTRACT)
    for item, event in zip(reply.body, events, strict=True):
        pages.item(item, event, f"event {event['id']} of GET /api/events/", pages.EVENT_FIELDS)
    event = events[len(events) // 2]
    detail = client.get(f"/api/events/{event['id']}/")
    expect.status(detail, 200, "for an event", help=pages.CONTRACT)
    pages.item(detail.body, event, f"GET /api/events/{event['id']}/", pages.EVENT_FIELDS)
    expect.status(client.get(f"/api/events/{events[-1]['id'] + 7919}/"), 404, "for an event that does not exist",
                  help=pages.CONTRACT)


def _cart_flow(sessions, boxoffice, pages, expect, rng, email: str) -> None:
    """Create, fill, read and check out a cart, each request through the next of `sessions` in turn."""
    turn = iter(range(10**6))

    def session():
        return sessions[next(turn) % len(sessions)]

    events = rng.sample(boxoffice.events(), 2)
    created = session().post("/api/carts/")
    expect.status(created, 201, "to make a cart", help=pages.CONTRACT)
    cart = expect.fields(created, pages.CART_FIELDS, help=pages.CONTRACT)
    cart_path = f"/api/carts/{cart['id']}/"
    wanted = {}
    for event, quantity in ((events[0], rng.randint(1, 3)), (events[1], rng.randint(1, 3)), (events[0], 1)):
        reply = session().post(f"{cart_path}items/", {"event": event["id"], "quantity": quantity})
        expect.status(reply, 200, f"adding {quantity} ticket(s) for event {event['id']} to cart {cart['id']} "
                      "(made moments ago)", sent={"event": event["id"], "quantity": quantity}, help=pages.CONTRACT)
        wanted[event["id"]] = wanted.get(event["id"], 0) + quantity
    total = sum(boxoffice.event(event_id)["price"] * quantity for event_id, quantity in wanted.items())
    seen = session().get(cart_path)
    expect.status(seen, 200, "for the cart just filled", help=pages.CONTRACT)
    body = expect.fields(seen, pages.CART_FIELDS, help=pages.CONTRACT)
    found = {item.get("event"): item.get("quantity") for item in body["items"] if isinstance(item, dict)}
    if found != wanted or body["total"] != total:
        raise Failure(f"GET {cart_path} holds {found} (total {body['total']}) after adding {wanted} (total {total})",
                      evidence={"cart": body}, help=pages.CONTRACT)
    last = boxoffice.last_order_id()
    paid = session().post(f"{cart_path}checkout/", {"email": email})
    expect.status(paid, 201, "to check the cart out", sent={"email": email}, help=pages.CONTRACT)
    written = boxoffice.orders_after(last)
    mine = {row["event"]: row for row in written if row["email"] == email}
    if {event_id: row["quantity"] for event_id, row in mine.items()} != wanted:
        raise Failure(f"checking out {wanted} wrote the orders {[dict(row) for row in mine.values()]}",
                      help="Checkout writes one order per event of the cart, with its quantity and total.")
    expect.status(session().get(cart_path), 404, "for a cart that was checked out", help=pages.CONTRACT)


@check("cart-basics")
def test_cart_basics(client, boxoffice, pages, expect, rng):
    """A cart on one connection is created, filled, read and checked out as the brief says"""
    session = client.session()
    try:
        _cart_flow([session], boxoffice, pages, expect, rng, f"one.connection.{rng.randint(1, 10**6)}@example.com")
        bad = session.post("/api/carts/")
        cart = bad.body["id"] if isinstance(bad.body, dict) else "missing"
        for sent, why, status in (({"event": boxoffice.events()[0]["id"], "quantity": 0}, "0 tickets", 400),
                                  ({"event": boxoffice.events()[0]["id"], "quantity": 11}, "11 tickets", 400),
                                  ({"event": 10**9, "quantity": 1}, "an event that does not exist", 404)):
            expect.status(session.post(f"/api/carts/{cart}/items/", sent), status, f"adding {why}", sent=sent,
                          help=pages.CONTRACT)
        expect.status(session.post(f"/api/carts/{cart}/checkout/", {"email": "x@example.com"}), 400,
                      "checking out an empty cart", help=pages.CONTRACT)
        expect.status(session.get("/api/carts/no-such-cart/"), 404, "for a cart that does not exist",
                      help=pages.CONTRACT)
    finally:
        session.close()


@check("cart-across-replicas")
def test_cart_across_replicas(replicas, boxoffice, pages, expect, rng):
    """A cart written through one replica is seen and checked out through the other"""
    if len(replicas) < 2:
        raise Failure("the service was served as one replica; this check needs two")
    for number in range(3):  # every request of a flow goes to the next replica, on a new connection each time
        sessions = [_OneShot(replica) for replica in (replicas if number % 2 == 0 else replicas[::-1])]
        _cart_flow(sessions, boxoffice, pages, expect, rng, f"replicas.{number}.{rng.randint(1, 10**6)}@example.com")


class _OneShot:
    """A new connection for every request, as a load balancer spreads them."""

    def __init__(self, client):
        self.client = client

    def get(self, path, **kwargs):
        return self.client.get(path, **kwargs)

    def post(self, path, json=None, **kwargs):
        return self.client.post(path, json, **kwargs)
