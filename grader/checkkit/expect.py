"""Expectations about replies, failing with the request sent, the answer and the contract."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from grader.checkkit.http import Call, Reply, condensed
from grader.checkkit.verdicts import Failure, Inconclusive

SERVER_ERROR_HELP = ("The traceback of each 500 is in .lab/logs/server.log. Something that works for one request at "
                     "a time can fail when other requests are using the same rows.")


def status_counts(replies: list[Reply]) -> dict[str, int]:
    """How many replies had each status, for evidence ("no answer" for errors)."""
    counts = Counter(str(reply.status) if reply.status is not None else "no answer" for reply in replies)
    return dict(sorted(counts.items()))


class Expect:
    """Expectations about replies that raise a Failure naming the request, the answer and the contract."""

    counts = staticmethod(status_counts)

    @staticmethod
    def status(reply: Reply, expected: int, doing: str, *, sent: Any = None, help: str | None = None) -> None:
        """The reply has the expected status; `doing` says what the request was, for the learner."""
        if reply.status == expected:
            return
        evidence = {"request": f"{reply.method} {reply.path}", "expected_status": expected}
        if sent is not None:
            evidence["sent"] = sent
        if reply.error:
            evidence["error"] = reply.error
            raise Failure(f"{reply.method} {reply.path} {doing} got no answer ({reply.error}); expected {expected}",
                          evidence=evidence, help=help)
        evidence.update(status=reply.status, reply=condensed(reply.text, 300))
        raise Failure(f"{reply.method} {reply.path} {doing} answered {reply.status}, expected {expected}",
                      evidence=evidence, help=help)

    @staticmethod
    def fields(reply: Reply, fields: tuple[str, ...], *, help: str | None = None) -> dict[str, Any]:
        """The reply is a JSON object with at least these fields; returns it."""
        body = reply.body
        if not isinstance(body, dict):
            raise Failure(f"{reply.method} {reply.path} answered {reply.status} without a JSON object",
                          evidence={"expected_fields": list(fields), "reply": condensed(reply.text, 300)},
                          help=help)
        missing = [name for name in fields if name not in body]
        if missing:
            names = ", ".join(f"'{name}'" for name in missing)
            raise Failure(f"{reply.method} {reply.path} answered without the field(s) {names}",
                          evidence={"expected_fields": list(fields), "fields": sorted(body), "missing": missing},
                          help=help)
        return body

    @staticmethod
    def values(reply: Reply, expected: dict[str, Any], source: str, *, help: str | None = None) -> None:
        """The reply's fields equal the expected values; `source` says where the expected values come from."""
        body = reply.body if isinstance(reply.body, dict) else {}
        wrong = {name: {"expected": value, "actual": body.get(name)}
                 for name, value in expected.items() if body.get(name) != value}
        if wrong:
            name, pair = next(iter(wrong.items()))
            raise Failure(f"{reply.method} {reply.path} says {name} = {pair['actual']!r}, but {source} is "
                          f"{pair['expected']!r}", evidence={"mismatched": wrong, "reply": condensed(reply.text, 300)},
                          help=help)

    @staticmethod
    def sample(call: Call, reply: Reply) -> str:
        """One request and its answer in a line, for evidence."""
        sent = f" {json.dumps(call.json)}" if call.json is not None else ""
        if reply.error:
            return f"{call.method} {call.path}{sent} -> {reply.error}"
        return f"{call.method} {call.path}{sent} -> {reply.status} {condensed(reply.text, 160)}"

    @classmethod
    def burst_answered(cls, calls: list[Call], replies: list[Reply], what: str, round_number: int,
                       *, help: str | None = None) -> None:
        """Every request of a burst was sent and answered without a 5xx; otherwise Inconclusive or Failure."""
        unsent = [reply for reply in replies
                  if reply.error and reply.error.startswith(("cannot connect", "not sent"))]
        if unsent:
            raise Inconclusive(f"round {round_number}: the {len(replies)} {what} could not all be connected before "
                               f"they were released, so nothing was sent ({unsent[0].error})",
                               evidence={"round": round_number, "requests": len(replies), "unsent": len(unsent)})
        broken = [(call, reply) for call, reply in zip(calls, replies, strict=True) if reply.is_5xx or reply.error]
        if broken:
            first = broken[0][1]
            answer = first.error if first.error else f"{first.status}"
            raise Failure(f"{len(broken)} of {len(replies)} {what} sent together answered with a server error or "
                          f"not at all (first: {answer}; round {round_number})",
                          evidence={"round": round_number, "replies": status_counts(replies),
                                    "samples": [cls.sample(call, reply) for call, reply in broken[:3]]},
                          help=help or SERVER_ERROR_HELP)

    @classmethod
    def only_statuses(cls, calls: list[Call], replies: list[Reply], allowed: tuple[int, ...], what: str,
                      round_number: int, *, help: str | None = None) -> None:
        """Every reply of a burst has one of the allowed statuses."""
        odd = [(call, reply) for call, reply in zip(calls, replies, strict=True) if reply.status not in allowed]
        if odd:
            allowed_text = " or ".join(str(status) for status in allowed)
            raise Failure(f"{len(odd)} of {len(replies)} {what} sent together answered {odd[0][1].status} "
                          f"(expected {allowed_text}; round {round_number})",
                          evidence={"round": round_number, "replies": status_counts(replies),
                                    "samples": [cls.sample(call, reply) for call, reply in odd[:3]]}, help=help)


def json_items(value: Any, path: str = "$"):
    """Every (path, key, value) of a JSON document, depth first: where a leaked field sits, for evidence."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield path, key, item
            yield from json_items(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from json_items(item, f"{path}[{index}]")


def attempt_line(reply: Reply, who: str, sent: Any = None) -> str:
    """An attempted exploit in one line, for evidence: request, body, as whom, and the status it got."""
    body = f" {json.dumps(sent)}" if sent is not None else ""
    return f"{reply.method} {reply.path}{body} as {who} -> {reply.status if reply.error is None else reply.error}"


def server_errors(replies: list[Reply]) -> list[str]:
    """The replies that are 5xx or no answer at all, described for evidence."""
    return [reply.describe() for reply in replies if reply.is_5xx or reply.error]
