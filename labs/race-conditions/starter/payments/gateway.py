"""The payment provider: charge a card, screen a transfer.

OFF-LIMITS. Do not edit anything under payments/. This module stands in for an
external card provider, and the checks count the charges it records: each
order must be charged exactly once, and each top-up once.

It is slow on purpose. A real provider answers over the network in tens of
milliseconds; charge() and screen_transfer() sleep for that long. The pause is
where concurrent requests interleave in production, so making it shorter would
only hide a race, not fix it.

A charge is final, as it is with a real provider: it is written on the
provider's own connection and committed at once, so rolling back your own
transaction does not undo it (a rollback does not refund a card).
"""
import time

from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone

from payments.models import Charge

CHARGE_LATENCY = 0.05  # seconds, one round trip to the card provider
SCREEN_LATENCY = 0.02  # seconds, one round trip to the risk service


def charge(amount: int, reference: str) -> int:
    """Charge `amount` cents, recorded under `reference`, and return the charge's id."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValueError(f"a charge must be a positive number of cents, got {amount!r}")
    time.sleep(CHARGE_LATENCY)
    # The provider's own connection, in autocommit: the charge commits now,
    # whatever happens to the caller's transaction afterwards.
    provider = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with provider.cursor() as cursor:
            table = provider.ops.quote_name(Charge._meta.db_table)
            cursor.execute(
                f"INSERT INTO {table} (amount, reference, created_at) VALUES (%s, %s, %s) RETURNING id",
                [amount, reference[:200], timezone.now()],
            )
            return cursor.fetchone()[0]
    finally:
        provider.close()


def screen_transfer(source_id: int, target_id: int, amount: int) -> None:
    """Ask the risk service whether a transfer may go ahead; it always may, after a pause."""
    time.sleep(SCREEN_LATENCY)
