"""Helpers for the API tests: clients acting as a user, through a browser session or a scoped token."""

from collections.abc import Iterable
from dataclasses import dataclass, field

from rest_framework.test import APIClient

from security.scopes import ALL_SCOPES


@dataclass
class ScopedToken:
    """Stands in for `request.auth` of a token request (security's API token model has the same `has_scope`): it
    goes through the real `HasRequiredScopes` permission and the views' own scope checks."""

    scopes: frozenset[str] = field(default_factory=frozenset)
    pk: int = 0  # the per-token rate limit keys on it (security/ratelimit.py)

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


def api_client(user, scopes: Iterable[str] | None = None) -> APIClient:  # type: ignore[no-untyped-def]
    """A client signed in as `user`: with `scopes`, as a token with exactly those scopes; without, as a session."""
    client = APIClient()
    if user is not None:
        token = ScopedToken(frozenset(scopes)) if scopes is not None else None
        client.force_authenticate(user=user, token=token)
    return client


def all_scopes_client(user) -> APIClient:  # type: ignore[no-untyped-def]
    return api_client(user, ALL_SCOPES)
