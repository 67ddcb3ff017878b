"""How products, orders and a customer's dashboard look in JSON (the brief fixes every field name)."""
from rest_framework import serializers

from shop.models import Order, OrderLine, Product

LARGEST_INTEGER = 2_147_483_647  # PostgreSQL's integer


class ProductSerializer(serializers.ModelSerializer):
    category = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Product
        fields = ["id", "name", "category", "price", "stock", "updated_at"]


class ProductRowSerializer(serializers.ModelSerializer):
    """A product as a category page lists it."""

    class Meta:
        model = Product
        fields = ["id", "name", "price", "stock"]


class WholeNumberField(serializers.IntegerField):
    """A JSON integer: 12, not "12", 12.0 or true."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class ProductUpdateSerializer(serializers.ModelSerializer):
    """What PATCH /api/products/<id>/ may change."""

    price = WholeNumberField(min_value=0, max_value=LARGEST_INTEGER)
    stock = WholeNumberField(min_value=0, max_value=LARGEST_INTEGER)

    class Meta:
        model = Product
        fields = ["name", "price", "stock"]


class OrderLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = OrderLine
        fields = ["product", "quantity", "price"]


class OrderSerializer(serializers.ModelSerializer):
    lines = OrderLineSerializer(many=True, read_only=True)

    class Meta:
        model = Order
        fields = ["id", "total", "created_at", "lines"]


class RecentOrderSerializer(serializers.ModelSerializer):
    class Meta:
        model = Order
        fields = ["id", "total", "created_at"]


class MyOrdersQuerySerializer(serializers.Serializer):
    """The query parameters of GET /api/me/orders/ that change its answer (page is the paginator's)."""

    min_total = serializers.IntegerField(required=False, min_value=0, max_value=LARGEST_INTEGER)


def timestamp(moment):
    """A datetime as every field of this API writes it (ISO 8601, UTC, ending in Z)."""
    return serializers.DateTimeField().to_representation(moment)
