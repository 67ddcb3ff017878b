"""How books and reviews look in JSON (the brief fixes every field name)."""
from rest_framework import serializers

from catalog.models import Author, Book, Review


class AuthorSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Author
        fields = ["id", "name"]


class BookSerializer(serializers.ModelSerializer):
    """A book with its author and its reviews' count and average, both computed by PostgreSQL.

    Serialize books from `with_review_stats()`: the figures arrive as annotations of the same query.
    """

    author = AuthorSummarySerializer(read_only=True)
    review_count = serializers.IntegerField(read_only=True)
    average_rating = serializers.SerializerMethodField()

    class Meta:
        model = Book
        fields = ["id", "title", "isbn", "genre", "published_on", "pages", "author", "review_count",
                  "average_rating"]

    def get_average_rating(self, book):
        return None if book.average_rating is None else round(book.average_rating, 2)


class BookSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Book
        fields = ["id", "title"]


class ReviewSerializer(serializers.ModelSerializer):
    book = BookSummarySerializer(read_only=True)
    rating = serializers.IntegerField(min_value=1, max_value=5)

    class Meta:
        model = Review
        fields = ["id", "book", "reviewer", "rating", "body", "created_at"]
        read_only_fields = ["id", "book", "created_at"]
