"""`/api/v1/` routes for tickets, categories, teams and users (issue 6)."""

from django.urls import URLPattern, URLResolver

urlpatterns: list[URLPattern | URLResolver] = []
