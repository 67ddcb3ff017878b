"""A check's hold on the run's services: stop one (Redis) for a while, as an outage would, and start it again.

The grader, not the check, owns the servers: the check asks through its orders channel, the grader stops the
service and answers, and it starts the service again when the block ends, or when the check ends inside it
(an error, a time-out, a worker that died): a stop never outlives the check that asked for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from grader.checkkit.verdicts import Inconclusive

Ask = Callable[[dict[str, Any]], dict[str, Any]]


class ServiceControl:
    """The services a check may stop and start again (`with services.stopped("redis"):`)."""

    def __init__(self, ask: Ask | None, on_restart: tuple[Callable[[], None], ...] = ()):
        self.ask, self.on_restart = ask, on_restart

    @contextmanager
    def stopped(self, name: str) -> Iterator[None]:
        """The service is down inside the block (connections to it are refused) and up again, empty, after it."""
        if self.ask is None:
            raise Inconclusive(f"{name} can be stopped only under the grader's scheduler (lab check)")
        answer = self.ask({"service": name, "action": "stop"})
        if not answer.get("ok"):
            raise Inconclusive(f"{name} could not be stopped here: {answer.get('message')}",
                               evidence={"needs": "lab check --provider local or docker"})
        try:
            yield
        finally:
            answer = self.ask({"service": name, "action": "start"})
            if not answer.get("ok"):
                raise RuntimeError(f"the grader could not start {name} again: {answer.get('message')}")
            for callback in self.on_restart:
                callback()
