"""Shared pieces of the caching checks: the shop as PostgreSQL has it (`shop`), replies compared with it (`pages`),
the categories each check may change (`roles`), and what Redis holds, for evidence (`cached`).

Every expected value is read from PostgreSQL with plain SQL over the brief's tables at the moment of the check,
so a check compares the service with the data, never with another implementation of the same API. Checks that
write (a PATCH) change products of a category of their own, so that checks running beside them read rows that
stay as they are.
"""

from __future__ import annotations

import random
import re
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from grader.checkkit import Database, Failure, Reply, condensed

PAGE = 50
BESTSELLERS = 20
RECENT = 5
CACHE_MAX_TTL = 3600  # the brief's CACHE_MAX_TTL_SECONDS
PRODUCT_FIELDS = ("id", "name", "category", "price", "stock", "updated_at")
ROW_FIELDS = ("id", "name", "price", "stock")
PAGE_FIELDS = ("count", "next", "previous", "results")
DASHBOARD_FIELDS = ("customer", "orders", "spent", "favourite_category", "recent")
RECENT_FIELDS = ("id", "total", "created_at")
ORDER_FIELDS = ("id", "total", "created_at", "lines")
LINE_FIELDS = ("product", "quantity", "price")
SORTS = {"name": "p.name, p.id", "price": "p.price, p.id"}
CONTRACT = "The brief's API contract lists every endpoint, status code and field, and the order of every list."
# The categories, by role: a check that writes changes only its own category's products.
ROLES = ("content", "pages", "patch", "writes", "outage")

_PRODUCT = """
    SELECT p.id, p.name, c.slug AS category, p.price, p.stock, p.updated_at
    FROM shop_product p JOIN shop_category c ON c.id = p.category_id
"""
_BESTSELLERS = """
    SELECT l.product_id AS id, p.name, sum(l.quantity)::int AS units
    FROM shop_orderline l JOIN shop_product p ON p.id = l.product_id
    GROUP BY l.product_id, p.name ORDER BY units DESC, l.product_id LIMIT %s
"""


def timestamp(value: datetime) -> str:
    """A timestamptz as the brief writes it: UTC, ISO 8601, ending in Z."""
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def moment(text: Any) -> datetime | None:
    """A timestamp of a reply as a datetime (UTC when it names no zone); None when it is not one."""
    if not isinstance(text, str):
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


