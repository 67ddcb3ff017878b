"""Every reference solution, served as the grader serves it, answers a hostile client without a server error.

A learner copies the reference's habits, so the reference must survive what any client on the internet may
send: bad JSON, JSON nested too deep to parse, huge numbers, wrong types, odd unicode, wrong content types,
empty bodies and absurd ids, to every endpoint its brief lists. Each request spoils one thing; every answer
must be below 500. The requests are drawn from a fixed seed (printed with any failure; set LAB_FUZZ_SEED to
try another) and bounded in number, all to loopback.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from hostile_requests import JSON, Answer, Attack, Endpoint, attacks, sample, send

from grader.labspec import lab_slugs, load_lab
from grader.pipeline import SilentReporter, Stages, prepared_service
from grader.processes import RunDirectory
from grader.providers import get_provider
from grader.resources import resources

SEED = int(os.environ.get("LAB_FUZZ_SEED", "20261203"))
BUDGET = 300  # requests per lab, beside the fixed sequences
CLIENTS = 4  # requests in flight at once
LOG_TAIL_LINES = 30


@dataclass
class Target:
    """What to attack in one served lab: its endpoints, fixed sequences sent in order, and how to sign in."""

    endpoints: list[Endpoint]
    sequences: list[Attack] = field(default_factory=list)
    extra: list[Attack] = field(default_factory=list)  # attacks of the lab's own, always sent
    authorization: Callable[[], str | None] = lambda: None
    forget: Callable[[], None] = lambda: None  # after an attack that may end the session


def call(base_url: str, method: str, path: str, body: dict | None = None, token: str | None = None) -> tuple[int, Any]:
    """A well-formed JSON request, for the setup of an attack."""
    headers = {"Content-Type": JSON} | ({"Authorization": f"Bearer {token}"} if token else {})
    request = urllib.request.Request(base_url + path, method=method, headers=headers,
                                     data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read() or b"null")


# -- the labs --------------------------------------------------------------------------------------------

def race_conditions(manifest: dict, base_url: str, database: dict) -> Target:
    product = manifest["single_order"]["product"]["id"]
    basics = manifest["wallet_basics"]
    wallet, other, third = basics["rich"]["id"], basics["other"]["id"], basics["poor"]["id"]
    endpoints = [
        Endpoint("GET", "/api/products/{id}/", id=str(product)),
        Endpoint("POST", "/api/orders/", body={"product": product, "quantity": 1}),
        Endpoint("GET", "/api/orders/{id}/"),
        Endpoint("GET", "/api/wallets/{id}/", id=str(wallet)),
        Endpoint("POST", "/api/wallets/{id}/topup/", body={"amount": 100}, id=str(wallet)),
        Endpoint("POST", "/api/transfers/", body={"source": wallet, "target": other, "amount": 1}),
    ]
    keys = [("a 65-character Idempotency-Key", "k" * 65), ("a 7,000-byte Idempotency-Key", "k" * 7_000),
            ("an Idempotency-Key of Latin-1 bytes", "\xff\xfe\xe9"), ("an Idempotency-Key with NUL", "a\x00b"),
            ("an empty Idempotency-Key", ""), ("an Idempotency-Key of spaces", "   ")]
    extra = [Attack(f"the order carries {what}", "POST", "/api/orders/", json.dumps(
        {"product": product, "quantity": 1}).encode(), JSON, {"Idempotency-Key": key}) for what, key in keys]
    # The contract's largest top-up, again and again, into three wallets, past the brief's balance limit; then
    # two full wallets pay the third: together they hold more than an integer column does (2**31 - 1). Each
    # answer must be below 500: a 2xx, or a 4xx that says why.
    largest, limit = 100_000_000, 1_000_000_000
    sequences = []
    for target in (wallet, other, third):
        sequences += [Attack(f"top-up {n + 1} of the largest amount ({largest}) into wallet {target}", "POST",
                             f"/api/wallets/{target}/topup/", json.dumps({"amount": largest}).encode(), JSON)
                      for n in range(limit // largest + 2)]
    sequences += [Attack(f"a transfer of {amount} from wallet {source} into wallet {third}, nearly full", "POST",
                         "/api/transfers/", json.dumps({"source": source, "target": third, "amount": amount}).encode(),
                         JSON)
                  for source, amount in ((wallet, 9 * largest), (other, 9 * largest), (wallet, 1))]
    return Target(endpoints, sequences, extra)


class BearerSession:
    """A signed-in user's `Authorization` header, renewed by a new login before the token may expire."""

    RENEW_AFTER_SECONDS = 1.5  # the grader's TOKEN_TTL_SECONDS is 4

    def __init__(self, base_url: str, user: dict):
        self.base_url, self.user = base_url, user
        self.token, self.issued = "", 0.0
        self.lock = threading.Lock()

    def __call__(self) -> str:
        with self.lock:
            if time.monotonic() - self.issued > self.RENEW_AFTER_SECONDS:
                _, answer = call(self.base_url, "POST", "/api/auth/login/",
                                 {"username": self.user["username"], "password": self.user["password"]})
                self.token, self.issued = answer["token"], time.monotonic()
            return f"Bearer {self.token}"

    def forget(self) -> None:
        self.issued = 0.0


