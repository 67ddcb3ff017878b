"""The whole API under load, judged against the reference solution measured on this machine."""

from __future__ import annotations

from grader.checkkit import check


@check("under-load")
def test_under_load(load, catalogue, rng):
    """Under load: no failed request, throughput and median latency within the calibrated ratios"""
    total = catalogue.book_count()
    load.verdict(data={
        "book_pages": max(1, min(total // 20, 500)),
        "books": catalogue.some_books(rng, 300),
        "isbns": [catalogue.isbn_of(book_id) for book_id in catalogue.some_books(rng, 50)],
        "reviewers": catalogue.some_reviewers(rng, 150, at_least=5),
    })
