"""Users: what teammates may see (API3), what a user may change about themselves (API3) and staff-only
endpoints (API5)."""

from __future__ import annotations

from grader.checkkit import Failure, attempt_line, check, condensed, json_items

TEAMMATE_FIELDS = ("id", "username", "display_name")
ME_FIELDS = ("id", "username", "email", "display_name")
ADMIN_FIELDS = ("id", "username", "is_staff", "is_active")
SECRET_KEYS = {"password", "is_superuser", "user_permissions"}
PRIVATE_KEYS = {"email", "is_staff", "is_active", "last_login", "date_joined", "first_name", "last_name",
                "groups"}  # of teammates, on the users endpoints: they see id, username and display_name
HASH_PREFIXES = ("pbkdf2_", "argon2", "bcrypt", "scrypt$", "md5$", "sha1$", "unsalted_")


@check("profile-editable")
def test_profile_editable(client, accounts, records, expect, contract):
    """A user reads and edits their profile (email, display_name) and sees teammates by id and name"""
    user = accounts["profile"]
    auth = accounts.headers(user)
    me = client.get("/api/me/", headers=auth)
    expect.status(me, 200, "for one's profile", help=contract)
    expect.fields(me, ME_FIELDS, help=contract)
    expect.values(me, {"id": user.id, "username": user.username, "email": user.email}, "the user's row",
                  help=contract)
    sent = {"display_name": "Renamed Person", "email": f"new.{user.email}"}
    changed = client.request("PATCH", "/api/me/", sent, headers=auth)
    expect.status(changed, 200, "changing display_name and email", sent=sent, help=contract)
    row = records.user(user.id)
    if (row["display_name"], row["email"]) != (sent["display_name"], sent["email"]):
        raise Failure("PATCH /api/me/ answered 200 but billing_user does not hold the new display_name and email",
                      evidence={"sent": sent, "row": {"display_name": row["display_name"], "email": row["email"]}},
                      help=contract)
    listed = client.get("/api/users/", headers=auth)
    expect.status(listed, 200, "for the teammates", help=contract)
    mine = [item for item in listed.body or [] if isinstance(item, dict) and item.get("id") == user.id]
    if not isinstance(listed.body, list) or not mine or any(name not in mine[0] for name in TEAMMATE_FIELDS):
        raise Failure("GET /api/users/ is not a list of users with id, username and display_name, the user among "
                      "them", evidence={"reply": condensed(listed.text, 300)}, help=contract)
    detail = client.get(f"/api/users/{user.id}/", headers=auth)
    expect.status(detail, 200, "for a teammate", help=contract)
    expect.values(detail, {"id": user.id, "username": user.username, "display_name": sent["display_name"]},
                  "the user's row", help=contract)


def _leaks(reply, hashes: set[str], private: bool) -> list[str]:
    found = []
    for path, key, value in json_items(reply.body):
        if key in SECRET_KEYS or (private and key in PRIVATE_KEYS):
            found.append(f"{path}.{key} = {str(value)[:40]}")
        elif isinstance(value, str) and (value in hashes or value.startswith(HASH_PREFIXES)):
            found.append(f"{path}.{key} = {value[:40]}... (a password hash)")
    return found


@check("no-sensitive-fields")
def test_no_sensitive_fields(client, accounts, records, expect, contract):
    """No endpoint shows a password hash or superuser flag; teammates' emails and staff flags stay private"""
    user, staff = accounts["sensitive"], accounts["staff"]
    other = accounts["profile"]
    hashes = set(records.password_hashes())
    auth, staff_auth = accounts.headers(user), accounts.headers(staff)
    reads = [("/api/me/", auth, user.username, False), ("/api/users/", auth, user.username, True),
             (f"/api/users/{other.id}/", auth, user.username, True), (f"/api/users/{user.id}/", auth, user.username, True),
             ("/api/admin/users/", staff_auth, f"{staff.username} (staff)", False)]
    leaks = []
    for path, headers, who, private in reads:
        reply = client.get(path, headers=headers)
        expect.status(reply, 200, f"as {who}", help=contract)
        found = _leaks(reply, hashes, private)
        if found:
            leaks.append({"exploit": attempt_line(reply, who), "leaked": found[:4]})
    if leaks:
        raise Failure(f"{leaks[0]['exploit'].split(' as ')[0].removesuffix(' -> 200')} shows {leaks[0]['leaked'][0]}"
                      f"{' and more' if len(leaks) > 1 or len(leaks[0]['leaked']) > 1 else ''} "
                      "(API3:2023 Broken Object Property Level Authorization)", evidence={"responses": leaks},
                      help="Name the fields each serializer may show (never fields = '__all__' on a user), in the "
                           "list and the detail alike: teammates see id, username and display_name.")


