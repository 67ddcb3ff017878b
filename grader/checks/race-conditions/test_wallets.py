"""Wallets: top-ups and transfers, for one user and for many at once."""

from grader.checkkit import Call, Failure, check

WALLET_FIELDS = ("id", "owner", "balance")
LARGEST_TOPUP = 100_000_000
TRANSFER_FIELDS = ("id", "source", "target", "amount")
ROUNDS = 5
CONTRACT = "The brief lists each status code and field of the wallet endpoints; compare your answers with it."


@check("wallet-basics")
def test_wallet_basics(client, ledger, expect, seeded):
    """Top-ups and transfers work for one user: balances, 400, 404 and 409 as the brief says"""
    role = seeded["wallet_basics"]
    rich, other, poor = (ledger.wallet(role[name]["id"]) for name in ("rich", "other", "poor"))
    unknown = ledger.unknown_id("store_wallet")

    reply = client.get(f"/api/wallets/{rich['id']}/")
    expect.status(reply, 200, "for an existing wallet", help=CONTRACT)
    expect.fields(reply, WALLET_FIELDS, help=CONTRACT)
    expect.values(reply, rich, "the wallet's row in store_wallet", help=CONTRACT)
    expect.status(client.get(f"/api/wallets/{unknown}/"), 404, "for a wallet that does not exist", help=CONTRACT)

    amount = role["topup"]
    last_charge = ledger.last_id("payments_charge")
    reply = client.post(f"/api/wallets/{rich['id']}/topup/", {"amount": amount})
    expect.status(reply, 200, f"with amount {amount}", sent={"amount": amount}, help=CONTRACT)
    expect.fields(reply, WALLET_FIELDS, help=CONTRACT)
    rich_balance = rich["balance"] + amount
    expect.values(reply, {"id": rich["id"], "owner": rich["owner"], "balance": rich_balance},
                  f"the wallet after a top-up of {amount} to {rich['balance']}", help=CONTRACT)
    _expect_balances(ledger, {rich["id"]: rich_balance}, f"a top-up of {amount}")
    charges = ledger.charges_after(last_charge)
    if [(charge["amount"], charge["reference"]) for charge in charges] != [(amount, f"topup:{rich['id']}")]:
        raise Failure(f"a top-up of {amount} should make one charge of {amount} with reference "
                      f"'topup:{rich['id']}'; the gateway recorded {len(charges)} charge(s)",
                      evidence={"charges": charges[:5]},
                      help="Every top-up is paid through the payment gateway once, as the starter code does.")

    full, limit = ledger.wallet(role["full"]["id"]), role["largest_balance"]
    headroom = limit - full["balance"]
    refused_topups = [
        (f"/api/wallets/{rich['id']}/topup/", {"amount": 0}, 400, "with amount 0"),
        (f"/api/wallets/{rich['id']}/topup/", {"amount": -250}, 400, "with amount -250"),
        (f"/api/wallets/{rich['id']}/topup/", {}, 400, "without an amount"),
        (f"/api/wallets/{rich['id']}/topup/", {"amount": "ten"}, 400, 'with amount "ten"'),
        (f"/api/wallets/{rich['id']}/topup/", {"amount": "500"}, 400, 'with amount "500" (a string)'),
        (f"/api/wallets/{rich['id']}/topup/", {"amount": 100_000_001}, 400, "with amount 100000001"),
        (f"/api/wallets/{unknown}/topup/", {"amount": amount}, 404, "for a wallet that does not exist"),
        (f"/api/wallets/{full['id']}/topup/", {"amount": LARGEST_TOPUP}, 409,
         f"with amount {LARGEST_TOPUP} to a wallet holding {full['balance']}"),
        (f"/api/wallets/{full['id']}/topup/", {"amount": headroom + 1}, 409,
         f"with amount {headroom + 1} to a wallet holding {full['balance']} (one cent past {limit})"),
    ]
    balances = {rich["id"]: rich_balance, other["id"]: other["balance"], poor["id"]: poor["balance"],
                full["id"]: full["balance"]}
    for path, body, expected, doing in refused_topups:
        last_charge = ledger.last_id("payments_charge")
        reply = client.post(path, body)
        charges = ledger.charges_after(last_charge)
        if charges and reply.status != 200:
            raise Failure(f"POST {path} {doing} answered {reply.status} but charged {charges[0]['amount']}: the card "
                          f"was charged and the wallet {'not credited' if reply.status >= 500 else 'refused'}",
                          evidence={"sent": body, "status": reply.status, "charges": charges[:3]},
                          help="A top-up that cannot be credited must be refused before it reaches the payment "
                               "gateway: a charge is final.")
        expect.status(reply, expected, doing, sent=body, help=CONTRACT)
        _expect_balances(ledger, balances, f"a refused top-up ({doing})")

    last_charge = ledger.last_id("payments_charge")
    reply = client.post(f"/api/wallets/{full['id']}/topup/", {"amount": headroom})
    doing = f"with amount {headroom} to a wallet holding {full['balance']} (up to the limit of {limit})"
    expect.status(reply, 200, doing, sent={"amount": headroom}, help=CONTRACT)
    balances[full["id"]] = limit
    _expect_balances(ledger, balances, f"a top-up {doing}")
    charges = ledger.charges_after(last_charge)
    if [charge["amount"] for charge in charges] != [headroom]:
        raise Failure(f"a top-up of {headroom} should make one charge of {headroom}; the gateway recorded "
                      f"{len(charges)} charge(s)", evidence={"charges": charges[:5]}, help=CONTRACT)

    amount = role["transfer"]
    last_transfer = ledger.last_id("store_transfer")
    sent = {"source": rich["id"], "target": other["id"], "amount": amount}
    reply = client.post("/api/transfers/", sent)
    expect.status(reply, 201, f"for {amount} from a wallet holding {rich_balance}", sent=sent, help=CONTRACT)
    body = expect.fields(reply, TRANSFER_FIELDS, help=CONTRACT)
    expect.values(reply, sent, "the transfer sent", help=CONTRACT)
    balances[rich["id"]] -= amount
    balances[other["id"]] += amount
    _expect_balances(ledger, balances, f"a transfer of {amount}")
    rows = ledger.transfers_after(last_transfer, tuple(balances))
    expected_row = {"id": body["id"], "source_id": rich["id"], "target_id": other["id"], "amount": amount}
    if rows != [expected_row]:
        raise Failure(f"a transfer answered 201 but store_transfer holds {len(rows)} new row(s) for it, "
                      f"expected exactly one matching the reply", evidence={"expected": expected_row, "rows": rows[:5]},
                      help=CONTRACT)

    refused_transfers = [
        ({"source": rich["id"], "target": other["id"], "amount": 0}, 400, "with amount 0"),
        ({"source": rich["id"], "target": other["id"], "amount": -5}, 400, "with amount -5"),
        ({"source": rich["id"], "target": other["id"]}, 400, "without an amount"),
        ({"source": rich["id"], "target": other["id"], "amount": "100"}, 400, 'with amount "100" (a string)'),
        ({"source": rich["id"], "target": other["id"], "amount": 2_147_483_648}, 400, "with amount 2147483648"),
        ({"target": other["id"], "amount": 100}, 400, "without a source"),
        ({"source": rich["id"], "amount": 100}, 400, "without a target"),
        ({"source": rich["id"], "target": rich["id"], "amount": 100}, 400, "from a wallet to itself"),
        ({"source": unknown, "target": other["id"], "amount": 100}, 404, "from a wallet that does not exist"),
        ({"source": rich["id"], "target": unknown, "amount": 100}, 404, "to a wallet that does not exist"),
        ({"source": poor["id"], "target": other["id"], "amount": poor["balance"] + 1}, 409,
         f"for {poor['balance'] + 1} from a wallet holding {poor['balance']}"),
        ({"source": rich["id"], "target": full["id"], "amount": 1}, 409,
         f"of 1 to a wallet already holding the limit of {limit}"),
    ]
    for body, expected, doing in refused_transfers:
        last_transfer = ledger.last_id("store_transfer")
        reply = client.post("/api/transfers/", body)
        expect.status(reply, expected, doing, sent=body, help=CONTRACT)
        _expect_balances(ledger, balances, f"a refused transfer ({doing})")
        if ledger.count_after("store_transfer", last_transfer):
            raise Failure(f"POST /api/transfers/ {doing} answered {reply.status} but still recorded a transfer",
                          evidence={"sent": body}, help="A refused transfer must leave no trace.")


