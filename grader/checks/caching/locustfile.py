"""The shop on a sale day: every visit opens the front page (the bestsellers), then a product page, a category page
reached through a tagged link, or the dashboard of one of many signed-in customers, each request to either replica.

Run by the grader in its own process (grader.load.run_load). The replicas' addresses come in $LAB_LOAD_HOSTS (as
behind a load balancer, each request goes to one of them); the products, categories and customers to ask for, and
what the answers must hold, in the JSON file $LAB_LOAD_DATA. An answer that is not what the database holds (another
customer's dashboard, a page of another category) counts as a failed request. Every request has a time-out.
"""

import json
import os
import random

from locust import HttpUser, constant, task

HOSTS = json.loads(os.environ["LAB_LOAD_HOSTS"])
with open(os.environ["LAB_LOAD_DATA"], encoding="utf-8") as handle:
    DATA = json.load(handle)
TIMEOUT = 10
TAGS = ("utm_source=newsletter", "utm_source=social&utm_medium=post", "ref=homepage", "fbclid=IwAR{n}", "_={n}")


class Shopper(HttpUser):
    """A shopper on the sale day: no pause between requests."""

    wait_time = constant(0)

    def send(self, path: str, name: str, check, headers=None) -> None:
        url = f"{random.choice(HOSTS)}{path}"  # a load balancer: any replica answers any request
        with self.client.get(url, name=name, headers=headers, timeout=TIMEOUT, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:120]}")
                return
            try:
                wrong = check(response.json())
            except (ValueError, TypeError, KeyError, AttributeError) as error:
                wrong = f"not the brief's JSON ({type(error).__name__}: {error})"
            if wrong:
                response.failure(wrong)

    def front_page(self) -> None:
        """Every visit starts on the front page, which shows the bestsellers."""
        wanted = DATA["bestsellers"]
        self.send("/api/bestsellers/", "/api/bestsellers/",
                  lambda body: None if [item["id"] for item in body["products"]] == wanted
                  else "not the database's top 20")

    @task(3)
    def product(self) -> None:
        self.front_page()
        product_id = random.choice(DATA["products"])
        self.send(f"/api/products/{product_id}/", "/api/products/ID/",
                  lambda body: None if body["id"] == product_id else f"product {body['id']} for {product_id}")

    @task(3)
    def category_page(self) -> None:
        self.front_page()
        category = random.choice(DATA["categories"])
        number = random.randint(1, category["pages"])
        tag = random.choice(TAGS).format(n=random.randint(1, 10**9))
        sort = random.choice(("name", "price"))
        parts = [f"page={number}", f"sort={sort}", tag]
        random.shuffle(parts)
        self.send(f"/api/categories/{category['slug']}/products/?{'&'.join(parts)}",
                  "/api/categories/SLUG/products/?page=N&sort=S&TAG",
                  lambda body: None if body["count"] == category["count"] and body["results"]
                  else f"count {body['count']} for a category of {category['count']}")

    @task(2)
    def dashboard(self) -> None:
        self.front_page()
        customer = random.choice(DATA["customers"])
        self.send("/api/me/dashboard/", "/api/me/dashboard/",
                  lambda body: None if body["customer"] == customer["username"]
                  else f"the dashboard of {body['customer']!r} for {customer['username']!r}",
                  headers={"Authorization": f"Token {customer['token']}"})
