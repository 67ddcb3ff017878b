"""How the service is configured (API8:2023 Security Misconfiguration): CORS, error pages, security headers."""

from __future__ import annotations

import secrets

from grader.checkkit import Failure, check, condensed

APP_ORIGIN = "https://app.invoicely.test"
FOREIGN_ORIGINS = ("https://evil.example", "null", f"{APP_ORIGIN}.evil.example", "http://app.invoicely.test",
                   "https://evil.invoicely.test", "https://appXinvoicely.test")
DEBUG_MARKERS = ("Django tried these URL patterns", "Using the URLconf defined in", "Traceback",
                 "You're seeing this error because you have", "Request Method:", "Exception Value")


def _preflight(client, origin: str):
    return client.request("OPTIONS", "/api/invoices/", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})


@check("app-origin-allowed")
def test_app_origin_allowed(client, accounts, expect, contract):
    """The web app's origin may call the API from the browser, with credentials, preflight included"""
    auth = accounts.headers(accounts["cors"])
    reply = client.get("/api/me/", headers={**auth, "Origin": APP_ORIGIN})
    expect.status(reply, 200, f"with Origin: {APP_ORIGIN}", help=contract)
    preflight = _preflight(client, APP_ORIGIN)
    problems = []
    for name, answer in (("GET /api/me/", reply), ("the preflight OPTIONS /api/invoices/", preflight)):
        if answer.headers.get("access-control-allow-origin") != APP_ORIGIN:
            problems.append(f"{name}: Access-Control-Allow-Origin is "
                            f"{answer.headers.get('access-control-allow-origin')!r}")
        if answer.headers.get("access-control-allow-credentials", "").lower() != "true":
            problems.append(f"{name}: Access-Control-Allow-Credentials is "
                            f"{answer.headers.get('access-control-allow-credentials')!r}")
    if preflight.status not in (200, 204):
        problems.append(f"the preflight answered {preflight.status}")
    allowed_headers = preflight.headers.get("access-control-allow-headers", "").lower()
    if "authorization" not in allowed_headers or "POST" not in preflight.headers.get("access-control-allow-methods", ""):
        problems.append("the preflight does not allow POST with an Authorization header")
    if problems:
        raise Failure(f"the web app at {APP_ORIGIN} cannot call the API: {problems[0]}",
                      evidence={"problems": problems}, help="The brief's CORS section: the web app's origin, with "
                                                            "credentials, for GET, POST, PATCH and DELETE.")


@check("cors-allowlist")
def test_cors_allowlist(client, accounts):
    """No other origin is allowed to read the API from a browser"""
    auth = accounts.headers(accounts["cors"])
    allowed = []
    for origin in FOREIGN_ORIGINS:
        for name, reply in (("GET /api/me/", client.get("/api/me/", headers={**auth, "Origin": origin})),
                            ("preflight OPTIONS /api/invoices/", _preflight(client, origin))):
            granted = reply.headers.get("access-control-allow-origin")
            credentials = reply.headers.get("access-control-allow-credentials", "").lower() == "true"
            if granted == origin or (granted == "*" and credentials):
                allowed.append({"exploit": f"{name} with Origin: {origin}",
                                "answered": {"Access-Control-Allow-Origin": granted,
                                             "Access-Control-Allow-Credentials": credentials}})
    if allowed:
        raise Failure(f"the API lets any web page read it with the user's credentials: {allowed[0]['exploit']} got "
                      f"Access-Control-Allow-Origin: {allowed[0]['answered']['Access-Control-Allow-Origin']} "
                      "(API8:2023 Security Misconfiguration)", evidence={"allowed": allowed},
                      help="Allow exactly the web app's origin (settings.WEB_APP_ORIGIN), compared as a whole "
                           "string, never the Origin a request brings.")


@check("no-debug-pages")
def test_no_debug_pages(client, accounts):
    """Errors show no stack traces, settings or URL patterns"""
    auth = accounts.headers(accounts["cors"])
    probes = [client.get(f"/api/no-such-page-{secrets.token_hex(4)}/"),
              client.get("/api/invoices/search/?min_amount=%27", headers=auth),
              client.get("/api/invoices/not-a-number/", headers=auth)]
    shown = []
    for reply in probes:
        markers = [marker for marker in DEBUG_MARKERS if marker in reply.text]
        if markers:
            shown.append({"exploit": f"{reply.method} {reply.path} -> {reply.status}", "showed": markers,
                          "excerpt": condensed(reply.text, 240)})
    if shown:
        raise Failure(f"{shown[0]['exploit']} shows Django's debug page ({shown[0]['showed'][0]!r}): the service's "
                      "code, settings and URLs, to anyone (API8:2023 Security Misconfiguration)",
                      evidence={"pages": shown},
                      help="Never run with DEBUG = True where anyone else can reach the service: set it from the "
                           "environment, off by default.")


REQUIRED_HEADERS = {
    "x-content-type-options": lambda value: value.lower() == "nosniff",
    "x-frame-options": lambda value: value.upper() in ("DENY", "SAMEORIGIN"),
    "referrer-policy": lambda value: bool(value.strip()),
}


@check("security-headers")
def test_security_headers(client, accounts):
    """Every answer carries X-Content-Type-Options: nosniff, X-Frame-Options and a Referrer-Policy"""
    auth = accounts.headers(accounts["cors"])
    replies = [client.get("/api/me/", headers=auth), client.get("/api/me/"),
               client.get(f"/api/no-such-page-{secrets.token_hex(4)}/")]
    missing = []
    for reply in replies:
        for name, good in REQUIRED_HEADERS.items():
            value = reply.headers.get(name)
            if value is None or not good(value):
                missing.append({"response": f"{reply.method} {reply.path} -> {reply.status}", "header": name,
                                "value": value})
    if missing:
        raise Failure(f"{missing[0]['response']} has {'no' if missing[0]['value'] is None else 'a wrong'} "
                      f"{missing[0]['header']} header ({len(missing)} missing or wrong in {len(replies)} responses) "
                      "(API8:2023 Security Misconfiguration)", evidence={"missing": missing},
                      help="Django's SecurityMiddleware and XFrameOptionsMiddleware set these headers on every "
                           "response; put them in MIDDLEWARE.")