@check("no-mass-assignment")
def test_no_mass_assignment(client, accounts, records, seeded, expect):
    """A user cannot make themselves staff, nor give an invoice another owner, by sending extra fields"""
    user, other = accounts["mass_assignment"], accounts["mass_assignment_other"]
    auth = accounts.headers(user)
    changes = []
    before = records.user(user.id)
    sent = {"display_name": "Still Ordinary", "is_staff": True, "is_superuser": True, "is_active": False,
            "username": f"{user.username}-renamed", "password": "chosen-by-the-client"}
    reply = client.request("PATCH", "/api/me/", sent, headers=auth)
    row = records.user(user.id)
    changed = [name for name in ("is_staff", "is_superuser", "is_active", "username", "password")
               if row[name] != before[name]]
    if changed:
        changes.append({"exploit": attempt_line(reply, user.username, sent),
                        "changed": f"billing_user {user.id}: " + ", ".join(
                            f"{name} {'replaced' if name == 'password' else repr(before[name]) + ' -> ' + repr(row[name])}"
                            for name in changed)})
    sent = {"number": "INV-9000", "customer": "Planted", "amount_cents": 5000, "owner": other.id}
    reply = client.post("/api/invoices/", sent, headers=auth)
    created = records.invoice(reply.body.get("id")) if reply.status == 201 and isinstance(reply.body, dict) else None
    if created is not None and created["owner_id"] != user.id:
        changes.append({"exploit": attempt_line(reply, user.username, sent),
                        "changed": f"invoice {created['id']} was created for user {created['owner_id']}"})
    invoice_id = seeded["invoices"]["mass_assignment"][0]["id"]
    sent = {"owner": other.id}
    reply = client.request("PATCH", f"/api/invoices/{invoice_id}/", sent, headers=auth)
    moved = records.invoice(invoice_id)
    if moved["owner_id"] != user.id:
        changes.append({"exploit": attempt_line(reply, user.username, sent),
                        "changed": f"invoice {invoice_id} now belongs to user {moved['owner_id']}"})
    if changes:
        raise Failure(f"extra fields were written: {changes[0]['changed']} "
                      "(API3:2023 Broken Object Property Level Authorization, mass assignment)",
                      evidence={"attempts": changes},
                      help="A serializer writes every field it declares writable: list the few a client may change "
                           "(email, display_name) and make the rest read-only, and set an invoice's owner from "
                           "request.user when it is created.")
    row = records.user(user.id)
    if row["display_name"] != "Still Ordinary":
        raise Failure("PATCH /api/me/ no longer changes display_name", evidence={"row": row["display_name"]},
                      help="Keep email and display_name writable.")


@check("admin-works")
def test_admin_works(client, accounts, records, expect, contract):
    """Staff list every account at /api/admin/users/"""
    staff = accounts["staff"]
    reply = client.get("/api/admin/users/", headers=accounts.headers(staff))
    expect.status(reply, 200, f"as {staff.username} (staff)", help=contract)
    items = reply.body if isinstance(reply.body, list) else []
    ids = {item.get("id") for item in items if isinstance(item, dict)}
    if len(items) != records.user_count() or staff.id not in ids or accounts["admin_regular"].id not in ids or \
            any(name not in items[0] for name in ADMIN_FIELDS):
        raise Failure("GET /api/admin/users/ is not every account with id, username, is_staff and is_active",
                      evidence={"accounts": records.user_count(), "listed": len(items),
                                "reply": condensed(reply.text, 300)}, help=contract)


@check("admin-only")
def test_admin_only(client, accounts, expect):
    """A regular user, or nobody at all, gets no answer from the staff-only endpoint"""
    regular = accounts["admin_regular"]
    anonymous = client.get("/api/admin/users/")
    reply = client.get("/api/admin/users/", headers=accounts.headers(regular))
    if reply.status != 403 or anonymous.status != 401:
        listed = len(reply.body) if isinstance(reply.body, list) else None
        raise Failure(f"GET /api/admin/users/ as {regular.username}, a regular user, answered {reply.status}"
                      f"{f' with {listed} accounts' if listed else ''} (expected 403; without a token, 401: got "
                      f"{anonymous.status}) (API5:2023 Broken Function Level Authorization)",
                      evidence={"exploit": attempt_line(reply, regular.username), "leaked": condensed(reply.text, 240),
                                "without_token": anonymous.status},
                      help="Being signed in is not being staff: give staff-only views a permission that checks "
                           "is_staff (DRF: IsAdminUser).")
    expect.status(client.get("/api/admin/users/", headers=accounts.headers(accounts["staff"])), 200,
                  "as staff", help="Staff must still reach it.")
