"""Calling a user's webhook, only ever on the public internet.

A webhook URL is the user's input, and the service fetches it from inside our network: without a check,
anyone can make it call 127.0.0.1, the cloud's metadata address or a database next to it (server-side
request forgery). So a destination is refused unless every address its host resolves to is a global one;
the connection then goes to the address that was checked (a second DNS answer cannot swap it for
127.0.0.1), and redirects are not followed (they could point anywhere).
"""
import http.client
import ipaddress
import json
import socket
import ssl
from urllib.parse import urlsplit

TIMEOUT_SECONDS = 3
BODY_PREVIEW = 200
PORTS = {"http": 80, "https": 443}


class Refused(ValueError):
    """The URL may not be called."""


def check_destination(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, checked IP address) of a URL that may be called; raises Refused otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port or PORTS.get(parts.scheme)
    except ValueError:
        raise Refused("Enter a valid URL.") from None
    if parts.scheme not in PORTS or not parts.hostname:
        raise Refused("Enter an http:// or https:// URL with a host name.")
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise Refused(f"The host {parts.hostname!r} could not be resolved.") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))  # in the resolver's order of preference
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if getattr(ip, "ipv4_mapped", None):
            ip = ip.ipv4_mapped
        if not ip.is_global:
            raise Refused("Webhooks may only call public internet addresses; "
                          f"{parts.hostname!r} is {ip} (loopback, private or reserved).")
    return parts.scheme, parts.hostname, port, addresses[0]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, address: str, host: str, port: int, **kwargs):
        super().__init__(host, port, **kwargs)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, address: str, host: str, port: int, **kwargs):
        super().__init__(host, port, context=ssl.create_default_context(), **kwargs)
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def call(url: str, payload: dict) -> dict:
    """POST the payload to the URL; what it answered (status and the start of its body). Raises Refused."""
    scheme, host, port, address = check_destination(url)
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    kind = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    connection = kind(address, host, port, timeout=TIMEOUT_SECONDS)
    try:
        connection.request("POST", path, body=json.dumps(payload).encode(),
                           headers={"Content-Type": "application/json", "User-Agent": "invoicely-webhooks"})
        response = connection.getresponse()  # a 3xx is reported as it is, never followed
        return {"status": response.status, "body": response.read(BODY_PREVIEW).decode("utf-8", "replace")}
    except (OSError, http.client.HTTPException) as error:
        return {"status": None, "body": f"could not reach the webhook: {error}"}
    finally:
        connection.close()
