from django.apps import AppConfig


class TicketsConfig(AppConfig):
    """Events, carts and orders of the box office."""

    name = "tickets"
