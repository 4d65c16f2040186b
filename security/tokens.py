"""API tokens: the model and the token string format (docs/api-tokens.md).

A token string is `itsm_<prefix>_<secret>`: `itsm_` lets secret scanners recognise a leaked token, `<prefix>` (8
lowercase hex characters, unique) finds the row with one indexed lookup, and `<secret>` (40 base62 characters,
about 238 bits) is what proves possession. Only `sha256(token string)` is stored: a high-entropy secret needs no slow
hash, and the database never holds anything that authenticates. Comparison is constant-time.
"""

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import ClassVar

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "itsm"  # noqa: S105 - the public marker secret scanners match, not a secret
PREFIX_LENGTH = 8
SECRET_LENGTH = 40
_SECRET_ALPHABET = string.ascii_letters + string.digits
TOKEN_PATTERN = re.compile(rf"^{TOKEN_PREFIX}_([0-9a-f]{{{PREFIX_LENGTH}}})_([0-9A-Za-z]{{{SECRET_LENGTH}}})$")


@dataclass(frozen=True)
class NewToken:
    """A freshly generated token: the string to show once, and what is stored."""

    prefix: str
    token: str

    @property
    def secret_hash(self) -> str:
        return hash_token(self.token)


def generate_token() -> NewToken:
    prefix = secrets.token_hex(PREFIX_LENGTH // 2)
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(SECRET_LENGTH))
    return NewToken(prefix=prefix, token=f"{TOKEN_PREFIX}_{prefix}_{secret}")


def parse_prefix(token: str) -> str | None:
    """The lookup prefix of a well-formed token string, or None when the string is not one."""
    match = TOKEN_PATTERN.match(token)
    return match.group(1) if match else None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ApiToken(models.Model):
    """A credential for the REST API that acts as `user` (a person or a service account), narrowed to `scopes`.

    Never deleted: revocation sets `revoked_at`, so the row keeps saying who created, used and revoked it.
    `last_used_at` is written at most once a minute per token (`security.authentication`), so reads stay reads.
    """

    user = models.ForeignKey("security.User", on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=PREFIX_LENGTH, unique=True)
    secret_hash = models.CharField(max_length=64)
    scopes = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey("security.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey("security.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        verbose_name = "API token"
        ordering = ("-id",)
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=models.Q(expires_at__gt=models.F("created_at")), name="security_apitoken_expires_later"
            ),
            models.CheckConstraint(
                condition=models.Q(revoked_at__isnull=True, revoked_by__isnull=True)
                | models.Q(revoked_at__isnull=False),
                name="security_apitoken_revoked_by_needs_revoked_at",
            ),
        ]
        indexes: ClassVar = [models.Index(fields=("user", "-id"), name="security_apitoken_user_id")]

    def __str__(self) -> str:
        return f"{self.name} ({TOKEN_PREFIX}_{self.prefix}_…)"

    @property
    def display_prefix(self) -> str:
        return f"{TOKEN_PREFIX}_{self.prefix}_"

    def matches(self, token: str) -> bool:
        return hmac.compare_digest(self.secret_hash, hash_token(token))

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at <= (now or timezone.now())

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def status(self, now: datetime | None = None) -> str:
        if self.is_revoked:
            return "revoked"
        if self.is_expired(now):
            return "expired"
        return "active"

    @cached_property
    def effective_scopes(self) -> frozenset[str]:
        """Granted to this token and still grantable to its user, worked out once per loaded token (one request): a
        user who lost a role loses the scopes that came with it on the next request, without anyone editing tokens."""
        from security.permissions import token_grantable_scopes  # lazy: permissions imports the models

        return frozenset(self.scopes) & token_grantable_scopes(self.user)

    def has_scope(self, scope: str) -> bool:
        return scope in self.effective_scopes


def last_used_interval_seconds() -> int:
    return int(getattr(settings, "API_TOKEN_LAST_USED_INTERVAL_SECONDS", 60))
