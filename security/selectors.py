"""Reads of the directory and the audit trail, scoped to what the user may see."""

from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import QuerySet

from itsm.errors import NotFound
from itsm.paging import keyset_page
from security import permissions
from security.models import AuditLog, User
from security.tokens import ApiToken

AuditScope = Callable[[QuerySet[AuditLog]], QuerySet[AuditLog]]

# Apps whose audit rows can reveal confidential objects register a filter here (tickets does, in its AppConfig):
# `security` never imports them; they extend it.
_confidential_scopes: list[AuditScope] = []


def register_confidential_audit_scope(scope: AuditScope) -> None:
    if scope not in _confidential_scopes:
        _confidential_scopes.append(scope)


def audit_visible_to(user: User) -> QuerySet[AuditLog]:
    """Audit rows `user` may read: admins and security officers only, and rows about confidential objects only for
    those who may see confidential objects."""
    if not permissions.can_view_audit_log(user):
        return AuditLog.objects.none()
    queryset = AuditLog.objects.all()
    if not permissions.can_see_confidential(user):
        for scope in _confidential_scopes:
            queryset = scope(queryset)
    return queryset


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditLog]
    next_before: int | None


def audit_list(
    *,
    user: User,
    action: str = "",
    object_type: str = "",
    object_id: str = "",
    actor_id: int | None = None,
    before: int | None = None,
    limit: int = 50,
) -> AuditPage:
    """Newest first, keyset-paged on `seq`; each filter has an index (`security_audit_*`). One query."""
    if not permissions.can_view_audit_log(user):
        raise NotFound("No such page.")
    queryset = audit_visible_to(user).select_related("actor")
    if action:
        queryset = queryset.filter(action=action)
    if object_type:
        queryset = queryset.filter(object_type=object_type)
        if object_id:
            queryset = queryset.filter(object_id=object_id)
    if actor_id is not None:
        queryset = queryset.filter(actor_id=actor_id)
    if before is not None:
        queryset = queryset.filter(seq__lt=before)
    limit = max(1, min(limit, 200))
    page, next_before = keyset_page(queryset.order_by("-seq"), limit, lambda row: row.seq)
    return AuditPage(rows=page, next_before=next_before)


@dataclass(frozen=True)
class TokenPage:
    rows: list[ApiToken]
    next_before: int | None


def token_list(*, user: User, before: int | None = None, limit: int = 50) -> TokenPage:
    """`user`'s own API tokens, newest first, keyset-paged on id (index `security_apitoken_user_id`). One query."""
    queryset = ApiToken.objects.filter(user_id=user.pk)
    if before is not None:
        queryset = queryset.filter(pk__lt=before)
    limit = max(1, min(limit, 200))
    page, next_before = keyset_page(queryset.order_by("-id"), limit, lambda row: row.pk)
    return TokenPage(rows=page, next_before=next_before)


def token_get(*, user: User, pk: int) -> ApiToken:
    """One of `user`'s own tokens. Someone else's token is the same `NotFound` as a missing one."""
    token = ApiToken.objects.filter(user_id=user.pk, pk=pk).first()
    if token is None:
        raise NotFound("No such token.")
    return token
