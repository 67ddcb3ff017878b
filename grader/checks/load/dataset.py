"""The box office's history: 40 events and 120,000 orders taken for them over three years.

Loaded by the grader with COPY into the starter's schema (tickets 0001_initial) once per template,
before the learner's own migrations run.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

from grader.dataset import Table

EVENTS = 40
ORDERS = 120_000

_ACTS = ["The Lanterns", "Kemi Adeyemi Trio", "Northern Lights Orchestra", "Salt & Iron", "Paper Harbours",
         "Glass Orchard", "Midnight Cartographers", "The Borrowed Clocks", "Vesper Choir", "Rook & Thistle"]
_KINDS = ["Live", "Unplugged", "Farewell Tour", "Summer Nights", "In Concert", "Late Show", "Matinee"]
_VENUES = ["Harbour Hall", "The Old Mill", "Riverside Arena", "Basalt Theatre", "Juniper Club", "City Dome"]
_FIRST = ["ada", "bruno", "chidi", "dana", "emeka", "farah", "goran", "hana", "ivo", "jun", "kemi", "lars",
          "mina", "nuno", "olga", "priya", "quinn", "rosa", "sami", "tariq", "uma", "vera", "wen", "yusuf"]
_DOMAINS = ["example.com", "example.org", "example.net"]
_START = datetime(2023, 1, 1, tzinfo=timezone.utc)
_SPAN = 3 * 365 * 24 * 3600


def tables(rng: random.Random) -> Iterator[Table]:
    events = []
    for event_id in range(1, EVENTS + 1):
        starts = _START + timedelta(days=rng.randint(30, 3 * 365 + 200), hours=rng.choice((19, 20, 21)))
        events.append((event_id, f"{rng.choice(_ACTS)}: {rng.choice(_KINDS)}", rng.choice(_VENUES), starts,
                       rng.choice((2500, 3500, 4500, 5900, 7500, 9900))))
    yield Table("tickets_event", ("id", "name", "venue", "starts_at", "price"), events)
    prices = {event[0]: event[4] for event in events}
    weights = [1 / rank for rank in range(1, EVENTS + 1)]  # a few sell most of the tickets
    yield Table("tickets_order", ("event_id", "email", "quantity", "total", "created_at"),
                _orders(rng, prices, weights))


def _orders(rng: random.Random, prices: dict[int, int], weights: list[float]) -> Iterator[tuple]:
    chosen = rng.choices(list(prices), weights=weights, k=ORDERS)
    moments = sorted(rng.random() * _SPAN for _ in range(ORDERS))  # ids follow time, as in a real ledger
    for event_id, moment in zip(chosen, moments, strict=True):
        quantity = rng.choices((1, 2, 3, 4, 6), (30, 40, 15, 10, 5))[0]
        email = f"{rng.choice(_FIRST)}.{rng.randint(1, 99999)}@{rng.choice(_DOMAINS)}"
        yield (event_id, email, quantity, prices[event_id] * quantity, _START + timedelta(seconds=moment))