def insecure_endpoints(manifest: dict, base_url: str, database: dict) -> Target:
    users, invoices = manifest["users"], manifest["invoices"]
    session = BearerSession(base_url, users["pages"])
    own, others = invoices["pages"][0]["id"], invoices["isolation_owner"][0]["id"]
    bystander = users["login_works"]  # its failed logins lock no one the session needs
    invoice = {"number": "INV-1", "customer": "Acme Tools", "amount_cents": 100, "status": "draft"}
    endpoints = [
        Endpoint("POST", "/api/auth/login/", body={"username": bystander["username"], "password": "wrong-password"}),
        Endpoint("POST", "/api/auth/logout/"),
        Endpoint("GET", "/api/me/"),
        Endpoint("PATCH", "/api/me/", body={"email": "pages@example.org", "display_name": "Pages"}),
        Endpoint("GET", "/api/users/"),
        Endpoint("GET", "/api/users/{id}/", id=str(users["profile"]["id"])),
        Endpoint("GET", "/api/admin/users/"),
        Endpoint("GET", "/api/invoices/", query={"page": "1", "page_size": "5"}),
        Endpoint("POST", "/api/invoices/", body=invoice),
        Endpoint("GET", "/api/invoices/{id}/", id=str(own)),
        Endpoint("PATCH", "/api/invoices/{id}/", body=invoice, id=str(own)),
        Endpoint("DELETE", "/api/invoices/{id}/", id=str(others)),
        Endpoint("GET", "/api/invoices/search/", query={"q": "Acme", "min_amount": "0"}),
        Endpoint("GET", "/api/webhooks/"),
        # Only addresses that need no DNS: the service resolves a webhook's host, and the fuzz stays on loopback.
        Endpoint("POST", "/api/webhooks/", body={"url": "http://93.184.215.14/hook"}),
        Endpoint("POST", "/api/webhooks/{id}/ping/", id=str(10**9)),  # no webhook is ever called
    ]
    tokens = [("no scheme", "abc"), ("Bearer alone", "Bearer"), ("three words", "Bearer a b"),
              ("a 7,000-byte token", "Bearer " + "x" * 7_000), ("a token with NUL", "Bearer a\x00b"),
              ("a token of Latin-1 bytes", "Bearer \xff\xfe\xe9"), ("a quote", "Bearer ' OR '1'='1"),
              ("Basic credentials", "Basic Zm9vOmJhcg=="), ("a lower-case scheme", "bearer abc"),
              ("a tab", "Bearer\tabc")]
    extra = [Attack(f"the Authorization header is {what}", "GET", "/api/me/", headers={"Authorization": value})
             for what, value in tokens]
    extra += [Attack(f"a webhook URL of {what}", "POST", "/api/webhooks/", json.dumps({"url": url}).encode(), JSON)
              for what, url in [("a bracketed host left open", "http://[::1/"), ("a port out of range", "http://1.1.1.1:99999/"),
                                ("a 300-character host", "http://" + "a" * 300 + "/"),
                                ("an empty label", "http://a..b/"), ("a host that is a lone dot", "http://./"),
                                ("NUL in the host", "http://1.1.1.1\x00.x/"), ("a negative port", "http://1.1.1.1:-1/")]]
    return Target(endpoints, extra=extra, authorization=session, forget=session.forget)


def load(manifest: dict, base_url: str, database: dict) -> Target:
    _, events = call(base_url, "GET", "/api/events/")
    _, cart = call(base_url, "POST", "/api/carts/")
    event = events[0]["id"]
    return Target([
        Endpoint("GET", "/api/events/"),
        Endpoint("GET", "/api/events/{id}/", id=str(event)),
        Endpoint("POST", "/api/carts/"),
        Endpoint("GET", "/api/carts/{id}/", id=cart["id"]),
        Endpoint("POST", "/api/carts/{id}/items/", body={"event": event, "quantity": 1}, id=cart["id"]),
        Endpoint("POST", "/api/carts/{id}/checkout/", body={"email": "fan@example.org"}, id=cart["id"]),
        Endpoint("GET", "/api/orders/", query={"page": "2"}),
    ])


