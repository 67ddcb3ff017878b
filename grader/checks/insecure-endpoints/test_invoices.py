"""Invoices: each user's own (API1), pages of a bounded size (API4) and search without injection."""

from __future__ import annotations

from grader.checkkit import Failure, attempt_line, check, condensed

MAX_PAGE = 100
INVOICE_FIELDS = ("id", "owner", "number", "customer", "amount_cents", "status", "created_at")
OBJECT_LEVEL = ("Every invoice endpoint must only ever find the signed-in user's invoices: build the queryset from "
                "request.user (or check the owner in a permission) for reads, changes and deletes alike.")


def _ids(reply) -> list[int]:
    body = reply.body if isinstance(reply.body, dict) else {}
    results = body.get("results") if isinstance(body.get("results"), list) else []
    return [item.get("id") for item in results if isinstance(item, dict)]


@check("invoices-own")
def test_invoices_own(client, accounts, records, expect, contract):
    """A user creates, lists, reads, changes and deletes their own invoices"""
    owner = accounts["invoices_own"]
    auth = accounts.headers(owner)
    expect.status(client.get("/api/invoices/"), 401, "without a token", help=contract)
    sent = {"number": "INV-4711", "customer": "Harbor Coffee", "amount_cents": 125_000}
    created = client.post("/api/invoices/", sent, headers=auth)
    expect.status(created, 201, "creating an invoice", sent=sent, help=contract)
    body = expect.fields(created, INVOICE_FIELDS, help=contract)
    expect.values(created, {**sent, "owner": owner.id, "status": "draft"}, "what was sent, by its owner",
                  help=contract)
    invoice_id = body["id"]
    row = records.invoice(invoice_id)
    if row is None or row["owner_id"] != owner.id:
        raise Failure(f"POST /api/invoices/ answered 201 with id {invoice_id}, but billing_invoice has no such "
                      f"invoice owned by {owner.username}", evidence={"row": row}, help=contract)
    listed = client.get("/api/invoices/", headers=auth)
    expect.status(listed, 200, "listing one's invoices", help=contract)
    if invoice_id not in _ids(listed):
        raise Failure("GET /api/invoices/ does not list the invoice just created",
                      evidence={"created": invoice_id, "listed": _ids(listed)[:20]}, help=contract)
    expect.status(client.get(f"/api/invoices/{invoice_id}/", headers=auth), 200, "for one's own invoice",
                  help=contract)
    changed = client.request("PATCH", f"/api/invoices/{invoice_id}/", {"status": "sent"}, headers=auth)
    expect.status(changed, 200, "changing one's own invoice", sent={"status": "sent"}, help=contract)
    if (records.invoice(invoice_id) or {}).get("status") != "sent":
        raise Failure("PATCH of status answered 200 but billing_invoice still has the old status",
                      evidence={"row": records.invoice(invoice_id)}, help=contract)
    expect.status(client.request("DELETE", f"/api/invoices/{invoice_id}/", headers=auth), 204,
                  "deleting one's own invoice", help=contract)
    expect.status(client.get(f"/api/invoices/{invoice_id}/", headers=auth), 404, "for a deleted invoice",
                  help=contract)


