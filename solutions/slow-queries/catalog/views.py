"""The catalogue's API: books newest first, a book, the reviews feed, and writing a review."""
from django.db.models import Avg, Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404
from rest_framework import generics, status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from catalog.models import Book, Review
from catalog.pagination import CataloguePagination, FeedPagination
from catalog.serializers import BookSerializer, ReviewSerializer


def with_review_stats(books):
    """Books with their author joined in and their reviews' count and average computed by PostgreSQL.

    Correlated subqueries rather than .annotate(Count("reviews")): PostgreSQL works them out only
    for the rows of the page, and the paginator's count() stays a plain count of books (a GROUP BY
    over the reviews join would make it aggregate all 400,000 reviews first).
    """
    reviews = Review.objects.filter(book=OuterRef("pk")).order_by().values("book")
    return books.select_related("author").annotate(
        review_count=Coalesce(Subquery(reviews.annotate(n=Count("*")).values("n"), output_field=IntegerField()), 0),
        average_rating=Subquery(reviews.annotate(mean=Avg("rating")).values("mean")),
    )


@api_view(["GET"])
def book_list(request):
    """The catalogue, newest first, one page at a time; ?isbn= finds one book."""
    books = Book.objects.order_by("-id")
    isbn = request.query_params.get("isbn")
    if isbn:  # NUL cannot be in a PostgreSQL string, so no book has it (and psycopg refuses to send it)
        books = books.filter(isbn=isbn) if "\x00" not in isbn else books.none()
    paginator = CataloguePagination()
    # The queryset itself: the paginator counts it with one COUNT(*) and fetches one page with LIMIT.
    page = paginator.paginate_queryset(with_review_stats(books), request)
    return paginator.get_paginated_response(BookSerializer(page, many=True).data)


@api_view(["GET"])
def book_detail(request, pk):
    book = get_object_or_404(with_review_stats(Book.objects.all()), pk=pk)
    return Response(BookSerializer(book).data)


class ReviewFeed(generics.ListAPIView):
    """Every review, newest first; ?reviewer= shows one reader's reviews."""

    serializer_class = ReviewSerializer
    pagination_class = FeedPagination

    def get_queryset(self):
        # The book's title comes in the same query (a join), not one query per review.
        reviews = Review.objects.select_related("book")
        reviewer = self.request.query_params.get("reviewer")
        if reviewer:  # NUL cannot be in a PostgreSQL string, so no reviewer has it
            reviews = reviews.filter(reviewer=reviewer) if "\x00" not in reviewer else reviews.none()
        return reviews


@api_view(["POST"])
def create_review(request, pk):
    """A reader reviews a book: 201 with the review, 400 when the review is not valid."""
    book = get_object_or_404(Book, pk=pk)
    incoming = ReviewSerializer(data=request.data)
    incoming.is_valid(raise_exception=True)
    review = incoming.save(book=book)
    return Response(ReviewSerializer(review).data, status=status.HTTP_201_CREATED)
