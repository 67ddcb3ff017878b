"""The catalogue's traffic: book pages, books, the reviews feed, readers' reviews and ISBN lookups.

Run by the grader in its own process (grader.load.run_load); the ids, ISBNs and readers to ask
for come from the check, in the JSON file $LAB_LOAD_DATA names. Every request has a time-out, so
a run ends on time however slow the service is.
"""

import json
import os
import random
from urllib.parse import quote, urlsplit

from locust import HttpUser, constant, task

with open(os.environ["LAB_LOAD_DATA"], encoding="utf-8") as handle:
    DATA = json.load(handle)
TIMEOUT = 10


class Shopper(HttpUser):
    """Browses the catalogue without pause: the load a busy afternoon puts on the API."""

    wait_time = constant(0)

    def get(self, path: str, name: str) -> None:
        with self.client.get(path, name=name, timeout=TIMEOUT, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}")

    @task(12)
    def book_page(self) -> None:
        """The front page and the pages after it: most of the shop's traffic."""
        self.get(f"/api/books/?page={random.randint(1, DATA['book_pages'])}", "/api/books/?page=N")

    @task(2)
    def book(self) -> None:
        self.get(f"/api/books/{random.choice(DATA['books'])}/", "/api/books/ID/")

    @task(1)
    def feed(self) -> None:
        """The latest reviews, then two more pages by following `next`, as a reader scrolling would."""
        path = "/api/reviews/"
        for name in ("/api/reviews/", "/api/reviews/?cursor=C", "/api/reviews/?cursor=C"):
            with self.client.get(path, name=name, timeout=TIMEOUT, catch_response=True) as response:
                if response.status_code != 200:
                    response.failure(f"{response.status_code}")
                    return
                link = (response.json() or {}).get("next")
            if not link:
                return
            parts = urlsplit(link)
            path = f"{parts.path}?{parts.query}"

    @task(1)
    def reader(self) -> None:
        self.get(f"/api/reviews/?reviewer={quote(random.choice(DATA['reviewers']))}", "/api/reviews/?reviewer=R")

    @task(1)
    def isbn(self) -> None:
        self.get(f"/api/books/?isbn={random.choice(DATA['isbns'])}", "/api/books/?isbn=X")
