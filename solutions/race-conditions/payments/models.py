"""What the payment provider records. Off-limits: see gateway.py."""
from django.db import models


class Charge(models.Model):
    """One charge to a customer's card, written only by payments.gateway.charge()."""

    amount = models.IntegerField(help_text="cents")
    reference = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"charge {self.pk}: {self.amount} cents for {self.reference}"
