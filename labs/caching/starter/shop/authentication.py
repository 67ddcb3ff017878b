"""Customers sign in with their token: `Authorization: Token <token>`."""
from rest_framework import authentication, exceptions

from shop.models import Customer


class CustomerTokenAuthentication(authentication.BaseAuthentication):
    """request.user is the customer whose token the request carries; a missing or unknown token is a 401."""

    keyword = "Token"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization: Token <token>")
        try:
            token = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        customer = Customer.objects.filter(token=token).first()
        if customer is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        return customer, token

    def authenticate_header(self, request):
        return self.keyword  # a 401 with WWW-Authenticate: Token, rather than a 403
