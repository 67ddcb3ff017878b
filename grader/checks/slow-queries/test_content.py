"""What the API answers: every page, book and review equal to what the database holds, in the brief's order."""

from __future__ import annotations

import math

from grader.checkkit import Failure, check


@check("books-content")
def test_books_content(client, catalogue, pages, rng, seeded_books):
    """Book pages, a book's page and ?isbn= answer exactly what the database holds, newest first"""
    total = catalogue.book_count()
    pages.page(client.get("/api/books/"), catalogue.books(0, 20), total, "books", first=True, last=False)
    size = rng.randint(5, 15)
    page = rng.randint(2, 400)
    pages.page(client.get(f"/api/books/?page={page}&page_size={size}"), catalogue.books((page - 1) * size, size),
                total, "books", first=False, last=False)
    last = math.ceil(total / 50)
    pages.page(client.get(f"/api/books/?page={last}&page_size=50"), catalogue.books((last - 1) * 50, 50), total,
                "books", first=False, last=True)

    for book_id in [*catalogue.some_books(rng, 2, reviewed=True), *catalogue.some_books(rng, 1, reviewed=False),
                    seeded_books[0]["id"]]:
        reply = client.get(f"/api/books/{book_id}/")
        if reply.status != 200:
            raise Failure(f"GET /api/books/{book_id}/ answered {reply.status or reply.error}, expected 200",
                          evidence={"book": book_id}, help=pages.CONTRACT)
        pages.item(reply.body, catalogue.book(book_id), f"GET /api/books/{book_id}/")
    unknown = int(catalogue.db.scalar("SELECT max(id) FROM catalog_book")) + 7919
    reply = client.get(f"/api/books/{unknown}/")
    if reply.status != 404:
        raise Failure(f"GET /api/books/{unknown}/ (no such book) answered {reply.status or reply.error}, expected 404",
                      help=pages.CONTRACT)

    book_id = catalogue.some_books(rng, 1, reviewed=True)[0]
    isbn = catalogue.isbn_of(book_id)
    pages.page(client.get(f"/api/books/?isbn={isbn}"), catalogue.books(0, 20, isbn=isbn), 1, "books",
                first=True, last=True)
    pages.page(client.get("/api/books/?isbn=9780000000000"), [], 0, "books", first=True, last=True)


@check("reviews-content")
def test_reviews_content(client, catalogue, pages, rng):
    """The reviews feed and one reader's reviews answer exactly what the database holds, newest first"""
    size = rng.randint(5, 12)
    path = f"/api/reviews/?page_size={size}"
    for number in range(3):  # the first page, then two more by following `next`
        body = pages.page(client.get(path), catalogue.reviews(number * size, size), None, "reviews",
                          first=number == 0, last=False)
        path = pages.link(body["next"])
    for reviewer in catalogue.some_reviewers(rng, 2, at_least=12):
        count = catalogue.review_count(reviewer)
        path, number = f"/api/reviews/?reviewer={pages.quote(reviewer)}&page_size=5", 0
        while path is not None and number < 10:
            body = pages.page(client.get(path), catalogue.reviews(number * 5, 5, reviewer), None, "reviews",
                              first=number == 0, last=(number + 1) * 5 >= count)
            path, number = pages.link(body["next"]), number + 1

    # Two readers whose names differ only in case: ?reviewer= is an exact match, so one's page holds none of the other's.
    reviewer, twin = catalogue.case_twins(rng, at_least=30)
    path = f"/api/reviews/?reviewer={pages.quote(reviewer)}&page_size=30"
    reply = client.get(path)
    results = reply.body.get("results") if reply.status == 200 and isinstance(reply.body, dict) else None
    others = [item for item in results or [] if isinstance(item, dict) and item.get("reviewer") != reviewer]
    if others:
        names = sorted({str(item.get("reviewer")) for item in others})
        raise Failure(f"GET {path} lists {len(others)} review(s) by {', '.join(map(repr, names))}, not by "
                      f"{reviewer!r}: ?reviewer= is an exact match, and {twin!r} is another reader",
                      evidence={"request": f"GET {path}", "asked for": reviewer,
                                "also listed": [{"id": item.get("id"), "reviewer": item.get("reviewer")}
                                                for item in others[:5]]},
                      help="The brief: ?reviewer=<name> lists one reader's reviews, an exact match (case counts). "
                           "Whatever makes the filter fast must not make it match more readers.")
    pages.page(reply, catalogue.reviews(0, 30, reviewer), None, "reviews", first=True,
               last=catalogue.review_count(reviewer) <= 30)
