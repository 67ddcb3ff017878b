"""How long a cart lives: at least an hour after its last change, wherever the app keeps it.

An hour cannot be waited for, so the check reads what the stores say instead. It compares every Redis key
(of every database) and every future timestamp in PostgreSQL before and after the app makes a cart and
changes it: the keys that appeared when the cart was made, or whose names hold its id, are the cart's, and
so are the future timestamps the same requests wrote (an `expires` column, Django's database cache). Each
must expire at least an hour after the change, or never, and the change must push it later (a cart whose
expiry was set once, when it was made, dies an hour after it was made). Between making the cart and
changing it, the check makes 400 more: Django's local-memory, file and database caches keep 300 entries
by default and drop others to make room, and a buyer's cart must not be one of them.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass

import redis
from redis.connection import parse_url

from grader.checkkit import Failure, check

LIFETIME = 3600  # seconds: the brief's promise, counted from the start of the change
TOLERANCE = 2.0  # seconds: whole seconds some stores keep (Django's database cache)
OTHER_CARTS = 400  # above the 300 entries Django's local-memory, file and database caches keep by default
WAIT = 2.5  # seconds at least between making the cart and changing it, so a refreshed expiry shows
SAMPLE = 60  # of the other carts read back at the end, besides the ten made first
HELP = ("The brief: a cart lives for at least an hour after its last change, so every change starts its hour "
        "again. Django's cache backends keep an entry 300 s unless told otherwise (a timeout in cache.set(), or "
        "TIMEOUT in CACHES; None keeps it until deleted), and the local-memory, file and database caches keep "
        "at most 300 entries (OPTIONS MAX_ENTRIES), dropping others to make room.")


@dataclass(frozen=True)
class Expiry:
    """One place that holds part of a cart, and when it expires (epoch seconds; None: never)."""

    where: str
    expires: float | None


class Stores:
    """When each Redis key, and each row holding a future timestamp in PostgreSQL, expires: read at one moment."""

    def __init__(self, redis_url: str, db):
        self.options = parse_url(redis_url)
        self.db = db
        self.columns = []  # (table as SQL, table's name, column, the SQL that names a row)
        for row in db.query("SELECT c.table_schema, c.table_name, c.column_name FROM information_schema.columns c "
                            "JOIN information_schema.tables t USING (table_schema, table_name) "
                            "WHERE c.data_type = 'timestamp with time zone' AND t.table_type = 'BASE TABLE' "
                            "AND c.table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2, 3"):
            table = f'"{row["table_schema"]}"."{row["table_name"]}"'
            keys = [key["attname"] for key in db.query(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary", (table,))]
            naming = " || ' ' || ".join(f'"{key}"::text' for key in keys) if keys else "ctid::text"
            self.columns.append((table, row["table_name"], row["column_name"], naming))

    def snapshot(self) -> dict[str, Expiry]:
        """Every Redis key and every row with a timestamp in the future, by a name that says where it is."""
        return {**self._redis_keys(), **self._future_rows()}

    def _redis_keys(self) -> dict[str, Expiry]:
        keys: dict[str, Expiry] = {}
        first = redis.Redis(**{**self.options, "db": 0}, socket_timeout=10)
        try:
            databases = [int(name[2:]) for name in first.info("keyspace") if name.startswith("db")]
        finally:
            first.close()
        for number in databases:
            client = redis.Redis(**{**self.options, "db": number}, socket_timeout=10)
            try:
                names = list(client.scan_iter(count=1000))
                for _ in range(5):  # a read held up (a busy machine) blurs when its keys expire: read again
                    pipe = client.pipeline(transaction=False)
                    for name in names:
                        pipe.pttl(name)
                    started = time.time()
                    lefts = pipe.execute()
                    ended = time.time()
                    if ended - started < 0.2:
                        break
                now = (started + ended) / 2
                for name, left in zip(names, lefts, strict=True):
                    if left == -2:  # expired between the scan and the read
                        continue
                    label = f"Redis db {number}, key {name.decode(errors='replace')!r}"
                    keys[label] = Expiry(label, None if left < 0 else now + left / 1000)
            finally:
                client.close()
        return keys

    def _future_rows(self) -> dict[str, Expiry]:
        rows: dict[str, Expiry] = {}
        for table, table_name, column, naming in self.columns:
            for row in self.db.query(f'SELECT {naming} AS row, EXTRACT(EPOCH FROM "{column}")::float8 AS at '
                                     f'FROM {table} WHERE "{column}" > clock_timestamp()'):
                label = f"table {table_name}, column {column} of the row {row['row']!r},"
                rows[label] = Expiry(label, float(row["at"]))
        return rows


def _touched(before: dict[str, Expiry], after: dict[str, Expiry]) -> dict[str, Expiry]:
    """Keys that are new, or whose expiry changed (by more than the blur of a read), between two reads."""
    return {name: expiry for name, expiry in after.items()
            if name not in before or (before[name].expires is None) != (expiry.expires is None)
            or (expiry.expires is not None and abs(expiry.expires - before[name].expires) > 0.5)}


def _seconds(value: float) -> str:
    return f"{value:,.0f} s"


@check("cart-lifetime")
def test_cart_lifetime(client, lab, db, boxoffice, pages, expect, figures, locks):
    """A cart lives at least an hour after its last change, and 400 newer carts do not push it out"""
    stores = Stores(lab.redis_url, db)
    session = client.session()
    try:
        keys_0 = stores.snapshot()
        made = session.post("/api/carts/")
        made_at = time.time()
        expect.status(made, 201, "to make a cart", help=pages.CONTRACT)
        cart = expect.fields(made, pages.CART_FIELDS, help=pages.CONTRACT)
        path = f"/api/carts/{cart['id']}/"
        keys_1 = stores.snapshot()

        # Only the snapshots around making and changing the cart need the stores to themselves: between them,
        # the checks that make carts of their own may run (lab.toml: they share the lock "stores").
        others = []
        with locks.released():
            for number in range(OTHER_CARTS):
                reply = session.post("/api/carts/")
                expect.status(reply, 201, f"to make cart {number + 2} of {OTHER_CARTS + 1}", help=pages.CONTRACT)
                others.append(expect.fields(reply, pages.CART_FIELDS, help=pages.CONTRACT)["id"])
            time.sleep(max(0.0, made_at + WAIT - time.time()))
        still = session.get(path)
        if still.status != 200:
            raise Failure(f"cart {cart['id']} was made {time.time() - made_at:.0f} s ago, before {OTHER_CARTS} "
                          f"other carts, and GET {path} now answers {still.status or still.error}: the cart is gone "
                          "long before its hour is up", evidence={"answer": still.describe()}, help=HELP)

        keys_2 = stores.snapshot()
        event = boxoffice.events()[0]
        changed_at = time.time()
        added = session.post(f"{path}items/", {"event": event["id"], "quantity": 1})
        expect.status(added, 200, f"adding a ticket to cart {cart['id']}", sent={"event": event["id"], "quantity": 1},
                      help=pages.CONTRACT)
        keys_3 = stores.snapshot()

        seen = session.get(path)
        expect.status(seen, 200, "for the cart just changed", help=pages.CONTRACT)
        items = seen.body.get("items") if isinstance(seen.body, dict) else None
        if not isinstance(items, list) or [item.get("event") for item in items if isinstance(item, dict)] != [event["id"]]:
            raise Failure(f"GET {path} holds {items!r} after one ticket for event {event['id']} was added",
                          evidence={"cart": seen.body}, help=pages.CONTRACT)
        sample = others[:10] + random.Random(lab.seed).sample(others[10:], SAMPLE)
        gone = [other for other in sample if session.get(f"/api/carts/{other}/").status != 200]
        if gone:
            raise Failure(f"{len(gone)} of {len(sample)} carts read back (of {OTHER_CARTS} made within seconds) are "
                          f"gone already, {gone[0]!r} among them: carts are being dropped to make room for others",
                          evidence={"gone": gone[:10]}, help=HELP)
    finally:
        session.close()

    # The cart's keys (and rows): those that appeared when it was made, those given a new expiry then that
    # name it, and those the change wrote that name it.
    # A key that names the cart is judged; when none does (a store that hashes its keys), every key that appeared.
    names_cart = re.compile(rf"(?<![0-9A-Za-z]){re.escape(str(cart['id']))}(?![0-9A-Za-z])").search
    appeared = {name: expiry for name, expiry in _touched(keys_0, keys_1).items() if name not in keys_0 or names_cart(name)}
    made_keys = {name: expiry for name, expiry in appeared.items() if names_cart(name)} or appeared
    changed_keys = {name: expiry for name, expiry in _touched(keys_2, keys_3).items() if names_cart(name)}
    problems, lifetimes = [], []
    for name in sorted(set(made_keys) | set(changed_keys)):
        after = keys_3.get(name)
        if after is None or after.expires is None:
            continue  # gone with a change that rewrote the cart elsewhere, or kept until deleted
        left = after.expires - changed_at
        lifetimes.append(left)
        if left < LIFETIME - TOLERANCE:
            problems.append(f"{name} expires {_seconds(left)} after the cart's last change")
        elif name in made_keys and made_keys[name].expires is not None \
                and abs(after.expires - made_keys[name].expires) < WAIT / 2:
            problems.append(f"{name} kept the expiry it was given when the cart was made: the change "
                            f"{_seconds(changed_at - made_at)} later did not start its hour again")
    if lifetimes:
        figures["shortest cart lifetime after a change, s"] = round(min(lifetimes))
    if problems:
        raise Failure(f"cart {cart['id']} would not live an hour after its last change: {problems[0]}",
                      evidence={"what expires": problems[:8], "promised, s": LIFETIME}, help=HELP)
