"""Shared pieces of the slow-queries checks: what the database says a page holds (`catalogue`), and pages compared.

Every expected value is read from PostgreSQL with plain SQL over the brief's tables (counts and averages
computed from catalog_review itself), so a check compares the service with the data, not with another
implementation of the same API.
"""

from __future__ import annotations

import math
import random
from datetime import date, datetime, timezone
from fractions import Fraction
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from grader.checkkit import Database, Failure, Reply, condensed

BOOK_FIELDS = ("id", "title", "isbn", "genre", "published_on", "pages", "author", "review_count", "average_rating")
REVIEW_FIELDS = ("id", "book", "reviewer", "rating", "body", "created_at")
PAGE_FIELDS = ("count", "next", "previous", "results")
FEED_FIELDS = ("next", "previous", "results")  # the reviews feed is paged by a cursor: no total
CONTRACT = "The brief's API contract lists every field of a page, a book and a review, and the order of each list."
ROUNDING_HELP = ("The brief: average_rating is the mean rounded to 2 decimal places, a JSON number (4.33, not 4.3333 "
                 "or \"4.33\"); a mean exactly halfway between two (4.125) may go either way.")
TIMESTAMP_HELP = ("The brief: created_at is written in UTC ending in Z, the way DRF's DateTimeField writes it "
                  "(2024-03-05T17:02:11.123456Z), not +00:00 or another time zone.")

_BOOKS = """
    SELECT b.id, b.title, b.isbn, b.genre, b.published_on, b.pages, a.id AS author_id, a.name AS author_name,
           (SELECT count(*) FROM catalog_review r WHERE r.book_id = b.id) AS review_count,
           (SELECT sum(r.rating) FROM catalog_review r WHERE r.book_id = b.id) AS rating_total
    FROM catalog_book b JOIN catalog_author a ON a.id = b.author_id
"""
_REVIEWS = """
    SELECT r.id, r.book_id, b.title AS book_title, r.reviewer, r.rating, r.body, r.created_at
    FROM catalog_review r JOIN catalog_book b ON b.id = r.book_id
"""


def _book(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "title": row["title"], "isbn": row["isbn"], "genre": row["genre"],
            "published_on": row["published_on"].isoformat(), "pages": row["pages"],
            "author": {"id": row["author_id"], "name": row["author_name"]}, "review_count": row["review_count"],
            "average_rating": None if not row["review_count"] else Mean(row["rating_total"], row["review_count"])}


def _review(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "book": {"id": row["book_id"], "title": row["book_title"]}, "reviewer": row["reviewer"],
            "rating": row["rating"], "body": row["body"], "created_at": row["created_at"]}


class Mean(Fraction):
    """A book's exact mean rating; a reply's average_rating must be it rounded to 2 decimals."""

    def rounded(self) -> tuple[Fraction, ...]:
        """The numbers of 2 decimals the brief allows: the nearest, or both neighbours when the mean is halfway."""
        low = Fraction(math.floor(self * 100), 100)
        high = low + Fraction(1, 100)
        if self - low == high - self:
            return low, high
        return (low,) if self - low < high - self else (high,)

    def shown(self) -> str:
        return " or ".join(f"{float(value):.2f}" for value in self.rounded())


def timestamp(value: datetime) -> str:
    """A timestamptz as the brief writes it: UTC, ISO 8601, Z (DRF's DateTimeField: no fraction when it is zero)."""
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


