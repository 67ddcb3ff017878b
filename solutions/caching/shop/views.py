"""The shop's API: products, category pages, the bestsellers and each customer's own pages.

Every read asks the shared cache first (shop.caching), under a key built only from what changes the answer,
and answers from PostgreSQL when the entry is missing or the cache is down.
"""
import math

from django.conf import settings
from django.db import transaction
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from shop import caching, reports
from shop.authentication import CustomerTokenAuthentication
from shop.models import Category, Order, OrderLine, Product
from shop.serializers import (MyOrdersQuerySerializer, OrderSerializer, ProductRowSerializer, ProductSerializer,
                              ProductUpdateSerializer)

SORTS = {"name": ("name", "id"), "price": ("price", "id")}
# Products and category pages are invalidated by every write (versioned keys), so their lifetime only bounds
# Redis' memory; it must stay below the versions' (CACHE_MAX_TTL_SECONDS, see caching.bump).
CATALOGUE_SECONDS = 600


class Pages(PageNumberPagination):
    page_size = 50


@api_view(["GET", "PATCH"])
def product_detail(request, pk):
    if request.method == "PATCH":
        return update_product(request, pk)
    key = f"product:{pk}:{caching.version(f'product:{pk}')}"
    data = caching.get(key)
    if data is None:
        product = get_object_or_404(Product.objects.select_related("category"), pk=pk)
        data = dict(ProductSerializer(product).data)
        caching.set(key, data, CATALOGUE_SECONDS)
    return Response(data)


def update_product(request, pk):
    """PATCH: change a product's name, price or stock; updated_at becomes now."""
    product = get_object_or_404(Product.objects.select_related("category"), pk=pk)
    changes = ProductUpdateSerializer(product, data=request.data, partial=True)
    changes.is_valid(raise_exception=True)
    changes.save()
    # Once the new row is committed (at once here: no transaction is open), every reader of the product's page
    # and of its category's pages moves to new keys, whichever worker of whichever replica it reaches next.
    transaction.on_commit(lambda: caching.bump(f"product:{product.pk}", f"category:{product.category.slug}"))
    return Response(ProductSerializer(product).data)


@api_view(["GET"])
def category_products(request, slug):
    """A category's products, 50 a page, by name or by price; ?page= and ?sort= are the only parameters read."""
    sort = request.query_params.get("sort", "name")
    if sort not in SORTS:
        raise ValidationError({"sort": [f"Sort by one of: {', '.join(SORTS)}."]})
    number = _page_number(request)
    # Tracking parameters and the order of the parameters are not in the key: they do not change the answer.
    key = None if number is None else f"category:{slug}:{caching.version(f'category:{slug}')}:{sort}:{number}"
    page = None if key is None else caching.get(key)
    if page is None:
        category = get_object_or_404(Category, slug=slug)
        page = _page(request, Product.objects.filter(category=category).order_by(*SORTS[sort]), ProductRowSerializer)
        if key is not None:
            caching.set(key, page, CATALOGUE_SECONDS)
    return Response(_paginated(request, page))


@api_view(["GET"])
def bestsellers(request):
    """The top 20 products by units sold; it may be up to BESTSELLERS_MAX_AGE_SECONDS old."""
    return Response(caching.single_flight("bestsellers", reports.bestsellers, settings.BESTSELLERS_MAX_AGE_SECONDS))


@api_view(["GET"])
@authentication_classes([CustomerTokenAuthentication])
@permission_classes([IsAuthenticated])
def my_dashboard(request):
    """The signed-in customer's summary; it may be up to PRIVATE_MAX_AGE_SECONDS old."""
    key = f"me:{request.user.pk}:dashboard"  # whose it is, always: a private answer under a shared key leaks
    data = caching.get(key)
    if data is None:
        data = reports.dashboard(request.user)
        caching.set(key, data, settings.PRIVATE_MAX_AGE_SECONDS)
    return Response(data)


@api_view(["GET"])
@authentication_classes([CustomerTokenAuthentication])
@permission_classes([IsAuthenticated])
def my_orders(request):
    """The signed-in customer's orders, newest first, 50 a page; ?min_total= keeps those of at least that many cents."""
    query = MyOrdersQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    min_total = query.validated_data.get("min_total")
    number = _page_number(request)
    key = None if number is None else f"me:{request.user.pk}:orders:{number}:{min_total}"
    page = None if key is None else caching.get(key)
    if page is None:
        orders = (Order.objects.filter(customer=request.user)
                  .prefetch_related(Prefetch("lines", queryset=OrderLine.objects.order_by("id")))
                  .order_by("-created_at", "-id"))
        if min_total is not None:
            orders = orders.filter(total__gte=min_total)
        page = _page(request, orders, OrderSerializer)
        if key is not None:
            caching.set(key, page, settings.PRIVATE_MAX_AGE_SECONDS)
    return Response(_paginated(request, page))


# -- pages: what is cached is the page's data; its links belong to the request -------------------------

def _page_number(request):
    """?page= as a whole number (what the paginator reads it as), or None for anything else ("last", "x")."""
    try:
        return int(request.query_params.get("page") or 1)
    except ValueError:
        return None


def _page(request, queryset, serializer_class):
    """One page of the queryset, as {"count", "number", "results"}: 404 for a page that does not exist."""
    pages = Pages()
    rows = pages.paginate_queryset(queryset, request)
    return {"count": pages.page.paginator.count, "number": pages.page.number,
            "results": serializer_class(rows, many=True).data}


def _paginated(request, page):
    """The page with `next` and `previous` as DRF's PageNumberPagination builds them from this request's URL.

    They are not cached: they hold the host and the parameters of the request, which may differ from those of
    the request that filled the cache (another replica, other tracking parameters).
    """
    url = request.build_absolute_uri()
    number, last = page["number"], max(1, math.ceil(page["count"] / Pages.page_size))
    previous = None
    if number == 2:
        previous = remove_query_param(url, "page")
    elif number > 2:
        previous = replace_query_param(url, "page", number - 1)
    return {"count": page["count"], "next": replace_query_param(url, "page", number + 1) if number < last else None,
            "previous": previous, "results": page["results"]}
