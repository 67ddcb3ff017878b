"""The market's URLs: everything lives under /api/."""
from django.urls import include, path

urlpatterns = [
    path("api/", include("shop.urls")),
]
