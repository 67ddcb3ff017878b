"""The shop's tables. Money is in integer cents throughout.

The checks read these tables with SQL: add fields or tables if you need them,
but do not rename or remove any.
"""
from django.db import models


class Product(models.Model):
    """Something on sale, with the number of units left."""

    name = models.CharField(max_length=100)
    price = models.IntegerField(help_text="cents, > 0")
    stock = models.IntegerField()

    def __str__(self):
        return self.name


class Order(models.Model):
    """One buyer's order: paid for by one charge at the payment provider."""

    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="orders")
    quantity = models.IntegerField()
    total = models.IntegerField(help_text="cents: price * quantity")
    idempotency_key = models.CharField(max_length=64, null=True, blank=True)
    charge_id = models.BigIntegerField(null=True, help_text="id of the payments.Charge that paid")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # One order per key, enforced by PostgreSQL, which no two requests can race
            # past. NULLs are distinct, so orders without a key are unaffected.
            models.UniqueConstraint(
                fields=["idempotency_key"], name="store_order_idempotency_key_unique",
            ),
        ]

    def __str__(self):
        return f"order {self.pk}: {self.quantity} x {self.product_id}"


class Wallet(models.Model):
    """A customer's stored balance."""

    owner = models.CharField(max_length=100)
    balance = models.IntegerField(help_text="cents")

    def __str__(self):
        return f"{self.owner}'s wallet"


class Transfer(models.Model):
    """Money moved from one wallet to another."""

    source = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="transfers_out")
    target = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="transfers_in")
    amount = models.IntegerField(help_text="cents")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"transfer {self.pk}: {self.amount} from {self.source_id} to {self.target_id}"
