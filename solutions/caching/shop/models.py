"""The market: a catalogue of products in categories, and customers with their orders.

The tables and columns below are part of the brief's contract (the lab's data is loaded into them):
you may add fields, indexes and tables, never rename or drop.
"""
from django.db import models


class Category(models.Model):
    slug = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=80)

    def __str__(self):
        return self.slug


class Product(models.Model):
    category = models.ForeignKey(Category, related_name="products", on_delete=models.PROTECT)
    name = models.CharField(max_length=120)
    price = models.PositiveIntegerField()  # cents
    stock = models.PositiveIntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return self.name


class Customer(models.Model):
    username = models.CharField(max_length=40, unique=True)
    token = models.CharField(max_length=40, unique=True)  # what the client sends: `Authorization: Token <token>`

    # DRF's IsAuthenticated asks request.user this; a customer is request.user once their token is known.
    is_authenticated = True

    def __str__(self):
        return self.username


class Order(models.Model):
    customer = models.ForeignKey(Customer, related_name="orders", on_delete=models.PROTECT)
    created_at = models.DateTimeField()
    total = models.PositiveIntegerField()  # cents: the sum of price x quantity of its lines

    def __str__(self):
        return f"order {self.pk} of {self.customer_id}"


class OrderLine(models.Model):
    order = models.ForeignKey(Order, related_name="lines", on_delete=models.CASCADE)
    product = models.ForeignKey(Product, related_name="lines", on_delete=models.PROTECT)
    quantity = models.PositiveSmallIntegerField()
    price = models.PositiveIntegerField()  # cents, per unit, when the order was taken

    def __str__(self):
        return f"{self.quantity} x {self.product_id}"
