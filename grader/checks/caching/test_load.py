"""The shop under load, across both replicas, judged against the reference solution measured on this machine."""

from __future__ import annotations

from pathlib import Path

from grader.checkkit import check
from grader.load import LoadProfile, run_load

CUSTOMERS = 600  # dashboards asked for under load: far more than fit in one cached key


@check("under-load")
def test_under_load(lab, load, shop, pages, db, figures, progress, rng):
    """Under load across both replicas: no failed request, throughput and median latency within the calibrated ratios"""
    categories = [{"slug": row["slug"], "count": row["products"], "pages": -(-row["products"] // pages.PAGE)}
                  for row in shop.categories() if row["products"]]
    products = [row["id"] for row in db.query("SELECT id FROM shop_product ORDER BY id")]
    data = {"bestsellers": [row["id"] for row in shop.bestsellers()],
            "products": rng.sample(products, min(500, len(products))),
            "categories": categories,
            "customers": [{"username": row["username"], "token": row["token"]}
                          for row in shop.customers(rng, CUSTOMERS)]}
    spec = lab.load
    # One run measured here, with the statements PostgreSQL ran meanwhile, is the verdict's first round.
    first, statements = db.statements(lambda: run_load(
        Path(spec["locustfile"]), lab.replicas, LoadProfile(spec["users"], spec["spawn_rate"], spec["seconds"]),
        lab.work_dir / "under-load-first", progress=progress, data=data))
    if first.total.requests:
        figures["statements per request"] = round(statements.total / first.total.requests, 2)
    load.verdict(data=data, first=first)
