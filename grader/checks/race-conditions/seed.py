"""Seed data for the race-conditions checks: fresh products and wallets for every check and every round.

Runs inside the learner's Django process after migrate. Rows are created through the ORM in a shuffled
order, mixed with filler rows, so ids, names, prices and stock levels differ from seed to seed and a
service cannot pass by knowing them. The manifest names each row by the role a check gives it.
"""

from __future__ import annotations

import random
import string
from typing import Any

from django.apps import apps

ROUNDS = 5
"""Concurrent checks run at most this many rounds, each on rows no other round touches."""
MIXED_ROUNDS = 3
"""Rounds of transfers-conserve-money where one wallet pays several others, is paid and is topped up at once."""
LARGEST_BALANCE = 1_000_000_000
"""The brief's limit: a top-up that would take a wallet past it is refused before any charge."""

_ADJECTIVES = ["Amber", "Brisk", "Cobalt", "Dusty", "Ember", "Frosted", "Golden", "Hazel", "Ivory", "Jade",
               "Lunar", "Misty", "Noble", "Olive", "Polar", "Quiet", "Rustic", "Silver", "Tidal", "Velvet"]
_NOUNS = ["Kettle", "Lantern", "Backpack", "Headphones", "Notebook", "Sneakers", "Teapot", "Blanket", "Mug",
          "Umbrella", "Desk Lamp", "Scarf", "Speaker", "Skillet", "Tent", "Watch", "Bicycle Bell", "Candle"]
_FIRST = ["Ada", "Bruno", "Chidi", "Dana", "Emeka", "Farah", "Goran", "Hana", "Ivo", "Jun", "Kemi", "Lars",
          "Mina", "Nuno", "Olga", "Priya", "Quinn", "Rosa", "Sami", "Tariq", "Uma", "Vera", "Wen", "Yusuf"]
_LAST = ["Okafor", "Lindqvist", "Haddad", "Moreau", "Tanaka", "Novak", "Silva", "Kowalski", "Rahman",
         "Becker", "Costa", "Ivanova", "Nguyen", "Mensah", "Ortiz", "Petrov", "Quist", "Sato"]


