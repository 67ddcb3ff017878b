"""Malformed requests of a hostile client, drawn from a seeded generator, and what the service answered.

An endpoint is described by its method, its path (with `{id}` where the path carries an id), a valid body and
valid query parameters. The generator spoils one thing at a time: the body as a whole (bad JSON, nesting too
deep to parse, wrong content types, nothing at all), one field of a valid body (huge numbers, wrong types, odd
unicode, 10k-character strings), one query parameter, or the id in the path. Every request goes to loopback.
"""

from __future__ import annotations

import http.client
import json
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from urllib.parse import quote, urlencode, urlsplit

JSON = "application/json"
TIMEOUT_SECONDS = 30

# Values for one field, as JSON text: several of them (1e400, NaN, a lone surrogate) are not values json.dumps
# writes, and a hostile client does not ask json.dumps.
FIELD_VALUES: list[tuple[str, str]] = [
    ("null", "null"), ("true", "true"), ("false", "false"),
    ("an empty list", "[]"), ("a list", "[1, 2]"), ("an empty object", "{}"), ("an object", '{"id": 1}'),
    ("an empty string", '""'), ("a number as a string", '"2"'), ("a 10,000-character string", json.dumps("x" * 10_000)),
    ("a lone surrogate", '"\\ud800"'), ("a lone low surrogate", '"a\\udfffb"'), ("NUL", '"a\\u0000b"'),
    ("a right-to-left override", '"\\u202egnp.exe"'), ("a byte order mark and zero-width space", '"\\ufeff\\u200b"'),
    ("an emoji", '"\\ud83d\\ude00"'), ("Arabic-Indic digits", '"\\u0661\\u0662"'),
    ("1e400", "1e400"), ("-1e400", "-1e400"), ("1e-400", "1e-400"), ("1e308", "1e308"), ("NaN", "NaN"),
    ("Infinity", "Infinity"), ("-Infinity", "-Infinity"), ("a fraction", "1.5"), ("-0", "-0"), ("0", "0"), ("-1", "-1"),
    ("2**31", str(2**31)), ("2**31 - 1", str(2**31 - 1)), ("2**63", str(2**63)), ("-2**63 - 1", str(-2**63 - 1)),
    ("2**70", str(2**70)), ("a 5,000-digit number", "9" * 5_000), ("a 4,000-digit number", "9" * 4_000),
    ("a list nested 1,000 deep", "[" * 1_000 + "]" * 1_000), ("a list nested 400 deep", "[" * 400 + "]" * 400),
    ("an object nested 400 deep", '{"a": ' * 400 + "1" + "}" * 400),
    ("a list of 10,000 numbers", json.dumps(list(range(10_000)))),
]

# Ids for the `{id}` of a path, already escaped for a URL.
PATH_IDS: list[tuple[str, str]] = [
    ("0", "0"), ("-1", "-1"), ("2**31", str(2**31)), ("2**63", str(2**63)), ("2**64", str(2**64)),
    ("10**30", str(10**30)), ("a 1,000-digit id", "9" * 1_000), ("a 4,400-digit id", "9" * 4_400),
    ("a word", "abc"), ("a fraction", "1.5"), ("1e400", "1e400"), ("NUL", "1%00"), ("a lone surrogate, UTF-8", "%ED%A0%80"),
    ("invalid UTF-8", "%FF%FE"), ("a right-to-left override", "%E2%80%AE1"), ("an emoji", "%F0%9F%98%80"),
    ("Arabic-Indic digits", "%D9%A1%D9%A2"), ("a space", "1%20"), ("a quote", "1%27"), ("dot segments", "..%2F..%2F"),
]

# Values for one query parameter, already escaped for a URL.
QUERY_VALUES: list[tuple[str, str]] = [
    ("empty", ""), ("NUL", "%00"), ("NUL inside", "a%00b"), ("a lone surrogate, UTF-8", "%ED%A0%80"),
    ("invalid UTF-8", "%FF"), ("a right-to-left override", "%E2%80%AE"), ("a 3,000-character value", "x" * 3_000),
    ("2**70", str(2**70)), ("-2**63 - 1", str(-2**63 - 1)), ("2**63", str(2**63)), ("10**30", str(10**30)),
    ("a 5,000-digit number", "9" * 5_000), ("1e400", "1e400"), ("a word", "abc"), ("-1", "-1"), ("0", "0"),
    ("a fraction", "1.5"), ("a leading space", "%201"), ("a quote", "%27"), ("Arabic-Indic digits", "%D9%A1%D9%A2"),
]

