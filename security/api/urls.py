"""`/api/v1/` routes owned by security: webhook subscriptions and deliveries (issue 6)."""

from django.urls import URLPattern, URLResolver

urlpatterns: list[URLPattern | URLResolver] = []
