"""Writing a review: the contract's answers, and the book's figures right the moment the POST has answered."""

from __future__ import annotations

from statistics import mean

from grader.checkkit import Failure, check

COUNTS_HELP = ("review_count and average_rating must include a review as soon as its POST has answered 201, on the "
               "book's page and in the list: whatever stores or computes them must see the new review.")


@check("review-write")
def test_review_write(client, db, catalogue, pages, expect, rng, lab, seeded_books):
    """A review is created with 201, bad ones are refused, and the book's count and average follow"""
    book = seeded_books[0]
    reviewer, other = lab.seed_data["reviewers"]
    path = f"/api/books/{book['id']}/reviews/"

    def written() -> int:
        return int(db.scalar("SELECT count(*) FROM catalog_review WHERE book_id = %s", (book["id"],)))

    for sent, why in (({"reviewer": reviewer, "rating": 0, "body": "Too low."}, "a rating of 0"),
                      ({"reviewer": reviewer, "rating": 6, "body": "Too high."}, "a rating of 6"),
                      ({"reviewer": reviewer, "rating": "great", "body": "Not a number."}, "a rating that is not a number"),
                      ({"rating": 4, "body": "Who wrote this?"}, "no reviewer")):
        expect.status(client.post(path, sent), 400, f"with {why}", sent=sent, help=pages.CONTRACT)
    if written():
        raise Failure(f"refused reviews were stored anyway: {written()} review(s) of book {book['id']} in the database",
                      help="A review that answers 400 must not be saved.")
    unknown = int(db.scalar("SELECT max(id) FROM catalog_book")) + 7919
    expect.status(client.post(f"/api/books/{unknown}/reviews/", {"reviewer": reviewer, "rating": 3, "body": "?"}),
                  404, "for a book that does not exist", help=pages.CONTRACT)

    ratings = [rng.randint(1, 5) for _ in range(3)]
    for number, rating in enumerate(ratings, start=1):
        sent = {"reviewer": reviewer if number < 3 else other, "rating": rating, "body": f"Review {number} of three."}
        reply = client.post(path, sent)
        expect.status(reply, 201, "with a valid review", sent=sent, help=pages.CONTRACT)
        body = expect.fields(reply, pages.REVIEW_FIELDS, help=pages.CONTRACT)
        row = db.query("SELECT id, reviewer, rating, body, created_at FROM catalog_review WHERE id = %s",
                       (body["id"],)) if isinstance(body["id"], int) else []
        if not row:
            raise Failure(f"POST {path} answered 201 with id {body['id']!r}, but catalog_review has no such review",
                          help=pages.CONTRACT)
        pages.item(body, {"id": row[0]["id"], "book": {"id": book["id"], "title": book["title"]},
                           "reviewer": sent["reviewer"], "rating": rating, "body": sent["body"],
                           "created_at": row[0]["created_at"]}, f"the 201 reply to POST {path}")

    expected = catalogue.book(book["id"])
    if expected["review_count"] != 3 or abs(expected["average_rating"] - mean(ratings)) > 1e-9:
        raise Failure(f"after three reviews the database holds {expected['review_count']} for book {book['id']}",
                      help=pages.CONTRACT)
    pages.item(client.get(f"/api/books/{book['id']}/").body, expected,
                f"GET /api/books/{book['id']}/ after three new reviews", help=COUNTS_HELP)
    pages.page(client.get("/api/books/?page_size=10"), catalogue.books(0, 10), catalogue.book_count(), "books",
                first=True, last=False, help=COUNTS_HELP)
    pages.page(client.get(f"/api/reviews/?reviewer={reviewer.replace(' ', '%20')}"),
                catalogue.reviews(0, 20, reviewer), None, "reviews", first=True, last=True, help=pages.CONTRACT)
