"""Shared fixtures of the race-conditions checks: SQL evidence (`ledger`) and reply expectations (`expect`)."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import pytest

from grader.checkkit import Call, Database, Failure, Inconclusive, Reply

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

    def charges_after(self, last_id: int) -> list[dict[str, Any]]:
        """Charges the gateway made since `last_id` was the newest one."""
        return self.db.query("SELECT id, amount, reference FROM payments_charge WHERE id > %s ORDER BY id",
                             (last_id,))

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


SERVER_ERROR_HELP = ("The traceback of each 500 is in .lab/logs/server.log. Something that works for one request at "
                     "a time can fail when other requests are using the same rows.")


def condensed(text: str, limit: int = 200) -> str:
    """A reply body made readable in one line: HTML tags and runs of whitespace dropped."""
    if "<" in text and ">" in text:
        text = re.sub(r"<[^>]*>", " ", text)
    return " ".join(text.split())[:limit]


def status_counts(replies: list[Reply]) -> dict[str, int]:
    """How many replies had each status, for evidence ("no answer" for errors)."""
    counts = Counter(str(reply.status) if reply.status is not None else "no answer" for reply in replies)
    return dict(sorted(counts.items()))


class Expect:
    """Expectations about replies that raise a Failure naming the request, the answer and the contract."""

    counts = staticmethod(status_counts)

    @staticmethod
    def status(reply: Reply, expected: int, doing: str, *, sent: Any = None, help: str | None = None) -> None:
        """The reply has the expected status; `doing` says what the request was, for the learner."""
        if reply.status == expected:
            return
        evidence = {"request": f"{reply.method} {reply.path}", "expected_status": expected}
        if sent is not None:
            evidence["sent"] = sent
        if reply.error:
            evidence["error"] = reply.error
            raise Failure(f"{reply.method} {reply.path} {doing} got no answer ({reply.error}); expected {expected}",
                          evidence=evidence, help=help)
        evidence.update(status=reply.status, reply=condensed(reply.text, 300))
        raise Failure(f"{reply.method} {reply.path} {doing} answered {reply.status}, expected {expected}",
                      evidence=evidence, help=help)

    @staticmethod
    def fields(reply: Reply, fields: tuple[str, ...], *, help: str | None = None) -> dict[str, Any]:
        """The reply is a JSON object with at least these fields; returns it."""
        body = reply.body
        if not isinstance(body, dict):
            raise Failure(f"{reply.method} {reply.path} answered {reply.status} without a JSON object",
                          evidence={"expected_fields": list(fields), "reply": condensed(reply.text, 300)},
                          help=help)
        missing = [name for name in fields if name not in body]
        if missing:
            names = ", ".join(f"'{name}'" for name in missing)
            raise Failure(f"{reply.method} {reply.path} answered without the field(s) {names}",
                          evidence={"expected_fields": list(fields), "fields": sorted(body), "missing": missing},
                          help=help)
        return body

    @staticmethod
    def values(reply: Reply, expected: dict[str, Any], source: str, *, help: str | None = None) -> None:
        """The reply's fields equal the expected values; `source` says where the expected values come from."""
        body = reply.body if isinstance(reply.body, dict) else {}
        wrong = {name: {"expected": value, "actual": body.get(name)}
                 for name, value in expected.items() if body.get(name) != value}
        if wrong:
            name, pair = next(iter(wrong.items()))
            raise Failure(f"{reply.method} {reply.path} says {name} = {pair['actual']!r}, but {source} is "
                          f"{pair['expected']!r}", evidence={"mismatched": wrong, "reply": condensed(reply.text, 300)},
                          help=help)

    @staticmethod
    def sample(call: Call, reply: Reply) -> str:
        """One request and its answer in a line, for evidence."""
        sent = f" {json.dumps(call.json)}" if call.json is not None else ""
        if reply.error:
            return f"{call.method} {call.path}{sent} -> {reply.error}"
        return f"{call.method} {call.path}{sent} -> {reply.status} {condensed(reply.text, 160)}"

    @classmethod
    def burst_answered(cls, calls: list[Call], replies: list[Reply], what: str, round_number: int,
                       *, help: str | None = None) -> None:
        """Every request of a burst was sent and answered without a 5xx; otherwise Inconclusive or Failure."""
        unsent = [reply for reply in replies
                  if reply.error and reply.error.startswith(("cannot connect", "not sent"))]
        if unsent:
            raise Inconclusive(f"round {round_number}: the {len(replies)} {what} could not all be connected before "
                               f"they were released, so nothing was sent ({unsent[0].error})",
                               evidence={"round": round_number, "requests": len(replies), "unsent": len(unsent)})
        broken = [(call, reply) for call, reply in zip(calls, replies, strict=True) if reply.is_5xx or reply.error]
        if broken:
            first = broken[0][1]
            answer = first.error if first.error else f"{first.status}"
            raise Failure(f"{len(broken)} of {len(replies)} {what} sent together answered with a server error or "
                          f"not at all (first: {answer}; round {round_number})",
                          evidence={"round": round_number, "replies": status_counts(replies),
                                    "samples": [cls.sample(call, reply) for call, reply in broken[:3]]},
                          help=help or SERVER_ERROR_HELP)

    @classmethod
    def only_statuses(cls, calls: list[Call], replies: list[Reply], allowed: tuple[int, ...], what: str,
                      round_number: int, *, help: str | None = None) -> None:
        """Every reply of a burst has one of the allowed statuses."""
        odd = [(call, reply) for call, reply in zip(calls, replies, strict=True) if reply.status not in allowed]
        if odd:
            allowed_text = " or ".join(str(status) for status in allowed)
            raise Failure(f"{len(odd)} of {len(replies)} {what} sent together answered {odd[0][1].status} "
                          f"(expected {allowed_text}; round {round_number})",
                          evidence={"round": round_number, "replies": status_counts(replies),
                                    "samples": [cls.sample(call, reply) for call, reply in odd[:3]]}, help=help)


@pytest.fixture(scope="session")
def ledger(db: Database) -> Ledger:
    """The lab's database, read for evidence."""
    return Ledger(db)


@pytest.fixture(scope="session")
def expect() -> Expect:
    """Expectations about the service's replies."""
    return Expect()


@pytest.fixture(scope="session")
def seeded(lab) -> dict[str, Any]:
    """The seed manifest: the rows each check uses, by role, with their initial values."""
    return lab.seed_data
