"""Signing in (API2:2023 Broken Authentication): throttled guessing, tokens that expire and cannot be guessed."""

from __future__ import annotations

import base64
import hashlib
import time

from grader.checkkit import Failure, bearer, check, condensed

MAX_FAILURES = 5  # the brief: after 5 failed logins for a username, 429 for 15 minutes
GUESSES = 10
LOGIN = "/api/auth/login/"


@check("login-works")
def test_login_works(client, accounts, expect, contract):
    """A user who mistypes their password twice still signs in; the token works until logout"""
    user = accounts["login_works"]
    expect.status(client.post(LOGIN, {"username": user.username}), 400, "without a password", help=contract)
    for _ in range(2):
        expect.status(client.post(LOGIN, user.credentials("wrong-" + user.password)), 401,
                      "with a wrong password", sent={"username": user.username, "password": "(wrong)"}, help=contract)
    reply = client.post(LOGIN, user.credentials())
    expect.status(reply, 200, "with the right password after two mistakes", help=contract)
    body = expect.fields(reply, ("token", "expires_in"), help=contract)
    if not isinstance(body["expires_in"], int) or body["expires_in"] <= 0:
        raise Failure(f"expires_in is {body['expires_in']!r}, not a number of seconds", help=contract)
    me = client.get("/api/me/", headers=bearer(body["token"]))
    expect.status(me, 200, "with the new token", help=contract)
    expect.values(me, {"id": user.id, "username": user.username}, "the signed-in user", help=contract)
    expect.status(client.get("/api/me/"), 401, "without a token", help=contract)
    expect.status(client.get("/api/me/", headers=bearer("not-a-token")), 401, "with a made-up token", help=contract)
    expect.status(client.post("/api/auth/logout/", headers=bearer(body["token"])), 204, "logging out", help=contract)
    expect.status(client.get("/api/me/", headers=bearer(body["token"])), 401, "with the token after logout",
                  help=contract)


@check("login-throttled")
def test_login_throttled(replicas, accounts, expect, contract):
    """Password guessing is stopped after 5 failures for an account, on every replica, and others still sign in"""
    victim, bystander = accounts["throttle_victim"], accounts["throttle_bystander"]
    attempts = []
    for guess in range(GUESSES):
        replica = guess % len(replicas)
        reply = replicas[replica].post(LOGIN, victim.credentials(f"guess-{guess:04d}"))
        attempts.append({"guess": guess + 1, "replica": replica + 1, "status": reply.status})
    wrong_answered = sum(1 for attempt in attempts if attempt["status"] == 401)
    right = replicas[0].post(LOGIN, victim.credentials())
    attempts.append({"guess": "the right password", "replica": 1, "status": right.status})
    evidence = {"exploit": f"POST {LOGIN} for {victim.username} with {GUESSES} wrong passwords, "
                           f"alternating over {len(replicas)} replica(s), then the right one",
                "attempts": attempts}
    if wrong_answered > MAX_FAILURES or right.status == 200:
        got = (f"{wrong_answered} wrong passwords were checked (401)" if wrong_answered > MAX_FAILURES
               else "the right password was accepted after the failures")
        raise Failure(f"an attacker can keep guessing {victim.username}'s password: {got}; the brief allows "
                      f"{MAX_FAILURES} failures, then 429 (API2:2023 Broken Authentication)", evidence=evidence,
                      help="Count failed logins per username where every worker and every replica sees the same "
                           "count (the database, or Redis through Django's cache), not in a process's memory.")
    if any(attempt["status"] not in (401, 429) for attempt in attempts):
        raise Failure("a login attempt answered neither 401 nor 429", evidence=evidence, help=contract)
    for replica, other in enumerate(replicas):
        reply = other.post(LOGIN, bystander.credentials())
        expect.status(reply, 200, f"for {bystander.username} (another account) on replica {replica + 1} while "
                      f"{victim.username} is locked", help="Lock the attacked account, not everybody: count failures "
                      "per username.")


@check("tokens-expire")
def test_tokens_expire(lab, client, accounts, expect, contract):
    """A token stops working TOKEN_TTL_SECONDS after it was issued"""
    user = accounts["tokens_expire"]
    ttl = int(lab.app_settings["TOKEN_TTL_SECONDS"])
    issued = time.monotonic()
    token = accounts.login(user)
    expect.status(client.get("/api/me/", headers=bearer(token)), 200, "with a fresh token", help=contract)
    time.sleep(max(0.0, issued + ttl + 1.0 - time.monotonic()))
    reply = client.get("/api/me/", headers=bearer(token))
    if reply.status != 401:
        raise Failure(f"a token was still accepted {time.monotonic() - issued:.1f} s after it was issued, with "
                      f"TOKEN_TTL_SECONDS = {ttl} (API2:2023 Broken Authentication)",
                      evidence={"exploit": f"GET /api/me/ with {user.username}'s token, {ttl + 1} s after login",
                                "status": reply.status, "reply": condensed(reply.text, 200)},
                      help="Refuse a token older than settings.TOKEN_TTL_SECONDS (compare its creation time when "
                           "you authenticate), so that a stolen token is only good for a while.")
    accounts.login(user)


def _derivations(user) -> dict[str, str]:
    """Tokens a guesser would try first: hashes and encodings of what anyone may know about the user."""
    seeds = {"id": str(user.id), "username": user.username, "email": user.email,
             "id:username": f"{user.id}:{user.username}", "username:id": f"{user.username}:{user.id}"}
    made = {}
    for name, value in seeds.items():
        made[name] = value
        made[f"base64({name})"] = base64.b64encode(value.encode()).decode()
        for algorithm in ("md5", "sha1", "sha256"):
            made[f"{algorithm}({name})"] = hashlib.new(algorithm, value.encode()).hexdigest()
    return made


@check("tokens-unguessable")
def test_tokens_unguessable(client, accounts, expect, contract):
    """Tokens are random: none is derived from the user, each login issues a new one"""
    user = accounts["tokens_unguessable"]
    first = accounts.login(user)
    guessed = [name for name, value in _derivations(user).items() if value.lower() == first.lower()]
    if guessed or len(first) < 20:
        raise Failure(f"{user.username}'s token can be computed by anyone: it is "
                      f"{guessed[0] if guessed else 'only ' + str(len(first)) + ' characters long'} "
                      "(API2:2023 Broken Authentication)",
                      evidence={"exploit": f"computed {guessed[0] if guessed else 'a short token'} for user "
                                           f"{user.id} without their password", "token": first},
                      help="Make tokens from a cryptographically secure random source (the secrets module), at "
                           "least 128 bits, never from the user's id, name or email.")
    expect.status(client.post("/api/auth/logout/", headers=bearer(first)), 204, "logging out", help=contract)
    second = accounts.login(user)
    if second == first:
        raise Failure("after logout, the next login issued the same token again: a token that is a function of the "
                      "user can be worked out, and a leaked one never stops being valid "
                      "(API2:2023 Broken Authentication)",
                      evidence={"exploit": f"login, logout, login as {user.username}", "first": first,
                                "second": second},
                      help="Issue a new random token at every login.")
    expect.status(client.get("/api/me/", headers=bearer(first)), 401, "with the token of the earlier login, "
                  "after logout", help="A token ends at logout.")
