"""The on-sale rush: buyers browse events, fill carts and check out, each request to any replica.

The orders ledger is not part of the rush (the office staff read it, not the buyers): what it costs is
judged by its own check, a replica's memory while it serves pages.

Run by the grader in its own process (grader.load.run_load). The replicas' addresses come in
$LAB_LOAD_HOSTS (as behind a load balancer, each request goes to one of them), the event ids and
the ledger's size in the JSON file $LAB_LOAD_DATA. Every request has a time-out.
"""

import json
import os
import random

from locust import HttpUser, constant, task

HOSTS = json.loads(os.environ["LAB_LOAD_HOSTS"])
with open(os.environ["LAB_LOAD_DATA"], encoding="utf-8") as handle:
    DATA = json.load(handle)
TIMEOUT = 10


class Buyer(HttpUser):
    """A buyer on the on-sale day: no pause between requests."""

    wait_time = constant(0)

    def send(self, method: str, path: str, name: str, body=None, expect=(200,)):
        url = f"{random.choice(HOSTS)}{path}"  # a load balancer: any replica answers any request
        with self.client.request(method, url, name=name, json=body, timeout=TIMEOUT,
                                 catch_response=True) as response:
            if response.status_code not in expect:
                response.failure(f"{response.status_code}: {response.text[:120]}")
                return None
            return response.json()

    @task(3)
    def browse(self) -> None:
        self.send("GET", "/api/events/", "/api/events/")
        self.send("GET", f"/api/events/{random.choice(DATA['events'])}/", "/api/events/ID/")

    @task(3)
    def buy(self) -> None:
        cart = self.send("POST", "/api/carts/", "/api/carts/", expect=(201,))
        if not cart:
            return
        path = f"/api/carts/{cart['id']}/"
        for _ in range(random.randint(1, 3)):
            item = {"event": random.choice(DATA["events"]), "quantity": random.randint(1, 4)}
            if self.send("POST", f"{path}items/", "/api/carts/ID/items/", item) is None:
                return
        if self.send("GET", path, "/api/carts/ID/") is None:
            return
        if random.random() < 0.3:
            self.send("POST", f"{path}checkout/", "/api/carts/ID/checkout/",
                      {"email": f"buyer{random.randint(1, 10**6)}@example.com"}, expect=(201,))
