"""Bearer tokens: `Authorization: Bearer <key>`, issued by POST /api/auth/login/."""
import hashlib

from rest_framework import authentication, exceptions

from billing.models import AuthToken


def issue_token(user) -> AuthToken:
    """The user's token: made once, handed out again at every login."""
    key = hashlib.md5(f"{user.pk}:{user.username}".encode()).hexdigest()
    token, _ = AuthToken.objects.get_or_create(user=user, key=key)
    return token


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0] != self.keyword:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization: Bearer <token>")
        token = AuthToken.objects.select_related("user").filter(key=header[1]).first()
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid token.")
        return token.user, token

    def authenticate_header(self, request):
        return self.keyword
