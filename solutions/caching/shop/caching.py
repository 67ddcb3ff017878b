"""The shop's cache: one Redis that every worker of every replica shares, and that no answer depends on.

- Every call goes through the functions below. A cache that fails (stopped, unreachable, too slow for the
  short socket timeouts in settings.CACHES) is logged and treated as a miss, so the view answers from
  PostgreSQL; the next call tries Redis again, so the cache is back as soon as Redis is.
- Every key expires, none later than CACHE_MAX_TTL_SECONDS.
- An entry that a write makes stale is never deleted: its key names a version of what it was computed from
  (a product, a category), and a write moves readers to a new version (`bump`). A reader that fetched the
  old rows just before the write and stores them just after stores them under the old version, which no
  one reads any more.
- `single_flight` lets one request at a time, across every process, recompute an expensive entry.
"""
import logging
import time
import uuid

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

UNVERSIONED = "0"  # the version of a thing no write has touched since its version key expired
LOCK_SECONDS = 5  # how long a lock outlives a holder that died: far longer than a recomputation takes
WAIT_SECONDS = 6  # how long a request waits for another's recomputation before it computes on its own
POLL_SECONDS = 0.05
REFRESH_AT = 2 / 3  # an entry this far into its max-age is recomputed (by one request) while still served


def _failed(operation, key, error):
    log.warning("cache %s %r failed, answering without the cache: %s", operation, key, error)


def get(key):
    """The cached value, or None when it is missing or the cache does not answer."""
    try:
        return cache.get(key)
    except RedisError as error:
        _failed("get", key, error)
        return None


def set(key, value, seconds):
    try:
        cache.set(key, value, min(seconds, settings.CACHE_MAX_TTL_SECONDS))
    except RedisError as error:
        _failed("set", key, error)


def add(key, value, seconds):
    """SET NX EX: True when this call stored the key, False when it was there, None when the cache failed."""
    try:
        return cache.add(key, value, min(seconds, settings.CACHE_MAX_TTL_SECONDS))
    except RedisError as error:
        _failed("add", key, error)
        return None


def delete(key):
    try:
        cache.delete(key)
    except RedisError as error:
        _failed("delete", key, error)


# -- versions: invalidation without deleting -------------------------------------------------------------

def version(name):
    """The current version of `name` (e.g. "product:17"), for the keys of entries computed from it.

    Reading never writes: a thing no write has touched reads as UNVERSIONED, so junk ids add no keys.
    """
    return get(f"version:{name}") or UNVERSIONED


def bump(*names):
    """Move every reader of these things to new keys: what was cached from them is never read again.

    The version key lives CACHE_MAX_TTL_SECONDS, longer than any entry, so when it expires (and readers
    are back on UNVERSIONED) the entries written under UNVERSIONED before the write have expired too.
    """
    for name in names:
        set(f"version:{name}", uuid.uuid4().hex, settings.CACHE_MAX_TTL_SECONDS)


# -- single flight: one recomputation at a time, whatever the number of requests -----------------------

def single_flight(key, compute, max_age):
    """`compute()`'s result, about `max_age` seconds old at most, with one computation at a time across processes.

    An entry remembers when its computation began and when it was stored. While it is younger than REFRESH_AT
    of the max-age it is served as it is. After that, the one request that takes the lock (SET NX EX)
    recomputes while the others go on serving the entry. Requests wait (for the lock holder's result) only
    when there is no entry, or it was stored a whole max-age ago: no one refreshed it in time. The lock
    expires by itself, so a holder that dies blocks no one for long. Without a cache, every request computes
    (slower, never wrong).

    On a quiet machine an answer is at most REFRESH_AT of the max-age old, plus one computation. On a machine
    so busy that one computation takes longer than the max-age, its result still goes to the requests that
    waited for it (its storing time is what counts for them), or they would all compute on their own.
    """
    lock = f"{key}:lock"
    entry = get(key)
    if _usable(entry, max_age):
        if not _due(entry, max_age):
            return entry["value"]
        token = uuid.uuid4().hex
        if add(lock, token, LOCK_SECONDS):
            return _recompute(key, lock, token, compute, max_age)
        return entry["value"]

    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        token = uuid.uuid4().hex
        taken = add(lock, token, LOCK_SECONDS)
        if taken is None:  # no cache: nothing to share a result through
            return compute()
        if taken:
            return _recompute(key, lock, token, compute, max_age)
        if time.monotonic() > deadline:
            return compute()
        time.sleep(POLL_SECONDS)
        entry = get(key)
        if _usable(entry, max_age):
            return entry["value"]


def _usable(entry, max_age):
    """Stored less than a max-age ago."""
    return entry is not None and time.time() - entry["stored_at"] < max_age


def _due(entry, max_age):
    """Its computation began REFRESH_AT of the max-age ago: time to compute the next one."""
    return time.time() - entry["started_at"] >= max_age * REFRESH_AT


def _recompute(key, lock, token, compute, max_age):
    try:
        entry = get(key)  # another request may have refreshed it between our read and our lock
        if _usable(entry, max_age) and not _due(entry, max_age):
            return entry["value"]
        started_at = time.time()
        value = compute()
        set(key, {"value": value, "started_at": started_at, "stored_at": time.time()}, max(1, round(max_age)))
        return value
    finally:
        if get(lock) == token:  # ours still: it has not expired and been taken by another request
            delete(lock)
