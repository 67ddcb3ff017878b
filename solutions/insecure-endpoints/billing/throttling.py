"""Failed logins per username, counted in the shared cache (Redis), so every worker and replica agrees.

An attempt is counted before its password is checked (an atomic INCR), so that guesses sent together are
counted together: checking "fewer than 5 so far?" first and counting afterwards lets every one of a burst
through. A successful login clears the count.
"""
from django.conf import settings
from django.core.cache import cache


def _key(username: str) -> str:
    return f"login-attempts:{username}"  # Django usernames are case-sensitive, and so is the lock


def admit(username: str) -> bool:
    """Count this attempt; False once the username had LOGIN_MAX_FAILURES attempts in the window."""
    key = _key(username)
    cache.add(key, 0, timeout=settings.LOGIN_LOCK_SECONDS)  # the window starts at the first attempt
    try:
        attempts = cache.incr(key)
    except ValueError:  # expired between add and incr: a new window
        cache.set(key, 1, timeout=settings.LOGIN_LOCK_SECONDS)
        attempts = 1
    return attempts <= settings.LOGIN_MAX_FAILURES


def succeeded(username: str) -> None:
    cache.delete(_key(username))
