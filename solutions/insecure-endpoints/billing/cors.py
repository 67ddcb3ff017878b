"""CORS for the web app, which calls the API from the browser with the user's credentials.

Only the web app's origin (settings.WEB_APP_ORIGIN) is allowed; any other origin gets no CORS headers,
so a browser keeps the answers from its scripts.
"""
from django.conf import settings
from django.http import HttpResponse
from django.utils.cache import patch_vary_headers

ALLOWED_METHODS = "GET, POST, PATCH, DELETE, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type"


class CorsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        origin = request.headers.get("Origin")
        allowed = origin is not None and origin == settings.WEB_APP_ORIGIN
        if allowed and request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response = HttpResponse(status=200)
            response["Access-Control-Allow-Methods"] = ALLOWED_METHODS
            response["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            response["Access-Control-Max-Age"] = "600"
        else:
            response = self.get_response(request)
        if allowed:
            response["Access-Control-Allow-Origin"] = origin
            response["Access-Control-Allow-Credentials"] = "true"
        patch_vary_headers(response, ["Origin"])
        return response
