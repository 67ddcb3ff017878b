"""The shop's API: products, category pages, the bestsellers and each customer's own pages.

Every read asks Django's cache first and keeps what it computed there for the next request.
"""
from django.conf import settings
from django.core.cache import cache
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from shop import reports
from shop.authentication import CustomerTokenAuthentication
from shop.models import Category, Order, OrderLine, Product
from shop.serializers import (MyOrdersQuerySerializer, OrderSerializer, ProductRowSerializer, ProductSerializer,
                              ProductUpdateSerializer)

SORTS = {"name": ("name", "id"), "price": ("price", "id")}

# TODO: Every view below talks to the cache before it does anything else. Picture the cache server
# stopped, or answering after ten seconds: what does a customer get back from each of them?


class Pages(PageNumberPagination):
    page_size = 50


@api_view(["GET", "PATCH"])
def product_detail(request, pk):
    if request.method == "PATCH":
        return update_product(request, pk)
    key = f"product:{pk}"
    data = cache.get(key)
    if data is None:
        product = get_object_or_404(Product.objects.select_related("category"), pk=pk)
        data = ProductSerializer(product).data
        # TODO: timeout=None keeps this copy for as long as the process lives. After a PATCH, how long
        # does each worker of each replica go on answering with the old price?
        cache.set(key, data, timeout=None)
    return Response(data)


def update_product(request, pk):
    """PATCH: change a product's name, price or stock; updated_at becomes now."""
    product = get_object_or_404(Product.objects.select_related("category"), pk=pk)
    changes = ProductUpdateSerializer(product, data=request.data, partial=True)
    changes.is_valid(raise_exception=True)
    changes.save()
    # TODO: PostgreSQL has the new values now. Which cached answers still show the old ones: this product's
    # page, and which pages of its category?
    return Response(ProductSerializer(product).data)


@api_view(["GET"])
def category_products(request, slug):
    """A category's products, 50 a page, by name or by price; ?page= and ?sort= are the only parameters read."""
    category = get_object_or_404(Category, slug=slug)
    # TODO: This key is the whole query string, tracking parameters and their order included, and it never
    # expires. Count the keys after a thousand visitors arrive from a newsletter, each link tagged differently.
    key = request.get_full_path()
    data = cache.get(key)
    if data is None:
        sort = request.query_params.get("sort", "name")
        if sort not in SORTS:
            raise ValidationError({"sort": [f"Sort by one of: {', '.join(SORTS)}."]})
        products = Product.objects.filter(category=category).order_by(*SORTS[sort])
        pages = Pages()
        page = pages.paginate_queryset(products, request)
        data = pages.get_paginated_response(ProductRowSerializer(page, many=True).data).data
        cache.set(key, data, timeout=None)
    return Response(data)


@api_view(["GET"])
def bestsellers(request):
    """The top 20 products by units sold; it may be up to BESTSELLERS_MAX_AGE_SECONDS old."""
    data = cache.get("bestsellers")
    if data is None:
        # TODO: When this entry expires, every request that arrives before it is back runs the aggregate,
        # in every process. How many run it at once under load, and how long does each then take?
        data = reports.bestsellers()
        cache.set("bestsellers", data, settings.BESTSELLERS_MAX_AGE_SECONDS)
    return Response(data)


@api_view(["GET"])
@authentication_classes([CustomerTokenAuthentication])
@permission_classes([IsAuthenticated])
def my_dashboard(request):
    """The signed-in customer's summary; it may be up to PRIVATE_MAX_AGE_SECONDS old."""
    # TODO: Whose dashboard does this key hold? Sign in as two customers, one after the other, on the
    # same worker.
    data = cache.get("dashboard")
    if data is None:
        data = reports.dashboard(request.user)
        cache.set("dashboard", data, settings.PRIVATE_MAX_AGE_SECONDS)
    return Response(data)


@api_view(["GET"])
@authentication_classes([CustomerTokenAuthentication])
@permission_classes([IsAuthenticated])
def my_orders(request):
    """The signed-in customer's orders, newest first, 50 a page; ?min_total= keeps those of at least that many cents."""
    # TODO: Two customers asking for ?page=1 get the same key here. What does the second one see?
    key = "my-orders:" + request.META.get("QUERY_STRING", "")
    data = cache.get(key)
    if data is None:
        query = MyOrdersQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        orders = (Order.objects.filter(customer=request.user)
                  .prefetch_related(Prefetch("lines", queryset=OrderLine.objects.order_by("id")))
                  .order_by("-created_at", "-id"))
        if "min_total" in query.validated_data:
            orders = orders.filter(total__gte=query.validated_data["min_total"])
        pages = Pages()
        page = pages.paginate_queryset(orders, request)
        data = pages.get_paginated_response(OrderSerializer(page, many=True).data).data
        cache.set(key, data, settings.PRIVATE_MAX_AGE_SECONDS)
    return Response(data)