@check("invoices-isolated")
def test_invoices_isolated(client, accounts, records, seeded, expect):
    """Nobody reads, changes or deletes another user's invoice by its id"""
    owner, intruder = accounts["isolation_owner"], accounts["isolation_intruder"]
    victims = [invoice["id"] for invoice in seeded["invoices"]["isolation_owner"]]
    auth = accounts.headers(intruder)
    who = f"{intruder.username} (not the owner)"
    before = {invoice_id: records.invoice(invoice_id) for invoice_id in victims}
    leaks = []
    read = client.get(f"/api/invoices/{victims[0]}/", headers=auth)
    if read.status not in (403, 404):
        leaks.append({"exploit": attempt_line(read, who), "leaked": condensed(read.text, 240)})
    sent = {"customer": "Paid to the intruder", "amount_cents": 1}
    changed = client.request("PATCH", f"/api/invoices/{victims[1]}/", sent, headers=auth)
    after = records.invoice(victims[1])
    if changed.status not in (403, 404) or after != before[victims[1]]:
        leaks.append({"exploit": attempt_line(changed, who, sent), "row_before": before[victims[1]], "row_after": after})
    deleted = client.request("DELETE", f"/api/invoices/{victims[2]}/", headers=auth)
    if deleted.status not in (403, 404) or records.invoice(victims[2]) is None:
        leaks.append({"exploit": attempt_line(deleted, who),
                      "changed": "the invoice is gone from billing_invoice" if records.invoice(victims[2]) is None
                      else "the invoice is still there"})
    listed = client.get("/api/invoices/?page_size=100", headers=auth)
    foreign = sorted(set(_ids(listed)) & set(victims))
    if foreign:
        leaks.append({"exploit": attempt_line(listed, who), "leaked": f"the owner's invoices {foreign}"})
    if leaks:
        raise Failure(f"{intruder.username} reached {owner.username}'s invoices by their ids: {len(leaks)} of 4 "
                      "attempts got through (API1:2023 Broken Object Level Authorization)",
                      evidence={"attempts": leaks, "expected": "404 or 403, and the invoice unchanged"},
                      help=OBJECT_LEVEL)
    own = client.get(f"/api/invoices/{victims[0]}/", headers=accounts.headers(owner))
    expect.status(own, 200, f"as {owner.username}, the owner", help="The owner must still read their invoice.")


@check("pages-honoured")
def test_pages_honoured(client, accounts, records, expect, contract):
    """Invoice lists come in pages: 20 by default, page_size up to 100, newest first, with count and next"""
    user = accounts["pages"]
    auth = accounts.headers(user)
    expected = [row["id"] for row in records.invoices_of(user.id)]
    first = client.get("/api/invoices/", headers=auth)
    expect.status(first, 200, "listing invoices", help=contract)
    body = expect.fields(first, ("count", "next", "previous", "results"), help=contract)
    if body["count"] != len(expected) or _ids(first) != expected[:20] or not body["next"]:
        raise Failure("GET /api/invoices/ is not the first 20 of the user's invoices, newest first, with count "
                      "and a next link", evidence={"count": body["count"], "expected_count": len(expected),
                                                   "ids": _ids(first), "expected_ids": expected[:20],
                                                   "next": body["next"]}, help=contract)
    for page in (1, 2):
        reply = client.get(f"/api/invoices/?page={page}&page_size=50", headers=auth)
        expect.status(reply, 200, "for page_size=50", help=contract)
        if _ids(reply) != expected[(page - 1) * 50:page * 50]:
            raise Failure(f"page {page} with page_size=50 does not hold invoices {(page - 1) * 50 + 1}-{page * 50}, "
                          "newest first", evidence={"ids": _ids(reply)[:60]}, help=contract)


@check("page-size-bounded")
def test_page_size_bounded(client, accounts, expect, contract):
    """No client gets more than 100 invoices a page, whatever page_size it asks for"""
    user = accounts["pages"]
    auth = accounts.headers(user)
    problems = []
    for asked in ("100000", "101", "-1", "abc"):
        reply = client.get(f"/api/invoices/?page_size={asked}", headers=auth)
        if reply.is_5xx or reply.error:
            problems.append({"exploit": attempt_line(reply, user.username), "answer": condensed(reply.text, 200)})
        elif reply.status == 200 and len(_ids(reply)) > MAX_PAGE:
            problems.append({"exploit": attempt_line(reply, user.username),
                             "leaked": f"{len(_ids(reply))} invoices in one page"})
        elif reply.status not in (200, 400):
            problems.append({"exploit": attempt_line(reply, user.username), "answer": condensed(reply.text, 200)})
    if problems:
        raise Failure(f"a client chose its own page size: {problems[0]['exploit']} "
                      "(API4:2023 Unrestricted Resource Consumption)", evidence={"attempts": problems},
                      help="Cap the page size (DRF: max_page_size on the pagination class); one client must not "
                           "make a page as big as it likes.")
    searched = client.get("/api/invoices/search/?q=", headers=auth)
    if searched.status == 200 and len(_ids(searched)) > MAX_PAGE:
        raise Failure(f"GET /api/invoices/search/?q= gave {len(_ids(searched))} invoices at once; the brief allows "
                      f"{MAX_PAGE} (API4:2023 Unrestricted Resource Consumption)",
                      evidence={"exploit": attempt_line(searched, user.username)},
                      help="Bound every list the API returns, searches included.")
    reply = client.get("/api/invoices/?page_size=100", headers=auth)
    expect.status(reply, 200, "for page_size=100", help=contract)
    if len(_ids(reply)) != MAX_PAGE:
        raise Failure(f"page_size=100 gave {len(_ids(reply))} invoices; the brief allows pages up to 100",
                      help="Keep page_size working up to 100.")


