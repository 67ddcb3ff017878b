"""Pages of the catalogue's lists: numbered pages for books, a cursor for the reviews feed."""
from rest_framework.pagination import CursorPagination, PageNumberPagination


class CataloguePagination(PageNumberPagination):
    """Twenty items a page unless the client asks for another size with ?page_size=."""

    page_size = 20
    page_size_query_param = "page_size"
    # A ceiling on what one request may ask for: ?page_size=1000000 gets a page of 100.
    max_page_size = 100


class FeedPagination(CursorPagination):
    """The reviews feed, newest first: {"next", "previous", "results"}, with ?cursor= taken from those links.

    No page count and no total, as in any feed: a total would mean counting every review on every request.
    """

    ordering = ("-created_at", "-id")
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100
