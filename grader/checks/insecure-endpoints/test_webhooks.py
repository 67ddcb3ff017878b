"""Webhooks (API7:2023 Server Side Request Forgery): the service calls users' URLs, never its own machine."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from grader.canary import Canary, public_address
from grader.checkkit import Failure, attempt_line, check, condensed

# Where the run has no public address that stays on the machine (not root, a docker network with a way out): a
# public address the brief never calls at registration, the only time the check gives it to the service.
PUBLIC_ADDRESS = "93.184.215.14"
SSRF_HELP = ("Before calling a webhook, resolve its host and refuse the URL unless every address is a public one "
             "(ipaddress: is_global), then connect to the address you checked and do not follow redirects. "
             "Comparing the URL's text with '127.0.0.1' misses localhost, 127.1, [::1] and redirects.")


def _where(lab) -> dict[str, Any] | None:
    return lab.replica_processes[0] if lab.replica_processes else None


def public_url(address: str) -> str:
    """A public https URL for the check to register: on the run's public address, which never leads off the
    machine (nothing listens on its port 443), where there is one."""
    return f"https://{address or PUBLIC_ADDRESS}/hooks/invoicely"


@check("webhooks-register")
def test_webhooks_register(lab, client, accounts, expect, contract):
    """A user registers a webhook on a public URL and sees it listed; a URL that is not http(s) is 400"""
    user = accounts["webhooks"]
    auth = accounts.headers(user)
    url, created = _register_public(client, auth, public_address(_where(lab))[0])
    expect.status(created, 201, "registering a public https URL", sent={"url": url}, help=contract)
    body = expect.fields(created, ("id", "url"), help=contract)
    listed = client.get("/api/webhooks/", headers=auth)
    expect.status(listed, 200, "listing webhooks", help=contract)
    if not isinstance(listed.body, list) or body["id"] not in [item.get("id") for item in listed.body
                                                                 if isinstance(item, dict)]:
        raise Failure("GET /api/webhooks/ does not list the webhook just registered",
                      evidence={"reply": condensed(listed.text, 300)}, help=contract)
    for url in ("ftp://files.example.org/hook", "not a url"):
        expect.status(client.post("/api/webhooks/", {"url": url}, headers=auth), 400, "for a URL that is not http(s)",
                      sent={"url": url}, help=contract)


def _register_public(client, auth, address: str):
    """Register a public https URL: on the run's public address first (nothing that calls it leaves the machine);
    a service that refuses that one because it is its own machine's, stricter than the brief, gets one on an
    outside address instead (only registered, never pinged). Returns the URL and the reply."""
    url = public_url(address)
    created = client.post("/api/webhooks/", {"url": url}, headers=auth)
    if address and created.status == 400:
        url = public_url("")
        created = client.post("/api/webhooks/", {"url": url}, headers=auth)
    return url, created


LOOPBACK = ["127.0.0.1", "localhost", "127.1", "0.0.0.0", "0", "2130706433", "0x7f000001", "0177.0.0.1",
            "[::ffff:127.0.0.1]"]
"""Spellings of this machine in a URL's host: dotted, short, decimal, hex, octal, IPv4-mapped."""
PRIVATE = ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/hooks", "http://172.16.5.4/hooks",
           "http://192.168.1.1/hooks", "http://[fd00::1]/hooks", "http://[fe80::1]/hooks"]
"""Never called: the brief refuses them at registration (a ping would send traffic off the machine)."""


def _try(client, auth, url: str, who: str, canary, between=None) -> dict:
    """Register a webhook on the URL and, when that is accepted, ping it (after `between()`, when given)."""
    registered = client.post("/api/webhooks/", {"url": url}, headers=auth)
    attempt = {"url": url, "register": registered.status}
    if registered.status == 201 and isinstance(registered.body, dict):
        if between is not None:
            between()
        ping = client.post(f"/api/webhooks/{registered.body.get('id')}/ping/", headers=auth)
        attempt.update(ping=ping.status, exploit=attempt_line(ping, who), answered=condensed(ping.text, 160),
                       leaked=f"canary {canary.secret}" in ping.text)
    return attempt


def _tricks(canary, first: int) -> tuple[list[tuple[str, str, Any]], list[dict[str, str]]]:
    """The cases that need a public address or names the check resolves, as (form, url, between), numbered from
    `first`; and those this run cannot try, with why."""
    cases, untried = [], []
    inner = canary.url("127.0.0.1", f"canary-{first}")
    if canary.public:
        cases.append(("a redirect from a public address to 127.0.0.1",
                      f"{canary.url(canary.public, f'hop-{first}')}?to={quote(inner, safe='')}", None))
    else:
        untried.append({"case": "a redirect from a public address to 127.0.0.1", "why": canary.public_why_not})
    tag = canary.secret[:10]
    if not canary.names_why_not and canary.public:
        name = f"rebind-{len(cases) + first}.{tag}.test"
        canary.point(name, canary.public)
        cases.append((f"a name resolving to {canary.public} at registration, to 127.0.0.1 at the "
                      f"ping ({name})",
                      canary.url(name, f"canary-{len(cases) + first}"), lambda: canary.point(name, "127.0.0.1")))
    else:  # without a public address of the run's own, a name pinned at registration would lead off the machine
        untried.append({"case": "a name that resolves to 127.0.0.1 once registered",
                        "why": canary.names_why_not or canary.public_why_not})
    if not canary.dns_why_not and canary.public:
        twice = f"recheck-{len(cases) + first}.{tag}.test"
        canary.answer(twice, [canary.public])
        cases.append((f"a name resolving to {canary.public} at registration and at the ping's first lookup, to "
                      f"127.0.0.1 after ({twice})",
                      canary.url(twice, f"canary-{len(cases) + first}"),
                      lambda: canary.answer(twice, [canary.public, "127.0.0.1"])))
    else:
        untried.append({"case": "a name whose second lookup at the ping resolves to 127.0.0.1",
                        "why": canary.dns_why_not or canary.public_why_not})
    return cases, untried


