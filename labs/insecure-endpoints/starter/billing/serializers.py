from django.contrib.auth import get_user_model
from rest_framework import serializers

from billing.models import Invoice, Webhook

User = get_user_model()


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = "__all__"


class InvoiceSerializer(serializers.ModelSerializer):
    owner = serializers.PrimaryKeyRelatedField(queryset=User.objects.all(), default=serializers.CurrentUserDefault())

    class Meta:
        model = Invoice
        fields = "__all__"
        read_only_fields = ["created_at"]


class WebhookSerializer(serializers.ModelSerializer):
    url = serializers.CharField(max_length=500)

    class Meta:
        model = Webhook
        fields = ["id", "url", "created_at"]
        read_only_fields = ["created_at"]

    def validate_url(self, value):
        if not value.startswith(("http://", "https://")):
            raise serializers.ValidationError("Enter an http:// or https:// URL.")
        return value


class LoginSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128)
