"""How books and reviews look in JSON (the brief fixes every field name)."""
from rest_framework import serializers

from catalog.models import Author, Book, Review


class AuthorSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Author
        fields = ["id", "name"]


class BookSerializer(serializers.ModelSerializer):
    author = AuthorSummarySerializer(read_only=True)
    review_count = serializers.SerializerMethodField()
    average_rating = serializers.SerializerMethodField()

    class Meta:
        model = Book
        fields = ["id", "title", "isbn", "genre", "published_on", "pages", "author", "review_count",
                  "average_rating"]

    # TODO: A page of books is serialized one book at a time, and each of these methods asks
    # the database again for that one book. Count the queries a page of 20 makes, then 100.
    def get_review_count(self, book):
        return book.reviews.count()

    def get_average_rating(self, book):
        ratings = [review.rating for review in book.reviews.all()]
        if not ratings:
            return None
        return round(sum(ratings) / len(ratings), 2)


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
