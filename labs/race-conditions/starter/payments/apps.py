from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    """The payment provider's side of the shop (off-limits: see gateway.py)."""

    name = "payments"
