"""The market's history: 12 categories, 2,400 products, 3,000 customers, 120,000 orders of about 480,000 lines.

The constants below are the lab's numbers: the brief (README.md, lab.toml's summary) states them.

Loaded by the grader with COPY into the starter's schema (shop 0001_initial) once per template, before the
learner's own migrations run. The shapes are those of a real shop: categories of uneven size, a few products
that sell far more than the rest (popularity falls off with rank, so the top 20 are well apart and ties are
rare), customers who order a few times and a few who order every week, and some who never ordered.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from itertools import accumulate

from grader.dataset import Table

CATEGORIES = 12
PRODUCTS = 2_400
CUSTOMERS = 3_000
NEVER_ORDERED = 60  # customers with no order at all: their favourite_category is null
ORDERS = 120_000
LINES_PER_ORDER = (1, 7)  # drawn evenly: 4 on average, so about 480,000 lines
LINES_ABOUT = 480_000

_CATEGORIES = [("kitchen", "Kitchen"), ("garden", "Garden"), ("books", "Books"), ("toys", "Toys"),
               ("audio", "Audio"), ("office", "Office"), ("outdoor", "Outdoor"), ("bath", "Bath"),
               ("pets", "Pets"), ("tools", "Tools"), ("sports", "Sports"), ("lighting", "Lighting")]
# No word is the start of another, so that every collation orders the names alike.
_ADJECTIVES = ["Amber", "Brass", "Cedar", "Copper", "Dusky", "Frosted", "Granite", "Hazel", "Indigo", "Jade",
               "Linen", "Maple", "Nordic", "Olive", "Pewter", "Quartz", "Rustic", "Slate", "Teak", "Velvet"]
_NOUNS = {
    "kitchen": ["Kettle", "Skillet", "Colander", "Teapot", "Whisk", "Grater", "Ladle", "Mixing Bowl"],
    "garden": ["Trowel", "Planter", "Hose Reel", "Pruner", "Bird Feeder", "Watering Can", "Seed Tray"],
    "books": ["Atlas", "Cookbook", "Field Guide", "Journal", "Almanac", "Sketchbook", "Anthology"],
    "toys": ["Puzzle", "Kite", "Spinning Top", "Rocking Horse", "Marble Run", "Yo-Yo", "Building Set"],
    "audio": ["Speaker", "Headphones", "Turntable", "Radio", "Soundbar", "Earbuds", "Amplifier"],
    "office": ["Desk Lamp", "Stapler", "Notebook", "Pen Tray", "Letter Rack", "Monitor Stand"],
    "outdoor": ["Tent", "Lantern", "Hammock", "Cool Box", "Camp Stove", "Sleeping Mat", "Flask"],
    "bath": ["Towel", "Soap Dish", "Bath Mat", "Shower Caddy", "Robe", "Tumbler", "Sponge"],
    "pets": ["Dog Bed", "Cat Tree", "Leash", "Food Bowl", "Chew Toy", "Scratcher", "Carrier"],
    "tools": ["Hammer", "Spanner", "Tape Measure", "Spirit Level", "Screwdriver", "Chisel", "Toolbox"],
    "sports": ["Yoga Mat", "Dumbbell", "Racket", "Jump Rope", "Football", "Water Bottle", "Kettlebell"],
    "lighting": ["Floor Lamp", "Pendant", "Wall Sconce", "Fairy Lights", "Reading Light", "Candle Holder"],
}
_FIRST = ["ada", "bruno", "chidi", "dana", "emeka", "farah", "goran", "hana", "ivo", "jun", "kemi", "lars",
          "mina", "nuno", "olga", "priya", "quinn", "rosa", "sami", "tariq", "uma", "vera", "wen", "yusuf"]
_START = datetime(2023, 1, 1, tzinfo=timezone.utc)
_SPAN_SECONDS = 3 * 365 * 24 * 3600
_CATALOGUE_UPDATED = datetime(2026, 1, 1, tzinfo=timezone.utc)
_QUANTITIES = (1, 2, 3, 4, 6)
_QUANTITY_ODDS = tuple(accumulate((55, 25, 10, 6, 4)))


def tables(rng: random.Random) -> Iterator[Table]:
    yield Table("shop_category", ("id", "slug", "name"),
                [(category_id, slug, name) for category_id, (slug, name) in enumerate(_CATEGORIES, start=1)])

    # Categories of uneven size: from about 90 products to about 330.
    category_weights = [rng.uniform(0.4, 1.5) for _ in range(CATEGORIES)]
    product_categories = rng.choices(range(1, CATEGORIES + 1), weights=category_weights, k=PRODUCTS)
    products = []
    for product_id, category_id in enumerate(product_categories, start=1):
        slug = _CATEGORIES[category_id - 1][0]
        name = f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS[slug])} {rng.randint(100, 999)}"
        price = rng.choice((199, 299, 499, 799, 999, 1499, 1999, 2999, 4999, 7999, 12999, 24999))
        updated_at = _CATALOGUE_UPDATED + timedelta(seconds=rng.random() * 300 * 24 * 3600)
        products.append((product_id, category_id, name, price, rng.randint(0, 500), updated_at))
    yield Table("shop_product", ("id", "category_id", "name", "price", "stock", "updated_at"), products)

    tokens = set()
    customers = []
    for customer_id in range(1, CUSTOMERS + 1):
        token = f"{rng.getrandbits(160):040x}"
        while token in tokens:  # never, in practice: 160 random bits
            token = f"{rng.getrandbits(160):040x}"
        tokens.add(token)
        customers.append((customer_id, f"{rng.choice(_FIRST)}{customer_id:04d}", token))
    yield Table("shop_customer", ("id", "username", "token"), customers)

    prices = {product[0]: product[3] for product in products}
    orders, lines = _history(rng, prices)
    yield Table("shop_order", ("id", "customer_id", "created_at", "total"), orders)
    yield Table("shop_orderline", ("order_id", "product_id", "quantity", "price"), lines)


def _history(rng: random.Random, prices: dict[int, int]) -> tuple[list[tuple], list[tuple]]:
    """Every order and its lines; an order's total is the sum of its lines' price x quantity."""
    # Popularity falls off with rank (rank^-0.9) over a shuffled catalogue: a few bestsellers, a long tail.
    ranked = list(prices)
    rng.shuffle(ranked)
    popularity = list(accumulate(1 / rank ** 0.9 for rank in range(1, PRODUCTS + 1)))
    # Customers: most order now and then, a few often (weights 1 to 10), and some never.
    buyers = list(range(1, CUSTOMERS + 1))
    rng.shuffle(buyers)
    buyers = buyers[NEVER_ORDERED:]
    buyer_weights = [rng.choice((1, 1, 1, 2, 2, 3, 5, 10)) for _ in buyers]

    order_customers = rng.choices(buyers, weights=buyer_weights, k=ORDERS)
    moments = sorted(rng.random() * _SPAN_SECONDS for _ in range(ORDERS))  # ids follow time, as in a real shop
    orders, lines = [], []
    for order_id, (customer_id, moment) in enumerate(zip(order_customers, moments, strict=True), start=1):
        total = 0
        count = rng.randint(*LINES_PER_ORDER)
        for product_id in rng.choices(ranked, cum_weights=popularity, k=count):
            quantity = rng.choices(_QUANTITIES, cum_weights=_QUANTITY_ODDS)[0]
            total += prices[product_id] * quantity
            lines.append((order_id, product_id, quantity, prices[product_id]))
        orders.append((order_id, customer_id, _START + timedelta(seconds=moment), total))
    return orders, lines