class Catalogue:
    """The catalogue as PostgreSQL has it, in the shapes and orders the brief promises."""

    def __init__(self, db: Database):
        self.db = db

    def book_count(self, isbn: str | None = None) -> int:
        if isbn is None:
            return int(self.db.scalar("SELECT count(*) FROM catalog_book"))
        return int(self.db.scalar("SELECT count(*) FROM catalog_book WHERE isbn = %s", (isbn,)))

    def books(self, offset: int, limit: int, isbn: str | None = None) -> list[dict[str, Any]]:
        """A page of the book list: newest (highest id) first."""
        where, params = ("WHERE b.isbn = %s", [isbn]) if isbn is not None else ("", [])
        rows = self.db.query(f"{_BOOKS} {where} ORDER BY b.id DESC OFFSET %s LIMIT %s", (*params, offset, limit))
        return [_book(row) for row in rows]

    def book(self, book_id: int) -> dict[str, Any] | None:
        rows = self.db.query(f"{_BOOKS} WHERE b.id = %s", (book_id,))
        return _book(rows[0]) if rows else None

    def review_count(self, reviewer: str | None = None) -> int:
        if reviewer is None:
            return int(self.db.scalar("SELECT count(*) FROM catalog_review"))
        return int(self.db.scalar("SELECT count(*) FROM catalog_review WHERE reviewer = %s", (reviewer,)))

    def reviews(self, offset: int, limit: int, reviewer: str | None = None) -> list[dict[str, Any]]:
        """A page of the reviews feed: newest first (created_at, then id, both descending)."""
        where, params = ("WHERE r.reviewer = %s", [reviewer]) if reviewer is not None else ("", [])
        rows = self.db.query(f"{_REVIEWS} {where} ORDER BY r.created_at DESC, r.id DESC OFFSET %s LIMIT %s",
                             (*params, offset, limit))
        return [_review(row) for row in rows]

    def some_books(self, rng: random.Random, count: int, reviewed: bool | None = None) -> list[int]:
        """Ids of catalogue books picked by `rng`: with reviews, without, or either."""
        condition = {True: "EXISTS", False: "NOT EXISTS", None: ""}[reviewed]
        where = f"WHERE {condition} (SELECT 1 FROM catalog_review r WHERE r.book_id = b.id)" if condition else ""
        ids = [row["id"] for row in self.db.query(
            f"SELECT b.id FROM catalog_book b {where} ORDER BY b.id LIMIT 5000 OFFSET %s", (rng.randint(0, 20000),))]
        return rng.sample(ids, min(count, len(ids)))

    def some_reviewers(self, rng: random.Random, count: int, at_least: int = 1) -> list[str]:
        """Reviewers picked by `rng` who wrote at least `at_least` reviews."""
        names = [row["reviewer"] for row in self.db.query(
            "SELECT reviewer FROM catalog_review GROUP BY reviewer HAVING count(*) >= %s ORDER BY reviewer",
            (at_least,))]
        return rng.sample(names, min(count, len(names)))

    def case_twins(self, rng: random.Random, at_least: int = 1) -> tuple[str, str]:
        """A reader who wrote at least `at_least` reviews, and another whose name differs from theirs only in case."""
        rows = self.db.query(
            "SELECT array_agg(reviewer ORDER BY reviewer) AS names FROM ("
            "  SELECT reviewer FROM catalog_review GROUP BY reviewer HAVING count(*) >= %s) AS readers "
            "GROUP BY lower(reviewer) HAVING count(*) > 1 ORDER BY lower(reviewer)", (at_least,))
        if not rows:
            raise RuntimeError("the lab's data holds no two readers whose names differ only in case (dataset.py)")
        name, twin = rng.sample(rng.choice(rows)["names"], 2)
        return name, twin

    def isbn_of(self, book_id: int) -> str:
        return self.db.scalar("SELECT isbn FROM catalog_book WHERE id = %s", (book_id,))


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, Mean):
        # A JSON number parses to a float: 4.13 is 413/100 give or take the float's last bit.
        return isinstance(actual, int | float) and not isinstance(actual, bool) and math.isfinite(actual) \
            and any(abs(Fraction(actual) - value) < Fraction(1, 10**9) for value in expected.rounded())
    if isinstance(expected, datetime):
        return actual == timestamp(expected)
    if isinstance(expected, date):
        return actual == expected.isoformat()
    return actual == expected and type(actual) is type(expected)


def _shown(value: Any) -> Any:
    if isinstance(value, Mean):
        return value.shown()
    if isinstance(value, datetime):
        return timestamp(value)
    return value.isoformat() if isinstance(value, date) else value


def _help_for(actual: Any, expected: Any, help: str) -> str:
    """The brief's exact rule when a value is right but written another way (unrounded, another time zone)."""
    if isinstance(expected, Mean) and isinstance(actual, int | float) and not isinstance(actual, bool) \
            and math.isfinite(actual) and abs(Fraction(actual) - expected) < Fraction(1, 10):
        return ROUNDING_HELP
    if isinstance(expected, Mean) and isinstance(actual, str):
        return ROUNDING_HELP
    if isinstance(expected, datetime) and isinstance(actual, str):
        try:
            if datetime.fromisoformat(actual) == expected:
                return TIMESTAMP_HELP
        except ValueError:
            pass
    return help


