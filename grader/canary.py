"""A canary: listeners that record every request the service makes to them, and names the check resolves.

Server-side request forgery is proven by where the service goes, not by what it answers: a check points
the service at the canary and then asks the canary whether anybody came. The canary runs where the
service runs, so that "127.0.0.1" means the same to both: as a child process of the grader under the
local provider, inside the app's container (`docker exec`, as the container's root, which the app's own
user cannot touch) under docker. It listens on 127.0.0.1 and, where the machine has IPv6 loopback, on [::1]
at the same port: a request there is a forgery (`forged()`).

Where the run allows it, two more things (`public_why_not`, `names_why_not` and `dns_why_not` say why not):

- A public address (`public`): an address that ipaddress calls global, which the service's filter must
  accept, and that never leads off the machine, proven from routes or settings before anything is sent
  (`public_address()`). Under docker it is the app container's own address on the run's internal network,
  which the docker provider makes on a global subnet: the canary binds it inside the container, and a
  kernel delivers a connection to one of its own addresses locally, so nothing sent there leaves the
  container. Under the local provider, as root, it is the address the provider added to this machine's
  loopback for the run (grader/providers/local.py), which `ip route get` must call `local ... dev lo`.
  There the canary plays a public server: 200 without the secret, and /hop/ redirects.
- Names the check resolves: `point(name, address)` writes the name into the hosts file the app reads (the
  run's own one, which bubblewrap shows the app as /etc/hosts, or the container's /etc/hosts), which glibc
  reads again at every lookup. `answer(name, addresses)` gives a name to a DNS server of the canary's,
  put first in the resolv.conf the app reads (the container's, on its 127.0.0.1:53; or, as root under
  bubblewrap, the run's own, on a free 127.53.x.y:53 of this machine): it answers the name's A queries with
  one address after the other (the last one repeats) and a TTL of 0, and refuses every other name, which
  the next name server in resolv.conf then answers as before.

It exits when told to (a stop file beside its log) or by itself after `lifetime` seconds, so a check that is
killed leaves nothing behind for long; the files it changed are put back.

Paths: /canary<anything> answers 200 with the secret (on the public address: 200 without it);
/hop<anything>?to=URL answers 302 to URL.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# Runs with the service's own python3: the standard library only, and nothing from this package.
SCRIPT = r'''
import http.server, json, os, socket, struct, sys, threading, time
from urllib.parse import parse_qs, urlsplit

secret, log_path, lifetime, public, hosts_path, dns = sys.argv[1:7]
lifetime, dns = float(lifetime), json.loads(dns) if dns else None  # dns: {"resolv": path, "addresses": [...]}
os.makedirs(os.path.dirname(log_path), mode=0o700, exist_ok=True)  # in a container: root's alone, not the app's
lock = threading.Lock()
restore = {}

def record(entry):
    with lock, open(log_path, "a") as log:
        log.write(json.dumps(entry) + "\n")

class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self):
        parts = urlsplit(self.path)
        record({"method": self.command, "path": parts.path, "host": self.headers.get("Host", ""),
                "peer": self.client_address[0], "listener": self.server.kind})
        if parts.path.startswith("/hop"):
            self.send_response(302)
            self.send_header("Location", parse_qs(parts.query).get("to", ["/"])[0])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = ("a public server" if self.server.kind == "public" else "canary " + secret).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = do_PUT = do_HEAD = answer
    def log_message(self, *args):
        pass

class V4(http.server.ThreadingHTTPServer):
    kind = "loopback"

class V6(V4):
    address_family = socket.AF_INET6

class Public(V4):
    kind = "public"

def listen():
    """Loopback (and the public address) on one port: a URL names the same port whatever its host resolves to."""
    for _ in range(20):
        first = V4(("127.0.0.1", 0), Handler)
        port = first.server_address[1]
        servers, why_not = [first], ""
        if public:
            try:
                servers.append(Public((public, port), Handler))
            except OSError as error:
                why_not = f"{public}:{port} could not be bound: {error}"
                if error.errno != 98:  # not "address in use": another port will not help
                    return servers, port, why_not
                first.server_close()
                continue
        return servers, port, why_not
    return [V4(("127.0.0.1", 0), Handler)], None, f"no port was free on both 127.0.0.1 and {public}"

servers, port, public_why_not = listen()
port = servers[0].server_address[1]
try:
    servers.append(V6(("::1", port), Handler))
except OSError:
    pass

def dns_reply(query):
    """The answer to one DNS query: the names file's next address for an A query, no address for another type
    of a known name, REFUSED for an unknown name (the next nameserver answers it)."""
    ident, flags = struct.unpack("!HH", query[:4])
    labels, at = [], 12
    while query[at]:
        labels.append(query[at + 1:at + 1 + query[at]].decode("ascii", "replace"))
        at += 1 + query[at]
    question = query[12:at + 5]
    kind = struct.unpack("!H", query[at + 1:at + 3])[0]
    name = ".".join(labels).lower().rstrip(".")
    addresses = names.get(name)
    if addresses is None:
        return struct.pack("!HHHHHH", ident, 0x8080 | (flags & 0x0100) | 5, 1, 0, 0, 0) + question
    answers = b""
    if kind == 1:
        address = addresses.pop(0) if len(addresses) > 1 else addresses[0]
        record({"dns": name, "answer": address})
        answers = struct.pack("!HHHIH", 0xC00C, 1, 1, 0, 4) + socket.inet_aton(address)
    return struct.pack("!HHHHHH", ident, 0x8580 | (flags & 0x0100), 1, 1 if answers else 0, 0, 0) + question + answers

names, names_text = {}, ""

def serve_dns(sock):
    global names, names_text
    while True:
        query, peer = sock.recvfrom(512)
        try:
            with open(log_path + ".names") as handle:
                text = handle.read()
        except OSError:
            text = "{}"
        if text != names_text:  # new answers from the check: their sequences start again
            names, names_text = json.loads(text), text
        try:
            sock.sendto(dns_reply(query), peer)
        except (IndexError, struct.error, UnicodeError, OSError, ValueError):
            continue

dns_why_not, nameserver = ("", "") if dns else ("not asked for", "")
if dns:
    error = None
    for address in dns["addresses"]:  # the first free one: concurrent runs each hold their own
        try:
            resolver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            resolver.bind((address, 53))
            nameserver = address
            break
        except OSError as failed:
            resolver.close()
            error = failed
    try:
        if not nameserver:
            raise error or OSError("no address to listen on")
        with open(dns["resolv"]) as handle:
            restore[dns["resolv"]] = handle.read()
        others = [line for line in restore[dns["resolv"]].splitlines() if not line.startswith("options")]
        with open(dns["resolv"], "w") as handle:  # in place: a bind-mounted file keeps its inode
            handle.write("\n".join([f"nameserver {nameserver}", *others, "options ndots:0 timeout:2 attempts:2", ""]))
        threading.Thread(target=serve_dns, args=(resolver,), daemon=True).start()
    except OSError as error:
        dns_why_not = f"no DNS server on {nameserver or ' or '.join(dns['addresses'][:3])}:53 for the app: {error}"
if hosts_path:
    with open(hosts_path) as handle:
        restore[hosts_path] = handle.read()
for server in servers:
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
record({"ready": port, "ipv6": any(isinstance(server, V6) for server in servers),
        "public": public if public and not public_why_not else "", "public_why_not": public_why_not,
        "dns": bool(dns) and not dns_why_not, "nameserver": nameserver, "dns_why_not": dns_why_not})
deadline = time.time() + lifetime
try:
    while time.time() < deadline and not os.path.exists(log_path + ".stop"):
        time.sleep(0.1)
finally:
    for path, text in restore.items():  # in place: a bind-mounted file keeps its inode
        with open(path, "w") as handle:
            handle.write(text)
'''

# Writes a file in place (a bind mount stays), or beside and then over it (atomically), inside a container.
WRITE = r'''
import os, sys
path, text, atomic = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
with open(path + ".new" if atomic else path, "w") as handle:
    handle.write(text)
if atomic:
    os.replace(path + ".new", path)
'''

DNS_ADDRESSES = 8  # loopback addresses offered to the local DNS server, one of which it binds


class CanaryError(RuntimeError):
    pass


def public_address(where: dict[str, Any] | None) -> tuple[str, str, str]:
    """(address, proof, "") of a global address of the app's place that never leads off the machine, proven
    from routes or the network's settings before anything is sent there; ("", "", why not) when there is none."""
    where = where or {}
    if "container" in where:
        import docker

        return _container_address(docker.from_env().containers.get(where["container"]))
    address = where.get("public") or ""
    if not address:
        return "", "", where.get("public_why_not") or "the app's provider offers no public address"
    from grader.providers.local import is_loopback_route, route_to

    ip = shutil.which("ip")
    route = route_to(ip, address) if ip else "error: iproute2's `ip` is not installed"
    if not ipaddress.ip_address(address).is_global or not is_loopback_route(route, address):
        return "", "", f"{address} is not a global address on this machine's loopback: `ip route get` says {route!r}"
    return address, (f"{address} is an address of this machine's loopback, added for this run: `ip route get "
                     f"{address}` says {route!r}, so a connection to it never leaves the machine"), ""