def seed(rng: random.Random) -> dict[str, Any]:
    """Create the rows every check needs and return them by role, with their initial values."""
    Product = apps.get_model("store", "Product")
    Wallet = apps.get_model("store", "Wallet")

    products: list[dict[str, Any]] = []
    wallets: list[dict[str, Any]] = []

    def product(stock: int, price: int | None = None) -> dict[str, Any]:
        row = {"name": f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} {rng.randint(100, 999)}",
               "price": price if price is not None else rng.randint(199, 24999), "stock": stock}
        products.append(row)
        return row

    def wallet(balance: int) -> dict[str, Any]:
        row = {"owner": f"{rng.choice(_FIRST)} {rng.choice(_LAST)}", "balance": balance}
        wallets.append(row)
        return row

    def key() -> str:
        return "chk-" + "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(20))

    manifest: dict[str, Any] = {}

    # Single-user flows.
    manifest["product_detail"] = [product(rng.randint(0, 80)) for _ in range(3)]
    manifest["order_validation"] = {
        "open": product(rng.randint(20, 60)),
        "short": product(rng.randint(1, 3)),
        "empty": product(0),
    }
    manifest["single_order"] = {"product": product(rng.randint(20, 60)), "quantity": rng.randint(2, 5)}
    manifest["idempotent_replay"] = {"product": product(rng.randint(50, 90)), "quantity": rng.randint(1, 4),
                                     "key": key(), "other_key": key()}
    rich = wallet(rng.randint(50_000, 90_000))
    other = wallet(rng.randint(1_000, 9_000))
    poor = wallet(rng.randint(100, 900))
    full = wallet(LARGEST_BALANCE - rng.randint(1_000, 90_000))
    manifest["wallet_basics"] = {"rich": rich, "other": other, "poor": poor, "full": full,
                                 "largest_balance": LARGEST_BALANCE,
                                 "topup": rng.randint(500, 5_000), "transfer": rng.randint(1_000, 20_000)}

    # Concurrent checks: one set of fresh rows per round.
    # Every buyer of a round orders the same quantity: 1 unit in the first round, then 1, 2, 3 and 2 or 3 units
    # in a shuffled order. A round of 2 or 3 units starts from a stock that is not a multiple of the quantity
    # (5 to 11 units), so the last units left are fewer than one order: a guard that only asks "is any stock
    # left?" sells them anyway and takes the stock below 0.
    oversell = []
    for quantity in [1] + rng.sample([1, 2, 3, rng.choice((2, 3))], ROUNDS - 1):
        if quantity == 1:
            stock = rng.randint(5, 12)
        else:
            stock = quantity * rng.randint(2, 4 if quantity == 2 else 3) + rng.randint(1, quantity - 1)
        oversell.append({"product": product(stock), "quantity": quantity, "buyers": rng.randint(36, 44)})
    manifest["no_oversell"] = oversell
    # The duplicates of one key send one identical body in rounds 1 and 3. In rounds 2, 4 and 5 they name two
    # or three different in-stock products, each in at least 3 of the duplicates: the brief promises one order
    # per key whatever the body says, which a lock on the product alone cannot give.
    concurrent = []
    for number in range(1, ROUNDS + 1):
        kinds = 1 if number in (1, 3) else rng.choice((2, 2, 3))
        concurrent.append({"orders": [{"product": product(rng.randint(200, 400)), "quantity": rng.randint(1, 3)}
                                      for _ in range(kinds)],
                           "key": key(), "duplicates": rng.randint(max(8, 3 * kinds), 10)})
    manifest["idempotent_concurrent"] = concurrent
    manifest["topup_no_lost_update"] = [
        {"wallet": wallet(rng.randint(0, 20_000)),
         "amounts": [rng.randint(100, 9_999) for _ in range(rng.randint(16, 20))]} for _ in range(ROUNDS)]
    conserve = []
    for _ in range(ROUNDS):
        amounts = [rng.randint(500, 4_999) for _ in range(rng.randint(16, 20))]
        # The source can pay for about half of the transfers, so some must be refused with 409.
        conserve.append({"source": wallet(sum(amounts) // 2 + rng.randint(0, 499)),
                         "target": wallet(rng.randint(0, 20_000)), "amounts": amounts})
    manifest["transfers_conserve_money"] = conserve
    # A hub wallet pays three others and is paid by two more while it and one of its payees are topped up,
    # all at once: a lock on each transfer's own pair of wallets does not stop two transfers out of the
    # hub (or a transfer and a top-up) from writing over each other's balance. The hub can pay about half
    # of what it is asked to, so some transfers out of it must be refused.
    mixed = []
    for _ in range(MIXED_ROUNDS):
        hub, payees, payers = wallet(0), [wallet(rng.randint(0, 20_000)) for _ in range(3)], []
        transfers = [("hub", f"payee{rng.randrange(3)}", rng.randint(500, 4_999)) for _ in range(12)]
        for number in range(2):
            amounts = [rng.randint(100, 1_999) for _ in range(2)]
            payers.append(wallet(sum(amounts) + rng.randint(0, 2_000)))
            transfers += [(f"payer{number}", "hub", amount) for amount in amounts]
        hub["balance"] = sum(amount for source, _, amount in transfers if source == "hub") // 2
        topups = [(name, rng.randint(100, 9_999)) for name in ("hub", "hub", "hub", "payee0", "payee0")]
        wallets_by_role = {"hub": hub, **{f"payee{n}": w for n, w in enumerate(payees)},
                           **{f"payer{n}": w for n, w in enumerate(payers)}}
        mixed.append({"wallets": wallets_by_role,
                      "transfers": [list(transfer) for transfer in rng.sample(transfers, len(transfers))],
                      "topups": [list(topup) for topup in topups]})
    manifest["transfers_mixed"] = mixed
    opposite = []
    for _ in range(ROUNDS):
        forward = [rng.randint(100, 999) for _ in range(10)]
        backward = [rng.randint(100, 999) for _ in range(10)]
        # Each wallet can pay all of its outgoing transfers even if every incoming one came last.
        opposite.append({"a": wallet(2 * sum(forward) + rng.randint(0, 5_000)),
                         "b": wallet(2 * sum(backward) + rng.randint(0, 5_000)),
                         "a_to_b": forward, "b_to_a": backward})
    manifest["transfers_no_5xx"] = opposite

    # Filler rows nobody checks, so ids of checked rows are not contiguous.
    for _ in range(rng.randint(12, 24)):
        product(rng.randint(0, 500))
    for _ in range(rng.randint(6, 12)):
        wallet(rng.randint(0, 100_000))

    for rows, model in ((products, Product), (wallets, Wallet)):
        for row in rng.sample(rows, len(rows)):
            created = model.objects.create(**row)
            row["id"] = created.pk
    return manifest


def demo(rng: random.Random) -> list[str]:
    """The small, friendly data `lab run` serves, with the ids the brief's examples use; returns what to print."""
    Product = apps.get_model("store", "Product")
    Wallet = apps.get_model("store", "Wallet")
    flash = Product.objects.create(name="Flash Sale Sneakers", price=4999, stock=5)
    spare = Product.objects.create(name="Everyday Mug", price=899, stock=1000)
    wallet = Wallet.objects.create(owner="Ada Okafor", balance=300)
    other = Wallet.objects.create(owner="Bruno Silva", balance=300)
    return [
        f"product {flash.pk}: {flash.name}, price {flash.price}, stock {flash.stock}   (PRODUCT)",
        f"product {spare.pk}: {spare.name}, price {spare.price}, stock {spare.stock}   (SPARE)",
        f"wallet  {wallet.pk}: {wallet.owner}, balance {wallet.balance}   (WALLET)",
        f"wallet  {other.pk}: {other.owner}, balance {other.balance}   (OTHER)",
    ]