class Shop:
    """The shop as PostgreSQL has it, in the shapes and orders the brief promises."""

    def __init__(self, db: Database):
        self.db = db

    def categories(self) -> list[dict[str, Any]]:
        return self.db.query("SELECT c.id, c.slug, c.name, count(p.id)::int AS products FROM shop_category c "
                             "LEFT JOIN shop_product p ON p.category_id = c.id GROUP BY c.id ORDER BY c.slug")

    def product(self, product_id: int) -> dict[str, Any] | None:
        rows = self.db.query(f"{_PRODUCT} WHERE p.id = %s", (product_id,))
        return rows[0] if rows else None

    def products_in(self, slug: str) -> list[dict[str, Any]]:
        return self.db.query(f"{_PRODUCT} WHERE c.slug = %s ORDER BY p.id", (slug,))

    def unknown_product(self) -> int:
        return int(self.db.scalar("SELECT coalesce(max(id), 0) FROM shop_product")) + 7919

    def count(self, slug: str) -> int:
        return int(self.db.scalar("SELECT count(*) FROM shop_product p JOIN shop_category c ON c.id = p.category_id "
                                  "WHERE c.slug = %s", (slug,)))

    def page(self, slug: str, number: int, sort: str = "name") -> list[dict[str, Any]]:
        """One page of a category's products as the brief orders them: by name then id, or by price then id."""
        return self.db.query(f"SELECT p.id, p.name, p.price, p.stock FROM shop_product p "
                             f"JOIN shop_category c ON c.id = p.category_id WHERE c.slug = %s "
                             f"ORDER BY {SORTS[sort]} OFFSET %s LIMIT %s", (slug, (number - 1) * PAGE, PAGE))

    def page_of(self, slug: str, product_id: int, sort: str) -> int:
        """The page of a category (by `sort`) that lists a product now."""
        position = self.db.scalar(f"SELECT n FROM (SELECT p.id, row_number() OVER (ORDER BY {SORTS[sort]}) AS n "
                                  f"FROM shop_product p JOIN shop_category c ON c.id = p.category_id "
                                  f"WHERE c.slug = %s) AS ranked WHERE id = %s", (slug, product_id))
        return (int(position) - 1) // PAGE + 1

    def bestsellers(self) -> list[dict[str, Any]]:
        """The top 20 by units over every order line, ties by id (it reads all of shop_orderline)."""
        return self.db.query(_BESTSELLERS, (BESTSELLERS,))

    def customers(self, rng: random.Random, count: int, at_least: int = 1) -> list[dict[str, Any]]:
        """Customers picked by `rng` with at least `at_least` orders, whose orders never share a created_at."""
        rows = self.db.query("SELECT c.id, c.username, c.token, count(o.id)::int AS orders FROM shop_customer c "
                             "JOIN shop_order o ON o.customer_id = c.id GROUP BY c.id "
                             "HAVING count(o.id) >= %s AND count(DISTINCT o.created_at) = count(o.id) ORDER BY c.id",
                             (at_least,))
        return rng.sample(rows, min(count, len(rows)))

    def customer_without_orders(self) -> dict[str, Any] | None:
        rows = self.db.query("SELECT c.id, c.username, c.token, 0 AS orders FROM shop_customer c WHERE NOT EXISTS "
                             "(SELECT 1 FROM shop_order o WHERE o.customer_id = c.id) ORDER BY c.id LIMIT 1")
        return rows[0] if rows else None

    def unknown_token(self) -> str:
        token = "0" * 40
        while self.db.scalar("SELECT 1 FROM shop_customer WHERE token = %s", (token,)):
            token = f"{random.getrandbits(160):040x}"
        return token

    def dashboard(self, customer: dict[str, Any]) -> dict[str, Any]:
        totals = self.db.query("SELECT count(*)::int AS orders, coalesce(sum(total), 0)::int AS spent FROM shop_order "
                               "WHERE customer_id = %s", (customer["id"],))[0]
        favourite = self.db.scalar(
            "SELECT c.slug FROM shop_orderline l JOIN shop_order o ON o.id = l.order_id "
            "JOIN shop_product p ON p.id = l.product_id JOIN shop_category c ON c.id = p.category_id "
            "WHERE o.customer_id = %s GROUP BY c.slug ORDER BY sum(l.quantity) DESC, c.slug LIMIT 1",
            (customer["id"],))
        recent = self.db.query("SELECT id, total, created_at FROM shop_order WHERE customer_id = %s "
                               "ORDER BY created_at DESC, id DESC LIMIT %s", (customer["id"], RECENT))
        return {"customer": customer["username"], "orders": totals["orders"], "spent": totals["spent"],
                "favourite_category": favourite, "recent": recent}

    def order_count(self, customer_id: int, min_total: int | None = None) -> int:
        return int(self.db.scalar("SELECT count(*) FROM shop_order WHERE customer_id = %s AND total >= %s",
                                  (customer_id, min_total or 0)))

    def orders(self, customer_id: int, number: int, min_total: int | None = None) -> list[dict[str, Any]]:
        """One page of a customer's orders, newest first, each with its lines (in the order they were taken)."""
        rows = self.db.query("SELECT id, total, created_at FROM shop_order WHERE customer_id = %s AND total >= %s "
                             "ORDER BY created_at DESC, id DESC OFFSET %s LIMIT %s",
                             (customer_id, min_total or 0, (number - 1) * PAGE, PAGE))
        lines: dict[int, list] = {row["id"]: [] for row in rows}
        for line in self.db.query("SELECT order_id, product_id AS product, quantity, price FROM shop_orderline "
                                  "WHERE order_id = ANY(%s) ORDER BY id", (list(lines),)):
            lines[line.pop("order_id")].append(line)
        return [{**row, "lines": lines[row["id"]]} for row in rows]

    def median_total(self, customer_id: int) -> int:
        return int(self.db.scalar("SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY total) FROM shop_order "
                                  "WHERE customer_id = %s", (customer_id,)))


class Roles:
    """The categories each check may use, picked by the run's seed: writers change only their own category."""

    def __init__(self, shop: Shop, seed: int):
        categories = shop.categories()
        rng = random.Random(seed)
        # Every role gets a category of at least three pages, so that first, middle and last pages differ.
        large = [category for category in categories if category["products"] > 2 * PAGE]
        if len(large) < len(ROLES):
            raise RuntimeError(f"the lab's data has {len(large)} categories of three pages or more; its checks need "
                               f"{len(ROLES)} (dataset.py)")
        rng.shuffle(large)
        self.by_role = dict(zip(ROLES, large, strict=False))
        self.others = [category for category in categories if category not in self.by_role.values()]

    def __getitem__(self, role: str) -> dict[str, Any]:
        return self.by_role[role]


