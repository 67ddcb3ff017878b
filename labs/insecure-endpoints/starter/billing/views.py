"""The invoicing API."""
from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.db import connection
from django.shortcuts import get_object_or_404
from rest_framework import generics, permissions, status
from rest_framework.decorators import api_view, permission_classes
from rest_framework.response import Response

from billing import webhooks
from billing.authentication import issue_token
from billing.models import Invoice, Webhook
from billing.serializers import InvoiceSerializer, LoginSerializer, UserSerializer, WebhookSerializer

User = get_user_model()


# -- sign-in -------------------------------------------------------------------------------------

@api_view(["POST"])
@permission_classes([permissions.AllowAny])
def login(request):
    serializer = LoginSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    user = authenticate(request, username=serializer.validated_data["username"],
                        password=serializer.validated_data["password"])
    if user is None:
        return Response({"detail": "Wrong username or password."}, status=status.HTTP_401_UNAUTHORIZED)
    token = issue_token(user)
    return Response({"token": token.key, "expires_in": settings.TOKEN_TTL_SECONDS})


@api_view(["POST"])
def logout(request):
    request.auth.delete()
    return Response(status=status.HTTP_204_NO_CONTENT)


# -- people --------------------------------------------------------------------------------------

class Me(generics.RetrieveUpdateAPIView):
    serializer_class = UserSerializer
    http_method_names = ["get", "patch"]

    def get_object(self):
        return self.request.user


class UserList(generics.ListAPIView):
    """Teammates: everyone who can be named on an invoice."""

    serializer_class = UserSerializer
    queryset = User.objects.filter(is_active=True).order_by("id")
    pagination_class = None


class UserDetail(generics.RetrieveAPIView):
    serializer_class = UserSerializer
    queryset = User.objects.filter(is_active=True)


class AdminUserList(generics.ListAPIView):
    """Every account, for the support team."""

    serializer_class = UserSerializer
    queryset = User.objects.order_by("id")
    pagination_class = None


# -- invoices ------------------------------------------------------------------------------------

class InvoiceList(generics.ListCreateAPIView):
    serializer_class = InvoiceSerializer

    def get_queryset(self):
        return Invoice.objects.filter(owner=self.request.user)


class InvoiceDetail(generics.RetrieveUpdateDestroyAPIView):
    serializer_class = InvoiceSerializer
    queryset = Invoice.objects.all()
    http_method_names = ["get", "patch", "delete"]


@api_view(["GET"])
def search_invoices(request):
    """Invoices of the user whose customer contains `q`, at least `min_amount` cents."""
    q = request.query_params.get("q", "").replace("'", "''")
    min_amount = request.query_params.get("min_amount") or "0"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM billing_invoice "
            f"WHERE owner_id = {request.user.pk} AND customer ILIKE '%%{q}%%' AND amount_cents >= {min_amount} "
            "ORDER BY id DESC LIMIT 100"
        )
        ids = [row[0] for row in cursor.fetchall()]
    invoices = sorted(Invoice.objects.filter(id__in=ids), key=lambda invoice: -invoice.id)
    return Response({"results": InvoiceSerializer(invoices, many=True).data})


# -- webhooks ------------------------------------------------------------------------------------

class WebhookList(generics.ListCreateAPIView):
    serializer_class = WebhookSerializer
    pagination_class = None

    def get_queryset(self):
        return Webhook.objects.filter(owner=self.request.user)

    def perform_create(self, serializer):
        serializer.save(owner=self.request.user)


@api_view(["POST"])
def ping_webhook(request, pk):
    webhook = get_object_or_404(Webhook, pk=pk, owner=request.user)
    answer = webhooks.call(webhook.url, {"event": "ping", "webhook": webhook.pk})
    return Response({"url": webhook.url, **answer})
