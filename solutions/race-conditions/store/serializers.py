"""What the API reads and writes. The field names are the brief's contract."""
from rest_framework import serializers

from store.models import Order, Product, Transfer, Wallet

LARGEST_INTEGER = 2_147_483_647  # the largest value a PostgreSQL integer column holds
LARGEST_TOPUP = 100_000_000  # cents: one million per top-up
LARGEST_BALANCE = 1_000_000_000  # cents: a top-up never takes a wallet past ten million


class WholeNumberField(serializers.IntegerField):
    """An integer sent as a JSON number: "3", 3.5 and true are refused."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class ProductSerializer(serializers.ModelSerializer):
    class Meta:
        model = Product
        fields = ["id", "name", "price", "stock"]


class OrderRequestSerializer(serializers.Serializer):
    """The body of POST /api/orders/."""

    product = WholeNumberField()
    quantity = WholeNumberField(min_value=1, max_value=LARGEST_INTEGER)


class OrderSerializer(serializers.ModelSerializer):
    charge = serializers.IntegerField(source="charge_id", read_only=True)

    class Meta:
        model = Order
        fields = ["id", "product", "quantity", "total", "charge"]


class WalletSerializer(serializers.ModelSerializer):
    class Meta:
        model = Wallet
        fields = ["id", "owner", "balance"]


class TopUpSerializer(serializers.Serializer):
    """The body of POST /api/wallets/<id>/topup/."""

    amount = WholeNumberField(min_value=1, max_value=LARGEST_TOPUP)


class TransferRequestSerializer(serializers.Serializer):
    """The body of POST /api/transfers/."""

    source = WholeNumberField()
    target = WholeNumberField()
    amount = WholeNumberField(min_value=1, max_value=LARGEST_INTEGER)

    def validate(self, data):
        if data["source"] == data["target"]:
            raise serializers.ValidationError({"target": ["A transfer needs two different wallets."]})
        return data


class TransferSerializer(serializers.ModelSerializer):
    class Meta:
        model = Transfer
        fields = ["id", "source", "target", "amount"]
