"""Signing in (API2:2023 Broken Authentication): throttled guessing, tokens that expire and cannot be guessed."""

from __future__ import annotations

import base64
import hashlib
import time

from grader.checkkit import Call, Failure, bearer, check, condensed, status_counts

MAX_FAILURES = 5  # the brief: after 5 failed logins for a username, 429 for 15 minutes
GUESSES = 10
BURST = 12  # sent at once: more than the 5 allowed, fewer than one replica's 8 threads can take with the accept queue
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
    if isinstance(body["expires_in"], bool) or not isinstance(body["expires_in"], int | float) or \
            body["expires_in"] <= 0:
        raise Failure(f"expires_in is {body['expires_in']!r}, not a number of seconds", help=contract)
    me = client.get("/api/me/", headers=bearer(body["token"]))
    expect.status(me, 200, "with the new token", help=contract)
    expect.values(me, {"id": user.id, "username": user.username}, "the signed-in user", help=contract)
    expect.status(client.get("/api/me/"), 401, "without a token", help=contract)
    expect.status(client.get("/api/me/", headers=bearer("not-a-token")), 401, "with a made-up token", help=contract)
    expect.status(client.post("/api/auth/logout/", headers=bearer(body["token"])), 204, "logging out", help=contract)
    expect.status(client.get("/api/me/", headers=bearer(body["token"])), 401, "with the token after logout",
                  help=contract)


def _claimed_client(guess: int) -> dict[str, str]:
    """Forwarding headers an attacker sets to pose as another client at every guess (documentation addresses)."""
    return {"X-Forwarded-For": f"203.0.113.{guess % 250 + 1}", "X-Real-IP": f"198.51.100.{guess % 250 + 1}",
            "Forwarded": f"for=192.0.2.{guess % 250 + 1}"}


def _guesses(client, account, count: int, replica: int, label: str) -> list[dict]:
    return [{"guess": f"{label} {n + 1}", "replica": replica + 1,
             "status": client.post(LOGIN, account.credentials(f"guess-{label}-{n:04d}")).status}
            for n in range(count)]