def same(actual: Any, expected: Any) -> bool:
    """A reply's value equals the database's: timestamps as instants, everything else of the same JSON type."""
    if isinstance(expected, datetime):
        parsed = moment(actual)
        return parsed is not None and parsed == expected
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(
            isinstance(item, dict) and all(name in item and same(item[name], value) for name, value in row.items())
            for item, row in zip(actual, expected, strict=False))
    if isinstance(expected, bool) or expected is None:
        return actual is expected
    return actual == expected and type(actual) is type(expected)


def shown(value: Any) -> Any:
    """A database value as the brief writes it, for evidence."""
    if isinstance(value, datetime):
        return timestamp(value)
    if isinstance(value, list):
        return [{name: shown(item) for name, item in row.items()} if isinstance(row, dict) else row for row in value]
    return value


class Pages:
    """Replies compared with the database, each failure naming the request, the answer and what PostgreSQL holds."""

    CONTRACT = CONTRACT
    PRODUCT_FIELDS, ROW_FIELDS, PAGE_FIELDS = PRODUCT_FIELDS, ROW_FIELDS, PAGE_FIELDS
    DASHBOARD_FIELDS, RECENT_FIELDS, ORDER_FIELDS = DASHBOARD_FIELDS, RECENT_FIELDS, ORDER_FIELDS
    PAGE, BESTSELLERS, CACHE_MAX_TTL = PAGE, BESTSELLERS, CACHE_MAX_TTL
    same, shown, moment, timestamp = staticmethod(same), staticmethod(shown), staticmethod(moment), staticmethod(timestamp)

    @staticmethod
    def mismatch(item: Any, expected: dict[str, Any], fields: tuple[str, ...]) -> tuple[str, Any, Any] | None:
        """The first field of `fields` where a reply's object differs from the database's row (name, yours, its)."""
        if not isinstance(item, dict):
            return "(the object itself)", condensed(str(item), 120), "a JSON object"
        for name in fields:
            if name not in item:
                return name, "(missing)", shown(expected[name])
            if not same(item[name], expected[name]):
                return name, item[name], shown(expected[name])
        return None

    @classmethod
    def item(cls, item: Any, expected: dict[str, Any], where: str, fields: tuple[str, ...], *,
             help: str = CONTRACT, evidence: dict[str, Any] | None = None) -> None:
        wrong = cls.mismatch(item, expected, fields)
        if wrong is not None:
            name, yours, theirs = wrong
            raise Failure(f"{where} says {name} = {condensed(repr(yours), 160)}, but the database says "
                          f"{condensed(repr(theirs), 160)}",
                          evidence={"field": name, "yours": yours, "database": theirs, **(evidence or {})}, help=help)

    @classmethod
    def category_page(cls, reply: Reply, shop: Shop, slug: str, number: int, sort: str, where: str = "", *,
                      help: str = CONTRACT, evidence: dict[str, Any] | None = None,
                      expected: tuple[int, list[dict[str, Any]]] | None = None) -> None:
        """A category page against the database now (or `expected`, the count and rows read from it a moment ago):
        count, links, and every field of every product, in order."""
        request = f"GET {reply.path}{where}"
        if reply.status != 200:
            raise Failure(f"{request} answered {reply.status or reply.error}, expected 200",
                          evidence={"reply": reply.describe(), **(evidence or {})}, help=CONTRACT)
        body = reply.body
        if not isinstance(body, dict) or any(name not in body for name in PAGE_FIELDS):
            raise Failure(f"{request} is not a page with {', '.join(PAGE_FIELDS)}",
                          evidence={"reply": condensed(reply.text, 300)}, help=CONTRACT)
        total, rows = expected or (shop.count(slug), shop.page(slug, number, sort))
        last = max(1, -(-total // PAGE))
        if body["count"] != total:
            raise Failure(f"{request} says count = {body['count']!r}; the category has {total} products",
                          evidence={"yours": body["count"], "database": total, **(evidence or {})}, help=help)
        results = body["results"]
        if not isinstance(results, list) or len(results) != len(rows):
            raise Failure(f"{request} lists {len(results) if isinstance(results, list) else 'no list of'} products; "
                          f"page {number} of {slug} by {sort} holds {len(rows)}",
                          evidence={"reply": condensed(reply.text, 300), **(evidence or {})}, help=help)
        ids, expected_ids = [item.get("id") if isinstance(item, dict) else None for item in results], \
            [row["id"] for row in rows]
        if ids != expected_ids:
            first = next(index for index, (mine, theirs) in enumerate(zip(ids, expected_ids, strict=True))
                         if mine != theirs)
            raise Failure(f"{request} lists product {ids[first]!r} at position {first + 1}, where the database (by "
                          f"{sort}, then id) has product {expected_ids[first]} ({rows[first]['name']!r}, price "
                          f"{rows[first]['price']})",
                          evidence={"yours": ids[max(0, first - 2):first + 3],
                                    "database": expected_ids[max(0, first - 2):first + 3], **(evidence or {})},
                          help=help)
        for position, (item, row) in enumerate(zip(results, rows, strict=True), start=1):
            cls.item(item, row, f"product {row['id']} (position {position}) of {request}", ROW_FIELDS, help=help,
                     evidence=evidence)
        for link, present, step in (("next", number < last, 1), ("previous", number > 1, -1)):
            value = body[link]
            if (value is None) == present:
                raise Failure(f"{request} says {link} = {value!r} on page {number} of {last}",
                              evidence={"count": total, "page": number, **(evidence or {})}, help=CONTRACT)
            if value is not None and not cls._links_to(value, number + step):
                raise Failure(f"{request} says {link} = {value!r}, which is not page {number + step}",
                              evidence={"page": number, link: value}, help=CONTRACT)

    @staticmethod
    def _links_to(link: Any, number: int) -> bool:
        """A next/previous link names page `number` (DRF leaves page=1 out of the link to the first page)."""
        if not isinstance(link, str):
            return False
        pages = parse_qs(urlsplit(link).query).get("page", ["1"])
        return pages[-1] == str(number)


def bestsellers_mismatch(body: Any, expected: list[dict[str, Any]]) -> str | None:
    """What is wrong with a bestsellers answer (None when it is the database's top 20)."""
    if not isinstance(body, dict) or not isinstance(body.get("products"), list):
        return "it is not an object with a list of products"
    products = body["products"]
    ids = [item.get("id") if isinstance(item, dict) else None for item in products]
    wanted = [row["id"] for row in expected]
    if ids != wanted:
        if len(ids) != len(wanted):
            return f"it lists {len(ids)} products, not {len(wanted)}"
        first = next(index for index, (mine, theirs) in enumerate(zip(ids, wanted, strict=True)) if mine != theirs)
        return (f"it has product {ids[first]!r} at rank {first + 1}, where the database has product {wanted[first]} "
                f"({expected[first]['units']} units)")
    for rank, (item, row) in enumerate(zip(products, expected, strict=True), start=1):
        wrong = Pages.mismatch(item, row, ("id", "name", "units"))
        if wrong:
            return f"rank {rank} (product {row['id']}) says {wrong[0]} = {wrong[1]!r}, the database {wrong[2]!r}"
    return None


class Cached:
    """What Redis holds now, for evidence: the keys that mention some words (an id, a slug), with their TTLs."""

    def __init__(self, redis_server):
        self.redis_server = redis_server

    def about(self, *words: Any, limit: int = 6) -> dict[str, Any]:
        try:
            keys = self.redis_server.keys(limit=20_000)
        except Exception as error:  # noqa: BLE001 - evidence that cannot be read is said so, never a new failure
            return {"redis": f"could not be read: {type(error).__name__}: {error}"}
        patterns = [re.compile(rf"(?<![0-9A-Za-z]){re.escape(str(word))}(?![0-9A-Za-z])") for word in words]
        naming = [key for key in keys if any(pattern.search(key.name) for pattern in patterns)]
        described = [key.describe() for key in naming[:limit]]
        return {"redis keys naming " + ", ".join(map(str, words)): described or "none",
                "redis keys in all": len(keys)}


@pytest.fixture(scope="session")
def shop(db: Database) -> Shop:
    """The lab's database, read for evidence."""
    return Shop(db)


@pytest.fixture(scope="session")
def roles(shop: Shop, lab) -> Roles:
    return Roles(shop, lab.seed)


@pytest.fixture(scope="session")
def pages() -> type[Pages]:
    return Pages


@pytest.fixture(scope="session")
def bestsellers_check():
    """What is wrong with a bestsellers answer, compared with the database's top 20 (None when nothing is)."""
    return bestsellers_mismatch


@pytest.fixture(scope="session")
def cached(redis_server) -> Cached:
    return Cached(redis_server)


@pytest.fixture
def rng(lab) -> random.Random:
    return random.Random(lab.seed)


@pytest.fixture(scope="session")
def max_age(lab) -> float:
    """How old the bestsellers may be, as the app has it (lab.toml's [app.overrides], else the brief's 60 s)."""
    return float(lab.app_settings.get("BESTSELLERS_MAX_AGE_SECONDS", 60))


@pytest.fixture(scope="session")
def token():
    """The header that signs a customer in."""
    return lambda value: {"Authorization": f"Token {value}"}
