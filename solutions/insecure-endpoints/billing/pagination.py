from rest_framework.pagination import PageNumberPagination


class InvoicePagination(PageNumberPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100  # a larger page_size gets 100 items; nobody can ask for the whole table at once