@check("login-throttled")
def test_login_throttled(replicas, accounts, expect, contract):
    """Password guessing stops after 5 failures for an account, on any replica, whatever client it claims to be"""
    victim, burst_victim, bystander = accounts["throttle_victim"], accounts["throttle_burst"], accounts["throttle_bystander"]
    help_text = ("Count failed logins per username where every worker and every replica sees the same count (Redis "
                 "through Django's cache, or a table), not in a process's memory, and count an attempt before you "
                 "check its password (an atomic increment), so that guesses sent together are counted too. Key the "
                 "count on the username, never on X-Forwarded-For, X-Real-IP or Forwarded (DRF's get_ident reads "
                 "X-Forwarded-For): the client writes those headers and can change them at every guess.")
    attempts = []
    for guess in range(GUESSES):  # one at a time, alternating over the replicas, each from another claimed client
        replica = guess % len(replicas)
        claimed = _claimed_client(guess)
        reply = replicas[replica].post(LOGIN, victim.credentials(f"guess-{guess:04d}"), headers=claimed)
        attempts.append({"guess": guess + 1, "replica": replica + 1, "X-Forwarded-For": claimed["X-Forwarded-For"],
                         "status": reply.status})
    right = replicas[0].post(LOGIN, victim.credentials(), headers=_claimed_client(GUESSES))
    attempts.append({"guess": "the right password", "replica": 1, "status": right.status})
    checked = sum(1 for attempt in attempts if attempt["status"] == 401)
    if checked > MAX_FAILURES or right.status != 429:
        got = (f"{checked} wrong passwords were checked (401)" if checked > MAX_FAILURES
               else f"then the right password answered {right.status}")
        raise Failure(f"an attacker can keep guessing {victim.username}'s password: {got}; the brief allows "
                      f"{MAX_FAILURES} failures, then 429 for every login (API2:2023 Broken Authentication)",
                      evidence={"exploit": f"POST {LOGIN} for {victim.username} with {GUESSES} wrong passwords, "
                                           f"alternating over {len(replicas)} replicas, each with another "
                                           "X-Forwarded-For, X-Real-IP and Forwarded, then the right one",
                                "attempts": attempts}, help=help_text)
    calls = [Call("POST", LOGIN, burst_victim.credentials(f"together-{n:04d}"), _claimed_client(GUESSES + 1 + n))
             for n in range(BURST)]
    together = replicas[0].burst(calls)
    checked = sum(1 for reply in together if reply.status == 401)
    if checked > MAX_FAILURES:
        raise Failure(f"{BURST} wrong passwords for {burst_victim.username} sent at the same moment: {checked} were "
                      f"checked (401), the brief allows {MAX_FAILURES} (API2:2023 Broken Authentication)",
                      evidence={"exploit": f"POST {LOGIN} x{BURST} at once for {burst_victim.username}, each with "
                                           "another X-Forwarded-For, X-Real-IP and Forwarded",
                                "replies": status_counts(together)}, help=help_text)
    if any(attempt["status"] not in (401, 429) for attempt in attempts) or \
            any(reply.status not in (401, 429) for reply in together):
        raise Failure("a login attempt answered neither 401 nor 429",
                      evidence={"attempts": attempts, "together": status_counts(together)}, help=contract)
    for round_number in range(2):  # a user who mistypes 4 times still gets in, and a success clears the count
        mistakes = _guesses(replicas[round_number % len(replicas)], bystander, MAX_FAILURES - 1, round_number,
                            f"round {round_number + 1}")
        reply = replicas[(round_number + 1) % len(replicas)].post(LOGIN, bystander.credentials())
        if reply.status != 200:
            raise Failure(f"{bystander.username}, another account, mistyped {MAX_FAILURES - 1} times and then could "
                          f"not sign in with the right password ({reply.status}; round {round_number + 1} of 2)",
                          evidence={"attempts": mistakes, "right_password": reply.status,
                                    "meanwhile": f"{victim.username} and {burst_victim.username} were locked"},
                          help="Lock the attacked username only, after 5 failures, and let a successful login "
                               "clear its count, as the brief says.")


@check("tokens-expire")
def test_tokens_expire(lab, client, replicas, accounts, expect, contract):
    """A token stops working TOKEN_TTL_SECONDS after the login that issued it, however often it is used"""
    user = accounts["tokens_expire"]
    ttl = float(lab.app_settings["TOKEN_TTL_SECONDS"])
    token = accounts.login(user)
    issued = time.monotonic()  # the answer's arrival: the server made the token before this
    for second in (1, 2):  # in use all along: a lifetime counted from the last use never ends
        time.sleep(max(0.0, issued + second - time.monotonic()))
        expect.status(replicas[second % len(replicas)].get("/api/me/", headers=bearer(token)), 200,
                      f"with a token {second} s old", help=contract)
    time.sleep(max(0.0, issued + ttl + 1.0 - time.monotonic()))
    late = [(index, other.get("/api/me/", headers=bearer(token))) for index, other in enumerate(replicas)]
    accepted = [(index, reply) for index, reply in late if reply.status != 401]
    if accepted:
        index, reply = accepted[0]
        raise Failure(f"a token was still accepted {time.monotonic() - issued:.1f} s after it was issued, with "
                      f"TOKEN_TTL_SECONDS = {ttl:g} (API2:2023 Broken Authentication)",
                      evidence={"exploit": f"GET /api/me/ with {user.username}'s token, {ttl + 1:g} s after login, "
                                           f"on replica {index + 1}", "status": reply.status,
                                "reply": condensed(reply.text, 200)},
                      help="Refuse a token older than settings.TOKEN_TTL_SECONDS, counted from the login that issued "
                           "it (compare its creation time when you authenticate), so that a stolen token is only "
                           "good for a while.")
    accounts.login(user)


