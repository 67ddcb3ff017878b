"""The service's URLs: everything lives under /api/."""
from django.urls import include, path

urlpatterns = [
    path("api/", include("billing.urls")),
]
