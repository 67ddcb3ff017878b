"""A canary: an HTTP listener on the service's own loopback that records every request it gets.

Server-side request forgery is proven by where the service goes, not by what it answers: a check points
the service at the canary and then asks the canary whether anybody came. The canary runs where the
service runs, so that "127.0.0.1" means the same to both: as a child process of the grader under the
local provider, inside the app's container (`docker exec`) under docker. It listens on 127.0.0.1 and,
where the machine has IPv6 loopback, on [::1] at the same port; it never listens anywhere else, and it
exits when told to (a stop file beside its log) or by itself after `lifetime` seconds, so a check that is killed leaves nothing behind for long.

Paths: /canary/<anything> answers 200 with the secret; /hop/<anything>?to=URL answers 302 to URL.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# Runs with the service's own python3: the standard library only, and nothing from this package.
SCRIPT = r'''
import http.server, json, os, socket, sys, threading, time
from urllib.parse import parse_qs, urlsplit

secret, log_path, lifetime = sys.argv[1], sys.argv[2], float(sys.argv[3])
lock = threading.Lock()

def record(entry):
    with lock, open(log_path, "a") as log:
        log.write(json.dumps(entry) + "\n")

class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self):
        parts = urlsplit(self.path)
        record({"method": self.command, "path": parts.path, "host": self.headers.get("Host", ""),
                "peer": self.client_address[0]})
        if parts.path.startswith("/hop/"):
            self.send_response(302)
            self.send_header("Location", parse_qs(parts.query).get("to", ["/"])[0])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = ("canary " + secret).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = do_PUT = do_HEAD = answer
    def log_message(self, *args):
        pass

class V6(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6

servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)]
port = servers[0].server_address[1]
try:
    servers.append(V6(("::1", port), Handler))
except OSError:
    pass
for server in servers:
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
record({"ready": port, "ipv6": len(servers) > 1})
deadline = time.time() + lifetime
while time.time() < deadline and not os.path.exists(log_path + ".stop"):
    time.sleep(0.1)
'''


class CanaryError(RuntimeError):
    pass


class Canary:
    """Start with `with Canary(where) as canary:`; `canary.url(...)`, then `canary.hits()`."""

    def __init__(self, where: dict[str, Any] | None, work: Path, lifetime: float = 120.0):
        self.where, self.work, self.lifetime = where or {}, work, lifetime
        self.secret = secrets.token_hex(12)
        self.port = 0
        self.ipv6 = False
        self.container = None
        self.process: subprocess.Popen | None = None
        self.log = f"/tmp/lab-canary-{self.secret}.jsonl" if "container" in self.where else \
            str(work / f"canary-{self.secret}.jsonl")

    def __enter__(self) -> Canary:
        arguments = [self.secret, self.log, str(self.lifetime)]
        if "container" in self.where:
            import docker

            self.container = docker.from_env().containers.get(self.where["container"])
            self.container.exec_run(["python3", "-c", SCRIPT, *arguments], detach=True)
        else:
            self.work.mkdir(parents=True, exist_ok=True)
            self.process = subprocess.Popen([sys.executable, "-c", SCRIPT, *arguments], stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ready = [entry for entry in self._entries() if "ready" in entry]
            if ready:
                self.port, self.ipv6 = ready[0]["ready"], ready[0]["ipv6"]
                return self
            if self.process is not None and self.process.poll() is not None:
                break
            time.sleep(0.05)
        exited = self.process.poll() if self.process is not None else None
        self.__exit__(None, None, None)
        raise CanaryError("the canary listener did not start" +
                          (f": it exited with status {exited}" if exited is not None else " within 10 s"))

    def __exit__(self, *exc_info: Any) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=5)
            Path(self.log).unlink(missing_ok=True)
        elif self.container is not None:
            self.container.exec_run(["sh", "-c", f"touch {self.log}.stop; sleep 0.3; rm -f {self.log} {self.log}.stop"])

    def _entries(self) -> list[dict[str, Any]]:
        if self.container is not None:
            result = self.container.exec_run(["cat", self.log])
            text = result.output.decode("utf-8", "replace") if result.exit_code == 0 else ""
        else:
            try:
                text = Path(self.log).read_text()
            except OSError:
                text = ""
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

    def hits(self) -> list[dict[str, Any]]:
        """Every request the canary got so far."""
        return [entry for entry in self._entries() if "ready" not in entry]