# Whole bodies sent in place of a valid one: (what, content type, body), with `{valid}` for the valid body's JSON.
BODIES: list[tuple[str, str | None, bytes]] = [
    ("no body", JSON, b""), ("whitespace", JSON, b" \n\t "), ("truncated JSON", JSON, b'{"a": '),
    ("a missing value", JSON, b'{"a": }'), ("single quotes", JSON, b"{'a': 1}"), ("a trailing comma", JSON, b'{"a": 1,}'),
    ("invalid UTF-8", JSON, b'{"a": "\xff\xfe"}'), ("a list", JSON, b"[]"), ("null", JSON, b"null"),
    ("a string", JSON, b'"x"'), ("a number", JSON, b"1"), ("true", JSON, b"true"), ("NaN", JSON, b"NaN"),
    ("a list nested 1,000 deep", JSON, b"[" * 1_000 + b"]" * 1_000),
    ("an object nested 1,000 deep", JSON, b'{"a": ' * 1_000 + b"1" + b"}" * 1_000),
    ("a list nested 100,000 deep", JSON, b"[" * 100_000 + b"]" * 100_000),
    ("100,000 unclosed brackets", JSON, b"[" * 100_000),
    ("a 2 MB string", JSON, b'{"a": "' + b"x" * 2_000_000 + b'"}'),
    ("the valid body in UTF-16", JSON, b"{utf16}"),
    ("the valid body after a byte order mark", JSON, b"\xef\xbb\xbf{valid}"),
    ("the valid body as text/plain", "text/plain", b"{valid}"),
    ("the valid body without a content type", None, b"{valid}"),
    ("a form", "application/x-www-form-urlencoded", b"{form}"),
    ("multipart without a boundary", "multipart/form-data", b"--x\r\n\r\n"),
    ("multipart with a broken body", "multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data\r\n"),
    ("XML", "application/xml", b"<a>1</a>"),
    ("an unknown charset", "application/json; charset=klingon", b"{valid}"),
    ("a UTF-16 charset on UTF-8", "application/json; charset=utf-16", b"{valid}"),
    ("a broken content type", "application/json; charset=\"", b"{valid}"),
    ("a content type with NUL", "application/json\x00", b"{valid}"),
]


@dataclass(frozen=True)
class Endpoint:
    """One endpoint of a brief, with what a valid request to it holds."""

    method: str
    path: str  # "/api/wallets/{id}/topup/": the generator replaces {id}
    body: dict | None = None  # a valid body, for endpoints that read one
    query: dict = field(default_factory=dict)  # valid query parameters
    id: str = "1"  # a real id for {id}, used while something else is spoiled
    headers: dict = field(default_factory=dict)  # headers a valid request carries (beside authentication)


@dataclass(frozen=True)
class Attack:
    """One malformed request: what it spoils, and the request itself."""

    what: str
    method: str
    path: str
    body: bytes | None = None
    content_type: str | None = None
    headers: dict = field(default_factory=dict)

    def describe(self, limit: int = 160) -> str:
        """The request in a line a reader can replay: method, path, content type and the body's start."""
        path = self.path if len(self.path) <= limit else f"{self.path[:limit]}... ({len(self.path)} characters)"
        line = f"{self.method} {path}"
        if self.content_type is not None:
            line += f"  [Content-Type: {self.content_type!r}]"
        for name, value in self.headers.items():
            shown = value if len(value) <= 60 else f"{value[:60]!r}... ({len(value)} bytes)"
            line += f"  [{name}: {shown}]"
        if self.body is not None:
            body = self.body if len(self.body) <= limit else self.body[:limit] + f"... ({len(self.body):,} bytes)".encode()
            line += f"  {body!r}"
        return line


