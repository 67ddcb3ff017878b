"""HTTP to the learner's service: replies, calls, a client, kept-alive sessions and bursts released at once."""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

HTML_TAG = re.compile(r"<[!/?a-zA-Z][^>]*(?:>|$)")  # a tag cut off at the end of a shortened body goes too
# What a browser does not show in the page: an HTML error page's <title> repeats its heading
# (Django's "Server Error (500)"), so the body alone says it once.
UNSHOWN_HTML = re.compile(r"<(title|script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)


def condensed(text: str, limit: int = 200) -> str:
    """A reply body made readable in one line: HTML tags, the page's title and runs of whitespace dropped."""
    if HTML_TAG.search(text):
        shown = HTML_TAG.sub(" ", UNSHOWN_HTML.sub(" ", text))
        text = shown if shown.strip() else HTML_TAG.sub(" ", text)  # a page that is only a title keeps it
    return " ".join(text.split())[:limit]


@dataclass
class Reply:
    """One HTTP answer, or the error that stood in for it."""

    method: str
    path: str
    status: int | None
    body: Any = None
    text: str = ""
    error: str | None = None
    elapsed: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)  # the answer's headers, by lowercase name

    @property
    def is_5xx(self) -> bool:
        return self.status is not None and self.status >= 500

    def describe(self) -> str:
        if self.error:
            return f"{self.method} {self.path} -> {self.error}"
        return f"{self.method} {self.path} -> {self.status} {condensed(self.text, 200)}"


@dataclass(frozen=True)
class Call:
    """One request to send: method, path, JSON body and extra headers."""

    method: str
    path: str
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class Client:
    """A small HTTP client for the service under test, with a barrier-released burst."""

    def __init__(self, base_url: str, timeout: float):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.timeout = timeout

    def _connection(self) -> http.client.HTTPConnection:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        connection.connect()
        return connection

    @staticmethod
    def _send(connection: http.client.HTTPConnection, call: Call) -> Reply:
        started = time.perf_counter()
        headers = {"Accept": "application/json", **call.headers}
        payload = None
        if call.json is not None:
            payload = json.dumps(call.json).encode()
            headers["Content-Type"] = "application/json"
        try:
            connection.request(call.method, call.path, body=payload, headers=headers)
            response = connection.getresponse()
            raw = response.read().decode("utf-8", "replace")
        except TimeoutError:
            return Reply(call.method, call.path, None, elapsed=time.perf_counter() - started,
                         error=f"timed out: no answer within the request limit of {connection.timeout:g} s; the view "
                               "may hang (a lock never released, a deadlock, an endless loop, a call that never returns)")
        except (OSError, http.client.HTTPException) as exc:
            return Reply(call.method, call.path, None, error=f"{type(exc).__name__}: {exc}",
                         elapsed=time.perf_counter() - started)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {name.lower(): value for name, value in response.getheaders()}
        return Reply(call.method, call.path, response.status, body, raw, elapsed=time.perf_counter() - started,
                     headers=headers)

    def session(self) -> Session:
        """Requests over one kept-alive connection (close it when done)."""
        return Session(self)

    def request(self, method: str, path: str, json: Any = None, headers: dict[str, str] | None = None) -> Reply:
        connection = self._connection()
        try:
            return self._send(connection, Call(method, path, json, headers or {}))
        finally:
            connection.close()

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Reply:
        return self.request("POST", path, json=json, **kwargs)

    def burst(self, calls: list[Call]) -> list[Reply]:
        """Send every call at once: each on its own connection, opened first, released by one barrier."""
        barrier = threading.Barrier(len(calls))
        replies: list[Reply | None] = [None] * len(calls)

        def send(index: int, call: Call) -> None:
            try:
                connection = self._connection()
            except OSError as exc:
                replies[index] = Reply(call.method, call.path, None, error=f"cannot connect: {exc}")
                barrier.abort()
                return
            try:
                barrier.wait(timeout=self.timeout)
                replies[index] = self._send(connection, call)
            except threading.BrokenBarrierError:
                replies[index] = Reply(call.method, call.path, None, error="not sent: another request could not connect")
            finally:
                connection.close()

        threads = [threading.Thread(target=send, args=(i, call), daemon=True) for i, call in enumerate(calls)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(self.timeout * 2 + 5)
        return [reply or Reply(call.method, call.path, None, error="no answer in time")
                for reply, call in zip(replies, calls, strict=True)]


class Session:
    """Requests over one kept-alive connection: as a browser does, to one replica, one worker."""

    def __init__(self, client: "Client"):
        self.client = client
        self.connection = client._connection()

    def request(self, method: str, path: str, json: Any = None, headers: dict[str, str] | None = None) -> Reply:
        reply = self.client._send(self.connection, Call(method, path, json, headers or {}))
        if reply.error:  # the server closed the idle connection: one new one, then the same request again
            self.connection.close()
            self.connection = self.client._connection()
            reply = self.client._send(self.connection, Call(method, path, json, headers or {}))
        return reply

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Reply:
        return self.request("POST", path, json=json, **kwargs)

    def close(self) -> None:
        self.connection.close()

def bearer(token: str) -> dict[str, str]:
    """The header that carries a bearer token."""
    return {"Authorization": f"Bearer {token}"}
