"""Wallets: top-ups and transfers, for one user and for many at once."""

from grader.checkkit import Call, Failure, check

WALLET_FIELDS = ("id", "owner", "balance")
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

    refused_topups = [
        (f"/api/wallets/{rich['id']}/topup/", {"amount": 0}, 400, "with amount 0"),
        (f"/api/wallets/{rich['id']}/topup/", {"amount": -250}, 400, "with amount -250"),
        (f"/api/wallets/{rich['id']}/topup/", {}, 400, "without an amount"),
        (f"/api/wallets/{rich['id']}/topup/", {"amount": "ten"}, 400, 'with amount "ten"'),
        (f"/api/wallets/{rich['id']}/topup/", {"amount": "500"}, 400, 'with amount "500" (a string)'),
        (f"/api/wallets/{rich['id']}/topup/", {"amount": 100_000_001}, 400, "with amount 100000001"),
        (f"/api/wallets/{unknown}/topup/", {"amount": amount}, 404, "for a wallet that does not exist"),
    ]
    balances = {rich["id"]: rich_balance, other["id"]: other["balance"], poor["id"]: poor["balance"]}
    for path, body, expected, doing in refused_topups:
        last_charge = ledger.last_id("payments_charge")
        reply = client.post(path, body)
        expect.status(reply, expected, doing, sent=body, help=CONTRACT)
        _expect_balances(ledger, balances, f"a refused top-up ({doing})")
        charges = ledger.charges_after(last_charge)
        if charges:
            raise Failure(f"POST {path} {doing} answered {reply.status} but still charged {charges[0]['amount']}",
                          evidence={"sent": body, "charges": charges[:3]},
                          help="A refused top-up must not reach the payment gateway.")

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
        charges = [charge for charge in ledger.charges_after(last_charge)
                   if charge["reference"] == f"topup:{wallet_id}"]
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
