"""The invoicing API."""
from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.shortcuts import get_object_or_404
from rest_framework import generics, permissions, status
from rest_framework.decorators import api_view, permission_classes
from rest_framework.response import Response

from billing import throttling, webhooks
from billing.authentication import issue_token
from billing.models import Invoice, Webhook
from billing.serializers import (AdminUserSerializer, InvoiceSerializer, LoginSerializer, MeSerializer, SearchSerializer,
                                 TeammateSerializer, WebhookSerializer)

User = get_user_model()


# -- sign-in -------------------------------------------------------------------------------------

@api_view(["POST"])
@permission_classes([permissions.AllowAny])
def login(request):
    serializer = LoginSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    username = serializer.validated_data["username"]
    if not throttling.admit(username):
        return Response({"detail": "Too many failed logins for this account; try again later."},
                        status=status.HTTP_429_TOO_MANY_REQUESTS,
                        headers={"Retry-After": str(settings.LOGIN_LOCK_SECONDS)})
    user = authenticate(request, username=username, password=serializer.validated_data["password"])
    if user is None:
        return Response({"detail": "Wrong username or password."}, status=status.HTTP_401_UNAUTHORIZED)
    throttling.succeeded(username)
    token = issue_token(user)
    return Response({"token": token.key, "expires_in": settings.TOKEN_TTL_SECONDS})


@api_view(["POST"])
def logout(request):
    request.auth.delete()
    return Response(status=status.HTTP_204_NO_CONTENT)


# -- people --------------------------------------------------------------------------------------

class Me(generics.RetrieveUpdateAPIView):
    serializer_class = MeSerializer
    http_method_names = ["get", "patch"]

    def get_object(self):
        return self.request.user


class UserList(generics.ListAPIView):
    """Teammates: everyone who can be named on an invoice."""

    serializer_class = TeammateSerializer
    queryset = User.objects.filter(is_active=True).order_by("id")
    pagination_class = None


class UserDetail(generics.RetrieveAPIView):
    serializer_class = TeammateSerializer
    queryset = User.objects.filter(is_active=True)


class AdminUserList(generics.ListAPIView):
    """Every account, for the support team."""

    serializer_class = AdminUserSerializer
    permission_classes = [permissions.IsAdminUser]
    queryset = User.objects.order_by("id")
    pagination_class = None


# -- invoices ------------------------------------------------------------------------------------

class InvoiceList(generics.ListCreateAPIView):
    serializer_class = InvoiceSerializer

    def get_queryset(self):
        return Invoice.objects.filter(owner=self.request.user)

    def perform_create(self, serializer):
        serializer.save(owner=self.request.user)


class InvoiceDetail(generics.RetrieveUpdateDestroyAPIView):
    serializer_class = InvoiceSerializer
    http_method_names = ["get", "patch", "delete"]

    def get_queryset(self):  # someone else's invoice is 404, as if it did not exist
        return Invoice.objects.filter(owner=self.request.user)


@api_view(["GET"])
def search_invoices(request):
    """Invoices of the user whose customer contains `q`, at least `min_amount` cents."""
    params = SearchSerializer(data=request.query_params)
    params.is_valid(raise_exception=True)  # min_amount=abc is 400, not a SQL error
    invoices = (Invoice.objects.filter(owner=request.user, customer__icontains=params.validated_data["q"],
                                       amount_cents__gte=params.validated_data["min_amount"])
                .order_by("-id")[:100])
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
    try:  # checked again: what the host resolves to may have changed since it was registered
        answer = webhooks.call(webhook.url, {"event": "ping", "webhook": webhook.pk})
    except webhooks.Refused as refused:
        return Response({"url": [str(refused)]}, status=status.HTTP_400_BAD_REQUEST)
    return Response({"url": webhook.url, **answer})