def _expect_balances(ledger, expected, after):
    actual = {wallet_id: ledger.balance(wallet_id) for wallet_id in expected}
    wrong = {wallet_id: {"expected": balance, "actual": actual[wallet_id]}
             for wallet_id, balance in expected.items() if actual[wallet_id] != balance}
    if wrong:
        wallet_id, pair = next(iter(wrong.items()))
        raise Failure(f"after {after}, wallet {wallet_id} holds {pair['actual']} in store_wallet, "
                      f"expected {pair['expected']}", evidence={"balances": wrong}, help=CONTRACT)


@check("topup-no-lost-update")
def test_topup_no_lost_update(client, ledger, expect, seeded):
    """Top-ups arriving together are all kept: the balance grows by the sum of the top-ups"""
    help = "Two top-ups can read the same balance before either writes it back. Whose top-up survives?"
    for number, role in enumerate(seeded["topup_no_lost_update"][:ROUNDS], start=1):
        wallet_id, amounts = role["wallet"]["id"], role["amounts"]
        initial = ledger.balance(wallet_id)
        last_charge = ledger.last_id("payments_charge")
        calls = [Call("POST", f"/api/wallets/{wallet_id}/topup/", {"amount": amount}) for amount in amounts]
        replies = client.burst(calls)
        expect.burst_answered(calls, replies, "top-ups", number)
        expect.only_statuses(calls, replies, (200,), "top-ups of one wallet", number, help=CONTRACT)
        final = ledger.balance(wallet_id)
        accepted = sum(amounts)
        charges = ledger.charges_after(last_charge, {f"topup:{wallet_id}"})
        charged = sum(charge["amount"] for charge in charges)
        problems = []
        if final != initial + accepted:
            lost = initial + accepted - final
            problems.append(f"{len(amounts)} top-ups worth {accepted} were accepted but the balance went from "
                            f"{initial} to {final}: {abs(lost)} {'lost' if lost > 0 else 'too much'}")
        if len(charges) != len(amounts) or charged != accepted:
            problems.append(f"the gateway charged {len(charges)} top-up(s) worth {charged} for {len(amounts)} "
                            f"accepted top-ups worth {accepted}")
        if problems:
            raise Failure(f"{'; '.join(problems)} (round {number})",
                          evidence={"round": number, "top_ups": len(amounts), "initial_balance": initial,
                                    "expected_balance": initial + accepted, "final_balance": final,
                                    "charges": len(charges), "charged": charged,
                                    "replies": expect.counts(replies)}, help=help)


