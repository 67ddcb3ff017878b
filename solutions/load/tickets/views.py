"""The box office's API: events, carts, checkout and the orders ledger."""
from django.db import transaction
from django.shortcuts import get_object_or_404
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from tickets import carts, seating
from tickets.models import Event, Order
from tickets.serializers import CartItemSerializer, CheckoutSerializer, EventSerializer, OrderSerializer

ORDERS_PAGE_SIZE = 50


@api_view(["GET"])
def event_list(request):
    return Response(EventSerializer(Event.objects.order_by("starts_at", "id"), many=True).data)


@api_view(["GET"])
def event_detail(request, pk):
    """One event, with the seats the venue has left."""
    event = get_object_or_404(Event, pk=pk)
    return Response({**EventSerializer(event).data, "seats_left": seating.seats_left(event.id)})


@api_view(["POST"])
def cart_create(request):
    return Response(carts.create(), status=status.HTTP_201_CREATED)


def _cart_or_404(cart_id):
    cart = carts.get(cart_id)
    if cart is None:
        return None, Response({"detail": "No such cart."}, status=status.HTTP_404_NOT_FOUND)
    return cart, None


@api_view(["GET"])
def cart_detail(request, cart_id):
    cart, missing = _cart_or_404(cart_id)
    return missing or Response(cart)


@api_view(["POST"])
def cart_add(request, cart_id):
    """Put tickets for an event in the cart (more of an event already there adds up)."""
    cart, missing = _cart_or_404(cart_id)
    if missing:
        return missing
    incoming = CartItemSerializer(data=request.data)
    incoming.is_valid(raise_exception=True)
    event = get_object_or_404(Event, pk=incoming.validated_data["event"])
    quantity = incoming.validated_data["quantity"]
    seating.confirm(event.id, quantity)
    for item in cart["items"]:
        if item["event"] == event.id:
            item["quantity"] += quantity
            break
    else:
        cart["items"].append({"event": event.id, "quantity": quantity, "price": event.price})
    return Response(carts.save(cart))


@api_view(["POST"])
def cart_checkout(request, cart_id):
    """Turn the cart into one order per event, then forget the cart."""
    cart, missing = _cart_or_404(cart_id)
    if missing:
        return missing
    incoming = CheckoutSerializer(data=request.data)
    incoming.is_valid(raise_exception=True)
    if not cart["items"]:
        return Response({"detail": "The cart is empty."}, status=status.HTTP_400_BAD_REQUEST)
    with transaction.atomic():
        orders = [Order.objects.create(event_id=item["event"], email=incoming.validated_data["email"],
                                       quantity=item["quantity"], total=item["price"] * item["quantity"])
                  for item in cart["items"]]
    carts.delete(cart_id)
    return Response({"orders": OrderSerializer(orders, many=True).data}, status=status.HTTP_201_CREATED)


@api_view(["GET"])
def order_list(request):
    """The orders ledger, newest first, ORDERS_PAGE_SIZE a page: {"count", "next", "previous", "results"}."""
    orders = Order.objects.order_by("-id")
    try:
        page = max(int(request.query_params.get("page", 1)), 1)
    except ValueError:
        page = 1
    start = (page - 1) * ORDERS_PAGE_SIZE
    # PostgreSQL counts and returns one page (COUNT(*), then LIMIT 50 OFFSET n): fifty objects in memory.
    count = orders.count()
    if start >= count and page > 1:  # past the last page; ?page=10**30 would overflow PostgreSQL's OFFSET
        return Response({"detail": "Invalid page."}, status=status.HTTP_404_NOT_FOUND)
    rows = list(orders[start:start + ORDERS_PAGE_SIZE])

    def link(number):
        return request.build_absolute_uri(f"{request.path}?page={number}")

    return Response({
        "count": count,
        "next": link(page + 1) if start + ORDERS_PAGE_SIZE < count else None,
        "previous": link(page - 1) if page > 1 else None,
        "results": OrderSerializer(rows, many=True).data,
    })
