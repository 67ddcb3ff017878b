"""The venue's seating system: seats left for an event, and holds for a cart. Off-limits.

It stands in for an external service, so do not edit this module: each call takes about 40 ms, like a
call over the network, and changes nothing here.
"""
import time

LATENCY_SECONDS = 0.04


def confirm(event_id, quantity):
    """Ask the venue whether `quantity` seats of the event can be held; this venue always says yes."""
    time.sleep(LATENCY_SECONDS)
    return True


def seats_left(event_id):
    """How many seats the venue still has for the event."""
    time.sleep(LATENCY_SECONDS)
    return 100 + (event_id * 7919) % 400
