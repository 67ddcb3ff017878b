"""How events, carts and orders look in JSON (the brief fixes every field name)."""
from rest_framework import serializers

from tickets.models import Event, Order

MAX_TICKETS = 10


class EventSerializer(serializers.ModelSerializer):
    class Meta:
        model = Event
        fields = ["id", "name", "venue", "starts_at", "price"]


class OrderSerializer(serializers.ModelSerializer):
    class Meta:
        model = Order
        fields = ["id", "event", "email", "quantity", "total", "created_at"]


class CartItemSerializer(serializers.Serializer):
    event = serializers.IntegerField(min_value=1)
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_TICKETS)


class CheckoutSerializer(serializers.Serializer):
    email = serializers.EmailField()