@check("webhooks-no-ssrf")
def test_webhooks_no_ssrf(lab, client, db, accounts, expect, contract, record_property):
    """No webhook makes the service call its own machine: not by any spelling, redirect, changed name or old row"""
    user = accounts["webhooks"]
    with Canary(_where(lab), lab.work_dir / "canary", names=True) as canary:
        auth = accounts.headers(user)  # after the listener started: the token lives a few seconds only
        forms = LOOPBACK + (["[::1]"] if canary.ipv6 else [])
        targets = {form: canary.url(form, f"canary-{index}") for index, form in enumerate(forms)}
        inner = canary.url("127.0.0.1", f"canary-{len(targets)}")
        targets["a redirect to 127.0.0.1"] = f"{canary.url('127.1', 'hop')}?to={quote(inner, safe='')}"
        attempts = [{"form": form, **_try(client, auth, url, user.username, canary)} for form, url in targets.items()]
        tricks, untried = _tricks(canary, len(targets))
        for form, url, between in tricks:  # a new token each: changing names in a container takes a while
            targets[form] = url
            auth = accounts.headers(user)
            attempts.append({"form": form, **_try(client, auth, url, user.username, canary, between)})
        auth = accounts.headers(user)
        # A row registered before the fix, or a name that resolved elsewhere then: the ping checks again.
        planted = db.scalar("INSERT INTO billing_webhook (owner_id, url, created_at) VALUES (%s, %s, now()) "
                            "RETURNING id", (user.id, canary.url("127.0.0.1", f"canary-{len(targets)}")))
        targets["an old webhook row on 127.0.0.1"] = "(planted in billing_webhook)"
        ping = client.post(f"/api/webhooks/{planted}/ping/", headers=auth)
        attempts.append({"form": "an old webhook row on 127.0.0.1", "register": None, "ping": ping.status,
                         "exploit": attempt_line(ping, user.username), "answered": condensed(ping.text, 160),
                         "leaked": f"canary {canary.secret}" in ping.text})
        auth = accounts.headers(user)
        hits, lookups = canary.forged(), canary.lookups()
        served = [hit for hit in canary.hits() if hit not in hits]  # by the public address: allowed
        where_public = {"public_address": canary.public, "why_it_stays_on_the_machine": canary.public_proof} \
            if canary.public else {}
    reached = {hit["path"].split("/")[1].removeprefix("canary-") for hit in hits if hit["path"].startswith("/canary-")}
    through = [form for index, form in enumerate(targets) if str(index) in reached]
    not_tried = {"not_tried": untried} if untried else {}
    if hits:
        raise Failure(f"webhooks made the service call its own machine: {', '.join(through) or 'loopback'} reached a "
                      "listener on the service's loopback (API7:2023 Server Side Request Forgery)",
                      evidence={"attempts": attempts, "the_listener_saw": hits[:10],
                                "leaked_to_the_caller": [a["form"] for a in attempts if a.get("leaked")],
                                "ipv6_loopback": canary.ipv6, **({"names_resolved": lookups} if lookups else {}),
                                **where_public, **not_tried},
                      help=SSRF_HELP)
    # The run's public address is this machine's own: a service that refuses it at registration is stricter than
    # the brief asks, and safe; the evidence of a pass says so.
    refused_own = [attempt["form"] for attempt in attempts
                   if canary.public and canary.public in attempt["form"] + attempt.get("url", "")
                   and attempt["register"] == 400]
    accepted = []
    for url in PRIVATE:
        reply = client.post("/api/webhooks/", {"url": url}, headers=auth)
        if reply.status != 400:
            accepted.append({"exploit": attempt_line(reply, user.username, {"url": url}),
                             "answered": condensed(reply.text, 160)})
    if accepted:
        raise Failure(f"{len(accepted)} webhook(s) on private or link-local addresses were not refused, "
                      f"{accepted[0]['exploit']} among them; the brief says 400 (API7:2023 Server Side Request "
                      "Forgery)", evidence={"accepted": accepted}, help=SSRF_HELP)
    broken = [attempt for attempt in attempts if (attempt["register"] or 0) >= 500 or (attempt.get("ping") or 0) >= 500]
    if broken:
        raise Failure(f"a refused webhook answered with a server error ({broken[0]['form']}); the brief says 400",
                      evidence={"attempts": attempts}, help=contract)
    if ping.status != 400:
        raise Failure(f"the ping of an old webhook row on 127.0.0.1 answered {ping.status}; the brief says 400",
                      evidence={"exploit": attempts[-1]["exploit"]}, help=contract)
    url, created = _register_public(client, auth, canary.public)
    expect.status(created, 201, "registering a public URL after the attempts", sent={"url": url},
                  help="Public URLs must still be accepted.")
    refused = {"refused_as_this_machine_s_own_address": refused_own} if refused_own else {}
    record_property("evidence", {"tried": list(targets), **where_public, **not_tried, **refused,
                                 **({"the_public_address_saw": served} if served else {}),
                                 **({"names_resolved": lookups} if lookups else {})})