@check("transfers-conserve-money")
def test_transfers_conserve_money(client, ledger, expect, seeded):
    """Transfers arriving together conserve money and never overdraw a wallet"""
    help = ("A transfer reads two balances and writes both back later. What can other transfers do to those "
            "wallets in between?")
    for number, role in enumerate(seeded["transfers_conserve_money"][:ROUNDS], start=1):
        source, target, amounts = role["source"]["id"], role["target"]["id"], role["amounts"]
        before = {source: ledger.balance(source), target: ledger.balance(target)}
        last_transfer = ledger.last_id("store_transfer")
        calls = [Call("POST", "/api/transfers/", {"source": source, "target": target, "amount": amount})
                 for amount in amounts]
        replies = client.burst(calls)
        what = "transfers from one wallet to another"
        expect.burst_answered(calls, replies, what, number)
        expect.only_statuses(calls, replies, (201, 409), what, number, help=CONTRACT)
        after = {source: ledger.balance(source), target: ledger.balance(target)}
        rows = ledger.transfers_after(last_transfer, (source, target))
        accepted = [(reply, amount) for reply, amount in zip(replies, amounts, strict=True) if reply.status == 201]
        problems = []
        moved_rows = sum(row["amount"] for row in rows)
        moved_replies = sum(amount for _, amount in accepted)
        if max(moved_rows, moved_replies) > before[source]:
            problems.append(f"accepted transfers worth {max(moved_rows, moved_replies)} from a wallet holding "
                            f"{before[source]}")
        total_before, total_after = sum(before.values()), sum(after.values())
        if total_after != total_before:
            change = total_after - total_before
            problems.append(f"the two wallets held {total_before} together before and {total_after} after: "
                            f"{abs(change)} {'created' if change > 0 else 'lost'}")
        for wallet_id, balance in after.items():
            if balance < 0:
                problems.append(f"wallet {wallet_id} is overdrawn at {balance}")
        stray = [row for row in rows if (row["source_id"], row["target_id"]) != (source, target)]
        if stray:
            problems.append(f"store_transfer holds {len(stray)} transfer(s) in a direction nobody asked for")
        if after[source] != before[source] - moved_rows or after[target] != before[target] + moved_rows:
            problems.append(f"store_transfer records {len(rows)} transfer(s) moving {moved_rows}, but the source went "
                            f"from {before[source]} to {after[source]} and the target from {before[target]} to "
                            f"{after[target]}")
        if len(accepted) != len(rows) or moved_replies != moved_rows:
            problems.append(f"{len(accepted)} transfer(s) worth {moved_replies} answered 201 but store_transfer "
                            f"records {len(rows)} worth {moved_rows}")
        elif {reply.body.get("id") if isinstance(reply.body, dict) else None for reply, _ in accepted} != {
                row["id"] for row in rows}:
            problems.append("the ids in the 201 answers are not the ids of the transfers in store_transfer")
        refused = [amount for reply, amount in zip(replies, amounts, strict=True) if reply.status == 409]
        if not problems and refused and after[source] >= min(refused):
            problems.append(f"a transfer of {min(refused)} was refused for insufficient funds (409), yet the source "
                            f"still holds {after[source]}")
        if problems:
            raise Failure(f"{len(amounts)} transfers arrived together: {'; '.join(problems[:2])} (round {number})",
                          evidence={"round": number, "transfers": len(amounts), "problems": problems,
                                    "source": {"id": source, "before": before[source], "after": after[source]},
                                    "target": {"id": target, "before": before[target], "after": after[target]},
                                    "accepted": len(accepted), "accepted_amount": moved_replies,
                                    "recorded": len(rows), "recorded_amount": moved_rows,
                                    "replies": expect.counts(replies)}, help=help)
    for number, role in enumerate(seeded.get("transfers_mixed", []), start=ROUNDS + 1):
        _mixed_round(client, ledger, expect, role, number, help)


