"""Bearer tokens: `Authorization: Bearer <key>`, issued by POST /api/auth/login/.

A token is 256 random bits from the operating system's CSPRNG, new at every login, and stops working
TOKEN_TTL_SECONDS after it was issued (or at logout).
"""
import secrets
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from rest_framework import authentication, exceptions

from billing.models import AuthToken


def issue_token(user) -> AuthToken:
    return AuthToken.objects.create(user=user, key=secrets.token_urlsafe(32))


def valid_since():
    """Tokens issued before this moment have expired."""
    return timezone.now() - timedelta(seconds=settings.TOKEN_TTL_SECONDS)


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0] != self.keyword:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization: Bearer <token>")
        token = (AuthToken.objects.select_related("user")
                 .filter(key=header[1], created_at__gte=valid_since()).first())
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid or expired token.")
        return token.user, token

    def authenticate_header(self, request):
        return self.keyword
