"""Writes for API tokens and service accounts. Every change is audited; no audit row ever holds a secret or its hash."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from itsm.errors import NotFound, PermissionDenied, ValidationFailed
from security import permissions
from security.audit import audit_record, to_json
from security.models import User
from security.scopes import ALL_SCOPES
from security.services import user_create
from security.tokens import ApiToken, generate_token

NAME_MAX_CHARS = 100
# Attempts at a prefix nobody holds: with 2**32 prefixes a second attempt is already astronomically rare.
_PREFIX_ATTEMPTS = 5


@dataclass(frozen=True)
class CreatedToken:
    """The saved token and its string: the only moment the string exists outside the caller's hands."""

    token: ApiToken
    secret: str


def max_lifetime() -> timedelta:
    return timedelta(days=settings.API_TOKEN_MAX_LIFETIME_DAYS)


def token_audit_snapshot(token: ApiToken) -> dict[str, Any]:
    return to_json(
        {
            "user": token.user_id,
            "name": token.name,
            "prefix": token.prefix,
            "scopes": list(token.scopes),
            "expires_at": token.expires_at,
            "revoked_at": token.revoked_at,
        }
    )


def _clean_scopes(owner: User, scopes: Iterable[str]) -> list[str]:
    requested = sorted({str(scope) for scope in scopes})
    if not requested:
        raise ValidationFailed("Choose at least one scope.", fields={"scopes": ["Choose at least one scope."]})
    unknown = [scope for scope in requested if scope not in ALL_SCOPES]
    if unknown:
        raise ValidationFailed(
            "Unknown scopes.", fields={"scopes": [f"Unknown scope: {', '.join(unknown)}."]}, code="unknown_scope"
        )
    grantable = permissions.token_grantable_scopes(owner)
    refused = [scope for scope in requested if scope not in grantable]
    if refused:
        raise ValidationFailed(
            "The token's owner cannot use these scopes.",
            fields={"scopes": [f"Not available to this account: {', '.join(refused)}."]},
            code="scope_not_grantable",
        )
    return requested


@transaction.atomic
def token_create(*, actor: User, owner: User, name: str, scopes: Iterable[str], expires_at: datetime) -> CreatedToken:
    """Create a token for `owner` (the actor themselves, or a service account when the actor is an admin).

    Scopes must exist and be grantable to the owner (`permissions.token_grantable_scopes`); the expiry must lie in the
    future and within `API_TOKEN_MAX_LIFETIME_DAYS`. The token string is returned once and stored only as a hash.
    """
    if not permissions.can_create_token_for(actor, owner):
        raise PermissionDenied("You cannot create tokens for this account.")
    name = name.strip()
    if not name or len(name) > NAME_MAX_CHARS:
        raise ValidationFailed(
            "Name the token.", fields={"name": [f"Give a name of 1 to {NAME_MAX_CHARS} characters."]}
        )
    clean_scopes = _clean_scopes(owner, scopes)
    now = timezone.now()
    if expires_at <= now:
        raise ValidationFailed("The expiry is in the past.", fields={"expires_at": ["Choose a future date."]})
    if expires_at > now + max_lifetime():
        raise ValidationFailed(
            "The expiry is too far away.",
            fields={"expires_at": [f"Tokens live at most {settings.API_TOKEN_MAX_LIFETIME_DAYS} days."]},
        )
    for attempt in range(_PREFIX_ATTEMPTS):
        new = generate_token()
        token = ApiToken(
            user=owner,
            name=name,
            prefix=new.prefix,
            secret_hash=new.secret_hash,
            scopes=clean_scopes,
            created_at=now,
            created_by=actor,
            expires_at=expires_at,
        )
        try:
            with transaction.atomic():
                token.save(force_insert=True)
            break
        except IntegrityError:  # prefix taken (or a constraint broke: then every attempt fails the same way)
            if attempt == _PREFIX_ATTEMPTS - 1:
                raise
    audit_record(actor=actor, action="api_token.create", obj=token, after=token_audit_snapshot(token))
    return CreatedToken(token=token, secret=new.token)


@transaction.atomic
def token_revoke(*, actor: User, token: ApiToken) -> ApiToken:
    """Revoke `token`: every later request with it is refused (authentication reads the row on every request).

    Locks the row. Idempotent: revoking a revoked token changes nothing and writes no audit row. A token the actor may
    not revoke is the same `NotFound` as a missing one.
    """
    locked = ApiToken.objects.select_for_update().filter(pk=token.pk).first()
    if locked is None or not permissions.can_revoke_token(actor, locked.user_id):
        raise NotFound("No such token.")
    if locked.revoked_at is not None:
        return locked
    before = token_audit_snapshot(locked)
    locked.revoked_at = timezone.now()
    locked.revoked_by = actor
    locked.save(update_fields=["revoked_at", "revoked_by"])
    audit_record(actor=actor, action="api_token.revoke", obj=locked, before=before, after=token_audit_snapshot(locked))
    return locked


@transaction.atomic
def service_account_create(*, actor: User | None, email: str, full_name: str, organisation: str = "") -> User:
    """An account for an integration: no usable password (it never signs in to the browser), audited as a user."""
    return user_create(
        actor=actor,
        email=email,
        full_name=full_name,
        organisation=organisation,
        password=None,
        is_service_account=True,
    )
