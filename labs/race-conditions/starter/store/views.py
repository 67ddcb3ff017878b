"""The shop's API: products, orders, wallets and transfers.

Every order and every top-up is paid through payments.gateway, which is slow
like a real card provider and off-limits (see its docstring).
"""
from django.shortcuts import get_object_or_404
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from payments import gateway
from store.models import Order, Product, Transfer, Wallet
from store.serializers import (
    LARGEST_BALANCE,
    OrderRequestSerializer,
    OrderSerializer,
    ProductSerializer,
    TopUpSerializer,
    TransferRequestSerializer,
    TransferSerializer,
    WalletSerializer,
)

IDEMPOTENCY_KEY_LENGTH = 64


@api_view(["GET"])
def product_detail(request, pk):
    product = get_object_or_404(Product, pk=pk)
    return Response(ProductSerializer(product).data)


@api_view(["POST"])
def create_order(request):
    """Sell `quantity` units of a product: check the stock, charge the buyer, record the order."""
    key = request.headers.get("Idempotency-Key") or None
    if key is not None and len(key) > IDEMPOTENCY_KEY_LENGTH:
        return Response(
            {"detail": f"Idempotency-Key must be at most {IDEMPOTENCY_KEY_LENGTH} characters."},
            status=status.HTTP_400_BAD_REQUEST,
        )
    incoming = OrderRequestSerializer(data=request.data)
    incoming.is_valid(raise_exception=True)
    quantity = incoming.validated_data["quantity"]

    # A retry of an order we already took gets the same order back and is not charged again.
    # TODO: This covers a retry that arrives after the first attempt has finished. Think about
    # the one that arrives while the first attempt is still waiting for the card provider.
    if key is not None:
        original = Order.objects.filter(idempotency_key=key).first()
        if original is not None:
            return Response(OrderSerializer(original).data, status=status.HTTP_200_OK)

    product = get_object_or_404(Product, pk=incoming.validated_data["product"])
    # TODO: At 10:00 fifty buyers reach this line together, and they all read the same stock.
    # Make sure the stock you check here is still the stock when you take the units off below.
    if product.stock < quantity:
        return Response({"detail": "sold out"}, status=status.HTTP_409_CONFLICT)

    total = product.price * quantity
    charge_id = gateway.charge(total, f"order:{product.id}")
    order = Order.objects.create(
        product=product, quantity=quantity, total=total, idempotency_key=key, charge_id=charge_id,
    )
    product.stock -= quantity
    product.save()
    return Response(OrderSerializer(order).data, status=status.HTTP_201_CREATED)


@api_view(["GET"])
def order_detail(request, pk):
    order = get_object_or_404(Order, pk=pk)
    return Response(OrderSerializer(order).data)


@api_view(["GET"])
def wallet_detail(request, pk):
    wallet = get_object_or_404(Wallet, pk=pk)
    return Response(WalletSerializer(wallet).data)


@api_view(["POST"])
def top_up(request, pk):
    """Charge the customer's card for `amount` and credit the wallet with it."""
    wallet = get_object_or_404(Wallet, pk=pk)
    incoming = TopUpSerializer(data=request.data)
    incoming.is_valid(raise_exception=True)
    amount = incoming.validated_data["amount"]
    if wallet.balance + amount > LARGEST_BALANCE:
        return Response({"detail": "balance limit"}, status=status.HTTP_409_CONFLICT)

    gateway.charge(amount, f"topup:{wallet.id}")
    # TODO: The balance you read above is a few dozen milliseconds old by now, and other
    # top-ups of this wallet may have been saved meanwhile. Make sure none of them is lost.
    wallet.balance += amount
    wallet.save()
    return Response(WalletSerializer(wallet).data)


@api_view(["POST"])
def create_transfer(request):
    """Move `amount` cents from one wallet to another, after the risk check."""
    incoming = TransferRequestSerializer(data=request.data)
    incoming.is_valid(raise_exception=True)
    amount = incoming.validated_data["amount"]
    source = get_object_or_404(Wallet, pk=incoming.validated_data["source"])
    target = get_object_or_404(Wallet, pk=incoming.validated_data["target"])

    # TODO: Other transfers between these wallets can run this block at the same time as this
    # one. Make sure the balances you check and change are still the balances when you save
    # them, both wallets together, and keep in mind transfers going the opposite way.
    if source.balance < amount:
        return Response({"detail": "insufficient funds"}, status=status.HTTP_409_CONFLICT)
    if target.balance + amount > LARGEST_BALANCE:
        return Response({"detail": "balance limit"}, status=status.HTTP_409_CONFLICT)
    gateway.screen_transfer(source.id, target.id, amount)
    source.balance -= amount
    target.balance += amount
    source.save()
    target.save()
    transfer = Transfer.objects.create(source=source, target=target, amount=amount)
    return Response(TransferSerializer(transfer).data, status=status.HTTP_201_CREATED)