def _derivations(user, around: float) -> dict[str, str]:
    """Tokens a guesser would try first: hashes and encodings of what anyone may know about the user, alone or
    with the time of the login (whole seconds, a few either side)."""
    known = {"id": str(user.id), "username": user.username, "email": user.email,
             "id:username": f"{user.id}:{user.username}", "username:id": f"{user.username}:{user.id}"}
    for second in range(int(around) - 3, int(around) + 4):
        known.update({f"id:{second}": f"{user.id}:{second}", f"username:{second}": f"{user.username}:{second}",
                      f"id:username:{second}": f"{user.id}:{user.username}:{second}"})
    made = {}
    for name, value in known.items():
        made[name] = value
        made[f"base64({name})"] = base64.b64encode(value.encode()).decode()
        for algorithm in ("md5", "sha1", "sha256"):
            made[f"{algorithm}({name})"] = hashlib.new(algorithm, value.encode()).hexdigest()
    return made


def _decodings(token: str) -> list[bytes]:
    """The token read as base64, base32 and hex, where it is one."""
    decoded = []
    for decode in (lambda text: base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_"),
                   lambda text: base64.b32decode(text.upper() + "=" * (-len(text) % 8)), bytes.fromhex):
        try:
            decoded.append(decode(token))
        except ValueError:
            continue
    return decoded


def _guessable(user, token: str, around: float) -> str | None:
    """How a guesser gets the token without the password, or None."""
    for name, value in _derivations(user, around).items():
        if value.lower() == token.lower():
            return name
    for decoded in _decodings(token):
        for name, value in (("username", user.username), ("email", user.email)):
            if value.encode() in decoded:
                return f"an encoding of a text with the user's {name} in it"
    if len(token) < 20:
        return f"only {len(token)} characters long"
    return None


def _shared_ends(tokens: list[str], length: int = 8) -> str | None:
    """A start or end that every token shares (a fixed part, a clock or a counter), or None."""
    if all(token[:length] == tokens[0][:length] for token in tokens):
        return f"they all start with {tokens[0][:length]!r}"
    if all(token[-length:] == tokens[0][-length:] for token in tokens):
        return f"they all end with {tokens[0][-length:]!r}"
    return None


@check("tokens-unguessable")
def test_tokens_unguessable(client, replicas, accounts, expect, contract):
    """Tokens are random: none is derived from the user or the time, each login issues a new one"""
    user = accounts["tokens_unguessable"]
    help_text = ("Make tokens from a cryptographically secure random source (secrets.token_urlsafe(32)), new at every "
                 "login, never from the user's id, name, email or the time.")
    tokens = []
    for _ in range(2):  # two logins in a row, then a third after logout
        tokens.append(accounts.login(user))
        how = _guessable(user, tokens[-1], time.time())
        if how:
            raise Failure(f"{user.username}'s token can be computed by anyone: it is {how} "
                          "(API2:2023 Broken Authentication)",
                          evidence={"exploit": f"computed {how} for user {user.id} without their password",
                                    "token": tokens[-1]}, help=help_text)
    expect.status(client.post("/api/auth/logout/", headers=bearer(tokens[0])), 204, "logging out", help=contract)
    tokens.append(accounts.login(user))
    shared = _shared_ends(tokens)
    if len(set(tokens)) < len(tokens) or shared:
        raise Failure(f"three logins of {user.username} gave "
                      f"{'the same token again' if len(set(tokens)) < len(tokens) else 'tokens alike: ' + shared}: "
                      "a token that follows from the user or the moment can be worked out "
                      "(API2:2023 Broken Authentication)",
                      evidence={"exploit": f"login, login, logout, login as {user.username}", "tokens": tokens},
                      help=help_text)
    for index, other in enumerate(replicas):
        for _ in range(2):
            expect.status(other.get("/api/me/", headers=bearer(tokens[0])), 401,
                          f"on replica {index + 1} with the token of a login that was logged out",
                          help="A token ends at logout, for every worker of every replica: keep no revocation list in "
                               "a process's memory.")
