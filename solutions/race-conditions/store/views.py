"""The shop's API: products, orders, wallets and transfers.

Every order and every top-up is paid through payments.gateway, which is slow
like a real card provider and off-limits (see its docstring).
"""
from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import Http404
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
IDEMPOTENCY_KEY_CONSTRAINT = "store_order_idempotency_key_unique"


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

    try:
        with transaction.atomic():
            # The row lock lasts until this transaction commits, so buyers of one product take
            # turns from here on: the next one reads the stock only after this one wrote it back.
            product = get_object_or_404(
                Product.objects.select_for_update(), pk=incoming.validated_data["product"],
            )
            # A retry of an order we already took gets the same order back and is not charged
            # again. Looked up under the lock, a duplicate that queued behind the original sees it.
            if key is not None:
                original = Order.objects.filter(idempotency_key=key).first()
                if original is not None:
                    return Response(OrderSerializer(original).data, status=status.HTTP_200_OK)
            if product.stock < quantity:
                return Response({"detail": "sold out"}, status=status.HTTP_409_CONFLICT)

            total = product.price * quantity
            # The order row claims the key before any money moves: a duplicate the lock above
            # did not stop (one naming another product) waits on the unique index until we
            # commit and then fails, without reaching the gateway. No one sees the row without
            # its charge id, because both are committed together.
            order = Order.objects.create(
                product=product, quantity=quantity, total=total, idempotency_key=key,
            )
            order.charge_id = gateway.charge(total, f"order:{product.id}")
            order.save(update_fields=["charge_id"])
            product.stock -= quantity
            product.save(update_fields=["stock"])
    except IntegrityError as error:
        violated = getattr(getattr(error.__cause__, "diag", None), "constraint_name", None)
        if violated != IDEMPOTENCY_KEY_CONSTRAINT:
            raise
        original = Order.objects.filter(idempotency_key=key).first()
        if original is None:
            return Response(
                {"detail": "An order with this Idempotency-Key is in progress; retry shortly."},
                status=status.HTTP_409_CONFLICT,
            )
        return Response(OrderSerializer(original).data, status=status.HTTP_200_OK)
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

    # Credit first, with the limit in the same UPDATE: PostgreSQL checks the balance it holds when the
    # UPDATE runs (after any other writer of the row), so concurrent top-ups can never take the wallet past
    # the limit, and a refused one never reaches the gateway. The UPDATE commits at once, so no lock is held
    # across the 50 ms charge and top-ups of one wallet do not queue behind each other.
    with transaction.atomic():
        credited = Wallet.objects.filter(pk=wallet.pk, balance__lte=LARGEST_BALANCE - amount).update(
            balance=F("balance") + amount,
        )
        if not credited:
            return Response({"detail": "balance limit"}, status=status.HTTP_409_CONFLICT)
        # Our UPDATE still holds the row lock, so this reads exactly the balance it left.
        wallet.refresh_from_db(fields=["balance"])
    try:
        gateway.charge(amount, f"topup:{wallet.id}")
    except BaseException:
        # The card was not charged: take the credit back (an F() update, whatever happened since).
        Wallet.objects.filter(pk=wallet.pk).update(balance=F("balance") - amount)
        raise
    return Response(WalletSerializer(wallet).data)


@api_view(["POST"])
def create_transfer(request):
    """Move `amount` cents from one wallet to another, after the risk check."""
    incoming = TransferRequestSerializer(data=request.data)
    incoming.is_valid(raise_exception=True)
    amount = incoming.validated_data["amount"]
    source_id, target_id = incoming.validated_data["source"], incoming.validated_data["target"]

    # The risk check first, outside any lock: it reads nothing of ours and takes 20 ms, and a row lock held
    # across it would make every transfer of a wallet wait for the others' round trips. A look at the two
    # wallets before it answers 404 and a plain shortfall at once, without a round trip for nothing.
    wallets = Wallet.objects.in_bulk([source_id, target_id])
    for wallet_id in (source_id, target_id):
        if wallet_id not in wallets:
            raise Http404("No Wallet matches the given query.")
    if wallets[source_id].balance < amount:
        return Response({"detail": "insufficient funds"}, status=status.HTTP_409_CONFLICT)
    gateway.screen_transfer(source_id, target_id, amount)

    with transaction.atomic():
        # Both rows stay locked until commit, so no other transfer or top-up can change them
        # between the check and the save. Locking in primary-key order, whatever the direction,
        # means two opposite transfers queue for the same first row instead of each holding
        # the row the other one waits for (a deadlock). The balances read above may be stale by
        # now: only what is read under the lock decides.
        locked = Wallet.objects.select_for_update().filter(id__in=[source_id, target_id]).order_by("id")
        wallets = {wallet.id: wallet for wallet in locked}
        source, target = wallets[source_id], wallets[target_id]

        if source.balance < amount:
            return Response({"detail": "insufficient funds"}, status=status.HTTP_409_CONFLICT)
        if target.balance + amount > LARGEST_BALANCE:
            return Response({"detail": "balance limit"}, status=status.HTTP_409_CONFLICT)
        source.balance -= amount
        target.balance += amount
        source.save(update_fields=["balance"])
        target.save(update_fields=["balance"])
        transfer = Transfer.objects.create(source=source, target=target, amount=amount)
    return Response(TransferSerializer(transfer).data, status=status.HTTP_201_CREATED)
