"""Pages of the catalogue's lists: numbered pages for books, a cursor for the reviews feed."""
from rest_framework.pagination import CursorPagination, PageNumberPagination


class CataloguePagination(PageNumberPagination):
    """Twenty items a page unless the client asks for another size with ?page_size=."""

    page_size = 20
    page_size_query_param = "page_size"
    # TODO: A client just asked for ?page_size=1000000. What should the largest page be?


class FeedPagination(CursorPagination):
    """The reviews feed, newest first: {"next", "previous", "results"}, with ?cursor= taken from those links.

    No page count and no total, as in any feed: a total would mean counting every review on every request.
    """

    ordering = ("-created_at", "-id")
    page_size = 20
    page_size_query_param = "page_size"
    # TODO: The same question as for the book list: how many reviews may one page hold?
