"""Per-run rows of the slow-queries checks, on top of the catalogue the template already holds.

Runs inside the learner's Django process after migrate, through their models: a new author with a few new
books that have no reviews yet (the write check reviews them), with titles, ISBNs and sizes drawn from the
run's seed. The big catalogue itself (dataset.py) is loaded once per template, not here.
"""

from __future__ import annotations

import random
from datetime import date
from typing import Any

from django.apps import apps

_WORDS = ["Amber", "Cobalt", "Harbour", "Lantern", "Meridian", "Orchard", "Quarry", "Saffron", "Tundra", "Willow",
          "Basalt", "Cinder", "Fathom", "Juniper", "Marrow", "Pewter", "Rook", "Sorrel", "Thistle", "Vesper"]
_READERS = ["Ada", "Bruno", "Chidi", "Dana", "Emeka", "Farah", "Goran", "Hana", "Ivo", "Jun", "Kemi", "Lars"]


def seed(rng: random.Random) -> dict[str, Any]:
    """A fresh author and books for the write check; returns them and the new reviewers' names."""
    Author = apps.get_model("catalog", "Author")
    Book = apps.get_model("catalog", "Book")

    author = Author.objects.create(name=f"{rng.choice(_WORDS)} {rng.choice(_WORDS)}son", country="Iceland",
                                   born=rng.randint(1950, 1990))
    books = []
    for _ in range(rng.randint(3, 5)):
        # ISBNs in the 979 range: never one of the catalogue's (978).
        book = Book.objects.create(
            title=f"The {rng.choice(_WORDS)} {rng.choice(_WORDS)} {rng.randint(2, 99)}",
            isbn=f"979{rng.randint(0, 10**10 - 1):010d}", author=author, genre="poetry",
            published_on=date(2026, rng.randint(1, 11), rng.randint(1, 28)), pages=rng.randint(90, 400))
        books.append({"id": book.pk, "title": book.title, "isbn": book.isbn})
    reviewers = [f"{rng.choice(_READERS)} Newreader {rng.randint(1000, 9999)}" for _ in range(2)]
    return {"author": {"id": author.pk, "name": author.name}, "fresh_books": books, "reviewers": reviewers}


def demo(rng: random.Random) -> list[str]:
    """`lab run` serves the catalogue as loaded; returns what to try first."""
    Book = apps.get_model("catalog", "Book")
    Review = apps.get_model("catalog", "Review")
    newest = Book.objects.order_by("-id").values_list("id", flat=True).first()
    reader = Review.objects.order_by("id").values_list("reviewer", flat=True).first()
    return [
        f"{Book.objects.count():,} books and {Review.objects.count():,} reviews",
        f"the newest book: {newest}   (BOOK)",
        f"a reviewer: {reader}   (READER)",
    ]
