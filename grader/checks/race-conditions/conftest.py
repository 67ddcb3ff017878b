"""Shared fixtures of the race-conditions checks: SQL evidence (`ledger`) and the seed manifest (`seeded`)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from grader.checkkit import Database

_TABLES = ("store_product", "store_order", "store_wallet", "store_transfer", "payments_charge")


def _table(name: str) -> str:
    if name not in _TABLES:
        raise ValueError(f"not a table of this lab: {name}")
    return name


class Ledger:
    """What the database says happened: rows read for evidence, never written."""

    def __init__(self, db: Database):
        self.db = db

    def last_id(self, table: str) -> int:
        """The highest id in a table now; rows created later have higher ids."""
        return int(self.db.scalar(f"SELECT coalesce(max(id), 0) FROM {_table(table)}"))

    def count_after(self, table: str, last_id: int) -> int:
        """How many rows of a table were created since `last_id` was the newest."""
        return int(self.db.scalar(f"SELECT count(*) FROM {_table(table)} WHERE id > %s", (last_id,)))

    def unknown_id(self, table: str) -> int:
        """An id no row of the table has."""
        return self.last_id(table) + 7919

    def product(self, product_id: int) -> dict[str, Any] | None:
        rows = self.db.query("SELECT id, name, price, stock FROM store_product WHERE id = %s", (product_id,))
        return rows[0] if rows else None

    def stock(self, product_id: int) -> int | None:
        row = self.product(product_id)
        return None if row is None else row["stock"]

    def orders_for(self, product_id: int) -> list[dict[str, Any]]:
        return self.db.query("SELECT id, product_id, quantity, total, charge_id FROM store_order "
                             "WHERE product_id = %s ORDER BY id", (product_id,))

    def order(self, order_id: Any) -> dict[str, Any] | None:
        if not isinstance(order_id, int) or isinstance(order_id, bool):
            return None
        rows = self.db.query("SELECT id, product_id, quantity, total, charge_id FROM store_order WHERE id = %s",
                             (order_id,))
        return rows[0] if rows else None

    def charges_after(self, last_id: int, references: set[str] | None = None) -> list[dict[str, Any]]:
        """Charges the gateway made since `last_id` was the newest one; with `references`, only those made under
        them (the brief's `order:<product id>` and `topup:<wallet id>`: a check's own, whatever runs beside it)."""
        if references is None:
            return self.db.query("SELECT id, amount, reference FROM payments_charge WHERE id > %s ORDER BY id",
                                 (last_id,))
        return self.db.query("SELECT id, amount, reference FROM payments_charge WHERE id > %s AND reference = ANY(%s) "
                             "ORDER BY id", (last_id, sorted(references)))

    def balance(self, wallet_id: int) -> int | None:
        return self.db.scalar("SELECT balance FROM store_wallet WHERE id = %s", (wallet_id,))

    def wallet(self, wallet_id: int) -> dict[str, Any] | None:
        rows = self.db.query("SELECT id, owner, balance FROM store_wallet WHERE id = %s", (wallet_id,))
        return rows[0] if rows else None

    def transfers_after(self, last_id: int, wallet_ids: tuple[int, ...]) -> list[dict[str, Any]]:
        """Transfers recorded since `last_id` that touch any of the wallets."""
        ids = list(wallet_ids)
        return self.db.query("SELECT id, source_id, target_id, amount FROM store_transfer "
                             "WHERE id > %s AND (source_id = ANY(%s) OR target_id = ANY(%s)) ORDER BY id",
                             (last_id, ids, ids))

    @staticmethod
    def charge_problems(orders: list[dict[str, Any]], charges: list[dict[str, Any]]) -> list[str]:
        """What is wrong with "exactly one charge per order, for the order's total" (empty when nothing is)."""
        problems = []
        if len(charges) != len(orders):
            problems.append(f"{len(charges)} charge(s) for {len(orders)} order(s)")
        by_id = {charge["id"]: charge for charge in charges}
        uses = Counter(order["charge_id"] for order in orders if order["charge_id"] is not None)
        without = [order["id"] for order in orders if order["charge_id"] is None]
        shared = sorted(charge_id for charge_id, count in uses.items() if count > 1)
        foreign = [order["id"] for order in orders
                   if order["charge_id"] is not None and order["charge_id"] not in by_id]
        wrong = [order["id"] for order in orders
                 if order["charge_id"] in by_id and by_id[order["charge_id"]]["amount"] != order["total"]]
        if without:
            problems.append(f"{len(without)} order(s) without a charge (ids {without[:5]})")
        if shared:
            problems.append(f"charge(s) {shared[:5]} belong to more than one order")
        if foreign:
            problems.append(f"{len(foreign)} order(s) point at a charge that was not made for them (ids {foreign[:5]})")
        if wrong:
            problems.append(f"{len(wrong)} order(s) were charged an amount other than their total (ids {wrong[:5]})")
        return problems


@pytest.fixture(scope="session")
def ledger(db: Database) -> Ledger:
    """The lab's database, read for evidence."""
    return Ledger(db)


@pytest.fixture(scope="session")
def seeded(lab) -> dict[str, Any]:
    """The seed manifest: the rows each check uses, by role, with their initial values."""
    return lab.seed_data
