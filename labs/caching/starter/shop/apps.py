from django.apps import AppConfig


class ShopConfig(AppConfig):
    """The catalogue, the customers and their orders."""

    name = "shop"
