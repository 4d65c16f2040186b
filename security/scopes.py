"""API token scopes and the DRF permission that enforces them.

A request authenticated by a browser session acts with every scope: the user's own permissions (the predicates in
`security.permissions` and the `*_visible_to` selectors) are the only limit. A request authenticated by an API token
carries the token as `request.auth`; the token's scopes narrow what the user could do, never widen it.

A view declares what it needs with `required_scopes`, either one mapping for the whole view keyed by HTTP method, or
per DRF action (`{"list": [...], "create": [...]}`) on a viewset. Every scope listed must be granted. A view without
`required_scopes` refuses token requests: forgetting to declare a scope fails closed.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from django.db import models
from rest_framework import exceptions
from rest_framework.permissions import BasePermission
from rest_framework.request import Request


class Scope(models.TextChoices):
    TICKETS_READ = "tickets:read", "Read tickets, their timeline, public comments and attachments"
    TICKETS_WRITE = "tickets:write", "Create and update tickets, transition, assign, comment publicly, attach files"
    COMMENTS_INTERNAL = "comments:internal", "Read and write internal notes"
    SLA_READ = "sla:read", "Read SLA clocks, calendars and reports"
    SLA_ADMIN = "sla:admin", "Manage calendars and SLA policies"
    WEBHOOKS_MANAGE = "webhooks:manage", "Manage webhook subscriptions and see their deliveries"
    DIRECTORY_READ = "directory:read", "Read teams and users (minimal fields)"


ALL_SCOPES: frozenset[str] = frozenset(Scope.values)


@runtime_checkable
class ScopedCredential(Protocol):
    """What `request.auth` is for a token request (security's API token model implements it)."""

    def has_scope(self, scope: str) -> bool: ...


def request_has_scope(request: Request, scope: str) -> bool:
    """True when the request may act with `scope`: a session request always may, a token request if granted."""
    auth = getattr(request, "auth", None)
    if isinstance(auth, ScopedCredential):
        return auth.has_scope(scope)
    return True


def is_token_request(request: Request) -> bool:
    return isinstance(getattr(request, "auth", None), ScopedCredential)


def required_scopes_for(view: Any, request: Request) -> Sequence[str] | None:
    """The scopes `view` declares for this request, or None when it declares none."""
    declared: Mapping[str, Iterable[str]] | None = getattr(view, "required_scopes", None)
    if declared is None:
        return None
    action = getattr(view, "action", None)
    if action and action in declared:
        return list(declared[action])
    method = request.method or "GET"
    if method in declared:
        return list(declared[method])
    if method in ("HEAD", "OPTIONS") and "GET" in declared:
        return list(declared["GET"])
    return None


# The realm of the API's bearer challenges (`WWW-Authenticate`), here and in security.authentication.
REALM = "api"


class InsufficientScope(exceptions.PermissionDenied):
    """403 for a token without a scope the request needs, with the RFC 6750 challenge naming the scopes:
    `WWW-Authenticate: Bearer realm="api", error="insufficient_scope", scope="tickets:read"` (REST framework's
    exception handler sends `auth_header`)."""

    default_detail = "This token lacks the scope this endpoint needs."
    default_code = "insufficient_scope"

    def __init__(self, scopes: Iterable[str], detail: str | None = None) -> None:
        super().__init__(detail, code=self.default_code)
        self.auth_header = f'Bearer realm="{REALM}", error="insufficient_scope", scope="{" ".join(scopes)}"'


class HasRequiredScopes(BasePermission):
    """Token requests need every scope the view declares for the action or method; session requests pass."""

    message = InsufficientScope.default_detail
    code = InsufficientScope.default_code

    def has_permission(self, request: Request, view: Any) -> bool:
        if not is_token_request(request):
            return True
        scopes = required_scopes_for(view, request)
        if scopes is None:
            return False
        if not all(request_has_scope(request, scope) for scope in scopes):
            raise InsufficientScope(scopes)
        return True
