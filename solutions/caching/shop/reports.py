"""What the shop computes from its order history: the bestsellers, and a customer's dashboard."""
from django.db.models import Count, Sum
from django.utils import timezone

from shop.models import OrderLine
from shop.serializers import RecentOrderSerializer, timestamp

BESTSELLERS = 20
RECENT_ORDERS = 5


def bestsellers():
    """The top products by units sold over every order line, ties by id: {"generated_at", "products"}.

    It reads all of shop_orderline, so each call costs a few hundred milliseconds.
    """
    generated_at = timezone.now()
    rows = (OrderLine.objects.values("product_id", "product__name")
            .annotate(units=Sum("quantity"))
            .order_by("-units", "product_id")[:BESTSELLERS])
    return {
        "generated_at": timestamp(generated_at),
        "products": [{"id": row["product_id"], "name": row["product__name"], "units": row["units"]} for row in rows],
    }


def dashboard(customer):
    """One customer's summary: {"customer", "orders", "spent", "favourite_category", "recent"}."""
    orders = customer.orders.all()
    totals = orders.aggregate(orders=Count("id"), spent=Sum("total"))
    favourite = (OrderLine.objects.filter(order__customer=customer)
                 .values("product__category__slug")
                 .annotate(units=Sum("quantity"))
                 .order_by("-units", "product__category__slug")
                 .first())
    return {
        "customer": customer.username,
        "orders": totals["orders"],
        "spent": totals["spent"] or 0,
        "favourite_category": favourite["product__category__slug"] if favourite else None,
        "recent": list(RecentOrderSerializer(orders.order_by("-created_at", "-id")[:RECENT_ORDERS], many=True).data),
    }
