"""`Authorization: Bearer itsm_<prefix>_<secret>` for the REST API (docs/api-tokens.md).

Every request reads the token row (one indexed query on `prefix`, joined to its user), so a revocation, an expiry or a
deactivated user takes effect on the very next request: nothing is cached. A request without a Bearer header is left
to the next authentication class (the browser session); a Bearer header that does not authenticate is a 401 with the
standard error body and `WWW-Authenticate: Bearer ..., error="invalid_token"` (RFC 6750), the same answer whether the
token is malformed, unknown, wrong, expired or revoked.
"""

import logging
from datetime import timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from security.models import User
from security.scopes import REALM
from security.tokens import ApiToken, last_used_interval_seconds, parse_prefix

logger = logging.getLogger(__name__)

_FAILED_ATTR = "_itsm_token_failed"


class InvalidToken(exceptions.AuthenticationFailed):
    default_detail = "The API token is invalid, expired or revoked."
    default_code = "invalid_token"


class ApiTokenAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            return self._fail(request, "malformed")
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError:
            return self._fail(request, "malformed")
        prefix = parse_prefix(raw)
        if prefix is None:
            return self._fail(request, "malformed")
        token = ApiToken.objects.select_related("user").filter(prefix=prefix).first()
        now = timezone.now()
        if token is None or not token.matches(raw):
            return self._fail(request, "unknown", prefix=prefix)
        if token.revoked_at is not None:
            return self._fail(request, "revoked", prefix=prefix)
        if token.is_expired(now):
            return self._fail(request, "expired", prefix=prefix)
        if not token.user.is_active:
            return self._fail(request, "inactive_user", prefix=prefix)
        self._touch(token, now)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        if getattr(request, _FAILED_ATTR, False):
            return f'{self.keyword} realm="{REALM}", error="invalid_token"'
        return f'{self.keyword} realm="{REALM}"'

    def _fail(self, request: Request, reason: str, *, prefix: str = "") -> Any:
        setattr(request, _FAILED_ATTR, True)
        logger.info("security.token_refused", extra={"reason": reason, "prefix": prefix})
        raise InvalidToken()

    @staticmethod
    def _touch(token: ApiToken, now: Any) -> None:
        """Record the use at most once per interval: a conditional UPDATE only when the stored time is stale, so a
        busy token costs one write a minute, not one per request (and concurrent requests cannot move it back)."""
        interval = timedelta(seconds=last_used_interval_seconds())
        if token.last_used_at is not None and token.last_used_at > now - interval:
            return
        ApiToken.objects.filter(pk=token.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - interval)
        ).update(last_used_at=now)
        token.last_used_at = now
