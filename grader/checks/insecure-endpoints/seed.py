"""Seed data for the insecure-endpoints checks: users with their passwords, and their invoices.

Runs inside the learner's Django process after migrate. Every check gets users of its own (so that one
check's lockout or logout never touches another's), with names, passwords, amounts and customers drawn
from the seed, and ids shuffled by filler rows. The manifest gives each user's id, username and password.
"""

from __future__ import annotations

import random
import string
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model

PAGED_INVOICES = 160
"""Invoices of the user whose pages are read: more than the largest page a client may ask for."""

_FIRST = ["ada", "bruno", "chidi", "dana", "emeka", "farah", "goran", "hana", "ivo", "jun", "kemi", "lars",
          "mina", "nuno", "olga", "priya", "quinn", "rosa", "sami", "tariq", "uma", "vera", "wen", "yusuf"]
_COMPANIES = ["Acme Tools", "Birch & Co", "Cobalt Freight", "Dune Studio", "Elm Street Bakery", "Fjord Labs",
              "Granite Legal", "Harbor Coffee", "Indigo Print", "Juniper Health", "Kestrel Air", "Lumen Books"]
QUOTED_CUSTOMER = "O'Brien & Daughters"


def seed(rng: random.Random) -> dict[str, Any]:
    User = get_user_model()
    Invoice = apps.get_model("billing", "Invoice")
    taken: set[str] = set()

    def user(role: str, staff: bool = False) -> dict[str, Any]:
        while True:
            username = f"{rng.choice(_FIRST)}.{role}{rng.randint(10, 99)}"
            if username not in taken:
                taken.add(username)
                break
        password = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(14))
        account = User.objects.create_user(username=username, email=f"{username}@example.org", password=password,
                                           is_staff=staff)
        account.display_name = username.split(".")[0].title()
        account.save(update_fields=["display_name"])
        for _ in range(rng.randint(0, 2)):  # filler: ids do not follow the roles
            filler = f"filler{rng.randint(10_000, 99_999)}"
            if filler not in taken:
                taken.add(filler)
                User.objects.create_user(username=filler, password=None)
        return {"id": account.pk, "username": username, "password": password, "email": account.email}

    def invoices(owner: dict[str, Any], count: int, customers: list[str] | None = None) -> list[dict[str, Any]]:
        made = []
        for index in range(count):
            customer = customers[index % len(customers)] if customers else rng.choice(_COMPANIES)
            invoice = Invoice.objects.create(owner_id=owner["id"], number=f"INV-{rng.randint(10_000, 99_999)}",
                                             customer=customer, amount_cents=rng.randint(1_000, 900_000),
                                             status=rng.choice(["draft", "sent", "paid"]))
            made.append({"id": invoice.pk, "customer": customer, "amount_cents": invoice.amount_cents})
        return made

    manifest: dict[str, Any] = {}
    roles = ["invoices_own", "isolation_owner", "isolation_intruder", "login_works", "throttle_victim",
             "throttle_bystander", "throttle_burst", "tokens_expire", "tokens_unguessable", "profile", "sensitive",
             "mass_assignment", "mass_assignment_other", "pages", "admin_regular", "webhooks", "cors",
             "search", "search_other", "injection", "injection_other"]
    rng.shuffle(roles)
    users = {role: user(role.replace("_", "")[:10]) for role in roles}
    users["staff"] = user("staff", staff=True)
    manifest["users"] = users

    manifest["invoices"] = {
        "isolation_owner": invoices(users["isolation_owner"], 3),
        "isolation_intruder": invoices(users["isolation_intruder"], 2),
        "pages": invoices(users["pages"], PAGED_INVOICES),
        "search": invoices(users["search"], 6, [QUOTED_CUSTOMER, "Acme Tools", "Birch & Co"]),
        "search_other": invoices(users["search_other"], 4, [QUOTED_CUSTOMER, "Acme Tools"]),
        "injection": invoices(users["injection"], 3, ["Acme Tools", "Cobalt Freight"]),
        "injection_other": invoices(users["injection_other"], 5, ["Acme Tools", "Dune Studio"]),
        "mass_assignment": invoices(users["mass_assignment"], 1),
    }
    manifest["quoted_customer"] = QUOTED_CUSTOMER
    return manifest


def demo(rng: random.Random) -> list[str]:
    """`lab run`: two users with a few invoices, and a staff member."""
    User = get_user_model()
    Invoice = apps.get_model("billing", "Invoice")
    lines = []
    for username, staff in (("alice", False), ("bob", False), ("support", True)):
        User.objects.create_user(username=username, email=f"{username}@example.org", password=f"{username}-password",
                                 is_staff=staff, display_name=username.title())
        lines.append(f"user {username!r}, password {username + '-password'!r}{' (staff)' if staff else ''}")
    for owner in ("alice", "bob"):
        for customer in rng.sample(_COMPANIES + [QUOTED_CUSTOMER], 4):
            Invoice.objects.create(owner=User.objects.get(username=owner), number=f"INV-{rng.randint(10_000, 99_999)}",
                                   customer=customer, amount_cents=rng.randint(1_000, 900_000))
    lines.append("log in: curl -s -X POST localhost:8000/api/auth/login/ -H 'Content-Type: application/json' "
                 "-d '{\"username\": \"alice\", \"password\": \"alice-password\"}'")
    return lines
