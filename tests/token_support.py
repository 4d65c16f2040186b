"""Helpers for the API token tests: make a token through the service, call the API with it."""

from datetime import datetime, timedelta

from django.test import Client
from django.utils import timezone

from security import token_services
from security.models import User
from security.token_services import CreatedToken


def make_token(
    owner: User,
    *scopes: str,
    actor: User | None = None,
    name: str = "CI",
    expires_at: datetime | None = None,
) -> CreatedToken:
    return token_services.token_create(
        actor=actor or owner,
        owner=owner,
        name=name,
        scopes=scopes or ("tickets:read",),
        expires_at=expires_at or timezone.now() + timedelta(days=30),
    )


def bearer(token: str) -> Client:
    """A client with no session that sends `Authorization: Bearer <token>` on every request."""
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")