def expect_item(item: Any, expected: dict[str, Any], where: str, *, help: str = CONTRACT) -> None:
    """One book or review of a reply equals what the database says, field by field."""
    if not isinstance(item, dict):
        raise Failure(f"{where} is not a JSON object: {str(item)[:120]}", help=help)
    missing = [name for name in expected if name not in item]
    if missing:
        raise Failure(f"{where} has no field {', '.join(repr(name) for name in missing)}",
                      evidence={"fields": sorted(item), "expected_fields": list(expected)}, help=help)
    for name, value in expected.items():
        if not _same(item[name], value):
            raise Failure(f"{where} says {name} = {item[name]!r}, but the database says {_shown(value)!r}",
                          evidence={"field": name, "yours": item[name], "database": _shown(value),
                                    "id": expected.get("id")}, help=_help_for(item[name], value, help))


def expect_page(reply: Reply, expected: list[dict[str, Any]], count: int | None, what: str, *,
                first: bool, last: bool, help: str = CONTRACT) -> dict[str, Any]:
    """A page reply holds exactly the expected items in order, the total count, and next/previous as they should be.

    `count` None is a page of the feed, which has no total.
    """
    request = f"{reply.method} {reply.path}"
    if reply.status != 200:
        answer = reply.error or f"{reply.status} {condensed(reply.text, 160)}"
        raise Failure(f"{request} answered {answer}, expected 200", evidence={"request": request}, help=help)
    body = reply.body
    fields = FEED_FIELDS if count is None else PAGE_FIELDS
    if not isinstance(body, dict) or any(name not in body for name in fields):
        raise Failure(f"{request} did not answer a page: a JSON object with {', '.join(fields)}",
                      evidence={"reply": condensed(reply.text, 300)}, help=help)
    if count is not None and body["count"] != count:
        raise Failure(f"{request} says count = {body['count']!r}, but the database holds {count:,} {what}",
                      evidence={"yours": body["count"], "database": count}, help=help)
    results = body["results"]
    if not isinstance(results, list) or len(results) != len(expected):
        size = len(results) if isinstance(results, list) else "no list of"
        raise Failure(f"{request} answered {size} {what}; the database says this page holds {len(expected)}",
                      evidence={"yours": size, "database": len(expected)}, help=help)
    ids = [item.get("id") if isinstance(item, dict) else None for item in results]
    wanted = [item["id"] for item in expected]
    if ids != wanted:
        raise Failure(f"{request} lists other {what}, or in another order, than the database: ids {ids[:8]} where "
                      f"the page holds {wanted[:8]}", evidence={"yours": ids, "database": wanted}, help=help)
    for position, (item, row) in enumerate(zip(results, expected, strict=True)):
        expect_item(item, row, f"item {position + 1} of {request} (id {row['id']})", help=help)
    for name, ends in (("next", last), ("previous", first)):
        if (body[name] is None) != ends:
            should = "null" if ends else "a link"
            raise Failure(f"{request} says {name} = {body[name]!r}; on this page it should be {should}",
                          evidence={name: body[name]}, help=help)
    return body


def link_path(link: Any) -> str | None:
    """The path and query of a `next` or `previous` link, to request it from this service."""
    if not isinstance(link, str):
        return None
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


class Pages:
    """The comparisons checks make, as a fixture (hidden check modules import nothing from each other)."""

    CONTRACT = CONTRACT
    REVIEW_FIELDS = REVIEW_FIELDS
    quote = staticmethod(quote)
    item = staticmethod(expect_item)
    page = staticmethod(expect_page)
    link = staticmethod(link_path)


@pytest.fixture(scope="session")
def pages() -> Pages:
    """Replies compared with the database: `pages.page(reply, rows, count, what, first=, last=)`, `pages.item`."""
    return Pages()


@pytest.fixture(scope="session")
def catalogue(db: Database) -> Catalogue:
    """The catalogue as PostgreSQL has it."""
    return Catalogue(db)


@pytest.fixture
def rng(lab) -> random.Random:
    """Random picks (pages, books, readers) that differ from run to run and replay with --seed."""
    return random.Random(lab.seed)


@pytest.fixture(scope="session")
def seeded_books(lab) -> list[dict[str, Any]]:
    """Books this run added, with no reviews yet (the newest of the catalogue)."""
    return lab.seed_data["fresh_books"]
