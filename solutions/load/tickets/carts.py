"""Carts: what a buyer has picked and not paid for yet.

A cart is {"id": str, "items": [{"event": int, "quantity": int, "price": int}], "total": int}. Carts live in
Redis, through Django's cache: every worker of every replica reads and writes the same ones, and an
abandoned cart expires on its own.
"""
import secrets

from django.core.cache import cache

CART_SECONDS = 2 * 60 * 60


def _key(cart_id):
    return f"cart:{cart_id}"


def create():
    cart = {"id": secrets.token_urlsafe(16), "items": [], "total": 0}
    cache.set(_key(cart["id"]), cart, CART_SECONDS)
    return cart


def get(cart_id):
    return cache.get(_key(cart_id))


def save(cart):
    cart["total"] = sum(item["price"] * item["quantity"] for item in cart["items"])
    cache.set(_key(cart["id"]), cart, CART_SECONDS)
    return cart


def delete(cart_id):
    cache.delete(_key(cart_id))
