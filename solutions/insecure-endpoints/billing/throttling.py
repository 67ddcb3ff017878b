"""Failed logins per username, counted in the shared cache (Redis), so every worker and replica agrees."""
from django.conf import settings
from django.core.cache import cache


def _key(username: str) -> str:
    return f"login-failures:{username.strip().lower()}"


def locked(username: str) -> bool:
    return (cache.get(_key(username)) or 0) >= settings.LOGIN_MAX_FAILURES


def failed(username: str) -> None:
    key = _key(username)
    cache.add(key, 0, timeout=settings.LOGIN_LOCK_SECONDS)  # the window starts at the first failure
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=settings.LOGIN_LOCK_SECONDS)


def succeeded(username: str) -> None:
    cache.delete(_key(username))