@check("search-works")
def test_search_works(client, accounts, records, seeded, expect, contract):
    """Searching finds one's own invoices by customer, quotes and all, and filters by min_amount"""
    user = accounts["search"]
    auth = accounts.headers(user)
    own = records.invoices_of(user.id)
    quoted = seeded["quoted_customer"]
    expected = [row["id"] for row in own if quoted.lower() in row["customer"].lower()]
    reply = client.get("/api/invoices/search/?q=O%27Brien", headers=auth)
    expect.status(reply, 200, "searching for O'Brien", help=contract)
    if _ids(reply) != expected:
        raise Failure(f"searching for O'Brien does not give exactly {user.username}'s invoices for {quoted!r}, "
                      "newest first", evidence={"ids": _ids(reply), "expected": expected}, help=contract)
    floor = sorted(row["amount_cents"] for row in own)[len(own) // 2]
    expected = [row["id"] for row in own if "acme" in row["customer"].lower() and row["amount_cents"] >= floor]
    reply = client.get(f"/api/invoices/search/?q=acme&min_amount={floor}", headers=auth)
    expect.status(reply, 200, "searching with min_amount", help=contract)
    if _ids(reply) != expected:
        raise Failure(f"q=acme&min_amount={floor} does not give exactly the user's Acme invoices of at least "
                      f"{floor} cents", evidence={"ids": _ids(reply), "expected": expected}, help=contract)


INJECTIONS = [("min_amount", "0 OR 1=1"), ("min_amount", "0) OR (1=1"), ("min_amount", "0 OR TRUE --"),
              ("min_amount", "abc"), ("q", "%' OR '1'='1"), ("q", "x' OR 1=1 --"), ("q", "\\' OR 1=1 --")]


@check("search-no-injection")
def test_search_no_injection(client, accounts, records, expect, contract):
    """Search parameters are data, never SQL: no payload reaches other users' invoices or breaks the query"""
    from urllib.parse import quote

    user = accounts["injection"]
    auth = accounts.headers(user)
    own = {row["id"] for row in records.invoices_of(user.id)}
    problems = []
    for name, payload in INJECTIONS:
        reply = client.get(f"/api/invoices/search/?{name}={quote(payload)}", headers=auth)
        foreign = sorted(set(_ids(reply)) - own)
        if foreign:
            owners = records.owners(foreign)
            problems.append({"exploit": attempt_line(reply, user.username), "parameter": f"{name}={payload}",
                             "leaked": f"{len(foreign)} invoices of {len(set(owners.values()))} other user(s)",
                             "ids": foreign[:10]})
        elif reply.is_5xx or reply.error:
            problems.append({"exploit": attempt_line(reply, user.username), "parameter": f"{name}={payload}",
                             "answer": condensed(reply.text, 200)})
        elif reply.status not in (200, 400):
            problems.append({"exploit": attempt_line(reply, user.username), "parameter": f"{name}={payload}",
                             "answer": f"{reply.status} {condensed(reply.text, 120)}"})
    if problems:
        leaked = [problem for problem in problems if "leaked" in problem]
        first = (leaked or problems)[0]
        what = f"leaked {first['leaked']}" if leaked else f"broke the query ({first['exploit']})"
        raise Failure(f"{first['parameter']} {what}: the search builds SQL from its parameters (injection)",
                      evidence={"attempts": problems},
                      help="Never format request values into SQL: pass them as query parameters (cursor.execute(sql, "
                           "params)) or use the ORM, and refuse a min_amount that is not a number with 400.")
    reply = client.get("/api/invoices/search/?q=acme&min_amount=0", headers=auth)
    expect.status(reply, 200, "for a plain search", help=contract)
