from django.apps import AppConfig


class CatalogConfig(AppConfig):
    """Authors, books and reviews of the bookstore's catalogue."""

    name = "catalog"
