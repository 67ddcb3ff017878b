"""The catalogue: authors, their books, and readers' reviews of the books.

The tables and columns below are part of the brief's contract (the lab's data is
loaded into them): you may add fields, indexes and tables, never rename or drop.
"""
from django.db import models
from django.utils import timezone


class Author(models.Model):
    name = models.CharField(max_length=120)
    country = models.CharField(max_length=60)
    born = models.PositiveSmallIntegerField(null=True, blank=True)

    def __str__(self):
        return self.name


class Book(models.Model):
    title = models.CharField(max_length=200)
    # An index: an ISBN lookup reads a few index pages instead of all hundred thousand rows.
    isbn = models.CharField(max_length=13, db_index=True)
    author = models.ForeignKey(Author, related_name="books", on_delete=models.CASCADE)
    genre = models.CharField(max_length=40)
    published_on = models.DateField()
    pages = models.PositiveIntegerField()

    def __str__(self):
        return self.title


class Review(models.Model):
    book = models.ForeignKey(Book, related_name="reviews", on_delete=models.CASCADE)
    reviewer = models.CharField(max_length=80)
    rating = models.PositiveSmallIntegerField()
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # The feed's order: PostgreSQL reads the newest reviews straight off the index and stops
            # after one page, instead of sorting all of them for every request.
            models.Index(fields=["-created_at", "-id"], name="review_newest_first"),
            # One reader's reviews, already in the feed's order: the filter and the order in one index.
            models.Index(fields=["reviewer", "-created_at", "-id"], name="review_by_reviewer"),
        ]

    def __str__(self):
        return f"{self.reviewer} on {self.book_id}: {self.rating}"
