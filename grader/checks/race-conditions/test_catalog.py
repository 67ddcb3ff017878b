"""The catalog: a product's page."""

from grader.checkkit import check

PRODUCT_FIELDS = ("id", "name", "price", "stock")
CONTRACT = "The brief lists the product endpoint's fields and status codes; compare your JSON with it field by field."


@check("product-detail")
def test_product_detail(client, ledger, expect, seeded):
    """A product's page shows its id, name, price and stock; an unknown id is 404"""
    for seeded_product in seeded["product_detail"]:
        row = ledger.product(seeded_product["id"])
        reply = client.get(f"/api/products/{row['id']}/")
        expect.status(reply, 200, "for an existing product", help=CONTRACT)
        expect.fields(reply, PRODUCT_FIELDS, help=CONTRACT)
        expect.values(reply, {name: row[name] for name in PRODUCT_FIELDS}, "the product's row in store_product",
                      help=CONTRACT)
    unknown = ledger.unknown_id("store_product")
    expect.status(client.get(f"/api/products/{unknown}/"), 404, "for a product that does not exist", help=CONTRACT)