def _container_address(container) -> tuple[str, str, str]:
    """The app container's own address, when it is global and on an internal network; else why not."""
    container.reload()
    networks = container.attrs["NetworkSettings"]["Networks"]
    if len(networks) != 1:
        return "", "", f"the app's container is on {len(networks)} networks, not only the run's own"
    (name, settings), = networks.items()
    network = container.client.networks.get(settings["NetworkID"])
    address = settings.get("IPAddress") or ""
    subnets = [config.get("Subnet") for config in network.attrs.get("IPAM", {}).get("Config") or []]
    if not network.attrs.get("Internal"):
        return "", "", f"the run's network {name} is not internal (ports are published), so it has a way out"
    if not address or not ipaddress.ip_address(address).is_global:
        return "", "", (f"the run's network {name} ({', '.join(map(str, subnets))}) is not on a global subnet "
                         "(every one the kit uses was taken by other runs)")
    return address, (f"{address} is the app container's own address on the run's internal network {name} "
                     f"({', '.join(map(str, subnets))}; internal: no way out)"), ""


class Canary:
    """Start with `with Canary(where, folder) as canary:`; `canary.url(...)`, then `canary.forged()`."""

    def __init__(self, where: dict[str, Any] | None, work: Path, lifetime: float = 120.0, names: bool = False):
        self.where, self.work, self.lifetime = where or {}, work, lifetime
        self.secret = secrets.token_hex(12)
        self.port = 0
        self.ipv6 = False
        self.public = ""  # a global address that leads to the canary and never off the machine, or ""
        self.public_why_not = self.names_why_not = self.dns_why_not = ""
        self.public_proof = ""
        self.nameserver = ""
        self.container = None
        self.process: subprocess.Popen | None = None
        self.names = names  # whether the check will resolve names through the canary
        inside = "container" in self.where
        self.hosts = "/etc/hosts" if inside else self.where.get("hosts", "")
        self.resolv = "/etc/resolv.conf" if inside else self.where.get("resolv", "")
        self.restore: dict[str, str] = {}  # the files the canary changes, as they were
        self.pointed: dict[str, str] = {}
        self.answers: dict[str, list[str]] = {}
        self.log = f"/tmp/lab-canary-{self.secret}/log.jsonl" if inside else str(work / f"canary-{self.secret}.jsonl")

    @property
    def hosts_text(self) -> str:
        return self.restore.get(self.hosts, "")

    def __enter__(self) -> Canary:
        if "container" in self.where:
            import docker

            self.container = docker.from_env().containers.get(self.where["container"])
        candidate, self.public_proof, self.public_why_not = public_address(self.where)
        if self.names and not self.hosts:
            self.names_why_not = ("the service reads this machine's own /etc/hosts (no bubblewrap sandbox to show it "
                                  "the run's own), which a check must not change")
        dns = self._dns(candidate) if self.names else ""
        hosts = self.hosts if self.names and not self.names_why_not else ""
        for path in (hosts, self.resolv if dns else ""):
            if path:
                self.restore[path] = self._read(path)
        arguments = [self.secret, self.log, str(self.lifetime), candidate, hosts, dns]
        if self.container is not None:
            self.container.exec_run(["python3", "-c", SCRIPT, *arguments], detach=True, user="0")
        else:
            self.work.mkdir(parents=True, exist_ok=True)
            self.process = subprocess.Popen([sys.executable, "-c", SCRIPT, *arguments], stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ready = [entry for entry in self._entries() if "ready" in entry]
            if ready:
                self._started(ready[0], candidate)
                return self
            if self.process is not None and self.process.poll() is not None:
                break
            time.sleep(0.05)
        exited = self.process.poll() if self.process is not None else None
        self.__exit__(None, None, None)
        raise CanaryError("the canary listener did not start" +
                          (f": it exited with status {exited}" if exited is not None else " within 10 s"))

    def _dns(self, candidate: str) -> str:
        """The DNS server's arguments (its resolv.conf, the addresses it may listen on), or "" and why not."""
        if not candidate:
            self.dns_why_not = f"the first answer would be a public address, and there is none: {self.public_why_not}"
        elif not self.resolv:
            self.dns_why_not = ("the service reads this machine's own resolv.conf (a run's own is shown to it by "
                                "bubblewrap when the grader is root: a DNS server needs port 53, which only root may "
                                "bind), which a check must not change")
        elif self.container is None and os.geteuid() != 0:
            self.dns_why_not = "a DNS server needs port 53 on a loopback address, which only root may bind"
        if self.dns_why_not:
            return ""
        if self.container is not None:
            addresses = ["127.0.0.1"]
        else:  # this machine's 127.0.0.1:53 may have a server of its own, and concurrent runs each need one
            pick = random.SystemRandom()
            addresses = [f"127.53.{pick.randrange(256)}.{pick.randrange(1, 255)}" for _ in range(DNS_ADDRESSES)]
        return json.dumps({"resolv": self.resolv, "addresses": addresses})

    def _started(self, ready: dict[str, Any], candidate: str) -> None:
        self.port, self.ipv6 = ready["ready"], ready["ipv6"]
        self.public = ready.get("public") or ""
        if candidate and not self.public:
            self.public_why_not = ready.get("public_why_not") or "the canary could not listen there"
        if self.public and self.container is not None:
            self.public_proof += (f"; the canary bound {self.public}:{self.port} inside the app's container, so it "
                                  "is one of the container's own addresses: a connection to it stays in the "
                                  "container")
        self.nameserver = ready.get("nameserver") or ""
        if self.names and not self.dns_why_not and not ready.get("dns"):
            self.dns_why_not = ready.get("dns_why_not") or "the DNS server did not start"

    def __exit__(self, *exc_info: Any) -> None:
        for path, text in self.restore.items():  # the canary puts them back too, unless it is killed
            if text:
                self._write(path, text)
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=5)
            for path in (self.log, self.log + ".names"):
                Path(path).unlink(missing_ok=True)
        elif self.container is not None:
            self.container.exec_run(["sh", "-c", f"touch {self.log}.stop; sleep 0.3; rm -rf {Path(self.log).parent}"],
                                    user="0")

    def _read(self, path: str) -> str:
        if self.container is not None:
            result = self.container.exec_run(["cat", path], user="0")
            return result.output.decode("utf-8", "replace") if result.exit_code == 0 else ""
        try:
            return Path(path).read_text()
        except OSError:
            return ""

    def _write(self, path: str, text: str, atomic: bool = False) -> None:
        if self.container is not None:
            result = self.container.exec_run(["python3", "-c", WRITE, path, text, "1" if atomic else "0"], user="0")
            if result.exit_code != 0:
                raise CanaryError(f"could not write {path} in the app's container: "
                                  f"{result.output.decode('utf-8', 'replace')[-300:]}")
        elif atomic:
            Path(path + ".new").write_text(text)
            Path(path + ".new").replace(path)
        else:
            with open(path, "w") as handle:  # in place: the sandbox's /etc/hosts is bound to this very file
                handle.write(text)

    def _entries(self) -> list[dict[str, Any]]:
        text = self._read(self.log)
        entries = []
        for line in text.splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue
        return entries

    def url(self, host: str, path: str = "canary") -> str:
        """http://HOST:PORT/<path>/<secret>: HOST as written in the URL (127.0.0.1, localhost, [::1]...)."""
        return f"http://{host}:{self.port}/{path}/{self.secret}"

    def point(self, name: str, address: str) -> None:
        """From now on, `name` resolves to `address` for the service (its hosts file)."""
        if self.names_why_not or not self.hosts_text:
            raise CanaryError(f"names cannot be pointed here: {self.names_why_not or 'no hosts file'}")
        self.pointed[name] = address
        lines = "".join(f"{where} {named}\n" for named, where in self.pointed.items())
        self._write(self.hosts, self.hosts_text.rstrip("\n") + "\n" + lines)

    def answer(self, name: str, addresses: list[str]) -> None:
        """From now on, the DNS server answers `name` with `addresses`, one A query after the other."""
        if self.dns_why_not:
            raise CanaryError(f"no DNS server: {self.dns_why_not}")
        self.answers[name.lower()] = list(addresses)
        self._write(self.log + ".names", json.dumps(self.answers), atomic=True)

    def hits(self) -> list[dict[str, Any]]:
        """Every HTTP request the canary got so far."""
        return [entry for entry in self._entries() if "method" in entry]

    def forged(self) -> list[dict[str, Any]]:
        """The requests that reached the service's own loopback: the forgeries."""
        return [hit for hit in self.hits() if hit.get("listener", "loopback") == "loopback"]

    def lookups(self) -> list[dict[str, Any]]:
        """Every A query the DNS server answered: {"dns": name, "answer": address}."""
        return [entry for entry in self._entries() if "answer" in entry]