def attacks(endpoint: Endpoint, rng: random.Random) -> list[Attack]:
    """Every malformed request the generator makes for one endpoint; fields are chosen with `rng`."""
    made: list[Attack] = []
    path = endpoint.path.replace("{id}", endpoint.id)
    query = f"?{urlencode(endpoint.query)}" if endpoint.query else ""
    valid = json.dumps(endpoint.body).encode() if endpoint.body is not None else b"{}"

    def request(what: str, path: str = path + query, body: bytes | None = None, content_type: str | None = None,
                headers: dict | None = None) -> Attack:
        return Attack(what, endpoint.method, path, body, content_type, {**endpoint.headers, **(headers or {})})

    if "{id}" in endpoint.path:
        for what, value in PATH_IDS:
            made.append(request(f"the path's id is {what}", path=endpoint.path.replace("{id}", value) + query,
                                body=valid if endpoint.body is not None else None,
                                content_type=JSON if endpoint.body is not None else None))
    for name in endpoint.query:
        for what, value in QUERY_VALUES:
            others = {key: item for key, item in endpoint.query.items() if key != name}
            spoiled = "&".join([urlencode(others)] * bool(others) + [f"{quote(name)}={value}"])
            made.append(request(f"?{name} is {what}", path=f"{path}?{spoiled}"))
        made.append(request(f"?{name} twice", path=f"{path}?{urlencode(endpoint.query)}&{urlencode(endpoint.query)}"))
    if endpoint.body is not None:
        form = urlencode({key: json.dumps(value) for key, value in endpoint.body.items()}).encode()
        for what, content_type, body in BODIES:
            body = (body.replace(b"{valid}", valid).replace(b"{form}", form)
                    .replace(b"{utf16}", valid.decode().encode("utf-16")))
            made.append(request(f"the body is {what}", body=body, content_type=content_type))
        fields = list(endpoint.body)
        for what, text in FIELD_VALUES:
            name = rng.choice(fields)
            made.append(request(f"{name} is {what}", body=_body_with(endpoint.body, name, text), content_type=JSON))
        for name in fields:
            made.append(request(f"{name} is missing", content_type=JSON, body=json.dumps(
                {key: value for key, value in endpoint.body.items() if key != name}).encode()))
        made.append(request("an unknown field is nested 1,000 deep", content_type=JSON,
                            body=_body_with(endpoint.body, "extra", "[" * 1_000 + "]" * 1_000)))
        made.append(request("every field is null", content_type=JSON,
                            body=json.dumps({key: None for key in endpoint.body}).encode()))
    elif endpoint.method in ("POST", "PATCH", "PUT"):
        made.append(request("a body nested 1,000 deep it does not need", body=b"[" * 1_000 + b"]" * 1_000,
                            content_type=JSON))
        made.append(request("a body that is not JSON", body=b"{", content_type=JSON))
    if endpoint.method == "GET":
        made.append(request("a 7,000-byte header", headers={"X-Padding": "x" * 7_000}))
    for method in ("PUT", "FROB"):  # a method the endpoint does not serve, and one no server knows
        made.append(replace(request(f"the method is {method}", body=valid, content_type=JSON), method=method))
    return made


def _body_with(body: dict, name: str, text: str) -> bytes:
    """The valid body's JSON with one field's value replaced by raw JSON text."""
    parts = [f"{json.dumps(key)}: {text if key == name else json.dumps(value)}" for key, value in body.items()]
    if name not in body:
        parts.append(f"{json.dumps(name)}: {text}")
    return ("{" + ", ".join(parts) + "}").encode()


@dataclass
class Answer:
    """What the service answered an attack: its status, or None and why there was no answer."""

    attack: Attack
    status: int | None
    body: bytes = b""
    error: str = ""

    @property
    def broke(self) -> bool:
        return self.status is None or self.status >= 500

    def describe(self) -> str:
        answer = f"{self.status} {self.body[:200]!r}" if self.status is not None else f"no answer: {self.error}"
        return f"{self.attack.what}\n    {self.attack.describe()}\n    -> {answer}"


def send(base_url: str, attack: Attack, authorization: Callable[[], str | None] = lambda: None) -> Answer:
    """Send one attack to a server on loopback, on a connection of its own."""
    address = urlsplit(base_url)
    assert address.hostname in ("127.0.0.1", "localhost", "::1"), f"only loopback is attacked, not {base_url}"
    headers: dict[str, str | bytes] = {}
    if attack.content_type is not None:
        headers["Content-Type"] = attack.content_type.encode("latin-1")
    token = authorization()
    if token is not None:
        headers["Authorization"] = token
    headers.update({name: value.encode("latin-1") for name, value in attack.headers.items()})
    if attack.body is not None:
        headers["Content-Length"] = str(len(attack.body))
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=TIMEOUT_SECONDS)
    try:
        connection.putrequest(attack.method, attack.path, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders(attack.body)
        response = connection.getresponse()
        return Answer(attack, response.status, response.read(2_000))
    except (OSError, http.client.HTTPException) as error:
        return Answer(attack, None, error=f"{type(error).__name__}: {error}")
    finally:
        connection.close()


def sample(attacks: Iterable[Attack], rng: random.Random, budget: int, always: Callable[[Attack], bool]) -> list[Attack]:
    """At most `budget` attacks: every one `always` keeps, then a seeded sample of the rest, in a seeded order."""
    attacks = list(attacks)
    kept = [attack for attack in attacks if always(attack)]
    rest = [attack for attack in attacks if not always(attack)]
    chosen = kept + rng.sample(rest, max(0, min(len(rest), budget - len(kept))))
    rng.shuffle(chosen)
    return chosen
