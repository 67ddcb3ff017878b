"""Shared pieces of the insecure-endpoints checks: the seeded accounts, signing in, and the database as evidence.

Every check performs its exploit the way an attacker would (plain HTTP, nothing the API does not offer
anyone), then the legitimate use the fix must keep working, and judges by what the service answered and
what PostgreSQL holds afterwards, never by the code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from grader.checkkit import Client, Database, Expect, Failure, bearer, condensed

CONTRACT = "The brief's API contract lists every endpoint, status code and field."
LOGIN = "/api/auth/login/"


@dataclass(frozen=True)
class Account:
    role: str
    id: int
    username: str
    password: str
    email: str

    def credentials(self, password: str | None = None) -> dict[str, str]:
        return {"username": self.username, "password": self.password if password is None else password}


class Accounts:
    """The seeded users by role, and signing in as them."""

    def __init__(self, manifest: dict[str, Any], client: Client, expect: Expect):
        self.by_role = {role: Account(role, **fields) for role, fields in manifest["users"].items()}
        self.client, self.expect = client, expect

    def __getitem__(self, role: str) -> Account:
        return self.by_role[role]

    def login(self, account: Account, client: Client | None = None) -> str:
        """A token for the account, from POST /api/auth/login/ (a Failure if the login does not work)."""
        reply = (client or self.client).post(LOGIN, account.credentials())
        self.expect.status(reply, 200, f"with {account.username}'s right password", sent={"username": account.username},
                           help="POST /api/auth/login/ with a user's username and password answers 200 "
                                "{\"token\", \"expires_in\"}, as the brief says.")
        token = reply.body.get("token") if isinstance(reply.body, dict) else None
        if not isinstance(token, str) or not token:
            raise Failure(f"POST {LOGIN} answered 200 without a token", evidence={"reply": condensed(reply.text, 300)},
                          help=CONTRACT)
        return token

    def headers(self, account: Account, client: Client | None = None) -> dict[str, str]:
        return bearer(self.login(account, client))


class Records:
    """Rows of the lab's tables, read for evidence (never written)."""

    def __init__(self, db: Database):
        self.db = db

    def user(self, user_id: int) -> dict[str, Any] | None:
        rows = self.db.query("SELECT id, username, email, display_name, is_staff, is_superuser, is_active, password "
                             "FROM billing_user WHERE id = %s", (user_id,))
        return rows[0] if rows else None

    def password_hashes(self) -> list[str]:
        return [row["password"] for row in self.db.query("SELECT password FROM billing_user") if row["password"]]

    def invoice(self, invoice_id: Any) -> dict[str, Any] | None:
        if not isinstance(invoice_id, int) or isinstance(invoice_id, bool):
            return None
        rows = self.db.query("SELECT id, owner_id, number, customer, amount_cents, status FROM billing_invoice "
                             "WHERE id = %s", (invoice_id,))
        return rows[0] if rows else None

    def invoices_of(self, owner_id: int) -> list[dict[str, Any]]:
        return self.db.query("SELECT id, owner_id, number, customer, amount_cents, status FROM billing_invoice "
                             "WHERE owner_id = %s ORDER BY id DESC", (owner_id,))

    def owners(self, invoice_ids: list[int]) -> dict[int, int]:
        rows = self.db.query("SELECT id, owner_id FROM billing_invoice WHERE id = ANY(%s)", (invoice_ids,))
        return {row["id"]: row["owner_id"] for row in rows}

    def user_count(self) -> int:
        return int(self.db.scalar("SELECT count(*) FROM billing_user"))


@pytest.fixture(scope="session")
def accounts(lab, client, expect) -> Accounts:
    return Accounts(lab.seed_data, client, expect)


@pytest.fixture(scope="session")
def records(db) -> Records:
    return Records(db)


@pytest.fixture(scope="session")
def contract() -> str:
    """Where a learner finds what a legitimate use expects: the help of contract failures."""
    return CONTRACT


@pytest.fixture(scope="session")
def seeded(lab) -> dict[str, Any]:
    return lab.seed_data
