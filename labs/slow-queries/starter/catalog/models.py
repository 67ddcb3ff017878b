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
    # TODO: Shop assistants look books up by ISBN all day long. How does PostgreSQL find one
    # ISBN among a hundred thousand?
    isbn = models.CharField(max_length=13)
    author = models.ForeignKey(Author, related_name="books", on_delete=models.CASCADE)
    genre = models.CharField(max_length=40)
    published_on = models.DateField()
    pages = models.PositiveIntegerField()

    def __str__(self):
        return self.title


class Review(models.Model):
    book = models.ForeignKey(Book, related_name="reviews", on_delete=models.CASCADE)
    # TODO: The reviews feed is read newest first, and filtered by reviewer. Ask PostgreSQL
    # (EXPLAIN) how it answers those queries on a quarter of a million reviews.
    reviewer = models.CharField(max_length=80)
    rating = models.PositiveSmallIntegerField()
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"{self.reviewer} on {self.book_id}: {self.rating}"
