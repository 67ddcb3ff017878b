"""Each serializer names its fields: what a client may read, and the few it may write."""
from django.contrib.auth import get_user_model
from rest_framework import serializers

from billing import webhooks
from billing.models import Invoice, Webhook

User = get_user_model()


class TeammateSerializer(serializers.ModelSerializer):
    """Another user, as teammates see them (list and detail alike)."""

    class Meta:
        model = User
        fields = ["id", "username", "display_name"]
        read_only_fields = fields


class MeSerializer(serializers.ModelSerializer):
    """The signed-in user: only email and display_name can be changed."""

    class Meta:
        model = User
        fields = ["id", "username", "email", "display_name", "is_staff"]
        read_only_fields = ["id", "username", "is_staff"]


class AdminUserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "username", "email", "display_name", "is_staff", "is_active", "date_joined"]
        read_only_fields = fields


class InvoiceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Invoice
        fields = ["id", "owner", "number", "customer", "amount_cents", "status", "created_at"]
        read_only_fields = ["id", "owner", "created_at"]


class WebhookSerializer(serializers.ModelSerializer):
    url = serializers.CharField(max_length=500)

    class Meta:
        model = Webhook
        fields = ["id", "url", "created_at"]
        read_only_fields = ["created_at"]

    def validate_url(self, value):
        try:
            webhooks.check_destination(value)
        except webhooks.Refused as refused:
            raise serializers.ValidationError(str(refused)) from None
        return value


class LoginSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128)


class SearchSerializer(serializers.Serializer):
    q = serializers.CharField(max_length=200, required=False, default="", allow_blank=True, trim_whitespace=False)
    min_amount = serializers.IntegerField(min_value=0, required=False, default=0)