def slow_queries(manifest: dict, base_url: str, database: dict) -> Target:
    book = manifest["fresh_books"][0]
    return Target([
        Endpoint("GET", "/api/books/", query={"page": "2", "page_size": "5", "isbn": book["isbn"]}),
        Endpoint("GET", "/api/books/{id}/", id=str(book["id"])),
        Endpoint("POST", "/api/books/{id}/reviews/", body={"reviewer": "Ada", "rating": 4, "body": "Fine."},
                 id=str(book["id"])),
        Endpoint("GET", "/api/reviews/", query={"page": "2", "page_size": "5", "reviewer": manifest["reviewers"][0]}),
    ])


def caching(manifest: dict, base_url: str, database: dict) -> Target:
    with psycopg.connect(**database) as connection:
        token, product, category = connection.execute(
            "SELECT c.token, p.id, k.slug FROM shop_customer c, shop_product p JOIN shop_category k "
            "ON k.id = p.category_id ORDER BY c.id, p.id LIMIT 1").fetchone()

    def authorization() -> str:
        return f"Token {token}"

    return Target([
        Endpoint("GET", "/api/products/{id}/", id=str(product)),
        Endpoint("PATCH", "/api/products/{id}/", body={"name": "Fuzzed", "price": 499, "stock": 3}, id=str(product)),
        Endpoint("GET", f"/api/categories/{category}/products/", query={"page": "1", "sort": "price"}),
        Endpoint("GET", "/api/bestsellers/"),
        Endpoint("GET", "/api/me/dashboard/"),
        Endpoint("GET", "/api/me/orders/", query={"page": "1", "min_total": "100"}),
    ], authorization=authorization)


TARGETS: dict[str, Callable[[dict, str, dict], Target]] = {
    "caching": caching,
    "race-conditions": race_conditions,
    "insecure-endpoints": insecure_endpoints,
    "load": load,
    "slow-queries": slow_queries,
}


def test_every_lab_is_attacked():
    assert set(lab_slugs(resources().labs)) <= set(TARGETS), "every lab's endpoints are listed in TARGETS"


# -- the attack ------------------------------------------------------------------------------------------

def always_sent(attack: Attack) -> bool:
    """The attacks every run sends, whatever the seed: the ones a reference once failed."""
    return "nested 1,000 deep" in attack.what or attack.what.startswith("the path's id is 10**30")


def attack_plan(target: Target, rng: random.Random) -> list[Attack]:
    drawn = [attack for endpoint in target.endpoints for attack in attacks(endpoint, rng)]
    return sample(drawn + target.extra, rng, BUDGET, lambda attack: always_sent(attack) or attack in target.extra)


@pytest.mark.slow
@pytest.mark.parametrize("slug", lab_slugs(resources().labs))  # an in-progress lab's target waits in TARGETS
def test_the_reference_answers_a_hostile_client_without_a_server_error(slug: str):
    lab = load_lab(resources().lab_dir(slug) / "lab.toml")
    rng = random.Random(f"{SEED}:{slug}")
    run = RunDirectory.create()
    try:
        with prepared_service(lab, resources().solution_dir(slug), get_provider("local"), run,
                              Stages(SilentReporter()), seed=SEED) as prepared:
            urls = [replica.base_url for replica in prepared.replicas]
            target = TARGETS[slug](prepared.manifest, urls[0], prepared.services.database)
            plan = attack_plan(target, rng)

            def fire(numbered: tuple[int, Attack]) -> Answer:
                number, attack = numbered
                authorization = (lambda: None) if "Authorization" in attack.headers else target.authorization
                answer = send(urls[number % len(urls)], attack, authorization)
                if "logout" in attack.path:
                    target.forget()
                return answer

            started = time.monotonic()
            # A few clients at once, as the internet sends them; the sequences go one after another.
            with ThreadPoolExecutor(CLIENTS) as pool:
                answers = list(pool.map(fire, enumerate(plan)))
            answers += [fire(numbered) for numbered in enumerate(target.sequences)]
            seconds = time.monotonic() - started
            broken = [answer for answer in answers if answer.broke]
            assert not broken, failure_message(slug, broken, len(answers), seconds, run)
    finally:
        run.remove()


def failure_message(slug: str, broken: list[Answer], sent: int, seconds: float, run: RunDirectory) -> str:
    logs = sorted(run.path.glob("server*.log"))
    tail = "\n".join(line for log in logs for line in log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])
    shown = "\n".join(answer.describe() for answer in broken[:15])
    more = f"\n... and {len(broken) - 15} more" if len(broken) > 15 else ""
    return (f"solutions/{slug} answered {len(broken)} of {sent} hostile requests with a server error or not at all "
            f"({seconds:.1f} s; seed {SEED}, replay with LAB_FUZZ_SEED={SEED}):\n{shown}{more}\n"
            f"--- the server's log, last lines ---\n{tail}")
