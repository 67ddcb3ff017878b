"""Users, their tokens, their invoices and their webhooks."""
from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """A user of the service; `display_name` is what teammates see."""

    display_name = models.CharField(max_length=120, blank=True, default="")


class AuthToken(models.Model):
    """A bearer token issued at login: `Authorization: Bearer <key>`."""

    key = models.CharField(max_length=128, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tokens")
    created_at = models.DateTimeField(auto_now_add=True)


class Invoice(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        SENT = "sent"
        PAID = "paid"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="invoices")
    number = models.CharField(max_length=40)
    customer = models.CharField(max_length=200)
    amount_cents = models.PositiveBigIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]


class Webhook(models.Model):
    """A URL the service calls when an invoice of its owner changes; `ping` calls it once to try it."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
