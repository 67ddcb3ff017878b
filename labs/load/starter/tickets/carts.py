"""Carts: what a buyer has picked and not paid for yet.

A cart is {"id": str, "items": [{"event": int, "quantity": int, "price": int}], "total": int}.
"""
import secrets

# TODO: This dictionary lives in the memory of one worker process. The box office now runs two
# replicas of three workers each: which of them answers the buyer's next request?
CARTS = {}


def create():
    cart = {"id": secrets.token_urlsafe(16), "items": [], "total": 0}
    CARTS[cart["id"]] = cart
    return cart


def get(cart_id):
    return CARTS.get(cart_id)


def save(cart):
    cart["total"] = sum(item["price"] * item["quantity"] for item in cart["items"])
    CARTS[cart["id"]] = cart
    return cart


def delete(cart_id):
    CARTS.pop(cart_id, None)