def _mixed_round(client, ledger, expect, role, number, help):
    """One wallet pays several others, is paid by two more and is topped up, all at once.

    Every balance must end where the recorded transfers and the charged top-ups take it, whatever order the
    server ran them in; money only enters through top-ups, and no wallet goes below zero.
    """
    ids = {name: wallet["id"] for name, wallet in role["wallets"].items()}
    hub = ids["hub"]
    transfers = [(ids[source], ids[target], amount) for source, target, amount in role["transfers"]]
    topups = [(ids[name], amount) for name, amount in role["topups"]]
    before = {wallet_id: ledger.balance(wallet_id) for wallet_id in ids.values()}
    last_transfer, last_charge = ledger.last_id("store_transfer"), ledger.last_id("payments_charge")
    calls = [Call("POST", "/api/transfers/", {"source": source, "target": target, "amount": amount})
             for source, target, amount in transfers]
    calls += [Call("POST", f"/api/wallets/{wallet_id}/topup/", {"amount": amount}) for wallet_id, amount in topups]
    order = list(range(len(calls)))
    order = order[::2] + order[1::2]  # transfers and top-ups interleaved in the burst
    calls = [calls[index] for index in order]
    replies = client.burst(calls)
    what = f"transfers out of and into one wallet, with top-ups ({len(transfers)} transfers, {len(topups)} top-ups)"
    expect.burst_answered(calls, replies, what, number)
    is_topup = [call.path.endswith("/topup/") for call in calls]
    expect.only_statuses([c for c, t in zip(calls, is_topup, strict=True) if not t],
                         [r for r, t in zip(replies, is_topup, strict=True) if not t], (201, 409),
                         "transfers of a wallet that pays and is paid at once", number, help=CONTRACT)
    expect.only_statuses([c for c, t in zip(calls, is_topup, strict=True) if t],
                         [r for r, t in zip(replies, is_topup, strict=True) if t], (200,),
                         "top-ups sent along with transfers", number, help=CONTRACT)

    after = {wallet_id: ledger.balance(wallet_id) for wallet_id in before}
    rows = ledger.transfers_after(last_transfer, tuple(before))
    charges = ledger.charges_after(last_charge, {f"topup:{wallet_id}" for wallet_id in before})
    asked = {(source, target) for source, target, _ in transfers}
    accepted = [(call, reply) for call, reply, topup in zip(calls, replies, is_topup, strict=True)
                if not topup and reply.status == 201]
    problems = []
    stray = [row for row in rows if (row["source_id"], row["target_id"]) not in asked]
    if stray:
        problems.append(f"store_transfer holds {len(stray)} transfer(s) between wallets nobody asked for")
    moved_replies = sum(call.json["amount"] for call, _ in accepted)
    moved_rows = sum(row["amount"] for row in rows)
    if len(accepted) != len(rows) or moved_replies != moved_rows:
        problems.append(f"{len(accepted)} transfer(s) worth {moved_replies} answered 201 but store_transfer "
                        f"records {len(rows)} worth {moved_rows}")
    credited = {wallet_id: 0 for wallet_id in before}
    for wallet_id, amount in topups:
        credited[wallet_id] += amount
    charged = {wallet_id: sum(charge["amount"] for charge in charges if charge["reference"] == f"topup:{wallet_id}")
               for wallet_id in before}
    if charged != credited:
        problems.append(f"{len(topups)} top-ups worth {sum(credited.values())} were accepted but the gateway charged "
                        f"{len(charges)} worth {sum(charged.values())}")
    expected = {}
    for wallet_id, balance in before.items():
        incoming = sum(row["amount"] for row in rows if row["target_id"] == wallet_id)
        outgoing = sum(row["amount"] for row in rows if row["source_id"] == wallet_id)
        expected[wallet_id] = balance + credited[wallet_id] + incoming - outgoing
    wrong = {wallet_id: {"before": before[wallet_id], "expected": expected[wallet_id], "actual": after[wallet_id]}
             for wallet_id in before if after[wallet_id] != expected[wallet_id]}
    for wallet_id, pair in list(wrong.items())[:2]:
        name = "the paying wallet" if wallet_id == hub else "wallet"
        problems.append(f"{name} {wallet_id} went from {pair['before']} to {pair['actual']}, but the transfers "
                        f"recorded and the top-ups credited take it to {pair['expected']}")
    total_before, total_after = sum(before.values()), sum(after.values())
    if total_after != total_before + sum(credited.values()):
        change = total_after - total_before - sum(credited.values())
        problems.append(f"the wallets held {total_before} together, gained {sum(credited.values())} in top-ups and "
                        f"hold {total_after}: {abs(change)} {'created' if change > 0 else 'lost'}")
    overdrawn = {wallet_id: balance for wallet_id, balance in after.items() if balance < 0}
    if overdrawn:
        problems.append(f"wallet {next(iter(overdrawn))} is overdrawn at {next(iter(overdrawn.values()))}")
    if problems:
        raise Failure(f"wallet {hub} paid {len([t for t in transfers if t[0] == hub])} transfers, was paid and "
                      f"topped up, all at once: {'; '.join(problems[:2])} (round {number})",
                      evidence={"round": number, "problems": problems, "paying_wallet": hub,
                                "balances": {wallet_id: {"before": before[wallet_id], "after": after[wallet_id],
                                                         "expected": expected[wallet_id]} for wallet_id in before},
                                "accepted": len(accepted), "recorded": len(rows), "recorded_amount": moved_rows,
                                "replies": expect.counts(replies)},
                      help=help + " A lock on a transfer's own two wallets does not stop another transfer, or a "
                                  "top-up, of one of them.")


@check("transfers-no-5xx")
def test_transfers_no_5xx(client, ledger, expect, seeded):
    """Transfers in opposite directions at once never answer 5xx (no deadlock reaches the client)"""
    help = ("Two transfers between the same wallets in opposite directions can each hold one wallet and wait for "
            "the other. What order could every transfer agree on?")
    for number, role in enumerate(seeded["transfers_no_5xx"][:ROUNDS], start=1):
        a, b = role["a"]["id"], role["b"]["id"]
        forward = [Call("POST", "/api/transfers/", {"source": a, "target": b, "amount": amount})
                   for amount in role["a_to_b"]]
        backward = [Call("POST", "/api/transfers/", {"source": b, "target": a, "amount": amount})
                    for amount in role["b_to_a"]]
        calls = [call for pair in zip(forward, backward, strict=True) for call in pair]
        replies = client.burst(calls)
        what = f"transfers between two wallets ({len(forward)} each way)"
        expect.burst_answered(calls, replies, what, number, help=help)
        expect.only_statuses(
            calls, replies, (201,), what, number,
            help="Both wallets hold enough for every transfer in this test, so each one should be accepted.")
