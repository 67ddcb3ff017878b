from django.apps import AppConfig


class StoreConfig(AppConfig):
    """Products, orders, wallets and transfers of the flash-sale shop."""

    name = "store"
