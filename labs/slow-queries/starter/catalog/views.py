"""The catalogue's API: books newest first, a book, the reviews feed, and writing a review."""
from django.shortcuts import get_object_or_404
from rest_framework import generics, status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from catalog.models import Book, Review
from catalog.pagination import CataloguePagination, FeedPagination
from catalog.serializers import BookSerializer, ReviewSerializer


@api_view(["GET"])
def book_list(request):
    """The catalogue, newest first, one page at a time; ?isbn= finds one book."""
    books = Book.objects.order_by("-id")
    isbn = request.query_params.get("isbn")
    if isbn:
        books = books.filter(isbn=isbn)
    paginator = CataloguePagination()
    # TODO: The paginator counts what it is given with len() and slices it. Think about what
    # it costs to hand it a list, now that the catalogue holds a hundred thousand books.
    page = paginator.paginate_queryset(list(books), request)
    return paginator.get_paginated_response(BookSerializer(page, many=True).data)


@api_view(["GET"])
def book_detail(request, pk):
    book = get_object_or_404(Book, pk=pk)
    return Response(BookSerializer(book).data)


class ReviewFeed(generics.ListAPIView):
    """Every review, newest first; ?reviewer= shows one reader's reviews."""

    serializer_class = ReviewSerializer
    pagination_class = FeedPagination

    def get_queryset(self):
        # TODO: Each review on the page shows its book's title. Where does that title come from?
        reviews = Review.objects.all()
        reviewer = self.request.query_params.get("reviewer")
        if reviewer:
            reviews = reviews.filter(reviewer=reviewer)
        return reviews


@api_view(["POST"])
def create_review(request, pk):
    """A reader reviews a book: 201 with the review, 400 when the review is not valid."""
    book = get_object_or_404(Book, pk=pk)
    incoming = ReviewSerializer(data=request.data)
    incoming.is_valid(raise_exception=True)
    review = incoming.save(book=book)
    return Response(ReviewSerializer(review).data, status=status.HTTP_201_CREATED)
